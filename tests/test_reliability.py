"""Issue 24 regressions: jotr never deletes or replaces what it did not create, refuses existing results
without ``--force``, and answers bad inputs with one-line errors instead of hangs, unbounded work or silently
wrong results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ====================================================================== 1. never delete a user's files


def _user_backups(folder: Path) -> list[Path]:
    """Ordinary backups that the old sweep deleted (hidden, dated, .old), made 2 days old."""
    (folder / ".mozilla.20231231.old").mkdir()
    (folder / ".mozilla.20231231.old" / "prefs.js").write_text("user data")
    (folder / ".ssh.20231231.old").mkdir()
    (folder / ".ssh.20231231.old" / "id_rsa").write_text("key")
    files = [
        folder / ".bashrc.20240101.old",
        folder / ".notes.abcdefgh.tmp",
        folder / ".draft.q9w8e7r6.partial",
    ]
    for f in files:
        f.write_text("user data")
    old = time.time() - 2 * 86400
    paths = [*files, folder / ".mozilla.20231231.old", folder / ".ssh.20231231.old"]
    for p in [*paths, folder / ".ssh.20231231.old" / "id_rsa"]:
        os.utime(p, (old, old))
    return paths


def test_sweep_never_touches_user_backups(tmp_path):
    from jotr.utils.io import clean_stale_temporaries

    backups = _user_backups(tmp_path)
    assert clean_stale_temporaries(tmp_path) == []
    assert clean_stale_temporaries(tmp_path, name="conv.pt") == []
    assert all(p.exists() for p in backups)
    assert (tmp_path / ".ssh.20231231.old" / "id_rsa").read_text() == "key"


def test_sweep_for_one_output_file_only_touches_that_file(tmp_path):
    from jotr.utils.io import _HOST, clean_stale_temporaries

    dead = _dead_pid()
    mine = tmp_path / f".conv.pt.jotr-{_HOST}-{dead}.ab12.tmp"
    other = tmp_path / f".model.onnx.jotr-{_HOST}-{dead}.ab12.tmp"  # another output: not ours to judge
    for p in (mine, other):
        p.write_text("x")
    assert clean_stale_temporaries(tmp_path, name="conv.pt") == [mine]
    assert other.exists() and not mine.exists()


def test_convert_official_keeps_backups_next_to_the_output(tmp_path):
    from jotr.commands.convert_official import convert
    from jotr.errors import JOTRError

    backups = _user_backups(tmp_path)
    bad = tmp_path / "official.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(JOTRError):
        convert(bad, tmp_path / "conv.pt")
    assert all(p.exists() for p in backups)


# ============================================================== 2. one output policy for every command


@pytest.fixture(scope="module")
def tiny():
    """(config, model) of a tiny random-weight network on the toy body."""
    import torch
    from conftest import TINY_MODEL

    from jotr.config import JOTRConfig, merge_config
    from jotr.models import build_model

    cfg = merge_config(
        JOTRConfig(), {"body": {"kind": "toy"}, "model": TINY_MODEL, "train": {"device": "cpu"}}
    )
    torch.manual_seed(0)
    return cfg, build_model(cfg, pretrained=False).eval()


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory):
    from jotr.engine.checkpoint import save_checkpoint

    cfg, model = tiny
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model=model, cfg=cfg, step=0, rng=False, commit="test")


def _cli(args, capsys) -> tuple[int, str, str]:
    from jotr.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _images_with_keypoints(folder: Path, names: list[str]) -> Path:
    """Images ``names`` in ``folder`` and a COCO keypoint file with one person per image (by file name)."""
    import json

    import cv2
    import numpy as np

    folder.mkdir()
    entries = []
    for k, name in enumerate(names):
        img = np.full((100, 120, 3), 60 + 20 * k, np.uint8)
        assert cv2.imwrite(str(folder / name), img)
        kps = [[40 + 2 * j, 20 + 4 * j, 0.9] for j in range(17)]
        entries.append({"image_id": name, "keypoints": sum(kps, []), "score": 1.0})
    path = folder.parent / "keypoints.json"
    path.write_text(json.dumps(entries))
    return path


def test_unique_result_names():
    from jotr.utils.io import unique_result_names

    names = unique_result_names([Path("d/a.png"), Path("d/a.jpg"), Path("d/a_png.bmp"), Path("d/A.tif")])
    assert len(set(n.casefold() for n in names.values())) == 4
    assert names[Path("d/a_png.bmp")] == "a_png"


def test_demo_results_are_unique_and_never_replaced_without_force(ckpt, tmp_path, capsys):
    from jotr.utils.io import MARKER

    images = tmp_path / "images"
    kps = _images_with_keypoints(images, ["a.png", "a.jpg", "a_png.bmp"])
    out = tmp_path / "out"
    demo = ["demo", images, "--checkpoint", ckpt, "--out", out, "--keypoints", kps, "--no-render"]
    code, stdout, err = _cli(demo, capsys)
    assert code == 0, err
    results = sorted(p.name for p in out.iterdir())
    assert len(results) == 3 and all((out / r / "params.json").is_file() for r in results), results
    assert all((out / r / MARKER).is_file() for r in results)

    (out / results[0] / "notes.txt").write_text("mine")
    code, _, err = _cli(demo, capsys)
    assert code == 2 and "already exists; pass --force" in err and "Traceback" not in err
    assert (out / results[0] / "notes.txt").read_text() == "mine"

    code, _, err = _cli([*demo, "--force"], capsys)  # jotr's own results: replaced
    assert code == 0, err
    assert not (out / results[0] / "notes.txt").exists()

    (out / results[1] / MARKER).unlink()  # now it looks like a folder jotr did not make
    code, _, err = _cli([*demo, "--force"], capsys)
    assert code == 2 and "not created by jotr" in err
    assert (out / results[1] / "params.json").is_file()


def test_one_openpose_json_is_not_applied_to_a_folder(ckpt, tmp_path, capsys):
    import json

    images = tmp_path / "images"
    _images_with_keypoints(images, ["a.png", "b.png"])
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"people": [{"pose_keypoints_2d": [50.0, 50.0, 0.9] * 25}]}))
    code, _, err = _cli(
        ["demo", images, "--checkpoint", ckpt, "--out", tmp_path / "out", "--keypoints", single], capsys
    )
    assert code == 2 and "one OpenPose JSON" in err and not (tmp_path / "out").exists()


def test_demo_synthetic_checks_out_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from jotr.inference import predictor as predictor_module
    from jotr.utils.io import mark_output

    def no_loading(*a, **kw):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(predictor_module.JOTRPredictor, "from_pretrained", no_loading)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _cli(["demo-synthetic", "--out", blocker], capsys)
    assert code == 2 and "not a folder" in err
    existing = tmp_path / "out" / "synthetic_pc_1001_0"
    existing.mkdir(parents=True)
    mark_output(existing, "result")
    (existing / "params.json").write_text("{}")
    code, _, err = _cli(["demo-synthetic", "--out", tmp_path / "out", "--seed", "1001"], capsys)
    assert code == 2 and "already exists; pass --force" in err


def test_export_and_convert_refuse_an_existing_file(ckpt, tmp_path, capsys):
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"user's model")
    code, _, err = _cli(["export-onnx", ckpt, existing], capsys)
    assert code == 2 and "already exists; pass --force" in err
    code, _, err = _cli(["export-onnx", ckpt, tmp_path / "new.onnx", "--opset", "99"], capsys)
    assert code == 2 and "opset 99" in err and "Traceback" not in err
    official = tmp_path / "official.pth.tar"
    official.write_bytes(b"x")
    code, _, err = _cli(["convert-official", official, existing], capsys)
    assert code == 2 and "already exists; pass --force" in err
    assert existing.read_bytes() == b"user's model"
