"""GPT-family models and data."""
