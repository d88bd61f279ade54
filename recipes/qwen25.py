"""Qwen2.5 0.5B to 72B: the size table behind `qwen25_500m.py` ... `qwen25_72b.py`.

Each row is NeMo 2.0's recipe module of the same name: 4096-token mock data, global batch 32,
micro batch 2, 300k steps, lr 3e-4 -> 3e-5 after 500 warmup steps. TP grows with the model so each
GPU's share fits 80 GB (7B: TP2, 14B: TP4, 32B: TP8 PP2 over 2 nodes, 72B: TP8 PP4 over 4 nodes).
"""

from nemolite import llm
from nemolite.recipes._family import Layout, qwen_size

QWEN25 = qwen_size("qwen25_500m", "Qwen2.5 0.5B", llm.Qwen2Model, llm.Qwen25Config500M,
                   "Qwen/Qwen2.5-0.5B")

SIZES = {
    size.name: size
    for size in (
        QWEN25,
        QWEN25.variant("qwen25_1p5b", title="Qwen2.5 1.5B", config=llm.Qwen25Config1P5B,
                       hf_id="Qwen/Qwen2.5-1.5B"),
        QWEN25.variant("qwen25_7b", title="Qwen2.5 7B", config=llm.Qwen25Config7B,
                       hf_id="Qwen/Qwen2.5-7B", pretrain=Layout(tp=2), full=Layout(tp=2)),
        QWEN25.variant("qwen25_14b", title="Qwen2.5 14B", config=llm.Qwen25Config14B,
                       hf_id="Qwen/Qwen2.5-14B", pretrain=Layout(tp=4), full=Layout(tp=4)),
        QWEN25.variant("qwen25_32b", title="Qwen2.5 32B", config=llm.Qwen25Config32B,
                       hf_id="Qwen/Qwen2.5-32B", pretrain=Layout(tp=8, pp=2, nodes=2),
                       lora=Layout(tp=8), full=Layout(tp=8)),
        QWEN25.variant("qwen25_72b", title="Qwen2.5 72B", config=llm.Qwen25Config72B,
                       hf_id="Qwen/Qwen2.5-72B", pretrain=Layout(tp=8, pp=4, nodes=4),
                       lora=Layout(tp=8), full=Layout(tp=8, pp=4, nodes=4)),
    )
}
