"""Official JOTR checkpoints (``xljh0520/JOTR``) -> this implementation, through an explicit rename table.

The official model is the paper config with the SMPL body and the VPoser pose head. Its state dict has 538
keys (``docs/official_state_dict_keys.txt``); every one is either renamed onto
:class:`jotr.models.jotr.JOTRNetwork` or dropped on purpose:

* ``human_model_layer.*`` -- SMPL arrays (licensed; our body model reads the user's own SMPL files);
* ``pos_embed_1d.pos_table`` -- the fixed 1-D sinusoid table of the 3D encoder, recomputed here (the converter
  checks that the file's table equals ours, which also checks the voxel-token order).

Unknown keys, missing keys and shape mismatches raise :class:`jotr.errors.CheckpointError` listing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from jotr.errors import CheckpointError, describe_key_groups
from jotr.models.config import ModelConfig
from jotr.models.transformer import sinusoid_table_1d

OFFICIAL_POS_TABLE = "pos_embed_1d.pos_table"
OFFICIAL_SMPL_PREFIX = "human_model_layer."
OFFICIAL_SMPL_KEYS = tuple(
    OFFICIAL_SMPL_PREFIX + k
    for k in (
        "th_betas",
        "th_shapedirs",
        "th_posedirs",
        "th_v_template",
        "th_J_regressor",
        "th_weights",
        "th_faces",
    )
)
NUM_OFFICIAL_KEYS = 538


def official_model_config() -> ModelConfig:
    """The configuration of the released JOTR weights: paper network + VPoser head."""
    return ModelConfig(pose_head="vposer")


def rename_table(cfg: ModelConfig | None = None) -> list[tuple[str, str]]:
    """(official, ours) pairs. A name ending in ``.`` renames every key under that prefix; other names are
    whole keys. Layer indices are enumerated from the config."""
    cfg = cfg or official_model_config()
    table: list[tuple[str, str]] = [
        ("exponent", "depth_exponent"),
        ("backbone.", "backbone."),
        ("pose2feat.conv.0.", "pose2feat.conv."),
        ("pose2feat.conv.1.", "pose2feat.bn."),
        ("vposer.vposer.", "vposer."),
        ("down_linear.", "input_proj."),
        ("conv2d_to_3d.", "lift."),
        ("conv_3d_coord.0.", "lift_coord."),
        ("transformer.smpl_tgt", "decoder.body_content"),
        ("transformer.kp_tgt", "decoder.joint_content"),
        ("spose_shape_cam_param", "decoder.body_query_pos"),
        ("query.weight", "decoder.joint_query_pos.weight"),
        ("transformer.decoder.norm.", "decoder.norm."),
        ("transformer.decoder.joint_img_regress.", "decoder.joint_heads."),
        ("transformer.decoder.fc_pos_3d.", "decoder.sample_pos."),
        ("cascade_root_pose_out.", "root_pose_head.layers."),
        ("cascade_pose_out.", "pose_head.layers."),
        ("cascade_shaoe_out.", "shape_head.layers."),  # sic: the official name is misspelt
        ("cascade_cam_out.", "cam_head.layers."),
        ("refine_3d.norm.", "encoder_3d.norm."),
    ]
    encoders = (
        ("transformer.encoder.layers", "encoder_2d.layers", cfg.enc_layers_2d),
        ("refine_3d.layers", "encoder_3d.layers", cfg.enc_layers_3d),
    )
    for official, ours, n in encoders:
        for i in range(n):
            a, b = f"{official}.{i}.", f"{ours}.{i}."
            table += [
                (a + "self_attn.", b + "self_attn."),
                (a + "linear1.", b + "ffn.linear1."),
                (a + "linear2.", b + "ffn.linear2."),
                (a + "norm1.", b + "norm1."),
                (a + "norm2.", b + "norm2."),
            ]
    for i in range(cfg.dec_layers):
        a, b = f"transformer.decoder.layers.{i}.", f"decoder.layers.{i}."
        table += [
            (a + "self_attn.", b + "self_attn."),
            (a + "multihead_attn.", b + "cross_attn."),
            (a + "linear1.", b + "ffn.linear1."),
            (a + "linear2.", b + "ffn.linear2."),
            (a + "norm1.", b + "norm1."),
            (a + "norm2.", b + "norm2."),
            (a + "norm3.", b + "norm3."),
        ]
    return table


def _rename(key: str, table: list[tuple[str, str]]) -> str | None:
    best: tuple[int, str] | None = None
    for src, dst in table:
        if src.endswith("."):
            if key.startswith(src) and (best is None or len(src) > best[0]):
                best = (len(src), dst + key[len(src) :])
        elif key == src:
            return dst
    return None if best is None else best[1]


def official_name(our_key: str, cfg: ModelConfig | None = None) -> str | None:
    """The official name of one of our keys (the inverse of the rename table)."""
    inverse = [(b, a) for a, b in rename_table(cfg)]
    return _rename(our_key, inverse)


def extract_official_state(obj: Any, source: str = "checkpoint") -> dict[str, Tensor]:
    """The network state dict of an official checkpoint file's content (``{'network': ...}``, or a bare state
    dict), with a DDP ``module.`` prefix removed."""
    state = obj
    if isinstance(obj, Mapping) and "network" in obj:
        state = obj["network"]
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        state = obj["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{source} is not an official JOTR checkpoint (no 'network' state dict of tensors)"
        )
    out = {}
    for key, value in state.items():
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def convert_official_state(
    state: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    cfg: ModelConfig | None = None,
    source: str = "checkpoint",
) -> dict[str, Tensor]:
    """Rename an official state dict onto our keys and check it against ``expected`` (our network's state
    dict).

    Raises :class:`CheckpointError` listing unknown official keys, our keys left without a value (by official
    name), shape mismatches, and a positional table that differs from ours.
    """
    cfg = cfg or official_model_config()
    table = rename_table(cfg)
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith(OFFICIAL_SMPL_PREFIX) and key in OFFICIAL_SMPL_KEYS:
            continue  # licensed SMPL arrays: never copied
        if key == OFFICIAL_POS_TABLE:
            n_tokens = cfg.volume_depth * (cfg.input_size // 32) ** 2
            ours = sinusoid_table_1d(n_tokens, cfg.d_model)
            if tuple(value.shape) != tuple(ours.shape) or not torch.allclose(value.float(), ours, atol=1e-4):
                raise CheckpointError(f"{source}: {key} differs from the 1-D sinusoid table this model uses")
            continue
        new = _rename(key, table)
        if new is None or new not in expected:
            unknown.append(key)
            continue
        out[new] = value
    missing = [f"{official_name(k, cfg) or '?'} (ours: {k})" for k in expected if k not in out]
    mis_shaped = [
        f"{official_name(k, cfg)}: {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in out.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if unknown or missing or mis_shaped:
        parts = describe_key_groups(
            [
                ("unknown keys", sorted(unknown)),
                ("missing keys", sorted(missing)),
                ("shape mismatches", sorted(mis_shaped)),
            ],
            limit=15,
        )
        raise CheckpointError(f"{source} does not match the official JOTR layout: " + parts)
    return {k: v.to(expected[k].dtype) for k, v in out.items()}


def load_official_file(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint with ``torch.load(weights_only=True)``; return its network state
    dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"official checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise CheckpointError(
            f"{path} cannot be read as a weights-only PyTorch file: {type(exc).__name__}: {exc}"
        ) from exc
    return extract_official_state(obj, str(path))
