"""Symmetric per-output-channel int8 storage of weight tensors (``w = q * scale``), and the choice of which
tensors to store that way so that a shipped file fits its size limit."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (O, ...) float -> (O, ...) int8 and (O,) float32 scales."""
    w = t.detach().float().cpu()
    amax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.round(w / scale.view(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float().view(-1, *([1] * (q.dim() - 1)))


def int8_keys_to_fit(state: Mapping[str, torch.Tensor], max_bytes: int, margin: int = 200_000) -> list[str]:
    """The fewest largest weight tensors (2-D and up) to store as int8 so that the file fits ``max_bytes``
    (estimated: tensor bytes + ``margin`` for the header); [] when float16 already fits."""
    size = sum(v.numel() * (2 if v.is_floating_point() else v.element_size()) for v in state.values())
    chosen: list[str] = []
    candidates = sorted(
        (k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2),
        key=lambda k: -state[k].numel(),
    )
    for key in candidates:
        if size + margin <= max_bytes:
            break
        t = state[key]
        size -= t.numel() - 4 * t.shape[0]  # 2 -> 1 byte per weight, plus a float32 scale per channel
        chosen.append(key)
    return chosen
