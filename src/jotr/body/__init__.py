"""Body models behind one interface (:class:`jotr.body.base.BodyModel`)."""

from __future__ import annotations

from jotr.body.base import BodyModel, BodyOutput
from jotr.body.config import BodyConfig

__all__ = ["BodyModel", "BodyOutput", "BodyConfig", "build_body_model"]


def build_body_model(cfg: BodyConfig, *, full_mesh: bool = False, gender: str | None = None) -> BodyModel:
    """Build the configured body model.

    ``full_mesh`` asks for the rendering-quality mesh (Anny's full topology with the same rig, so pose and
    shape parameters are shared); ``gender`` overrides ``cfg.gender`` (SMPL only; used for gendered ground
    truth).
    """
    if cfg.kind == "anny":
        from jotr.body.anny import AnnyBody

        topology = "anny" if full_mesh else cfg.anny_topology
        return AnnyBody(rig=cfg.anny_rig, topology=topology)
    if cfg.kind == "smpl":
        from jotr.body.smpl import SMPLBody

        return SMPLBody.from_config(cfg, gender=gender)
    if cfg.kind == "toy":
        from jotr.body.toy import ToyBody

        return ToyBody()
    raise ValueError(f"unknown body model kind {cfg.kind!r}")
