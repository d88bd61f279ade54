"""Llama 3, 3.1, 3.2 and 3.3: the size table behind `llama3_8b.py`, `llama31_405b.py`, ...

Each row is NeMo 2.0's recipe module of the same name (its published layout, data and schedule).
The layouts target nodes of 8 80-GB GPUs: the 8B fits with the distributed optimizer without TP,
so CP=2 splits its 8192-token sequences; the 70B needs TP4 inside NVLink, PP4 with 5 virtual
stages and SP; the 405B TP8 PP8 VP2 CP4 with embedding and loss counted as pipeline layers
(126 + 2 = 128 = 8 x 2 x 8). Longer-context variants trade data parallelism for CP.
"""

from nemolite import llm
from nemolite.recipes._family import Layout, Size

LLAMA3_8B = Size(
    name="llama3_8b",
    title="Llama 3 8B",
    model=llm.LlamaModel,
    config=llm.Llama3Config8B,
    hf_id="meta-llama/Meta-Llama-3-8B",
    pretrain=Layout(cp=2),
    lora=Layout(),
    full=Layout(tp=2),
    lora_spec=llm.LoRA(dim=8, alpha=16),
)
LLAMA3_70B = Size(
    name="llama3_70b",
    title="Llama 3 70B",
    model=llm.LlamaModel,
    config=llm.Llama3Config70B,
    hf_id="meta-llama/Meta-Llama-3-70B",
    pretrain=Layout(tp=4, pp=4, vp=5, cp=2, sp=True, nodes=4),
    lora=Layout(tp=8),
    full=Layout(tp=8, pp=4, nodes=4),
    lora_spec=llm.LoRA(dim=16, alpha=32),
    notes="NeMo's pretrain_recipe defaults to num_nodes=1, which its own TP4 x PP4 x CP2 layout "
    "cannot fill; here it defaults to the trainer's 4 nodes.",
)
LLAMA31_8B = LLAMA3_8B.variant(
    "llama31_8b", title="Llama 3.1 8B", config=llm.Llama31Config8B,
    hf_id="meta-llama/Llama-3.1-8B", model_seq_length=8192,
)
LLAMA31_70B = LLAMA3_70B.variant(
    "llama31_70b", title="Llama 3.1 70B", config=llm.Llama31Config70B,
    hf_id="meta-llama/Llama-3.1-70B", model_seq_length=8192,
)
LLAMA31_405B = Size(
    name="llama31_405b",
    title="Llama 3.1 405B",
    model=llm.LlamaModel,
    config=llm.Llama31Config405B,
    hf_id="meta-llama/Llama-3.1-405B",
    model_seq_length=8192,
    pretrain=Layout(tp=8, pp=8, vp=2, cp=4, sp=True, nodes=64, count_ends=True),
    lora=Layout(tp=4, pp=6, vp=7, nodes=3),
    full=Layout(tp=8, pp=14, nodes=14),
    lora_spec=llm.LoRA(dim=16, alpha=32),
    finetune_global_batch_size=6,
    notes="NeMo's pretrain_recipe defaults to num_nodes=1; here the trainer's 64 nodes.",
)
LLAMA32_1B = Size(
    name="llama32_1b",
    title="Llama 3.2 1B",
    model=llm.LlamaModel,
    config=llm.Llama32Config1B,
    hf_id="meta-llama/Llama-3.2-1B",
    model_seq_length=8192,
    pretrain=Layout(),
    lora=Layout(),
    full=Layout(),
    lora_spec=llm.LoRA(dim=8, alpha=16),
)
LLAMA32_3B = LLAMA32_1B.variant(
    "llama32_3b", title="Llama 3.2 3B", config=llm.Llama32Config3B, hf_id="meta-llama/Llama-3.2-3B"
)
LLAMA33_70B = LLAMA31_70B.variant(
    "llama33_70b", title="Llama 3.3 70B", config=llm.Llama33Config70B,
    hf_id="meta-llama/Llama-3.3-70B-Instruct",
    notes="NeMo 2.0 has no llama33_70b recipe: this is Llama 3.1 70B's, with the 3.3 weights.",
)

# Long-context variants: the same model at 16k / 64k tokens, with NeMo's layouts for them.
LLAMA3_8B_16K = LLAMA3_8B.variant(
    "llama3_8b_16k", title="Llama 3 8B (16k)", model_seq_length=16384, seq_length=16384,
    pretrain=Layout(tp=4, pp=2, cp=2, sp=True, nodes=2),
)
LLAMA3_8B_64K = LLAMA3_8B.variant(
    "llama3_8b_64k", title="Llama 3 8B (64k)", model_seq_length=65536, seq_length=65536,
    pretrain=Layout(tp=4, pp=2, cp=4, sp=True, nodes=4),
)
LLAMA3_70B_16K = LLAMA3_70B.variant(
    "llama3_70b_16k", title="Llama 3 70B (16k)", model_seq_length=16384, seq_length=16384,
    pretrain=Layout(tp=8, pp=2, cp=2, sp=True, nodes=4), notes="",
)
LLAMA3_70B_64K = LLAMA3_70B.variant(
    "llama3_70b_64k", title="Llama 3 70B (64k)", model_seq_length=65536, seq_length=65536,
    pretrain=Layout(tp=8, pp=4, cp=8, sp=True, nodes=32), notes="",
)

SIZES = {
    size.name: size
    for size in (
        LLAMA3_8B, LLAMA3_8B_16K, LLAMA3_8B_64K, LLAMA3_70B, LLAMA3_70B_16K, LLAMA3_70B_64K,
        LLAMA31_8B, LLAMA31_70B, LLAMA31_405B, LLAMA32_1B, LLAMA32_3B, LLAMA33_70B,
    )
}
