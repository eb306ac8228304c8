"""VPoser v1 (the model of ``human-body-prior`` 0.8.5.0), frozen, as used by the official JOTR pose head.

Written here from its published layout (design.md §2); the package itself is not a dependency. The decoder
maps a 32-d latent to 21 SMPL body-joint rotations: Linear(32, 512) -> LeakyReLU(0.2) -> Dropout(0.1) ->
Linear(512, 512) -> LeakyReLU(0.2) -> Linear(512, 126), each 6D pair -> rotation by Gram-Schmidt. The encoder
is kept (frozen) so that official checkpoints, which carry it, load strictly and the parameter count matches.

Weights: a VPoser v1 snapshot ``.pt`` (a state dict with the ``bodyprior_*`` names) read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jotr.errors import CheckpointError, InputError
from jotr.geometry.rotations import rot6d_to_rotmat

logger = logging.getLogger(__name__)

VPOSER_LATENT = 32
VPOSER_HIDDEN = 512
VPOSER_JOINTS = 21  # SMPL body joints 1..21 (no root, no hands)


class VPoserV1(nn.Module):
    """Frozen VPoser v1. ``decode``: (B, 32) latent -> (B, 21, 3, 3) local rotations of SMPL joints 1..21.

    The module stays in eval mode (Dropout and BatchNorm never switch to training) and its parameters have
    ``requires_grad=False``; gradients still flow through it to the latent.
    """

    def __init__(
        self, latent: int = VPOSER_LATENT, hidden: int = VPOSER_HIDDEN, joints: int = VPOSER_JOINTS
    ) -> None:
        super().__init__()
        n_in = joints * 3
        self.num_joints = joints
        self.bodyprior_enc_bn1 = nn.BatchNorm1d(n_in)
        self.bodyprior_enc_fc1 = nn.Linear(n_in, hidden)
        self.bodyprior_enc_bn2 = nn.BatchNorm1d(hidden)
        self.bodyprior_enc_fc2 = nn.Linear(hidden, hidden)
        self.bodyprior_enc_mu = nn.Linear(hidden, latent)
        self.bodyprior_enc_logvar = nn.Linear(hidden, latent)
        self.dropout = nn.Dropout(0.1)
        self.bodyprior_dec_fc1 = nn.Linear(latent, hidden)
        self.bodyprior_dec_fc2 = nn.Linear(hidden, hidden)
        self.bodyprior_dec_out = nn.Linear(hidden, joints * 6)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VPoserV1:
        """Always eval mode: the prior is frozen (the official code forces ``vposer.eval()`` too)."""
        return super().train(False)

    def decode(self, latent: Tensor) -> Tensor:
        """(B, 32) -> (B, 21, 3, 3)."""
        x = F.leaky_relu(self.bodyprior_dec_fc1(latent), 0.2)
        x = self.dropout(x)
        x = F.leaky_relu(self.bodyprior_dec_fc2(x), 0.2)
        x = self.bodyprior_dec_out(x)  # (B, 126)
        return rot6d_to_rotmat(x.reshape(latent.shape[0], self.num_joints, 6))

    def encode_mean(self, pose_aa: Tensor) -> Tensor:
        """(B, 21, 3) body axis-angles -> (B, 32) mean of the approximate posterior."""
        x = self.bodyprior_enc_bn1(pose_aa.reshape(pose_aa.shape[0], -1))
        x = F.leaky_relu(self.bodyprior_enc_fc1(x), 0.2)
        x = self.dropout(self.bodyprior_enc_bn2(x))
        x = F.leaky_relu(self.bodyprior_enc_fc2(x), 0.2)
        return self.bodyprior_enc_mu(x)

    def forward(self, latent: Tensor) -> Tensor:
        return self.decode(latent)


def load_vposer_weights(vposer: VPoserV1, path: str | Path | None) -> None:
    """Load a VPoser v1 snapshot strictly (``module.``/``vposer.`` prefixes are stripped).

    ``path`` None -> :class:`InputError` (the vposer pose head needs the weights: set
    ``model.vposer_weights``).
    """
    if path is None:
        raise InputError(
            "model.pose_head='vposer' needs VPoser v1 weights: set model.vposer_weights to a VPoser v1 "
            "snapshot (.pt), or use model.pose_head='rot6d'"
        )
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model.vposer_weights: file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        raise CheckpointError(f"VPoser weights {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, Tensor) for v in raw.values()):
        raise CheckpointError(f"VPoser weights {path} are not a state dict of tensors")
    state = {}
    for key, value in raw.items():
        name = key
        for prefix in ("module.", "vposer."):
            while name.startswith(prefix):
                name = name[len(prefix) :]
        state[name] = value
    expected = vposer.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or bad:
        raise CheckpointError(
            f"VPoser weights {path} do not match VPoser v1: missing {missing}, unexpected {unexpected}, "
            f"mis-shaped {bad}"
        )
    vposer.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    logger.info("loaded VPoser v1 weights from %s", path)
