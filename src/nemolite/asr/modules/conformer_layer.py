"""One Conformer block: half-step feed-forward, self-attention, convolution, half-step feed-forward.

Submodule names (`norm_feed_forward1`, `feed_forward1`, `norm_self_att`, `self_attn`, `norm_conv`,
`conv`, `norm_feed_forward2`, `feed_forward2`, `norm_out`) are NeMo's state-dict keys.
"""

from __future__ import annotations

import torch
from torch import nn

from nemolite.asr.modules.attention import RelPositionMultiHeadAttention


class ConformerFeedForward(nn.Module):
    """Linear -> Swish -> dropout -> linear."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, use_bias: bool = True) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=use_bias)
        self.activation = nn.SiLU()
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class ConformerConvolution(nn.Module):
    """Pointwise conv + GLU, depthwise conv, batch norm, Swish, pointwise conv.

    Args:
        d_model: model size.
        kernel_size: depthwise kernel (odd).
        context: (left, right) frames the depthwise kernel sees; sums to kernel_size - 1.
        norm_type: "batch_norm" or "layer_norm".
        use_bias: biases in the convolutions.
    """

    def __init__(
        self,
        d_model: int,
        kernel_size: int,
        context: tuple[int, int],
        norm_type: str = "batch_norm",
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        if norm_type not in ("batch_norm", "layer_norm"):
            raise ValueError(f"conv_norm_type={norm_type!r}: supported are batch_norm, layer_norm")
        self.norm_type, self.context = norm_type, context
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, kernel_size=1, bias=use_bias)
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=use_bias)
        self.batch_norm: nn.Module = (
            nn.BatchNorm1d(d_model) if norm_type == "batch_norm" else nn.LayerNorm(d_model)
        )
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, kernel_size=1, bias=use_bias)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        if pad_mask is not None:
            x = x.masked_fill(pad_mask[:, None, :], 0.0)
        x = self.depthwise_conv(nn.functional.pad(x, self.context))
        if self.norm_type == "layer_norm":
            x = self.batch_norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.batch_norm(x)
        return self.pointwise_conv2(self.activation(x)).transpose(1, 2)


class ConformerLayer(nn.Module):
    """A Conformer block with relative-position attention (NeMo's `self_attention_model=rel_pos`)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        n_heads: int,
        conv_kernel_size: int,
        conv_context: tuple[int, int],
        conv_norm_type: str = "batch_norm",
        dropout: float = 0.1,
        dropout_att: float = 0.1,
        use_bias: bool = True,
        pos_bias_u: nn.Parameter | None = None,
        pos_bias_v: nn.Parameter | None = None,
    ) -> None:
        super().__init__()
        self.fc_factor = 0.5
        self.norm_feed_forward1 = nn.LayerNorm(d_model)
        self.feed_forward1 = ConformerFeedForward(d_model, d_ff, dropout, use_bias)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv = ConformerConvolution(d_model, conv_kernel_size, conv_context, conv_norm_type, use_bias)
        self.norm_self_att = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadAttention(
            n_heads, d_model, dropout_att, use_bias, pos_bias_u=pos_bias_u, pos_bias_v=pos_bias_v
        )
        self.norm_feed_forward2 = nn.LayerNorm(d_model)
        self.feed_forward2 = ConformerFeedForward(d_model, d_ff, dropout, use_bias)
        self.dropout = nn.Dropout(dropout)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        att_mask: torch.Tensor | None,
        pos_emb: torch.Tensor,
        pad_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        residual = x + self.dropout(self.feed_forward1(self.norm_feed_forward1(x))) * self.fc_factor
        attended = self.self_attn(self.norm_self_att(residual), att_mask, pos_emb)
        residual = residual + self.dropout(attended)
        residual = residual + self.dropout(self.conv(self.norm_conv(residual), pad_mask))
        residual = residual + self.dropout(self.feed_forward2(self.norm_feed_forward2(residual))) * self.fc_factor
        return self.norm_out(residual)
