"""Learned uncertainty weighting of the regression terms (jotr-reference §2).

Each group g has a learned scalar ``p_g`` (init 1) and contributes ``0.5 / p_g**2 * L_g + log(1 + p_g**2)``,
where ``L_g`` is the sum of its terms. Modes:

* ``per_term`` (official code, ``AutomaticWeightedLoss``): one group per regression term.
* ``grouped`` (the paper's lambda_3D, lambda_2D, lambda_SMPL; the mapping is ours, the paper does not list
  it): ``3d`` = joint_img (3D joints in the unit cube) + joint_cam (root-relative metric joints); ``2d`` =
  joint_proj (projected 2D joints); ``body`` = pose + shape + fit_joint_img (the body-parameter terms and the
  joints of the fitted body).
* ``none``: every term with weight 1, no parameters.

The parameters should be optimised without weight decay: :meth:`UncertaintyWeighting.parameters` are exposed
through ``Criterion.weight_parameters()`` for a separate optimiser group with ``weight_decay=0``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from jotr.errors import InputError

GROUPS_OF_TERMS: dict[str, str] = {
    "joint_img": "3d",
    "joint_cam": "3d",
    "joint_proj": "2d",
    "pose": "body",
    "shape": "body",
    "fit_joint_img": "body",
}


class UncertaintyWeighting(nn.Module):
    """``forward(terms) -> (weighted, weights)``; see the module docstring."""

    def __init__(self, mode: str, term_names: tuple[str, ...]):
        super().__init__()
        if mode == "per_term":
            group_of = {t: t for t in term_names}
        elif mode == "grouped":
            missing = [t for t in term_names if t not in GROUPS_OF_TERMS]
            if missing:
                raise InputError(f"loss.weighting='grouped' has no group for terms {missing}")
            group_of = {t: GROUPS_OF_TERMS[t] for t in term_names}
        elif mode == "none":
            group_of = {}
        else:
            raise InputError(f"loss.weighting must be 'per_term', 'grouped' or 'none', got {mode!r}")
        self.mode = mode
        self.term_names = tuple(term_names)
        self.group_of = group_of
        groups = sorted(set(group_of.values()))
        self.p = nn.ParameterDict({g: nn.Parameter(torch.ones(())) for g in groups})

    def forward(self, terms: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """terms: unweighted scalars -> (weighted contributions incl. ``reg_<group>`` entries, effective
        weights).

        ``sum(weighted.values())`` is the weighted total; ``weights[name]`` is the detached multiplier of each
        term.
        """
        weighted: dict[str, Tensor] = {}
        weights: dict[str, Tensor] = {}
        for name in self.term_names:
            value = terms[name]
            if self.mode == "none":
                w = torch.ones((), device=value.device, dtype=value.dtype)
            else:
                p = self.p[self.group_of[name]]
                w = (0.5 / p**2).to(value.dtype)
            weighted[name] = w * value
            weights[name] = w.detach()
        for g, p in self.p.items():
            weighted[f"reg_{g}"] = torch.log1p(p**2)
        return weighted, weights
