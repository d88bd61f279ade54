"""Parameter-efficient fine-tuning methods."""

from nemolite.llm.peft.lora import LoRA

__all__ = ["LoRA"]
