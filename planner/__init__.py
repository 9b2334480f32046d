"""planfile: capacity planning for LLM inference, written as code."""

__version__ = "0.1.0"
