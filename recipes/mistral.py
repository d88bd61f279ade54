"""Mistral 7B and Mixtral 8x7B / 8x22B: the size table behind `mistral_7b.py`, `mixtral_*.py`.

Each row is NeMo 2.0's recipe module of the same name. Mistral 7B fits one node of 8 80-GB GPUs
with CP=2 over its 4096-token sequences. Mixtral puts one expert per GPU of each EP=8 group so
expert weights are not replicated, and pipelines the dense parts (8x7B: PP4 VP8 over 8 nodes;
8x22B: TP2 PP4 VP14 CP2 SP over 16 nodes).
"""

from nemolite import llm
from nemolite.recipes._family import Layout, Size

MIXTRAL_LORA = llm.LoRA(target_modules=("linear_qkv", "linear_proj"), dim=32)

MISTRAL_7B = Size(
    name="mistral_7b",
    title="Mistral 7B",
    model=llm.MistralModel,
    config=llm.MistralConfig7B,
    hf_id="mistralai/Mistral-7B-v0.3",
    pretrain=Layout(cp=2),
    lora=Layout(),
    full=Layout(tp=2),
    seq_length=4096,
    max_steps=100,  # NeMo's mistral_7b trainer publishes 100 steps
)
MIXTRAL_8X7B = Size(
    name="mixtral_8x7b",
    title="Mixtral 8x7B",
    model=llm.MixtralModel,
    config=llm.MixtralConfig8x7B,
    hf_id="mistralai/Mixtral-8x7B-v0.1",
    pretrain=Layout(pp=4, vp=8, ep=8, nodes=8),
    lora=Layout(ep=8),
    full=Layout(pp=4, vp=8, ep=8, nodes=4),
    seq_length=4096,
    lora_spec=MIXTRAL_LORA,
    notes="Full fine-tuning needs PP4 x EP8 = 32 GPUs: num_nodes defaults to 4 for it.",
)
MIXTRAL_8X22B = Size(
    name="mixtral_8x22b",
    title="Mixtral 8x22B",
    model=llm.MixtralModel,
    config=llm.MixtralConfig8x22B,
    hf_id="mistralai/Mixtral-8x22B-v0.1",
    pretrain=Layout(tp=2, pp=4, vp=14, cp=2, sp=True, ep=8, nodes=16),
    # NeMo's fine-tuning sets TP=8 without sequence parallelism, which megatron-core refuses for
    # MoE layers; SP is on here.
    lora=Layout(tp=8, sp=True, ep=8, nodes=8),
    full=Layout(tp=8, pp=4, vp=14, sp=True, ep=8, nodes=32),
    seq_length=4096,
    lora_spec=MIXTRAL_LORA,
)

SIZES = {size.name: size for size in (MISTRAL_7B, MIXTRAL_8X7B, MIXTRAL_8X22B)}
