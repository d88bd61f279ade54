"""Recipes: one module per model size; each returns run.Partial[llm.pretrain]."""
