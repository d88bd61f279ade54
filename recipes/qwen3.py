"""Qwen3 0.6B to 32B and the MoE 30B-A3B / 235B-A22B: the size table behind `qwen3_*.py`.

Each row is NeMo 2.0's recipe module of the same name: 4096-token mock data, global batch 32,
300k steps, lr 3e-4 -> 3e-5 after 500 warmup steps. The dense sizes grow TP to fit (8B: TP4, 14B:
TP8, 32B: TP8 PP2 over 2 nodes with full recomputation). The MoE sizes keep experts whole
(expert TP 1) and spread them with EP: 30B-A3B TP4 PP2 EP4 SP on one node with recomputation;
235B-A22B TP4 PP16 CP2 EP8 SP over 16 nodes, embedding and loss counted as pipeline layers
(94 + 2 = 96 = 16 x 6).
"""

from nemolite import llm
from nemolite.recipes._family import Layout, qwen_size

MOE_LORA = llm.LoRA(target_modules=("linear_qkv", "linear_proj"))

QWEN3 = qwen_size("qwen3_600m", "Qwen3 0.6B", llm.Qwen3Model, llm.Qwen3Config600M, "Qwen/Qwen3-0.6B")


def _dense(name: str, title: str, config: type, hf: str, tp: int, **changes) -> object:
    return QWEN3.variant(name, title=title, config=config, hf_id=hf, pretrain=Layout(tp=tp),
                         full=Layout(tp=tp), **changes)


SIZES = {
    size.name: size
    for size in (
        QWEN3,
        _dense("qwen3_1p7b", "Qwen3 1.7B", llm.Qwen3Config1P7B, "Qwen/Qwen3-1.7B", 1),
        _dense("qwen3_4b", "Qwen3 4B", llm.Qwen3Config4B, "Qwen/Qwen3-4B", 2),
        _dense("qwen3_8b", "Qwen3 8B", llm.Qwen3Config8B, "Qwen/Qwen3-8B", 4),
        _dense("qwen3_14b", "Qwen3 14B", llm.Qwen3Config14B, "Qwen/Qwen3-14B", 8),
        QWEN3.variant("qwen3_32b", title="Qwen3 32B", config=llm.Qwen3Config32B,
                      hf_id="Qwen/Qwen3-32B", pretrain=Layout(tp=8, pp=2, nodes=2),
                      lora=Layout(tp=8, nodes=2), full=Layout(tp=8, pp=2, nodes=2), recompute=True),
        QWEN3.variant("qwen3_30b_a3b", title="Qwen3 30B-A3B", config=llm.Qwen3Config30B_A3B,
                      hf_id="Qwen/Qwen3-30B-A3B",
                      pretrain=Layout(tp=4, pp=2, sp=True, ep=4, etp=1),
                      lora=Layout(tp=4, sp=True, ep=4, etp=1),
                      full=Layout(tp=4, pp=2, sp=True, ep=4, etp=1),
                      recompute=True, lora_spec=MOE_LORA),
        QWEN3.variant("qwen3_235b_a22b", title="Qwen3 235B-A22B", config=llm.Qwen3Config235B_A22B,
                      hf_id="Qwen/Qwen3-235B-A22B", micro_batch_size=1,
                      pretrain=Layout(tp=4, pp=16, cp=2, sp=True, ep=8, etp=1, nodes=16, count_ends=True),
                      lora=Layout(tp=4, pp=4, sp=True, ep=4, etp=1, nodes=8, count_ends=True),
                      full=Layout(tp=4, pp=16, sp=True, ep=4, etp=1, nodes=8, count_ends=True),
                      lora_spec=MOE_LORA),
    )
}
