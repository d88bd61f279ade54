"""Writes small random nemolite checkpoints (run dir + config.yaml + torch_dist) for inference tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nemolite import llm
from nemolite.lightning import megatron_checkpoint as ckpt
from nemolite.lightning.exp_ckpt_dir import MARKER
from nemolite.llm.recipe_io import task_config, to_yaml

# 4 heads / 2 groups divide TP=2; a large init std gives peaked, prompt-dependent distributions, so
# greedy paths differ between prompts and positions (a tiny std makes every logit nearly equal).
TINY = dict(num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, num_query_groups=2,
            seq_length=96, init_method_std=0.08, make_vocab_size_divisible_by=128)


def tiny_config(**changes: Any) -> llm.LlamaConfig:
    return llm.LlamaConfig(**{**TINY, **changes})


def write_checkpoint(run_dir: Path, config: llm.LlamaConfig, *, peft: llm.LoRA | None = None,
                     adapter_std: float = 0.0, tokenizer: Any = None) -> Path:
    """A run directory whose only checkpoint holds `config`'s randomly initialised weights.

    With `peft`, LoRA adapters are added and their B matrices drawn with `adapter_std` (B is zero
    at initialisation, which would make the adapters invisible).
    """
    from nemolite.llm.inference import runtime

    tokenizer = tokenizer or llm.ByteTokenizer()
    vocab = tokenizer.build().vocab_size
    runtime.init_parallel(1)
    model = runtime.build_model(config, _padded(config, vocab), 1)
    if peft is not None:
        from nemolite.llm.peft.lora_transform import apply_lora

        apply_lora([model], peft, seed=0)
        gen = torch.Generator().manual_seed(7)
        for name, param in model.named_parameters():
            if name.endswith("linear_out.weight"):
                param.data.copy_(torch.randn(param.shape, generator=gen) * adapter_std)
    path = run_dir / "checkpoints" / "default--step=0-last"
    ckpt.save({"state_dict": ckpt.model_sharded_state_dict([model])}, path)
    (path / MARKER).write_text(json.dumps({"step": 0}))
    specs: dict[str, Any] = {"model": llm.GPTModel(config, tokenizer=tokenizer),
                             "data": llm.MockDataModule(seq_length=config.seq_length)}
    if peft is not None:
        specs["peft"] = peft
    verb = llm.finetune if peft is not None else llm.pretrain
    (run_dir / "config.yaml").write_text(to_yaml(task_config(verb, **specs)))
    return path


def _padded(config: llm.LlamaConfig, vocab: int) -> int:
    from nemolite.llm.gpt.model.megatron_config import padded_vocab_size

    return padded_vocab_size(config.vocab_size or vocab, config.make_vocab_size_divisible_by, 1)


def save_word_tokenizer(directory: Path, vocab_size: int) -> None:
    """A Hugging Face word-level tokenizer: <unk>=0, <s>=1, </s>=2 (transformers' Llama defaults for
    bos/eos), then words w3..w{vocab_size-1}, split on whitespace."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>", pad_token="<unk>")
    fast.save_pretrained(directory)
