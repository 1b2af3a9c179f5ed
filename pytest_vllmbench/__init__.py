"""pytest-vllmbench: benchmark an OpenAI Batch workload across models x vLLM modes with pytest."""

__version__ = "0.1.0"
