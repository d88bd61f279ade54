"""Heavy: turns the light `GPTConfig` + strategy + precision into megatron-core objects.

Builds the `TransformerConfig`, picks the layer spec (TransformerEngine when it imports, else
megatron-core's local spec) and builds one megatron `GPTModel` per virtual-pipeline chunk.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.transformer import TransformerConfig

from nemolite.backends import cpu_speed
from nemolite.errors import ConfigError
from nemolite.llm.gpt.model.recompute import recompute_fields

if TYPE_CHECKING:
    from nemolite.lightning.precision import MegatronMixedPrecision
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model.base import GPTConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def squared_relu(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2 (Primer)."""
    return torch.pow(F.relu(x), 2)


ACTIVATION_FUNCS = {
    "gelu": F.gelu,
    "geglu": F.gelu,
    "silu": F.silu,
    "swiglu": F.silu,
    "relu": F.relu,
    "squared_relu": squared_relu,
}


@functools.cache
def transformer_engine_available() -> bool:
    """Whether TransformerEngine imports (and a GPU is there to run it)."""
    if not torch.cuda.is_available():
        return False
    try:
        import transformer_engine  # noqa: F401
    except Exception:  # TE raises more than ImportError when its CUDA libs mismatch.
        return False
    return True


def uses_transformer_engine(cfg: GPTConfig) -> bool:
    """Whether this config will be built with TransformerEngine layers."""
    if cfg.transformer_layer_spec == "auto":
        return transformer_engine_available()
    return cfg.transformer_layer_spec == "transformer_engine"


def padded_vocab_size(vocab_size: int, divisible_by: int, tp_size: int) -> int:
    """Pads the vocabulary so every TP rank gets an equal, aligned slice (as megatron does)."""
    multiple = divisible_by * tp_size
    return ((vocab_size + multiple - 1) // multiple) * multiple


def _precision_fields(precision: MegatronMixedPrecision | None) -> dict[str, Any]:
    if precision is None:
        return {"params_dtype": torch.float32}
    dtype = DTYPES[precision.dtype_name]
    fields: dict[str, Any] = {
        "params_dtype": dtype,
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        "autocast_dtype": dtype if precision.autocast_enabled else None,
        "enable_autocast": precision.autocast_enabled,
    }
    if precision.fp8 is not None:
        fields.update(
            fp8=precision.fp8,
            fp8_recipe=precision.fp8_recipe,
            fp8_margin=precision.fp8_margin,
            fp8_amax_history_len=precision.fp8_amax_history_len,
            fp8_amax_compute_algo=precision.fp8_amax_compute_algo,
            fp8_param=precision.fp8_param,
        )
    return fields


def _fusions(cfg: GPTConfig, te: bool) -> dict[str, bool]:
    # The fused kernels need CUDA (and apex/TE for some); on CPU the unfused paths compute the same.
    cuda = torch.cuda.is_available()
    return {
        "bias_activation_fusion": cfg.bias_activation_fusion and cuda,
        "bias_dropout_fusion": cfg.bias_dropout_fusion and cuda,
        "apply_rope_fusion": cfg.apply_rope_fusion and cuda and te,
        "masked_softmax_fusion": cfg.masked_softmax_fusion and cuda and te,
        "persist_layer_norm": cfg.persist_layer_norm and cuda and te,
        "cross_entropy_loss_fusion": cfg.cross_entropy_loss_fusion and cuda,
    }


def _parallel_fields(
    strategy: MegatronStrategy, precision: MegatronMixedPrecision | None, params_dtype: torch.dtype
) -> dict[str, Any]:
    pipeline_dtype = strategy.pipeline_dtype or (precision and precision.pipeline_dtype)
    batch_p2p = strategy.batch_p2p_comm
    if batch_p2p is None:
        # Interleaved pipelines over gloo give silently wrong results with batched isend/irecv.
        batch_p2p = torch.cuda.is_available()
    return {
        "tensor_model_parallel_size": strategy.tensor_model_parallel_size,
        "pipeline_model_parallel_size": strategy.pipeline_model_parallel_size,
        "virtual_pipeline_model_parallel_size": strategy.virtual_pipeline_model_parallel_size,
        "context_parallel_size": strategy.context_parallel_size,
        "sequence_parallel": strategy.sequence_parallel,
        "expert_model_parallel_size": strategy.expert_model_parallel_size,
        "expert_tensor_parallel_size": strategy.expert_tensor_parallel_size,
        "pipeline_dtype": DTYPES[pipeline_dtype] if pipeline_dtype else params_dtype,
        "batch_p2p_comm": batch_p2p,
        "overlap_p2p_comm": strategy.overlap_p2p_comm,
        "account_for_embedding_in_pipeline_split": strategy.account_for_embedding_in_pipeline_split,
        "account_for_loss_in_pipeline_split": strategy.account_for_loss_in_pipeline_split,
    }


def _moe_fields(cfg: GPTConfig) -> dict[str, Any]:
    if cfg.num_moe_experts is None:
        return {}
    return {
        "num_moe_experts": cfg.num_moe_experts,
        "moe_router_topk": cfg.moe_router_topk,
        "moe_router_pre_softmax": cfg.moe_router_pre_softmax,
        "moe_ffn_hidden_size": cfg.moe_ffn_hidden_size or cfg.ffn_hidden_size,
        "moe_aux_loss_coeff": cfg.moe_aux_loss_coeff,
        "moe_router_load_balancing_type": cfg.moe_router_load_balancing_type,
        "moe_token_dispatcher_type": cfg.moe_token_dispatcher_type,
        "moe_grouped_gemm": cfg.moe_grouped_gemm,
    }


def transformer_config(
    cfg: GPTConfig,
    strategy: MegatronStrategy,
    precision: MegatronMixedPrecision | None = None,
) -> TransformerConfig:
    """megatron-core's TransformerConfig for this model, layout and precision."""
    prec = _precision_fields(precision)
    return TransformerConfig(
        num_layers=cfg.num_layers,
        hidden_size=cfg.hidden_size,
        ffn_hidden_size=cfg.ffn_hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        num_query_groups=cfg.num_query_groups,
        kv_channels=cfg.kv_channels,
        normalization=cfg.normalization,
        layernorm_epsilon=cfg.layernorm_epsilon,
        activation_func=ACTIVATION_FUNCS[cfg.activation],
        gated_linear_unit=cfg.is_gated,
        add_bias_linear=cfg.add_bias_linear,
        add_qkv_bias=cfg.add_qkv_bias,
        qk_layernorm=cfg.qk_layernorm,
        init_method_std=cfg.init_method_std,
        hidden_dropout=cfg.hidden_dropout,
        attention_dropout=cfg.attention_dropout,
        # Master weights are drawn whole on the CPU and then sliced, so TP layouts start from the
        # same numbers as one process (on GPU, megatron initialises on the device instead).
        use_cpu_initialization=not torch.cuda.is_available(),
        calculate_per_token_loss=cfg.calculate_per_token_loss,
        **_parallel_fields(strategy, precision, prec["params_dtype"]),
        **_fusions(cfg, uses_transformer_engine(cfg)),
        **prec,
        **_moe_fields(cfg),
        **recompute_fields(cfg),
    )


def layer_spec(cfg: GPTConfig) -> Any:
    """TransformerEngine layer spec when TE is used, else megatron-core's local (pure torch) spec."""
    from megatron.core.models.gpt import gpt_layer_specs as specs

    kwargs = {
        "num_experts": cfg.num_moe_experts,
        "moe_grouped_gemm": cfg.moe_grouped_gemm,
        "qk_layernorm": cfg.qk_layernorm,
    }
    if uses_transformer_engine(cfg):
        return specs.get_gpt_layer_with_transformer_engine_spec(**kwargs)
    from nemolite.backends.sdpa_attention import with_sdpa_attention

    # torch's fused SDPA kernels instead of the local spec's unfused DotProductAttention, which
    # also cannot attend within packed sequences (see backends/sdpa_attention.py).
    return with_sdpa_attention(specs.get_gpt_layer_local_spec(normalization=cfg.normalization, **kwargs))


def build_chunks(cfg: GPTConfig, tf_config: TransformerConfig, vocab_size: int) -> list[torch.nn.Module]:
    """One megatron GPTModel per virtual-pipeline chunk of this pipeline rank."""
    from megatron.core.models.gpt import GPTModel as McoreGPTModel

    if vocab_size < 1:
        raise ConfigError("model.config.vocab_size", vocab_size, "must be >= 1", "set it or give a tokenizer")
    vp = tf_config.virtual_pipeline_model_parallel_size or 1
    spec = layer_spec(cfg)
    chunks = []
    for vp_stage in range(vp):
        stage = vp_stage if vp > 1 else None
        chunks.append(
            McoreGPTModel(
                config=tf_config,
                transformer_layer_spec=spec,
                vocab_size=vocab_size,
                max_sequence_length=cfg.seq_length,
                pre_process=parallel_state.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
                post_process=parallel_state.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
                share_embeddings_and_output_weights=cfg.share_embeddings_and_output_weights,
                position_embedding_type=cfg.position_embedding_type,
                rotary_percent=cfg.rotary_percent,
                rotary_base=cfg.rotary_base,
                vp_stage=stage,
            )
        )
    if cfg.rope_scaling:
        for chunk in chunks:
            rotary = getattr(chunk, "rotary_pos_emb", None)
            if rotary is not None:
                rotary.inv_freq = llama3_scaled_inv_freq(rotary.inv_freq, cfg)
    return chunks


def llama3_scaled_inv_freq(inv_freq: torch.Tensor, cfg: GPTConfig) -> torch.Tensor:
    """Llama 3.1's RoPE frequency rescaling ("llama3" in HF's rope_scaling), every parameter honoured.

    Replaces megatron-core's own (models/common/embeddings/rotary_pos_embedding.py
    `_apply_scaling`), which takes only the factor and fixes the other three at 1, 4 and 8192.
    Computed as transformers' `_compute_llama3_parameters` does, so the frequencies agree bit for bit.
    """
    low_wavelen = cfg.old_context_len / cfg.low_freq_factor
    high_wavelen = cfg.old_context_len / cfg.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / cfg.scale_factor, inv_freq)
    smooth = (cfg.old_context_len / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor)
    smoothed = (1 - smooth) * scaled / cfg.scale_factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def _padded_logits(input: torch.Tensor, weight: torch.Tensor, real: int) -> torch.Tensor:
    rows = weight.shape[0]
    flat = input.reshape(-1, input.shape[-1])
    out = input.new_empty(flat.shape[0], rows)
    torch.mm(flat, weight[:real].t(), out=out[:, :real])
    out[:, real:] = float("-inf")
    return out.view(*input.shape[:-1], rows)


class _PaddedLogits(torch.autograd.Function):
    """Logits [..., P] of `input @ weight[:real]^T` with the padded rows' columns -inf, without their matmul.

    What `F.linear` over all P rows, `clone` and the -inf fill give, minus the work on the padded
    rows: the matmul writes the real columns straight into the full-width output (BLAS takes the
    row stride), the padded ones are filled. In backward the padded columns' gradient is zero (the
    fill cuts them off), so only the real rows take part: the input's gradient, and the weight's,
    which goes into megatron DDP's `main_grad` in the matmul when `into_main_grad` (as the CPU
    path's linear layers do, backends/cpu_speed.py), else into a gradient whose padded rows are 0.
    """

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, weight: torch.Tensor, real: int, into_main_grad: bool) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.real, ctx.into_main_grad = real, into_main_grad
        return _padded_logits(input, weight, real)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, None, None]:
        input, weight = ctx.saved_tensors
        real = ctx.real
        g = grad.reshape(-1, weight.shape[0])[:, :real]
        grad_input = g.mm(weight[:real]).view(input.shape) if ctx.needs_input_grad[0] else None
        flat = input.reshape(-1, input.shape[-1])
        if ctx.into_main_grad:
            weight.main_grad[:real].addmm_(g.t(), flat)
            weight.grad_added_to_main_grad = True
            return grad_input, torch.empty_like(weight), None, None
        grad_weight = torch.empty_like(weight)
        torch.mm(g.t(), flat, out=grad_weight[:real])
        grad_weight[real:] = 0
        return grad_input, grad_weight, None, None


def _masked_forward_impl(layer: torch.nn.Module, start: int) -> Any:
    """The output layer's `_forward_impl` giving logits whose columns from `start` on are -inf.

    With nothing to overlap or reduce (one tensor-parallel rank, no bias, no sequence parallelism,
    no fused or deferred weight gradients) the padded rows are never multiplied (`_PaddedLogits`);
    otherwise upstream's linear runs and its padded columns are overwritten on a copy.
    """
    original: Any = layer._forward_impl

    def forward_impl(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     gradient_accumulation_fusion: bool, allreduce_dgrad: bool, sequence_parallel: bool,
                     grad_output_buffer: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        if (bias is None and not (gradient_accumulation_fusion or allreduce_dgrad or sequence_parallel)
                and grad_output_buffer is None and input.dtype == weight.dtype):
            if torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad):
                return _PaddedLogits.apply(input, weight, start, cpu_speed.accumulates_into_main_grad(input, weight))
            return _padded_logits(input, weight, start)
        logits = original(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad, sequence_parallel,
                          grad_output_buffer, *args, **kwargs).clone()
        logits[..., start:] = float("-inf")
        return logits

    return forward_impl


def mask_padded_vocab(chunks: list[torch.nn.Module], vocab_size: int) -> None:
    """Gives the padded vocabulary rows no probability: their logits become -inf.

    megatron pads the output layer to `make_vocab_size_divisible_by x TP` rows and lets the padded
    ones take softmax mass (megatron/core/models/gpt/gpt_model.py computes the loss over every
    row); here the loss and log-probs equal an unpadded model's (HF's) at any TP. Each rank holds
    the vocabulary slice [rank x V/TP, (rank+1) x V/TP) of the column-parallel output layer; the
    mask goes on that slice before any gather.
    """
    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    for chunk in chunks:
        output_layer = getattr(chunk, "output_layer", None)
        if output_layer is None or not getattr(chunk, "post_process", False):
            continue
        local = output_layer.output_size_per_partition
        first_padded = vocab_size - tp_rank * local
        if first_padded >= local:
            continue  # this rank's slice holds no padding
        output_layer._forward_impl = _masked_forward_impl(output_layer, max(first_padded, 0))  # type: ignore[assignment]
