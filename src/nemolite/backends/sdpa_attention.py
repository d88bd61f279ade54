"""Core attention for megatron-core's local layer spec on `torch.nn.functional.scaled_dot_product_attention`.

Replaces megatron/core/transformer/dot_product_attention.py `DotProductAttention` (the local spec's
core attention when TransformerEngine is absent). Upstream's computes attention unfused
(`baddbmm`, masked softmax, `bmm`, a GQA `repeat_interleave` copy of K and V, a permute copy of
the output) and rejects packed sequences; this one takes the same arguments and gives the same
outputs and gradients (tests/backends/test_sdpa_attention.py: 1e-5 in fp32) through torch's fused
kernels, and honours `PackedSeqParams` (THD) with block-diagonal causal attention, so no token of a
pack attends across an example boundary. Delete it the day the local spec's attention is fused and
packing-aware upstream.

Masks keep megatron's conventions: `attention_mask` is boolean with True = masked out (broadcast
to [b, np, sq, sk]); when given it replaces the causal mask, as upstream's softmax does. A query
row that masks every key attends to all keys here (upstream gives it uniform weights; SDPA would
give NaN); such rows are padding whose loss is masked anyway.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule

from nemolite.errors import ConfigError

_CAUSAL = (AttnMaskType.causal, AttnMaskType.padding_causal)


class SDPAttention(MegatronModule):
    """megatron's core-attention interface: [sq, b, np, hn] queries, [sk, b, ng, hn] keys/values -> [sq, b, np*hn].

    Constructor arguments are `DotProductAttention`'s (layer specs build it with them).
    """

    def __init__(
        self,
        config: Any,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: float | None = None,
        softmax_scale: float | None = None,
        cp_comm_type: str | None = None,
        pg_collection: Any = None,
    ) -> None:
        super().__init__(config=config)
        if config.context_parallel_size != 1:
            raise ConfigError("trainer.strategy.context_parallel_size", config.context_parallel_size,
                              "the local layer spec has no context-parallel attention",
                              "use TransformerEngine (GPU) or context_parallel_size=1")
        if getattr(config, "window_size", None) is not None or getattr(config, "softmax_type", "vanilla") != "vanilla":
            raise ConfigError("model.config", "window_size/softmax_type",
                              "SDPA core attention supports full-window vanilla softmax only",
                              "use the TransformerEngine layer spec")
        if pg_collection is None:
            from megatron.core.process_groups_config import ProcessGroupCollection

            pg_collection = ProcessGroupCollection.use_mpu_process_groups(required_pgs=["tp"])
        tp = pg_collection.tp.size()
        self.attn_mask_type = attn_mask_type
        self.heads = config.num_attention_heads // tp
        self.groups = config.num_query_groups // tp
        head_dim = config.kv_channels
        # apply_query_key_layer_scaling divides the scores by the layer number and the softmax
        # multiplies them back (megatron's FusedScaleMaskSoftmax): the product is this scale.
        self.softmax_scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(head_dim)
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout
        self.sequence_parallel = config.sequence_parallel

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias: torch.Tensor | None = None,
        packed_seq_params: Any = None,
    ) -> torch.Tensor:
        """Attention output in megatron's layout ([sq, b, np*hn]; [t, np*hn] for THD packs)."""
        if attention_bias is not None:
            raise ValueError("SDPAttention: attention_bias is not supported (neither is it upstream's)")
        mask_type = attn_mask_type or self.attn_mask_type
        dropout = self.dropout_p if self.training else 0.0
        if dropout > 0 and not self.sequence_parallel:
            with tensor_parallel.get_cuda_rng_tracker().fork():
                return self._attend(query, key, value, attention_mask, mask_type, packed_seq_params, dropout)
        return self._attend(query, key, value, attention_mask, mask_type, packed_seq_params, dropout)

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                mask_type: AttnMaskType, packed: Any, dropout: float) -> torch.Tensor:
        if packed is not None and packed.qkv_format == "thd":
            return self._attend_packed(query, key, value, packed, dropout)
        if packed is not None and packed.cu_seqlens_q is not None:
            raise ValueError(f"SDPAttention: packed qkv_format {packed.qkv_format!r} is not supported (use 'thd')")
        # [s, b, n, d] -> [b, n, s, d]: views; the kernels take strided inputs. The value is a view
        # into the fused QKV projection's output, its rows (b x groups x (np/ng + 2) x hn floats apart)
        # far slower for the kernel to read than one copy ([b, ng, s, hn] contiguous; query and key
        # come that way from the CPU RoPE path).
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        if not v.is_contiguous() and v.device.type == "cpu":
            v = v.contiguous()
        causal = mask_type in _CAUSAL and q.shape[2] > 1
        attn_mask = None
        if mask is not None:
            keep = ~mask
            # A fully masked row would be NaN in SDPA: let it see every key (see module docstring).
            attn_mask = keep | ~keep.any(dim=-1, keepdim=True)
            causal = False  # a given mask replaces the causal one, as in upstream's softmax
        out = self._sdpa(q, k, v, attn_mask=attn_mask, is_causal=causal, dropout=dropout)
        # [b, n, s, d] -> [s, b, n*d]
        b, n, s, d = out.shape
        return out.permute(2, 0, 1, 3).reshape(s, b, n * d)

    def _attend_packed(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, packed: Any,
                       dropout: float) -> torch.Tensor:
        """THD: [t, n, d] tensors holding examples back to back; each attends causally within itself."""
        cu_q = packed.cu_seqlens_q_padded if packed.cu_seqlens_q_padded is not None else packed.cu_seqlens_q
        cu_kv = packed.cu_seqlens_kv_padded if packed.cu_seqlens_kv_padded is not None else packed.cu_seqlens_kv
        bounds_q, bounds_kv = cu_q.tolist(), cu_kv.tolist()
        outs = []
        for i in range(len(bounds_q) - 1):
            q0, q1, k0, k1 = bounds_q[i], bounds_q[i + 1], bounds_kv[i], bounds_kv[i + 1]
            if q1 == q0:
                continue
            q, k, v = (t[a:b].transpose(0, 1).unsqueeze(0) for t, a, b in
                       ((query, q0, q1), (key, k0, k1), (value, k0, k1)))
            outs.append(self._sdpa(q, k, v, attn_mask=None, is_causal=q1 - q0 > 1, dropout=dropout)[0])
        out = torch.cat(outs, dim=1)  # [n, t, d]
        if out.shape[1] != query.shape[0]:
            raise ValueError(f"SDPAttention: cu_seqlens cover {out.shape[1]} of {query.shape[0]} packed tokens")
        n, t, d = out.shape
        return out.transpose(0, 1).reshape(t, n * d)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, attn_mask: torch.Tensor | None,
              is_causal: bool, dropout: float) -> torch.Tensor:
        gqa = q.shape[-3] != k.shape[-3]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout,
                                              is_causal=is_causal, scale=self.softmax_scale, enable_gqa=gqa)


def with_sdpa_attention(spec: Any) -> Any:
    """The layer spec with its self-attention's core attention replaced by `SDPAttention`."""
    attention = spec.submodules.self_attention
    if attention.submodules.core_attention is SDPAttention:
        return spec
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    if attention.submodules.core_attention is not DotProductAttention:
        return spec  # another backend's attention (TE, MLA): leave it
    submodules = dataclasses.replace(attention.submodules, core_attention=SDPAttention)
    layer = dataclasses.replace(spec.submodules, self_attention=dataclasses.replace(attention, submodules=submodules))
    return dataclasses.replace(spec, submodules=layer)
