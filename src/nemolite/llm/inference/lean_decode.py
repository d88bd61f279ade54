"""Heavy: a lean KV-cached forward pass over a megatron GPTModel's own parameters, for generation.

Why: decoding feeds one position per step, so a step is a few small matrix-vector products per
layer, and megatron-core's module stack around them costs as much again on a CPU: its static
inference context keeps the keys *before* RoPE and re-applies RoPE to the whole cache, recomputing
cos/sin for every position, in every layer, at every step (megatron/core/transformer/attention.py
`_adjust_key_value_for_inference` slices `k_pos_emb[:sequence_end]`), and each layer goes through
a dozen nested module calls, bias-dropout-add closures and TP-mapping autograd functions
(benchmarks/results/generate.md has the profile).

What: the same arithmetic as megatron's forward, layer by layer, on the model's own tensors (no
copies): norm, fused QKV `F.linear`, per-head q/k norms (Qwen3), RoPE on the new positions only
with the model's own frequencies (`model.rotary_pos_emb`, so Llama 3.1 scaling comes along), keys
and values written in place into a preallocated cache, SDPA with grouped-query attention, output
projection, residual, norm, fused gate/up with the activation, down projection, residual; with
tensor parallelism the row-parallel outputs are all-reduced over the TP group where megatron's
`RowParallelLinear` does it, and the vocab-parallel logits gathered as its output layer does.
The final norm and output layer run on the last position only unless all logits are asked for.

When not: `unsupported_reason` names the first part of a model this path does not reproduce
(mixture-of-experts MLPs, forward hooks such as unmerged LoRA adapters, TransformerEngine layers,
biases on every linear layer, ...); the engine then runs megatron's own forward and logs why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger("nemolite.generate")

_NORMS = (torch.nn.RMSNorm, torch.nn.LayerNorm)


def unsupported_reason(model: Any) -> str | None:
    """Why `LeanDecoder` cannot run `model` (a torch module) exactly as megatron would, or None when it can."""
    from megatron.core.models.gpt import GPTModel
    from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
    from megatron.core.transformer.attention import SelfAttention
    from megatron.core.transformer.identity_op import IdentityOp
    from megatron.core.transformer.mlp import MLP

    from nemolite.backends.sdpa_attention import SDPAttention

    if type(model) is not GPTModel:
        return f"{type(model).__name__} is not megatron's GPTModel"
    if not (model.pre_process and model.post_process) or getattr(model, "mtp_process", False):
        return "the model is split over pipeline stages or has multi-token prediction"
    if model.position_embedding_type != "rope":
        return f"position_embedding_type={model.position_embedding_type!r} (only 'rope')"
    reason = _config_reason(model.config)
    if reason:
        return reason
    decoder = model.decoder
    if not isinstance(decoder.final_layernorm, _NORMS):
        return f"final norm {type(decoder.final_layernorm).__name__}"
    for i, layer in enumerate(decoder.layers):
        attn, mlp = layer.self_attention, layer.mlp
        expected = (
            (layer.input_layernorm, _NORMS), (layer.pre_mlp_layernorm, _NORMS), (attn, (SelfAttention,)),
            (attn.linear_qkv, (ColumnParallelLinear,)), (attn.linear_proj, (RowParallelLinear,)),
            (attn.core_attention, (SDPAttention,)), (mlp, (MLP,)), (layer.cross_attention, (IdentityOp,)),
            (layer.pre_cross_attn_layernorm, (IdentityOp,)),
            (attn.q_layernorm or IdentityOp(), (IdentityOp, *_NORMS)),
            (attn.k_layernorm or IdentityOp(), (IdentityOp, *_NORMS)),
        )
        for module, types in expected:
            if type(module) not in types:
                return f"layer {i}: {type(module).__name__} where the lean path expects {types[0].__name__}"
        if type(mlp.linear_fc1) is not ColumnParallelLinear or type(mlp.linear_fc2) is not RowParallelLinear:
            return f"layer {i}: MLP linear layers {type(mlp.linear_fc1).__name__}/{type(mlp.linear_fc2).__name__}"
    skipped = [model.decoder, model.output_layer]
    hooked = [name for part in skipped for name, m in part.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    if hooked:
        return f"forward hooks (e.g. unmerged LoRA adapters) on {hooked[0]}"
    return None


def _config_reason(config: Any) -> str | None:
    from megatron.core import parallel_state

    checks = {
        "num_moe_experts": config.num_moe_experts is None,
        "add_bias_linear": not config.add_bias_linear,
        "sequence_parallel": not config.sequence_parallel,
        "context_parallel_size": config.context_parallel_size == 1,
        "apply_residual_connection_post_layernorm": not config.apply_residual_connection_post_layernorm,
        "fp32_residual_connection": not config.fp32_residual_connection,
        "layernorm_zero_centered_gamma": not config.layernorm_zero_centered_gamma,
        "rotary_interleaved": not config.rotary_interleaved,
        "flash_decode": not config.flash_decode,
        "attention_output_gate": not getattr(config, "attention_output_gate", False),
        "multi_latent_attention": not config.multi_latent_attention,
        "bias_activation_fusion": not config.bias_activation_fusion,
        "use_te_activation_func": not getattr(config, "use_te_activation_func", False),
        "activation_func_clamp_value": getattr(config, "activation_func_clamp_value", None) is None,
        "glu_linear_offset": getattr(config, "glu_linear_offset", 0.0) == 0.0,
        "yarn_rotary_scaling_factor": not hasattr(config, "yarn_rotary_scaling_factor"),
        "num_query_groups": (config.num_query_groups or config.num_attention_heads)
        >= parallel_state.get_tensor_model_parallel_world_size(),
    }
    failed = [name for name, ok in checks.items() if not ok]
    return f"config.{failed[0]}={getattr(config, failed[0], None)!r}" if failed else None


@dataclass
class _Layer:
    norm1: torch.nn.Module
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    q_norm: torch.nn.Module | None
    k_norm: torch.nn.Module | None
    proj_weight: torch.Tensor
    norm2: torch.nn.Module
    fc1_weight: torch.Tensor
    fc2_weight: torch.Tensor


def _norm(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What torch.nn.RMSNorm / LayerNorm's forward computes, without the module call."""
    if type(module) is torch.nn.RMSNorm:
        return F.rms_norm(x, module.normalized_shape, module.weight, module.eps)
    return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)  # type: ignore[arg-type]


def _rope(t: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """t * cos + rotate_half(t) * sin, with rotate_half's sign folded into `signed_sin` (exact in IEEE)."""
    half = t.shape[-1] // 2
    swapped = torch.cat((t[..., half:], t[..., :half]), dim=-1)
    return t * cos + swapped * signed_sin


class LeanDecoder:
    """Holds references to a supported GPTModel's tensors; `session` starts one generation batch."""

    def __init__(self, model: Any) -> None:
        from megatron.core import parallel_state

        self.model = model
        config = model.config
        self.tp: int = parallel_state.get_tensor_model_parallel_world_size()
        self.tp_group = parallel_state.get_tensor_model_parallel_group() if self.tp > 1 else None
        self.heads: int = config.num_attention_heads // self.tp
        self.groups: int = (config.num_query_groups or config.num_attention_heads) // self.tp
        self.head_dim: int = config.kv_channels
        self.activation: Callable[[torch.Tensor], torch.Tensor] = config.activation_func
        self.gated: bool = config.gated_linear_unit
        self.layers = [self._layer(layer) for layer in model.decoder.layers]
        self.scale: float = model.decoder.layers[0].self_attention.core_attention.softmax_scale
        self.final_norm: torch.nn.Module = model.decoder.final_layernorm
        self.output_weight: torch.Tensor = (model.shared_embedding_or_output_weight()
                                            if model.share_embeddings_and_output_weights else model.output_layer.weight)

    @staticmethod
    def _layer(layer: Any) -> _Layer:
        attn, mlp = layer.self_attention, layer.mlp
        norms = [n if isinstance(n, _NORMS) else None for n in (attn.q_layernorm, attn.k_layernorm)]
        return _Layer(norm1=layer.input_layernorm, qkv_weight=attn.linear_qkv.weight, qkv_bias=attn.linear_qkv.bias,
                      q_norm=norms[0], k_norm=norms[1], proj_weight=attn.linear_proj.weight,
                      norm2=layer.pre_mlp_layernorm, fc1_weight=mlp.linear_fc1.weight,
                      fc2_weight=mlp.linear_fc2.weight)

    def session(self, batch: int, total: int) -> LeanSession:
        """A KV cache for `batch` rows of up to `total` positions."""
        return LeanSession(self, batch, total)


class LeanSession:
    """One batch's KV cache and rotary tables; called with consecutive chunks of positions."""

    def __init__(self, decoder: LeanDecoder, batch: int, total: int) -> None:
        d = decoder
        self.d = d
        device, dtype = d.output_weight.device, d.output_weight.dtype
        with torch.no_grad():  # megatron's own call (lru-cached there): not an inference tensor
            freqs = d.model.rotary_pos_emb(total)[:, 0, 0, :]  # [total, head_dim]
        half = d.head_dim // 2
        self.cos = torch.cos(freqs).to(dtype)
        sin = torch.sin(freqs).to(dtype)
        self.signed_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
        shape = (batch, d.groups, total, d.head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in d.layers]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in d.layers]

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, start: int, all_logits: bool = False) -> torch.Tensor:
        """Logits [batch, len or 1, vocab] for `tokens` [batch, len] at positions start..start+len-1.

        Positions before `start` must have been fed already (they are in the cache).
        """
        d = self.d
        hidden = d.model.embedding.word_embeddings(tokens)  # [b, s, h]; TP-reduced inside
        end = start + tokens.shape[1]
        cos, sin = self.cos[start:end, None, :], self.signed_sin[start:end, None, :]
        for i, layer in enumerate(d.layers):
            attended = self._attention(i, layer, _norm(layer.norm1, hidden), start, end, cos, sin)
            hidden = hidden + self._reduce(F.linear(attended, layer.proj_weight))
            hidden = hidden + self._reduce(self._mlp(layer, _norm(layer.norm2, hidden)))
        if not all_logits:
            hidden = hidden[:, -1:]
        logits = F.linear(_norm(d.final_norm, hidden), d.output_weight)
        return self._gather(logits)

    def _attention(self, i: int, layer: _Layer, x: torch.Tensor, start: int, end: int,
                   cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        d = self.d
        b, s = x.shape[:2]
        per_group = d.heads // d.groups
        mixed = F.linear(x, layer.qkv_weight)
        if layer.qkv_bias is not None:
            mixed = mixed + layer.qkv_bias  # megatron adds the bias after the matmul: same rounding
        # megatron's fused layout: per query group, its query heads then one key and one value head.
        mixed = mixed.view(b, s, d.groups, per_group + 2, d.head_dim)
        value = mixed[:, :, :, per_group + 1]
        if layer.q_norm is None and layer.k_norm is None:
            rotated = _rope(mixed[:, :, :, : per_group + 1], cos[:, :, None], sin[:, :, None])
            query, key = rotated[:, :, :, :per_group], rotated[:, :, :, per_group]
        else:
            query, key = mixed[:, :, :, :per_group], mixed[:, :, :, per_group]
            if layer.q_norm is not None:
                query = _norm(layer.q_norm, query)
            if layer.k_norm is not None:
                key = _norm(layer.k_norm, key)
            query, key = _rope(query, cos[:, :, None], sin[:, :, None]), _rope(key, cos, sin)
        # [b, s, g, hd] -> the cache's [b, g, s, hd], written in place.
        self.keys[i][:, :, start:end].copy_(key.transpose(1, 2))
        self.values[i][:, :, start:end].copy_(value.transpose(1, 2))
        keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
        if s == 1:
            # One new position sees every cached one: each group's query heads attend as a
            # "sequence" of per_group queries to that group's keys, with no mask and no GQA copy.
            out = F.scaled_dot_product_attention(query.reshape(b, d.groups, per_group, d.head_dim), keys, values,
                                                 scale=d.scale)
            return out.reshape(b, 1, d.heads * d.head_dim)
        q = query.reshape(b, s, d.heads, d.head_dim).transpose(1, 2)
        mask = None if start == 0 else torch.ones(s, end, dtype=torch.bool, device=x.device).tril(start)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=start == 0,
                                             scale=d.scale, enable_gqa=d.groups != d.heads)
        return out.transpose(1, 2).reshape(b, s, d.heads * d.head_dim)

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        up = F.linear(x, layer.fc1_weight)
        if self.d.gated:
            gate, linear = torch.chunk(up, 2, dim=-1)
            up = self.d.activation(gate) * linear
        else:
            up = self.d.activation(up)
        return F.linear(up, layer.fc2_weight)

    def _reduce(self, partial: torch.Tensor) -> torch.Tensor:
        """Sum of the TP ranks' row-parallel partial outputs (megatron's RowParallelLinear all-reduce)."""
        if self.d.tp_group is not None:
            torch.distributed.all_reduce(partial, group=self.d.tp_group)
        return partial

    def _gather(self, logits: torch.Tensor) -> torch.Tensor:
        """Each TP rank's vocabulary slice, concatenated in rank order (the output layer's gather)."""
        if self.d.tp_group is None:
            return logits
        logits = logits.contiguous()
        parts = [torch.empty_like(logits) for _ in range(self.d.tp)]
        torch.distributed.all_gather(parts, logits, group=self.d.tp_group)
        return torch.cat(parts, dim=-1)
