"""``jotr convert-official CKPT OUT``: an official JOTR checkpoint -> a jotr checkpoint.

The official network (paper config, SMPL body, VPoser head) is renamed key by key (``jotr.models.official``)
and loaded strictly into this implementation. OUT is a jotr checkpoint (``jotr.engine.checkpoint`` format,
loadable with ``jotr eval/demo --checkpoint OUT``), or, when OUT ends in ``.safetensors``, the weights as
safetensors with the resolved config as JSON metadata (key ``jotr_config``), loadable the same way. SMPL
arrays of the official file are never copied: point ``body.smpl_model_path`` at your own SMPL files
(``--set body.smpl_model_path=...`` stores it in OUT).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="official JOTR checkpoint (.pth.tar with a 'network' state dict)")
    p.add_argument("out", help="output: jotr checkpoint (.pt) or weights + config (.safetensors)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides stored in OUT (e.g. body.smpl_model_path=/data/smpl); the network "
        "must stay the official one",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def convert(
    checkpoint: str | Path, out: str | Path, overrides: list[str] | tuple[str, ...] = (), force: bool = False
) -> Path:
    """Convert ``checkpoint`` and write ``out`` atomically; returns the output path."""
    import torch

    from jotr.body.config import BodyConfig
    from jotr.config import ConfigError, JOTRConfig, config_to_dict, merge_config, parse_override
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.errors import CheckpointError, InputError
    from jotr.models.jotr import JOTRNetwork
    from jotr.models.official import convert_official_state, load_official_file, official_model_config
    from jotr.utils.io import atomic_save, check_new_output, check_writable_file, clean_stale_temporaries

    out = check_writable_file(out, "converted checkpoint")  # before reading the (large) official file
    check_new_output(out, "converted checkpoint", force=force)
    clean_stale_temporaries(out.parent, name=out.name)  # only temporaries of this output file
    cfg = JOTRConfig(body=BodyConfig(kind="smpl"), model=official_model_config())
    try:
        for text in overrides:
            cfg = merge_config(cfg, parse_override(text))
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    if cfg.body.kind != "smpl":
        raise InputError("the official JOTR weights need the SMPL body model (body.kind=smpl)")

    state = load_official_file(checkpoint)
    # Built on the meta device (no memory, no random init): the converted tensors are assigned to it.
    with torch.device("meta"):
        network = JOTRNetwork(cfg.model, num_pose_joints=24, num_shape=10, pretrained=False)
    converted = convert_official_state(state, network.state_dict(), cfg.model, source=str(checkpoint))
    try:
        network.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"converted {checkpoint} does not load into the network: {exc}") from exc

    extra = {"converted_from": str(Path(checkpoint).name), "source": "official JOTR (xljh0520/JOTR)"}
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta = {"jotr_config": json.dumps(config_to_dict(cfg)), **extra}
        tensors = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
        atomic_save(out, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    else:
        with torch.no_grad():
            save_checkpoint(out, model=network, cfg=cfg, step=0, epoch=0, extra=extra, rng=False)
    return out


def run(args: argparse.Namespace) -> int:
    out = convert(args.checkpoint, args.out, args.overrides, args.force)
    print(f"converted {args.checkpoint} -> {out}")
    return 0
