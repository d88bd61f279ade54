"""Recipes: one module per model size; each returns `run.Partial[llm.pretrain]` (or finetune).

Recipe modules do not use `from __future__ import annotations`: nemo-run evaluates the return
annotations of `@run.cli.factory` functions with `eval()` in its own namespace.
"""
