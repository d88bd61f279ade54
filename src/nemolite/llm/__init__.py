"""LLM building blocks and entry points (`from nemolite import llm`)."""
