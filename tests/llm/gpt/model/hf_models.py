"""Tiny random Hugging Face models, one per family with its special features on (no downloads).

Shared by the HF conversion tests (and the multi-process ones): several layers, GQA, and each
family's own parts (Llama 3.1 RoPE scaling, tied embeddings, QKV bias, qk-norm, experts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VOCAB = 100  # pads to 128 in nemolite: the padded rows must take no probability
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
# original_max_position_embeddings=64 puts the scaling's smooth band inside a 16-dim head's range.
LLAMA31_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 64}


def hf_config(family: str, **overrides: Any) -> Any:
    import transformers

    if overrides:
        config = hf_config(family)
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    if family == "llama31":
        return transformers.LlamaConfig(**COMMON, rope_scaling=LLAMA31_SCALING, rope_theta=500000.0)
    if family == "llama32":
        return transformers.LlamaConfig(**COMMON, tie_word_embeddings=True, rope_theta=500000.0)
    if family == "mistral":
        return transformers.MistralConfig(**COMMON, sliding_window=None)
    if family == "qwen2":
        return transformers.Qwen2Config(**COMMON, tie_word_embeddings=True)
    if family == "qwen3":
        return transformers.Qwen3Config(**COMMON, head_dim=16)
    if family == "mixtral":
        return transformers.MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2)
    if family == "qwen3_moe":
        return transformers.Qwen3MoeConfig(**COMMON, head_dim=16, num_experts=4, num_experts_per_tok=2,
                                           moe_intermediate_size=32, norm_topk_prob=False)
    raise ValueError(family)


FAMILIES = ("llama31", "llama32", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe")


def make_hf_model(family: str, directory: Path, *, seed: int = 0, shard: str = "20KB", **overrides: Any) -> Any:
    """Builds the random model, saves it (sharded safetensors) into `directory`, returns it (eval)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(hf_config(family, **overrides)).eval()
    model.save_pretrained(directory, max_shard_size=shard)
    return model


def batch(seed: int = 0, size: tuple[int, int] = (2, 12)) -> Any:
    """A fixed batch of token ids."""
    import torch

    return torch.randint(0, VOCAB, size, generator=torch.Generator().manual_seed(seed))


def nemolite_logits(checkpoint: Path, tokens: Any, vocab: int = VOCAB) -> Any:
    """nemolite's logits (real vocabulary) for `tokens` from a checkpoint, in one process."""
    import torch

    from nemolite.llm.gpt.model import megatron_config as mc
    from nemolite.llm.gpt.model.conversion import exporter, megatron_io

    saved = exporter.read_saved(checkpoint)
    with megatron_io.single_process_megatron():
        model = exporter.load_model(saved)  # with the LoRA adapters of a LoRA fine-tune
        mc.mask_padded_vocab([model], vocab)
        model.eval()
        positions = torch.arange(tokens.shape[1]).unsqueeze(0).expand_as(tokens)
        with torch.no_grad():
            return model(tokens, positions, None)
