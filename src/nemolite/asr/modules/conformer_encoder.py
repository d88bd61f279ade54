"""NeMo's `ConformerEncoder` in its FastConformer form (offline, full or limited attention context).

Features (B, feat_in, T) are subsampled (dw_striding, 8x for FastConformer), scaled and given
relative positions, then run through `n_layers` Conformer blocks. `att_context_size=[left, right]`
limits how many frames each frame attends to (-1: unlimited), in the `regular` or
`chunked_limited` style. Streaming caches, local (Longformer) attention, stochastic depth in
inference, reductions and adapters are NeMo features this encoder does not implement; their
config fields are checked so a checkpoint that needs them is refused rather than run wrongly.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import nn

from nemolite.asr.modules.attention import RelPositionalEncoding
from nemolite.asr.modules.conformer_layer import ConformerLayer
from nemolite.asr.modules.subsampling import ConvSubsampling


def _context_sizes(att_context_size: Any) -> list[list[int]]:
    """NeMo's att_context_size as a list of [left, right] pairs ([[-1, -1]] when unset)."""
    if not att_context_size:
        return [[-1, -1]]
    sizes = [list(s) for s in att_context_size] if isinstance(att_context_size[0], (list, tuple)) else [list(att_context_size)]
    for size in sizes:
        if len(size) != 2:
            raise ValueError(f"att_context_size={att_context_size}: each entry must be [left, right]")
    return sizes


def _conv_context(conv_context_size: Any, kernel: int) -> tuple[int, int]:
    if conv_context_size is None:
        return ((kernel - 1) // 2, (kernel - 1) // 2)
    if conv_context_size == "causal":
        return (kernel - 1, 0)
    left, right = conv_context_size
    if left + right + 1 != kernel:
        raise ValueError(f"conv_context_size={conv_context_size}: must sum to conv_kernel_size - 1")
    return (int(left), int(right))


class ConformerEncoder(nn.Module):
    """FastConformer / Conformer encoder with NeMo's arguments and state-dict keys.

    Args:
        feat_in: input features (mel bands).
        n_layers: number of Conformer blocks.
        d_model: model size.
        feat_out: output size; -1 keeps d_model (otherwise a projection `out_proj`).
        subsampling: "dw_striding" (FastConformer) or "striding".
        subsampling_factor: time subsampling, a power of 2 (8 for FastConformer).
        subsampling_conv_channels: channels in the subsampling convolutions (-1: d_model).
        ff_expansion_factor: feed-forward width as a multiple of d_model.
        self_attention_model: "rel_pos" (the only one supported).
        n_heads: attention heads.
        att_context_size: [left, right] frames each frame attends to (-1: unlimited), or a list of
            such pairs to sample from in training (the first is used in evaluation).
        att_context_probs: probabilities of the pairs in training (default uniform).
        att_context_style: "regular" or "chunked_limited".
        xscaling: scale the subsampled input by sqrt(d_model).
        untie_biases: per-layer (True) or shared (False) Transformer-XL biases.
        pos_emb_max_len: initial length of the positional table.
        conv_kernel_size: depthwise kernel of the convolution module.
        conv_norm_type: "batch_norm" or "layer_norm".
        conv_context_size: None (symmetric), "causal" or [left, right].
        use_bias: biases in the linear and convolution layers of each block.
        dropout: dropout in the blocks.
        dropout_pre_encoder: dropout after subsampling.
        dropout_emb: dropout on the positional embeddings.
        dropout_att: dropout on the attention probabilities.
    """

    def __init__(
        self,
        feat_in: int,
        n_layers: int,
        d_model: int,
        feat_out: int = -1,
        causal_downsampling: bool = False,
        subsampling: str = "dw_striding",
        subsampling_factor: int = 8,
        subsampling_conv_chunking_factor: int = 1,
        subsampling_conv_channels: int = -1,
        reduction: str | None = None,
        reduction_position: int | None = None,
        reduction_factor: int = 1,
        ff_expansion_factor: int = 4,
        self_attention_model: str = "rel_pos",
        n_heads: int = 4,
        att_context_size: Any = None,
        att_context_probs: Any = None,
        att_context_style: str = "regular",
        xscaling: bool = True,
        untie_biases: bool = True,
        pos_emb_max_len: int = 5000,
        conv_kernel_size: int = 31,
        conv_norm_type: str = "batch_norm",
        conv_context_size: Any = None,
        use_bias: bool = True,
        dropout: float = 0.1,
        dropout_pre_encoder: float = 0.1,
        dropout_emb: float = 0.1,
        dropout_att: float = 0.0,
        stochastic_depth_drop_prob: float = 0.0,
        **ignored: Any,  # stochastic_depth_mode/start_layer, use_pytorch_sdpa*, sync_max_audio_length
    ) -> None:
        super().__init__()
        _refuse("self_attention_model", self_attention_model, self_attention_model != "rel_pos", "rel_pos")
        _refuse("causal_downsampling", causal_downsampling, causal_downsampling, "false")
        _refuse("reduction", reduction, bool(reduction) and reduction_factor > 1, "null")
        _refuse("stochastic_depth_drop_prob", stochastic_depth_drop_prob, stochastic_depth_drop_prob > 0, "0.0")
        if att_context_style not in ("regular", "chunked_limited"):
            raise ValueError(f"att_context_style={att_context_style!r}: use regular or chunked_limited")
        self.d_model, self.n_layers, self._feat_in = d_model, n_layers, feat_in
        self.att_context_style = att_context_style
        self.att_context_size_all = _context_sizes(att_context_size)
        self.att_context_size = self.att_context_size_all[0]
        n = len(self.att_context_size_all)
        self.att_context_probs = list(att_context_probs) if att_context_probs else [1.0 / n] * n
        self.xscale = math.sqrt(d_model) if xscaling else None
        channels = d_model if subsampling_conv_channels == -1 else subsampling_conv_channels
        self.pre_encode = ConvSubsampling(subsampling, subsampling_factor, feat_in, d_model, channels)
        self.subsampling_factor = subsampling_factor
        shared_u = shared_v = None
        if not untie_biases:
            shared_u = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))
            shared_v = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))
        self.pos_enc = RelPositionalEncoding(d_model, dropout_pre_encoder, pos_emb_max_len, self.xscale, dropout_emb)
        conv_context = _conv_context(conv_context_size, conv_kernel_size)
        self.layers = nn.ModuleList(
            ConformerLayer(
                d_model=d_model,
                d_ff=d_model * ff_expansion_factor,
                n_heads=n_heads,
                conv_kernel_size=conv_kernel_size,
                conv_context=conv_context,
                conv_norm_type=conv_norm_type,
                dropout=dropout,
                dropout_att=dropout_att,
                use_bias=use_bias,
                pos_bias_u=shared_u,
                pos_bias_v=shared_v,
            )
            for _ in range(n_layers)
        )
        self.out_proj = nn.Linear(d_model, feat_out) if feat_out > 0 and feat_out != d_model else None
        self._feat_out = feat_out if self.out_proj is not None else d_model
        self.pos_enc.extend_pe(pos_emb_max_len, torch.device("cpu"), torch.float32)

    @property
    def feat_out(self) -> int:
        return self._feat_out

    def _masks(self, lengths: torch.Tensor, max_len: int, context: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(pad_mask (B, T), att_mask (B, T, T)), both True where masked."""
        device = lengths.device
        allowed = torch.ones(1, max_len, max_len, dtype=torch.bool, device=device)
        left, right = context
        if self.att_context_style == "regular" or right == -1:
            if left >= 0:
                allowed = allowed.triu(diagonal=-left)
            if right >= 0 and self.att_context_style == "regular":
                allowed = allowed.tril(diagonal=right)
        else:
            chunk = right + 1
            left_chunks = left // chunk if left >= 0 else 10000
            idx = torch.div(torch.arange(max_len, device=device), chunk, rounding_mode="trunc")
            diff = idx[:, None] - idx[None, :]
            allowed = allowed & ((diff <= left_chunks) & (diff >= 0))[None]
        valid = torch.arange(max_len, device=device)[None, :] < lengths[:, None]
        allowed = allowed & valid[:, None, :] & valid[:, :, None]
        return ~valid, ~allowed

    def forward(
        self, audio_signal: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, feat_in, T) features and lengths -> (B, feat_out, T/factor) and encoded lengths."""
        if audio_signal.shape[-2] != self._feat_in:
            raise ValueError(f"expected (batch, {self._feat_in}, frames), got {tuple(audio_signal.shape)}")
        x, length = self.pre_encode(audio_signal.transpose(1, 2), length)
        length = length.to(torch.int64)
        self.pos_enc.extend_pe(x.size(1), x.device, x.dtype)
        if self.pos_enc.pe.device != x.device or self.pos_enc.pe.dtype != x.dtype:
            self.pos_enc.pe = self.pos_enc.pe.to(device=x.device, dtype=x.dtype)
        x, pos_emb = self.pos_enc(x)
        context = self.att_context_size
        if self.training and len(self.att_context_size_all) > 1:
            context = random.choices(self.att_context_size_all, weights=self.att_context_probs)[0]
        pad_mask, att_mask = self._masks(length, x.size(1), context)
        for layer in self.layers:
            x = layer(x, att_mask, pos_emb, pad_mask)
        if self.out_proj is not None:
            x = self.out_proj(x)
        return x.transpose(1, 2), length


def _refuse(field: str, value: Any, unsupported: bool, supported: str) -> None:
    if unsupported:
        raise ValueError(f"encoder.{field}={value!r} is not supported by nemolite; supported: {supported}")
