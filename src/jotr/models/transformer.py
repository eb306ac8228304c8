"""DETR-style transformer pieces, batch-first, with ``nn.MultiheadAttention``-compatible parameter names.

Post-norm layers (``normalize_before=False`` in DETR): attention -> dropout -> residual -> LayerNorm, then the
ReLU FFN the same way. Positional encodings are added to queries and keys, never to values. Attention runs
through ``torch.nn.functional.scaled_dot_product_attention`` (``impl="sdpa"``) or an explicit softmax
(``impl="naive"``, the plain reference used by the benchmarks); both give the same result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def autocast_param(owner: nn.Module, name: str, tensor: Tensor | None) -> Tensor | None:
    """``tensor`` in the autocast dtype when running under autocast without autograd (inference), cached on
    ``owner`` so that the weights are not cast again on every call; otherwise ``tensor`` itself.

    The cache is keyed on the tensor's version counter, storage and the dtype (optimiser steps, loading and
    ``.to()`` invalidate it) and is never part of the state dict.
    """
    if tensor is None or torch.is_grad_enabled():
        return tensor
    device = tensor.device.type
    if not torch.is_autocast_enabled(device):
        return tensor
    dtype = torch.get_autocast_dtype(device)
    if tensor.dtype == dtype or not tensor.is_floating_point():
        return tensor
    cache = owner.__dict__.setdefault("_jotr_autocast", {})
    key = (tensor._version, tensor.data_ptr(), dtype)
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    cast = tensor.detach().to(dtype)
    cache[name] = (key, cast)
    return cast


def linear(owner: nn.Module, name: str, x: Tensor, layer: nn.Linear) -> Tensor:
    """``layer(x)`` with the weights cast once per version under inference autocast (see
    :func:`autocast_param`)."""
    return F.linear(
        x, autocast_param(owner, name + ".w", layer.weight), autocast_param(owner, name + ".b", layer.bias)
    )


class Attention(nn.Module):
    """Multi-head attention with ``in_proj_weight`` (3C, C), ``in_proj_bias`` and ``out_proj`` like
    ``nn.MultiheadAttention``, so official weights map 1:1. Inputs are (B, N, C)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, impl: str = "sdpa") -> None:
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model {d_model} is not divisible by nhead {nhead}")
        if impl not in ("sdpa", "naive"):
            raise ValueError(f"attention impl must be 'sdpa' or 'naive', got {impl!r}")
        self.d_model, self.nhead, self.dropout, self.impl = d_model, nhead, dropout, impl
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.nhead, -1).transpose(1, 2)  # (B, heads, N, C/heads)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """(B, Nq, C), (B, Nk, C), (B, Nk, C) -> (B, Nq, C)."""
        c = self.d_model
        w = autocast_param(self, "in_proj_weight", self.in_proj_weight)
        b = autocast_param(self, "in_proj_bias", self.in_proj_bias)
        if query is key:  # self-attention: one matmul for q and k
            q, k = F.linear(query, w[: 2 * c], b[: 2 * c]).split(c, dim=-1)
        else:
            q = F.linear(query, w[:c], b[:c])
            k = F.linear(key, w[c : 2 * c], b[c : 2 * c])
        v = F.linear(value, w[2 * c :], b[2 * c :])
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        p = self.dropout if self.training else 0.0
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            attn = torch.softmax((q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1), dim=-1)
            out = F.dropout(attn, p, self.training) @ v
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], c)
        return linear(self, "out_proj", out, self.out_proj)


class FeedForward(nn.Module):
    """The FFN half of a post-norm layer; names ``linear1``/``linear2`` as in DETR."""

    def __init__(self, d_model: int, dim_ff: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        hidden = F.relu(linear(self, "linear1", x, self.linear1))
        return linear(self, "linear2", self.dropout(hidden), self.linear2)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_ff: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, nhead, dropout, impl)
        self.ffn = FeedForward(d_model, dim_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor | None) -> Tensor:
        """(B, N, C) tokens, (N, C) or (B, N, C) positional encoding -> (B, N, C)."""
        qk = src if pos is None else src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(qk, qk, src)))
        return self.norm2(src + self.dropout2(self.ffn(src)))


class Encoder(nn.Module):
    """A stack of post-norm encoder layers with an optional final LayerNorm."""

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        nhead: int,
        dim_ff: int,
        dropout: float,
        impl: str,
        final_norm: bool,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, nhead, dim_ff, dropout, impl) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def forward(self, src: Tensor, pos: Tensor | None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src if self.norm is None else self.norm(src)


class DecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: self-attention over the queries, cross-attention to the memory, FFN."""

    def __init__(self, d_model: int, nhead: int, dim_ff: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, nhead, dropout, impl)
        self.cross_attn = Attention(d_model, nhead, dropout, impl)
        self.ffn = FeedForward(d_model, dim_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor) -> Tensor:
        """(B, Q, C) queries, (Q, C) or (B, Q, C) query pos, (B, M, C) memory and its pos -> (B, Q, C)."""
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(qk, qk, tgt)))
        tgt = self.norm2(tgt + self.dropout2(self.cross_attn(tgt + query_pos, memory + memory_pos, memory)))
        return self.norm3(tgt + self.dropout3(self.ffn(tgt)))


def sine_position_encoding_2d(height: int, width: int, d_model: int, temperature: float = 10000.0) -> Tensor:
    """DETR ``PositionEmbeddingSine(d_model / 2, normalize=True)`` of an unpadded (H, W) map -> (H*W, C).

    Channels are ``[y-encoding, x-encoding]``, each interleaving sin/cos; positions are ``(i + 1) / (n +
    1e-6)`` scaled by 2 pi. Tokens are ordered row-major (h, w).
    """
    if d_model % 4:
        raise ValueError(f"d_model must be divisible by 4 for the 2D sine encoding, got {d_model}")
    n = d_model // 2
    eps, scale = 1e-6, 2.0 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float64) / (height + eps) * scale
    x = torch.arange(1, width + 1, dtype=torch.float64) / (width + eps) * scale
    dim_t = temperature ** (2 * (torch.arange(n, dtype=torch.float64) // 2) / n)

    def enc(v: Tensor) -> Tensor:  # (L,) -> (L, n), sin on even, cos on odd channels (interleaved)
        a = v[:, None] / dim_t
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    ey, ex = enc(y), enc(x)  # (H, n), (W, n)
    pos = torch.cat(
        [ey[:, None, :].expand(height, width, n), ex[None, :, :].expand(height, width, n)], dim=-1
    )
    return pos.reshape(height * width, d_model).float()


def sinusoid_table_1d(n_position: int, d_model: int) -> Tensor:
    """The Transformer sinusoid table ``(n_position, d_model)``: sin on even, cos on odd channels, frequency
    ``10000 ** (2 (i // 2) / d_model)``."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    i = torch.arange(d_model, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / d_model)
    table = torch.empty_like(angle)
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()
