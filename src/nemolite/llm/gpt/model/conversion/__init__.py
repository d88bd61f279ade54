"""Hugging Face <-> nemolite conversion: family tables (`families`), config mapping (`hf_config`),
the generic converter, and the import/export pipelines (heavy modules import torch)."""
