"""tracehouse: an LLM engineering platform that speaks Langfuse's wire protocol."""

__version__ = "0.1.0"
