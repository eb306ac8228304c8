"""The JOTR network. ``build_model(cfg)`` builds it with the configured body model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jotr.models.config import ModelConfig

if TYPE_CHECKING:
    from jotr.body.base import BodyModel
    from jotr.config import JOTRConfig
    from jotr.models.jotr import JOTR

__all__ = ["ModelConfig", "build_model"]


def build_model(cfg: JOTRConfig, *, pretrained: bool = True, body: BodyModel | None = None) -> JOTR:
    """The JOTR network for ``cfg`` with the body model of ``cfg.body`` (or ``body`` when given).

    ``cfg.model.architecture`` other than ``"jotr"`` builds an ablation variant
    (:mod:`jotr.models.baselines`).
    ``pretrained=True`` loads ``cfg.model.backbone_weights`` (if set) and the VPoser weights of the vposer
    head (required); use ``pretrained=False`` when a checkpoint provides every weight.
    """
    from jotr.body import build_body_model
    from jotr.models.jotr import JOTR

    if body is None:
        body = build_body_model(cfg.body)
    if cfg.model.architecture != "jotr":  # ablation variants (same output type, same body model)
        from jotr.models.baselines import build_variant

        return build_variant(cfg.model.architecture, cfg, body=body, pretrained=pretrained)
    return JOTR(cfg.model, body, pretrained=pretrained)
