"""Parameter-efficient fine-tuning methods."""

from nemolite.llm.peft.dora import DoRA
from nemolite.llm.peft.lora import LoRA

__all__ = ["DoRA", "LoRA", "PEFT_STR2CLS", "merge_lora"]

#: NeMo's table from `peft_scheme`-style names to the PEFT classes.
PEFT_STR2CLS: dict[str, type[LoRA]] = {"LoRA": LoRA, "lora": LoRA, "DoRA": DoRA, "dora": DoRA}


def merge_lora(lora_checkpoint_path: str, output_path: str, overwrite: bool = False) -> str:
    """Merges a LoRA fine-tune's adapters into its weights (NeMo's `llm.peft.merge_lora`).

    Args:
        lora_checkpoint_path: a checkpoint of a `peft=LoRA()` run (any TP/PP layout).
        output_path: the merged checkpoint directory to write (a plain nemolite checkpoint that
            restores and exports like an imported model).
        overwrite: replace an existing `output_path`.

    Returns:
        `output_path`.
    """
    from nemolite.llm.gpt.model.conversion.exporter import merge_lora_checkpoint

    return str(merge_lora_checkpoint(lora_checkpoint_path, output_path, overwrite))
