"""Engines: offline (in-process vLLM), server (an owned vLLM server), endpoint (someone else's)."""
