"""Transformer-XL relative-position self-attention, as NeMo's Conformer uses it.

`RelPositionalEncoding` holds sinusoids for positions L-1 ... -(L-1) (NeMo's layout: a table of
2 * max_len - 1 rows, centred); `RelPositionMultiHeadAttention` adds the content term
(q + u) k^T and the position term (q + v) p^T, the latter re-indexed by the "relative shift".
Masked scores get -10000 (NeMo's INF_VAL) and masked probabilities are zeroed afterwards, which
is what makes padded rows exactly zero; keeping those two constants keeps parity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INF_VAL = 10000.0


class RelPositionalEncoding(nn.Module):
    """Scales the input by `xscale` and returns it with the relative positional embeddings.

    Args:
        d_model: embedding size.
        dropout_rate: dropout on the scaled input.
        max_len: longest sequence the table covers (it grows on demand).
        xscale: input scale (sqrt(d_model) in FastConformer) or None.
        dropout_rate_emb: dropout on the positional embeddings.
    """

    pe: torch.Tensor  # registered buffer (1, 2 * L - 1, d_model), not saved

    def __init__(
        self,
        d_model: int,
        dropout_rate: float,
        max_len: int = 5000,
        xscale: float | None = None,
        dropout_rate_emb: float = 0.0,
    ) -> None:
        super().__init__()
        self.d_model, self.xscale, self.max_len = d_model, xscale, max_len
        self.dropout = nn.Dropout(dropout_rate)
        self.dropout_emb = nn.Dropout(dropout_rate_emb) if dropout_rate_emb > 0 else None
        self.register_buffer("pe", torch.zeros(1, 0, d_model), persistent=False)

    def extend_pe(self, length: int, device: torch.device, dtype: torch.dtype) -> None:
        """Makes the table cover sequences of `length` frames."""
        if self.pe.size(1) >= 2 * length - 1:
            return
        positions = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device)[:, None]
        inv_freq = torch.exp(
            torch.arange(0, self.d_model, 2, dtype=torch.float32, device=device)
            * -(math.log(INF_VAL) / self.d_model)
        )
        pe = torch.zeros(positions.size(0), self.d_model, device=device)
        pe[:, 0::2] = torch.sin(positions * inv_freq)
        pe[:, 1::2] = torch.cos(positions * inv_freq)
        self.pe = pe.unsqueeze(0).to(dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.xscale:
            x = x * self.xscale
        length = x.size(1)
        center = self.pe.size(1) // 2 + 1
        pos_emb = self.pe[:, center - length : center + length - 1]
        if self.dropout_emb is not None:
            pos_emb = self.dropout_emb(pos_emb)
        return self.dropout(x), pos_emb


class RelPositionMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions.

    Args:
        n_head: number of heads.
        n_feat: model size.
        dropout_rate: dropout on the attention probabilities.
        use_bias: biases in the q/k/v/out projections.
        pos_bias_u: a content bias shared with other layers, or None for this layer's own.
        pos_bias_v: a position bias shared with other layers, or None for this layer's own.
    """

    def __init__(
        self,
        n_head: int,
        n_feat: int,
        dropout_rate: float,
        use_bias: bool = True,
        pos_bias_u: nn.Parameter | None = None,
        pos_bias_v: nn.Parameter | None = None,
    ) -> None:
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"d_model={n_feat} is not divisible by n_heads={n_head}")
        self.h, self.d_k = n_head, n_feat // n_head
        self.s_d_k = math.sqrt(self.d_k)
        self.linear_q = nn.Linear(n_feat, n_feat, bias=use_bias)
        self.linear_k = nn.Linear(n_feat, n_feat, bias=use_bias)
        self.linear_v = nn.Linear(n_feat, n_feat, bias=use_bias)
        self.linear_out = nn.Linear(n_feat, n_feat, bias=use_bias)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        # Shared across layers when the encoder ties them (untie_biases=False), else per layer.
        self.pos_bias_u = pos_bias_u if pos_bias_u is not None else nn.Parameter(torch.zeros(self.h, self.d_k))
        self.pos_bias_v = pos_bias_v if pos_bias_v is not None else nn.Parameter(torch.zeros(self.h, self.d_k))
        self.dropout = nn.Dropout(dropout_rate)

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        """Turns scores against positions L-1..-(L-1) into scores against key index j."""
        b, h, qlen, pos_len = x.size()
        x = nn.functional.pad(x, (1, 0)).view(b, h, -1, qlen)
        return x[:, :, 1:].view(b, h, qlen, pos_len)

    def _heads(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return linear(x).view(x.size(0), -1, self.h, self.d_k)  # (B, T, H, d_k)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, pos_emb: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), mask (B, T, T) True where masked, pos_emb (1, 2T-1, D) -> (B, T, D)."""
        q = self._heads(self.linear_q, x)
        k = self._heads(self.linear_k, x).transpose(1, 2)
        v = self._heads(self.linear_v, x).transpose(1, 2)
        p = self._heads(self.linear_pos, pos_emb).transpose(1, 2)
        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        position = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)))
        scores = (content + position[:, :, :, : content.size(-1)]) / self.s_d_k
        if mask is not None:
            scores = scores.masked_fill(mask[:, None], -INF_VAL)
            attn = torch.softmax(scores, dim=-1).masked_fill(mask[:, None], 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(self.dropout(attn), v).transpose(1, 2)
        return self.linear_out(out.reshape(x.size(0), -1, self.h * self.d_k))
