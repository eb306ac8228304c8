"""Hardening (issue 16): no code execution from input files, one-line errors with the right exit status,
nothing left half written, no misleading results. One section per defect class, each a table of bad inputs."""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import operator
import os
import pickle
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.sparse
import torch
from conftest import TINY_MODEL
from torch.utils.data import Dataset

from jotr.cli import main
from jotr.config import JOTRConfig, load_config, merge_config
from jotr.errors import CheckpointError, ConfigError, InputError

W, H = 120, 100


def tiny_cfg(out_dir: Path, **train) -> JOTRConfig:
    t = dict(
        out_dir=str(out_dir),
        device="cpu",
        batch_size=2,
        max_steps=1,
        log_every=1,
        ckpt_every=0,
        val_every=0,
        progress=False,
        tensorboard=False,
        seed=3,
    )
    t.update(train)
    return merge_config(
        JOTRConfig(),
        {
            "body": {"kind": "toy"},
            "model": TINY_MODEL,
            "train": t,
            "data": {"num_workers": 0},
            "eval": {"batch_size": 4, "num_workers": 0, "out_dir": str(out_dir / "eval")},
        },
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    from jotr.models import build_model

    torch.manual_seed(0)
    return build_model(tiny_cfg(tmp_path_factory.mktemp("net")), pretrained=False)


@pytest.fixture(scope="module")
def ckpt(net, tmp_path_factory):
    from jotr.engine.checkpoint import save_checkpoint

    cfg = tiny_cfg(tmp_path_factory.mktemp("ck"))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model=net.eval(), cfg=cfg, step=0, rng=False, commit="test")


def _cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, command: str) -> str:
    lines = [line for line in err.strip().splitlines() if f"jotr {command}: error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


# ====================================================================================== 1. SMPL unpickler


class _Reduce:
    """Pickles as ``fn(*args)`` (what a crafted file does)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _malicious(marker: Path) -> dict[str, object]:
    from numpy.testing._private.utils import runstring

    touch = f"open({str(marker)!r}, 'w').close()"
    cmd = f"touch {marker}"
    return {
        "numpy.testing runstring": _Reduce(runstring, (touch, {})),
        "builtins.eval": _Reduce(eval, (touch,)),
        "builtins.exec": _Reduce(exec, (touch,)),
        "builtins.getattr": _Reduce(getattr, ("text", "upper")),
        "builtins.__import__": _Reduce(__import__, ("os",)),
        "os.system": _Reduce(os.system, (cmd,)),
        "operator.attrgetter": _Reduce(operator.attrgetter("upper"), ("text",)),
        "functools.partial": _Reduce(functools.partial(os.system, cmd), ()),
        "numpy.load": _Reduce(np.load, (str(marker), None, True)),
        "scipy.sparse.save_npz": _Reduce(scipy.sparse.save_npz, (str(marker), scipy.sparse.eye(2).tocsc())),
        "nested in numpy _reconstruct": _Reduce(
            np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (0,), _Reduce(os.system, (cmd,)))
        ),
        "nested in a dict in a list": [{"a": [1, 2, {"b": _Reduce(eval, (touch,))}]}],
        "operator.methodcaller": _Reduce(operator.methodcaller("upper"), ("text",)),
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("case", list(_malicious(Path("m"))))
def test_smpl_pickle_refuses_every_foreign_global(tmp_path, case, protocol):
    from jotr.body.smpl import load_smpl_arrays

    marker = tmp_path / "pwned"
    payload = {"v_template": _malicious(marker)[case], "f": np.zeros((1, 3), np.int64)}
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(InputError, match=r"cannot read SMPL model file .*refused"):
        load_smpl_arrays(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_smpl_pickle_still_loads_arrays_sparse_and_chumpy(tmp_path, protocol, monkeypatch):
    """What official files hold (arrays of every dtype, scipy.sparse, chumpy objects, numpy scalars, sets,
    bytes) loads at every pickle protocol, without chumpy installed."""
    import types

    from jotr.body.smpl import _ChumpyStandIn, load_smpl_arrays

    ch_mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = {"x"}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_mod.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch_mod)
    data = {
        "v_template": Ch(np.arange(12, dtype=np.float64).reshape(4, 3)),
        "J_regressor": scipy.sparse.csc_matrix(np.eye(3, 4)),
        "weights": np.ones((4, 24), np.float32),
        "kintree_table": np.zeros((2, 24), np.uint32),
        "f": np.array([[0, 1, 2]], np.int32),
        "scale": np.float64(1.5),
        "bs_style": "lbs",
        "raw": b"\x00\xff",
        "names": {"a", "b"},
    }
    blob = pickle.dumps(data, protocol=protocol)
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    path = tmp_path / "model.pkl"
    path.write_bytes(blob)
    raw = load_smpl_arrays(path)
    assert isinstance(raw["v_template"], _ChumpyStandIn)
    np.testing.assert_array_equal(raw["v_template"].to_numpy(), data["v_template"].x)
    np.testing.assert_array_equal(raw["J_regressor"].toarray(), np.eye(3, 4))
    assert raw["weights"].dtype == np.float32 and raw["kintree_table"].dtype == np.uint32
    assert raw["scale"] == 1.5 and raw["names"] == {"a", "b"} and raw["raw"] == b"\x00\xff"


def test_generated_official_layout_pickle_loads(smpl_model_dir):
    from jotr.body.smpl import SMPLBody

    body = SMPLBody.from_file(smpl_model_dir / "SMPL_NEUTRAL.pkl")
    assert body.num_vertices == 6890


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"", "EOFError"),
        (b"\x80\x02}q\x00(X\x01\x00\x00", "cannot read"),  # truncated
        (b"(" * 100000 + b".", "cannot read"),  # deep nesting / garbage
        (pickle.dumps([1, 2, 3]), "must hold a dict"),
    ],
)
def test_smpl_pickle_corrupt_files_are_input_errors(tmp_path, blob, match):
    from jotr.body.smpl import SMPLBody

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(blob)
    with pytest.raises(InputError, match=match):
        SMPLBody.from_file(path)


# ======================================================================================= 2. huge images


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "blob",
    [_png_header_only(100000, 100000), _png_header_only(1, 1)[:30], b"\xff\xd8\xff" + b"\0" * 50, b"GIF89a"],
    ids=["png-100000x100000", "png-truncated", "jpeg-garbage", "gif-header"],
)
def test_bad_images_are_input_errors(tmp_path, blob):
    from jotr.inference.predictor import load_image

    path = tmp_path / "bomb.png"
    path.write_bytes(blob)
    with pytest.raises(InputError, match=r"cannot read image .*bomb\.png"):
        load_image(path)


def test_demo_folder_goes_on_after_a_huge_image(ckpt, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a_bomb.png").write_bytes(_png_header_only(100000, 100000))
    cv2.imwrite(str(images / "b_good.png"), np.full((H, W, 3), 128, np.uint8))
    kps = tmp_path / "keypoints"  # a folder of OpenPose JSONs, one per image
    kps.mkdir()
    person = np.zeros((25, 3))
    person[:, 0], person[:, 1], person[:, 2] = np.linspace(40, 80, 25), np.linspace(20, 80, 25), 0.9
    data = json.dumps({"people": [{"pose_keypoints_2d": person.reshape(-1).tolist()}]})
    (kps / "b_good_keypoints.json").write_text(data)
    code, out, err = _cli(
        ["demo", images, "--checkpoint", ckpt, "--out", tmp_path / "out", "--keypoints", kps, "--no-render"],
        capsys,
    )
    assert code == 1 and "1/2 inputs fully processed" in out
    assert "a_bomb.png" in err and "Mpx; the limit is 40 Mpx" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_good"]


# ======================================================================== 3. non-finite predictions


def test_procrustes_isolates_non_finite_samples():
    from jotr.evaluation.metrics import pa_mpjpe

    g = torch.Generator().manual_seed(0)
    gt = torch.randn(3, 14, 3, generator=g)
    pred = gt + 0.01 * torch.randn(3, 14, 3, generator=g)
    pred[1, 4, 0] = float("nan")
    pred[2] = float("inf")
    err = pa_mpjpe(pred, gt)
    assert math.isfinite(float(err[0])) and torch.isnan(err[1:]).all()


class _Samples(Dataset):
    """Minimal evaluation samples for the toy body (GT parameters, one joint set)."""

    def __init__(self, n: int, body):
        g = torch.Generator().manual_seed(1)
        self.n, self.pose = n, torch.randn(n, body.num_pose_joints, 3, generator=g) * 0.2
        self.shape = torch.randn(n, body.num_shape, generator=g) * 0.3

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        ones = torch.ones(30)
        return {
            "image": torch.rand(3, 64, 64),
            "keypoints_hm": torch.rand(30, 2) * 16,
            "keypoints_valid": ones,
            "joints_hm": torch.rand(30, 3) * 16,
            "joints_trunc": ones,
            "joints_cam": torch.zeros(30, 3),
            "joints_valid": ones,
            "is_3d": torch.tensor(1.0),
            "fit_joints_hm": torch.rand(30, 3) * 16,
            "fit_joints_trunc": ones,
            "pose_aa": self.pose[i],
            "shape": self.shape[i],
            "has_fit": torch.tensor(1.0),
            "dataset": "mem",
            "sample_id": f"s{i}",
            "crop_to_img": torch.eye(2, 3),
            "visible_fraction": torch.tensor(0.5),
            "gender": "neutral",
            "body_model": "toy",
            "extra": {},
        }


def test_nan_network_is_reported_not_a_crash(net, tmp_path, caplog):
    from jotr.data.collate import collate
    from jotr.evaluation.evaluator import EvalResult, Evaluator

    broken = copy.deepcopy(net)
    with torch.no_grad():
        for p in broken.parameters():
            p.fill_(float("nan"))
    cfg = tiny_cfg(tmp_path)
    with caplog.at_level(logging.WARNING, logger="jotr.evaluation.evaluator"):
        m = Evaluator(cfg, collate_fn=collate).evaluate_dataset(broken, _Samples(5, net.body), "mem")
    assert m.num_samples == 5 and m.num_nonfinite == 5 and math.isnan(m.mpjpe) and math.isnan(m.pa_mpjpe)
    assert "NaN/inf for 5 of 5" in caplog.text
    assert m.summary()["num_nonfinite"] == 5
    assert "NaN/inf for 5 of 5 samples" in EvalResult(datasets={"mem": m}).table()
    ok = Evaluator(cfg, collate_fn=collate).evaluate_dataset(net, _Samples(3, net.body), "mem")
    assert ok.num_nonfinite == 0 and math.isfinite(ok.mpjpe)


def test_nan_validation_never_becomes_best(net, tmp_path):
    from jotr.engine.trainer import Trainer

    trainer = Trainer(
        tiny_cfg(tmp_path), model=copy.deepcopy(net), train_dataset=_Samples(2, net.body), val_datasets={}
    )
    saved = []
    trainer.save = lambda name: saved.append(name)
    for value in (float("nan"), 50.0, float("nan"), 40.0):
        trainer.validate = lambda v=value: v
        trainer._validate_and_keep_best()
    assert trainer.best_val == 40.0 and saved == ["best.pt", "best.pt"]


# ============================================================================= 4. resume settings


@pytest.fixture(scope="module")
def finished_run(net, tmp_path_factory):
    from jotr.engine.trainer import train

    out = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(out, max_steps=1, lr_schedule="cosine")
    train(cfg, model=copy.deepcopy(net), train_dataset=_Samples(2, net.body), val_datasets={})
    return out


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"lr": 0.01}, r"train\.lr 0\.0001 -> 0\.01"),
        (
            {"seed": 4, "weight_decay": 0.1, "grad_clip": 1.0},
            r"seed 3 -> 4.*weight_decay.*grad_clip None -> 1\.0",
        ),
        ({"batch_size": 1}, r"train\.batch_size 2 -> 1"),
        ({"lr_schedule": "constant"}, r"train\.lr_schedule 'cosine' -> 'constant'"),
        ({"max_steps": 3}, r"run length 1 -> 3 steps .*cosine"),
    ],
)
def test_resume_with_other_training_settings_is_refused(finished_run, net, changes, match):
    from jotr.engine.trainer import train

    cfg = tiny_cfg(finished_run, **{"max_steps": 1, "lr_schedule": "cosine", **changes})
    with pytest.raises(ConfigError, match=match):
        train(cfg, resume="auto", model=net, train_dataset=_Samples(2, net.body), val_datasets={})


def test_resume_with_other_loss_data_or_model_settings_is_refused(finished_run, net):
    from jotr.engine.trainer import train

    cfg = tiny_cfg(finished_run, max_steps=1, lr_schedule="cosine")
    cfg = merge_config(
        cfg, {"loss": {"pose_weight": 7.0}, "data": {"augment": {"rot_prob": 0.1}, "ratio_3d": 0.9}}
    )
    with pytest.raises(ConfigError, match=r"loss\.pose_weight .* -> 7\.0.*data\.ratio_3d.*augment\.rot_prob"):
        train(cfg, resume="auto", model=net, train_dataset=_Samples(2, net.body), val_datasets={})
    free = merge_config(
        tiny_cfg(finished_run, max_steps=1, lr_schedule="cosine", log_every=5, device="cpu"),
        {"data": {"num_workers": 0}},
    )  # bookkeeping may change: this resume is accepted (nothing left to train)
    train(free, resume="auto", model=net, train_dataset=_Samples(2, net.body), val_datasets={})


def test_existing_run_needs_resume_or_force(finished_run, net, tmp_path):
    from jotr.engine.trainer import train
    from jotr.utils.io import MARKER

    def run(out, **kw):
        cfg = tiny_cfg(out, max_steps=1)
        return train(
            cfg, model=copy.deepcopy(net), train_dataset=_Samples(2, net.body), val_datasets={}, **kw
        )

    before = (finished_run / "last.pt").read_bytes()
    with pytest.raises(InputError, match="already holds a run .*--resume auto.*--force"):
        run(finished_run)
    assert (finished_run / "last.pt").read_bytes() == before
    out = tmp_path / "run"
    run(out)
    assert (out / MARKER).is_file() and (out / "last.pt").is_file()
    run(out, force=True)  # jotr's own run folder: started over
    (out / MARKER).unlink()
    with pytest.raises(InputError, match="not created by jotr"):
        run(out, force=True)
    assert (out / "last.pt").is_file()


def test_run_failing_before_its_first_step_leaves_nothing(net, tmp_path):
    from jotr.engine.trainer import train

    class Broken(_Samples):
        def __getitem__(self, i):
            raise OSError("disk read error")

    out = tmp_path / "runs" / "new"
    with pytest.raises(OSError):
        train(tiny_cfg(out), model=copy.deepcopy(net), train_dataset=Broken(2, net.body), val_datasets={})
    assert not (tmp_path / "runs").exists()


def test_kill_during_save_then_resume_auto(finished_run, net):
    """kill -9 while a checkpoint is written leaves ``.last.pt.*.tmp``; ``--resume auto`` removes it and
    resumes (bookkeeping settings may change)."""
    from jotr.engine.trainer import train

    code = (
        "import sys, time\nfrom jotr.utils.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    last = finished_run / "last.pt"
    before = last.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", code, str(last)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    assert len(list(finished_run.glob(".last.pt.*.tmp"))) == 1 and last.read_bytes() == before
    cfg = tiny_cfg(finished_run, lr_schedule="cosine", max_steps=1, log_every=5, ckpt_every=7)
    model = copy.deepcopy(net)  # the resume loads the run's weights into it
    res = train(cfg, resume="auto", model=model, train_dataset=_Samples(2, net.body), val_datasets={})
    assert res.steps == 1 and not list(finished_run.glob(".*.tmp"))


# =========================================================================== 5. one-line CLI errors


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "a_file").write_text("x")
    (d / "empty.pt").write_bytes(b"")
    cv2.imwrite(str(d / "img.png"), np.full((H, W, 3), 100, np.uint8))
    (d / "zero_people.json").write_text(json.dumps({"people": []}))
    coco = [{"image_id": "img", "keypoints": ["x"] * 51}]
    (d / "str_keypoints.json").write_text(json.dumps(coco))
    box = [{"image_id": "img", "keypoints": [50, 50, 1] * 17, "bbox": ["1", "2", "3", "4"]}]
    (d / "str_bbox.json").write_text(json.dumps(box))
    return d


def _cases(f: Path, ck: str) -> list[tuple[str, list, int, str]]:
    """(id, argv, exit status, text of the one error line)."""
    demo = ["demo", f / "img.png", "--checkpoint", ck, "--no-render", "--keypoints", f / "zero_people.json"]
    out = ["--out", f / "demo_out"]
    cases = [
        (
            "eval-out-is-file",
            ["eval", "--checkpoint", ck, "--out", f / "a_file"],
            2,
            "a_file exists and is not a folder",
        ),
        (
            "eval-out-under-file",
            ["eval", "--checkpoint", ck, "--out", f / "a_file" / "x"],
            2,
            "is not a folder",
        ),
        (
            "eval-out-proc",
            ["eval", "--checkpoint", ck, "--out", "/proc/jotr/x"],
            2,
            "/proc/jotr/x is not writable",
        ),
        ("eval-device-bogus", ["eval", "--checkpoint", ck, "--device", "bogus"], 2, "invalid device 'bogus'"),
        ("eval-empty-ckpt", ["eval", "--checkpoint", f / "empty.pt"], 2, "empty.pt is empty (0 bytes)"),
        ("onnx-out-is-dir", ["export-onnx", ck, f], 2, "is a folder, expected a file name"),
        ("onnx-out-proc", ["export-onnx", ck, "/proc/x.onnx"], 2, "folder /proc is not writable"),
        ("onnx-tolerance", ["export-onnx", ck, f / "x.onnx", "--tolerance", "-1"], 2, "--tolerance"),
        ("demo-device-bogus", [*demo, *out, "--device", "bogus"], 2, "invalid device 'bogus'"),
        ("demo-focal-negative", [*demo, *out, "--focal", "-5"], 2, "--focal must be in [1, 1e+06]"),
        ("demo-focal-nan", [*demo, *out, "--focal", "nan"], 2, "--focal must be in [1, 1e+06]"),
        ("demo-max-frames-0", [*demo, *out, "--max-frames", "0"], 2, "--max-frames must be >= 1"),
        ("demo-max-frames-neg", [*demo, *out, "--max-frames", "-1"], 2, "--max-frames must be >= 1"),
        ("demo-out-is-file", [*demo, "--out", f / "a_file"], 2, "a_file exists and is not a folder"),
        ("demo-str-keypoints", [*demo[:-1], f / "str_keypoints.json", *out], 2, "keypoints must be numbers"),
        ("demo-str-bbox", [*demo[:-1], f / "str_bbox.json", *out], 2, "bbox must be numbers"),
        (
            "train-lr-negative",
            ["train", "--config", "synthetic_small", "--set", "train.lr=-1"],
            2,
            "lr must be",
        ),
        (
            "train-bad-yaml",
            ["train", "--config", "synthetic_small", "--set", "train.lr=[1,"],
            2,
            "not valid YAML",
        ),
        (
            "train-max-steps-0",
            ["train", "--config", "synthetic_small", "--set", "train.max_steps=0"],
            2,
            "max_steps",
        ),
        (
            "train-batch-negative",
            ["train", "--config", "synthetic_small", "--set", "train.batch_size=-2"],
            2,
            "batch_size must be >= 1",
        ),
        (
            "train-out-is-file",
            ["train", "--config", "synthetic_small", "--out-dir", f / "a_file"],
            2,
            "not a folder",
        ),
        (
            "train-device-bogus",
            ["train", "--config", "synthetic_small", "--set", "train.device=bogus", "--out-dir", f / "t"],
            2,
            "invalid device",
        ),
        (
            "synth-seed-negative",
            ["synth", "--split", "oc", "--seed", "-1", "--out", f / "s"],
            2,
            "--seed must be",
        ),
        ("synth-out-proc", ["synth", "--split", "oc", "--out", "/proc/jotr"], 2, "not writable"),
        ("config-bad-yaml", ["config", "--set", "model.d_model={a"], 2, "not valid YAML"),
        ("convert-out-proc", ["convert-official", f / "a_file", "/proc/x.pt"], 2, "not writable"),
    ]
    if not torch.cuda.is_available():
        cases += [
            (
                "eval-device-cuda",
                ["eval", "--checkpoint", ck, "--device", "cuda"],
                2,
                "CUDA is not available",
            ),
            ("demo-device-cuda", [*demo, *out, "--device", "cuda"], 2, "CUDA is not available"),
        ]
    return cases


@pytest.mark.parametrize(
    "case", range(len(_cases(Path("f"), "c"))), ids=[c[0] for c in _cases(Path("f"), "c")]
)
def test_cli_bad_input_is_one_line_and_exit_2(case, files, ckpt, capsys):
    name, argv, status, text = _cases(files, str(ckpt))[case]
    code, _, err = _cli(argv, capsys)
    line = _one_line_error(err, argv[0])
    assert code == status, (name, err)
    assert text in line, (name, line)
    assert not (files / "demo_out").exists() and not (files / "s").exists() and not (files / "t").exists()


@pytest.mark.parametrize(
    "exc, status, text",
    [
        (InputError("bad thing in x.json"), 2, "bad thing in x.json"),
        (CheckpointError("ckpt y.pt is corrupt"), 2, "ckpt y.pt is corrupt"),
        (FileNotFoundError(2, "No such file or directory", "/data/missing.jpg"), 2, "/data/missing.jpg"),
        (PermissionError(13, "Permission denied", "/root/out"), 2, "permission denied: /root/out"),
        (IsADirectoryError(21, "Is a directory", "/tmp"), 2, "is a directory: /tmp"),
        (OSError(28, "No space left on device", "/data/out/last.pt"), 1, "no space left on device"),
        (RuntimeError("boom\nsecond line"), 1, "internal error: RuntimeError: boom second line"),
        (MemoryError(), 1, "out of memory"),
    ],
)
def test_error_boundary_maps_exceptions(monkeypatch, capsys, exc, status, text):
    import jotr.commands.config as config_command

    def fail(args):
        raise exc

    monkeypatch.setattr(config_command, "run", fail)
    code, _, err = _cli(["config"], capsys)
    assert code == status
    assert text in _one_line_error(err, "config")
    code, _, err = _cli(["config", "--debug"], capsys)  # --debug: the traceback as well
    assert code == status and "Traceback" in err
    if status == 1 and not isinstance(exc, OSError):
        assert "--debug" in _cli(["config"], capsys)[2]
    from jotr.engine.trainer import NonFiniteLossError

    monkeypatch.setattr(
        config_command, "run", lambda a: (_ for _ in ()).throw(NonFiniteLossError("nan at 3"))
    )
    assert _cli(["--debug", "config"], capsys)[0] == 1  # a failed run, not bad input


def test_python_api_rejects_bad_arguments(ckpt):
    from jotr.inference.predictor import JOTRPredictor, PersonInput

    with pytest.raises(InputError, match="invalid device 'bogus'"):
        JOTRPredictor.from_checkpoint(ckpt, device="bogus")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            JOTRPredictor.from_checkpoint(ckpt, device="cuda")
    pred = JOTRPredictor.from_checkpoint(ckpt, device="cpu")
    img = np.full((H, W, 3), 90, np.uint8)
    box = PersonInput(box_xywh=np.array([30.0, 10.0, 50.0, 80.0]))
    for kwargs, match in [
        ({"focal": "abc"}, "focal must be"),
        ({"focal": -5}, "focal must be in"),
        ({"focal": [1, 2, 3]}, "focal must be one or two numbers"),
        ({"princpt": (float("nan"), 3)}, "princpt must be two finite"),
        ({"princpt": "ab"}, "princpt must be"),
        ({"princpt": 5.0}, "princpt must be two finite"),
    ]:
        with pytest.raises(InputError, match=match):
            pred.predict(img, [box], **kwargs)
    with pytest.raises(InputError, match="people must be a list"):
        pred.predict(img, "abc")
    per_person = [
        (PersonInput(box_xywh=["1", "2", "3", "4"]), "box must be numbers"),
        (PersonInput(box_xywh=[1, 2, 3]), "box must be 4 finite numbers"),
        (PersonInput(box_xywh=[0, 0, 1e9, 1e9]), "must be 2 px to 10x"),
        (PersonInput(box_xywh=[10, 10, 0.5, 0.5]), "must be 2 px to 10x"),
        (PersonInput(keypoints=[["a", 1, 1]] * 17), "keypoints must be numbers"),
        (PersonInput(keypoints=np.ones((17, 3)), keypoint_format=5), "keypoint format must be a name"),
        ({"keypoints": None, "box_xywh": True}, "box must be numbers"),
    ]
    results = pred.predict(img, [p for p, _ in per_person] + [box])
    for r, (_, match) in zip(results, per_person):
        assert not r.ok and match in r.error, (match, r.error)
    assert results[-1].ok and np.isfinite(results[-1].vertices).all()


# ============================================================================= 6. files left behind


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_are_cleaned_and_live_ones_kept(tmp_path):
    from jotr.utils.io import _HOST, MARKER, clean_stale_temporaries

    dead, live = _dead_pid(), os.getpid()
    names = {
        f".last.pt.jotr-{_HOST}-{dead}.k2j4.tmp": True,  # killed writer on this machine
        f".img.jotr-{_HOST}-{dead}.x8a.partial": True,  # killed demo (a folder with jotr's marker)
        f".img.jotr-{_HOST}-{dead}.y1b.old": True,
        f".unmarked.jotr-{_HOST}-{dead}.y1b.old": False,  # a folder without the marker: not jotr's
        f".last.pt.jotr-{_HOST}-{live}.abcd.tmp": False,  # a live writer
        f".last.pt.jotr-otherhost-{dead}.abcd.tmp": False,  # another machine: cannot tell
        f".last.pt.{_HOST}-{dead}.abcd.tmp": False,  # no jotr marker in the name
        ".last.pt.q9w8e7r6.tmp": False,  # mkstemp-like name: could be anyone's
        ".hidden_user_file": False,
        "last.pt": False,
    }
    for name in names:
        p = tmp_path / name
        if name.endswith((".partial", ".old")):
            p.mkdir()
            (p / "params.json").write_text("{}")
            if not name.startswith(".unmarked"):
                (p / MARKER).write_text("{}")
        else:
            p.write_text("x")
    removed = {p.name for p in clean_stale_temporaries(tmp_path)}
    assert removed == {n for n, stale in names.items() if stale}
    assert {p.name for p in tmp_path.iterdir()} == {n for n, stale in names.items() if not stale}
    assert clean_stale_temporaries(tmp_path / "missing") == []


def test_failed_writes_leave_no_empty_folders(tmp_path):
    from jotr.inference.export import staged_dir
    from jotr.utils.io import atomic_save

    def fail(tmp):
        tmp.write_bytes(b"part")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_save(tmp_path / "a" / "b" / "metrics.json", fail)
    with pytest.raises(RuntimeError):
        with staged_dir(tmp_path / "c" / "d" / "img"):
            raise RuntimeError("renderer failed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep").mkdir()
    with pytest.raises(OSError):
        atomic_save(tmp_path / "keep" / "x.json", fail)
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]  # an existing folder stays


# ======================================================================= 7. no misleading results


def test_zero_people_and_negative_confidences(ckpt, files, tmp_path, capsys):
    from jotr.inference.keypoints import to_jotr30

    code, out, err = _cli(
        [
            "demo",
            files / "img.png",
            "--checkpoint",
            ckpt,
            "--no-render",
            "--out",
            tmp_path / "o",
            "--keypoints",
            files / "zero_people.json",
        ],
        capsys,
    )
    assert code == 1 and "lists no people" in err and "0/1 inputs" in out
    assert not (tmp_path / "o").exists()  # nothing written, no empty folder
    k = np.zeros((17, 3))
    k[:, :2], k[:, 2] = 50.0, -1.0  # negative confidences: missing, also in the derived pelvis/neck
    j30 = to_jotr30(k, "coco17")
    assert (j30[:, 2] == 0).all()


def test_truncated_checkpoints_say_so(ckpt, tmp_path):
    from jotr.engine.checkpoint import load_checkpoint

    data = Path(ckpt).read_bytes()
    for size, match in [(0, "is empty"), (len(data) // 2, "corrupt"), (3, "corrupt")]:
        (tmp_path / "last.pt").write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(tmp_path / "last.pt")
        assert not str(info.value).rstrip().endswith(":")


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.max_steps=0", "max_steps must be >= 1"),
        ("train.epochs=0", "epochs must be >= 1"),
        ("train.batch_size=-3", "batch_size must be >= 1"),
        ("train.lr=-1", "lr must be a finite number >= 0"),
        ("train.lr=.nan", "lr must be a finite number >= 0"),
        ("train.weight_decay=-0.1", "weight_decay"),
        ("train.grad_clip=-1", "grad_clip"),
        ("train.warmup_steps=-5", "warmup_steps"),
        ("train.seed=-1", "seed must be in \\[0, 2\\^32\\)"),
        ("eval.batch_size=0", "batch_size must be >= 1"),
        ("eval.visibility_bins=[0.5, 0.2]", "visibility_bins"),
        ("train.lr=[1,", "not valid YAML"),
        ("train.lr={a: [", "not valid YAML"),
    ],
)
def test_config_values_are_validated(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("synthetic_small", [override])


# ============================================================================ 8. Anny cache file modes


def test_cache_files_become_readable_for_others(tmp_path):
    from jotr.body.anny_cache import share_cache_files

    sub = tmp_path / "v14"
    sub.mkdir(mode=0o700)
    f = sub / "build_model_data_x.safetensors"
    f.write_bytes(b"x")
    os.chmod(f, 0o600)
    old = os.umask(0o022)
    try:
        assert share_cache_files(tmp_path) >= 2
        assert stat.S_IMODE(f.stat().st_mode) == 0o644 and stat.S_IMODE(sub.stat().st_mode) == 0o755
        assert share_cache_files(tmp_path) == 0  # idempotent
    finally:
        os.umask(old)


# ================================================================= 9. head-top / H36M regressor warnings


def test_regressor_warnings_once_and_only_when_needed(smpl_model_dir, tmp_path, caplog, monkeypatch):
    import jotr.body.smpl as smpl_module
    from jotr.body.smpl import SMPLBody

    monkeypatch.setattr(smpl_module, "_WARNED", set())
    path = smpl_model_dir / "SMPL_NEUTRAL.npz"
    with caplog.at_level(logging.WARNING, logger="jotr.body.smpl"):
        a = SMPLBody.from_file(path)
        SMPLBody.from_file(path)
        out = a(a.rest_pose(1), a.default_shape(1))
        a.joints(out, "jotr30")  # inference: no H36M joints needed
    assert caplog.text.count("head-top joint falls back to SMPL vertex 411") == 1
    assert "NOT the paper protocol" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jotr.body.smpl"):
        a.joints(out, "h36m17")
        a.joints(out, "h36m17")
    assert caplog.text.count("NOT the paper protocol") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jotr.body.smpl"):
        SMPLBody.from_file(
            path,
            j_regressor_h36m=smpl_model_dir / "J_regressor_h36m_correct.npy",
            j_regressor_extra=smpl_model_dir / "J_regressor_extra.npy",
        )
    assert caplog.text == ""
