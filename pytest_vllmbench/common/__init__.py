"""Foundations every layer may use: user errors, atomic files, credential redaction."""
