"""The contrastive losses under DDP (2 gloo processes on CPU) equal one process on the concatenated batch."""

from __future__ import annotations

import gc
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from jotr.losses.config import LossConfig
from jotr.losses.contrastive import joint_contrastive_losses
from jotr.losses.gather import all_gather_cat, distributed_world

CFG = LossConfig(j2j_anchors=40, j2n_anchors=40, j2n_positives=256, j2n_negatives=512)
FULL_B = 6
SPLITS = ((3, 3), (4, 2))  # even, and uneven per-rank batch sizes


class _Tiny(nn.Module):
    """A 1x1x1 conv makes the feature volume, a bias moves the predicted joints."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv3d(4, 16, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(16, 4, 1, 1, 1, generator=g))
            self.conv.bias.copy_(torch.randn(16, generator=g))
        self.joint_bias = nn.Parameter(0.1 * torch.randn(15, 3, generator=g))

    def forward(self, x_vol, x_joint, gt, valid, is_3d):
        vol = self.conv(x_vol)
        pred = torch.sigmoid(x_joint + self.joint_bias)
        out = joint_contrastive_losses(
            vol, pred, gt, valid, is_3d, 3.0, CFG, torch.Generator().manual_seed(11)
        )
        return out.j2j + out.j2n


def _data():
    g = torch.Generator().manual_seed(1)
    x_vol = torch.randn(FULL_B, 4, 8, 8, 8, generator=g)
    x_joint = torch.randn(FULL_B, 15, 3, generator=g)
    gt = torch.rand(FULL_B, 15, 3, generator=g)
    valid = torch.rand(FULL_B, 15, generator=g) > 0.2
    is_3d = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    return x_vol, x_joint, gt, valid, is_3d


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        assert distributed_world() == (rank, world)
        data = _data()
        results = {}
        for sizes in SPLITS:
            lo = sum(sizes[:rank])
            local = [t[lo : lo + sizes[rank]] for t in data]
            model = nn.parallel.DistributedDataParallel(_Tiny())
            loss = model(*local)
            loss.backward()
            results[sizes] = {
                "loss": loss.detach(),
                "grads": {n: p.grad.clone() for n, p in model.module.named_parameters()},
            }
            # plain gather: values in rank order, gradient = local slice of the rank-summed gradient
            x = torch.full((sizes[rank], 2), float(rank + 1), requires_grad=True)
            y = all_gather_cat(x)
            (y * torch.arange(1, y.shape[0] + 1, dtype=y.dtype)[:, None]).sum().backward()
            results[sizes]["gathered"] = y.detach()
            results[sizes]["gather_grad"] = x.grad.clone()
            del model, loss  # DDP's reducer holds the group: free it before the group ends
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        gc.collect()  # a gloo group that outlives destroy_process_group can abort the process at exit
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_two_process_gloo_ddp_matches_single_process(tmp_path):
    ctx = mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 150
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish in time")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    ref_model = _Tiny()
    ref_loss = ref_model(*_data())
    ref_loss.backward()
    ref_grads = {n: p.grad for n, p in ref_model.named_parameters()}
    assert ref_loss.item() > 0
    for sizes in SPLITS:
        for r in range(2):
            res = ranks[r][sizes]
            torch.testing.assert_close(res["loss"], ref_loss.detach(), rtol=1e-5, atol=1e-6)
            for name, g in ref_grads.items():
                torch.testing.assert_close(res["grads"][name], g, rtol=1e-4, atol=1e-6, msg=f"{sizes} {name}")
            n0, n1 = sizes
            expected = torch.cat([torch.full((n0, 2), 1.0), torch.full((n1, 2), 2.0)])
            torch.testing.assert_close(res["gathered"], expected)
            # both ranks back-propagate weights 1..N: each gets its own rows' weights, summed over 2 ranks
            rows = torch.arange(1, n0 + n1 + 1, dtype=torch.float32)
            lo = 0 if r == 0 else n0
            mine = rows[lo : lo + sizes[r]]
            torch.testing.assert_close(res["gather_grad"], 2 * mine[:, None].expand(-1, 2))


def test_single_process_makes_no_collective_call(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("torch.distributed collective called in a single process")

    for name in ("all_gather", "all_reduce", "broadcast", "get_world_size", "get_rank"):
        monkeypatch.setattr(dist, name, boom)
    assert distributed_world() == (0, 1)
    loss = _Tiny()(*_data())
    loss.backward()
    x = torch.ones(3, requires_grad=True)
    assert all_gather_cat(x) is x
