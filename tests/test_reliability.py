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
    existing = tmp_path / "out" / "synthetic_oc_1001_0"
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


# ================================================================ 4. hangs, unbounded work, 6. one-liners

YAML_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")),
    ]
)


@pytest.mark.parametrize(
    "text, match",
    [
        (YAML_BOMB, "anchors/aliases"),
        ("a: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00binary", "not text"),
        (b"train:\n  seed: 1\n\x00", "not text"),
        ("base: &b {lr: 1}\ntrain:\n  <<: *b", "anchors/aliases"),
        ("train: [unclosed\n  - x: {", "not valid YAML"),
    ],
    ids=["alias-bomb", "deep", "binary", "nul", "merge-key", "syntax"],
)
def test_bad_config_files_are_one_line_errors(tmp_path, text, match):
    from jotr.config import load_config
    from jotr.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as info:
        load_config([str(path)])
    assert "\n" not in str(info.value) and time.perf_counter() - start < 5.0


def test_config_on_a_fifo_does_not_hang(tmp_path):
    from jotr.config import load_config
    from jotr.errors import ConfigError

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config([str(fifo)])


@pytest.mark.parametrize(
    "override, match",
    [
        ("model.nhead=0", "nhead must be >= 1"),
        ("model.nhead=3", "divisible by nhead"),
        ("model.dropout=2", "dropout must be in"),
        ("model.focal_256=0", "focal_256 must be a positive"),
        ("train.seed=99999999999999999999", "seed must be in"),
        ("data.num_workers=-1", "num_workers must be >= 0"),
        ("data.augment.rot_prob=5", "rot_prob must be in"),
        ("data.augment.flip_prob=.nan", "flip_prob must be in"),
        ("train.out_dir=''", "out_dir must be a folder name"),
        ("data.ratio_3d=2", "ratio_3d must be in"),
        ("train.lr_decay_epochs=&a [1, *a]", "anchors/aliases"),
    ],
)
def test_config_ranges_are_checked(override, match):
    from jotr.config import load_config
    from jotr.errors import ConfigError

    with pytest.raises(ConfigError, match=match) as info:
        load_config(["synthetic_small"], [override])
    assert "\n" not in str(info.value)


def test_keypoint_files_must_be_small_regular_json(tmp_path):
    from jotr.errors import InputError
    from jotr.inference.keypoints import KeypointSource

    fifo = tmp_path / "kp.json"
    os.mkfifo(fifo)
    for bad, match in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file")):
        with pytest.raises(InputError, match=match):
            KeypointSource(bad)
    huge_int = tmp_path / "int.json"
    huge_int.write_text('{"people": [{"pose_keypoints_2d": [' + "9" * 5000 + "]}]}")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for bad, match in ((huge_int, "5000 digits"), (deep, "nested too deeply")):
        with pytest.raises(InputError, match=match) as info:
            KeypointSource(bad)
        assert "\n" not in str(info.value)


def test_web_keypoint_payloads_are_one_line_errors(tmp_path):
    from jotr.errors import InputError
    from jotr.web.handlers import Limits, read_keypoints

    cases = {
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "int.json": '[{"image_id": 1, "keypoints": [' + "1" * 5000 + "]}]",
        "binary.json": "\udcff\udcfe".encode("utf-8", "surrogateescape").decode("latin-1"),
        "nul.json": '{"people": [\x00]}',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1") if name == "binary.json" else text.encode())
        with pytest.raises(InputError) as info:
            read_keypoints(path, "auto", "a.png", Limits())
        assert "\n" not in str(info.value), name


@pytest.mark.parametrize(
    "kw", [{"max_upload_mb": float("inf")}, {"timeout_s": float("nan")}, {"max_people": 0}, {"max_side": "1"}]
)
def test_web_limits_are_checked(kw):
    from jotr.errors import InputError
    from jotr.web.handlers import Limits

    with pytest.raises(InputError, match="must be a positive finite number"):
        Limits(**kw)


@pytest.mark.parametrize(
    "flag", [["--max-upload-mb", "inf"], ["--timeout", "nan"], ["--client-quota-mb", "-1"]]
)
def test_serve_refuses_bad_limits_before_loading(flag, capsys):
    pytest.importorskip("gradio")
    code, _, err = _cli(["serve", *flag], capsys)
    assert code == 2 and "must be a positive finite number" in err and "Traceback" not in err


def _asgi(guard, body: bytes, client: str = "1.2.3.4", path: str = "/gradio_api/upload") -> tuple[int, bytes]:
    import asyncio

    sent: list[dict] = []
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": (client, 5000),
        "headers": [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"multipart/form-data; boundary=XyZ"),
        ],
    }
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _multipart(filename: str, data: bytes) -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="' + filename.encode() + b'"\r\n'
        b"Content-Type: application/json\r\n\r\n" + data + b"\r\n--XyZ--\r\n"
    )


def test_upload_guard_quota_and_unnamed_files():
    from jotr.web.handlers import Limits, UploadGuard

    seen: list[bytes] = []

    async def app(scope, receive, send):  # stands in for gradio: echoes that the body arrived whole
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    now = [0.0]
    guard = UploadGuard(
        app, Limits(max_upload_mb=1, client_quota_mb=2, quota_window_s=60), clock=lambda: now[0]
    )
    body = _multipart("a.json", b"x" * 700_000)
    assert _asgi(guard, body) == (200, b"ok") and seen[-1] == body
    assert _asgi(guard, body)[0] == 200
    status, text = _asgi(guard, body)  # third 0.7 MB upload: over 2 MB in the window
    assert status == 429 and b"quota" in text
    assert _asgi(guard, body, client="5.6.7.8")[0] == 200  # other clients are not affected
    now[0] = 61.0
    assert _asgi(guard, body)[0] == 200  # the window has passed
    status, text = _asgi(guard, _multipart("", b"{}"))
    assert status == 400 and b"no file name" in text
    no_filename = b'--XyZ\r\nContent-Disposition: form-data; name="files"\r\n\r\n{}\r\n--XyZ--\r\n'
    assert _asgi(guard, no_filename)[0] == 400  # what httpx sends for an empty name
    assert _asgi(guard, b"x" * 4_000_000)[0] == 413
    assert len(seen) == 4


def test_abandoned_server_folders_are_cleaned(tmp_path):
    import json

    from jotr.utils.io import _HOST, MARKER, clean_abandoned_temp_dirs

    dead = _dead_pid()
    folders = {
        "jotr-serve-dead": {"created_by": "jotr", "host": _HOST, "pid": dead},
        "jotr-serve-live": {"created_by": "jotr", "host": _HOST, "pid": os.getpid()},
        "jotr-serve-other-host": {"created_by": "jotr", "host": "elsewhere", "pid": dead},
        "jotr-serve-no-marker": None,
    }
    for name, owner in folders.items():
        (tmp_path / name / "uploads").mkdir(parents=True)
        if owner is not None:
            (tmp_path / name / MARKER).write_text(json.dumps(owner))
    removed = clean_abandoned_temp_dirs("jotr-serve-", tmp_path)
    assert [p.name for p in removed] == ["jotr-serve-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(folders) - {"jotr-serve-dead"})


def test_predictor_limits_people_focal_and_non_finite(tiny):
    import numpy as np
    import torch

    from jotr.errors import InputError
    from jotr.inference.predictor import JOTRPredictor

    cfg, model = tiny
    predictor = JOTRPredictor(model, cfg)
    image = np.full((100, 120, 3), 90, np.uint8)
    person = np.array([[40 + 2 * j, 20 + 4 * j, 0.9] for j in range(17)])
    with pytest.raises(InputError, match="65 people given; the limit is 64"):
        predictor.predict(image, [person] * 65)
    for focal in (1e30, 1e-300, float("nan")):
        with pytest.raises(InputError, match="focal must be in"):
            predictor.predict(image, [person], focal=focal)
    results = predictor.predict(image, [person] * 20)  # more than one network batch (chunks of 16)
    assert len(results) == 20 and all(r.ok for r in results)
    broken = JOTRPredictor(__import__("copy").deepcopy(model), cfg)
    with torch.no_grad():
        for p in broken.model.parameters():
            p.fill_(float("nan"))
    results = broken.predict(image, [person])
    assert not results[0].ok and "NaN" in results[0].error


# ============================================================================ 5. checkpoint integrity


def _tampered(ckpt: Path, tmp_path: Path, change) -> Path:
    import torch

    data = torch.load(ckpt, weights_only=True)
    change(data["model"])
    out = tmp_path / "tampered.pt"
    torch.save(data, out)
    return out


def test_checkpoints_with_nan_or_integer_weights_are_refused(ckpt, tmp_path, capsys):
    import torch

    from jotr.engine.checkpoint import load_model
    from jotr.errors import CheckpointError

    key = next(k for k, v in torch.load(ckpt, weights_only=True)["model"].items() if v.is_floating_point())

    def nan(state):
        state[key] = torch.full_like(state[key], float("nan"))

    def as_int(state):
        state[key] = state[key].to(torch.int32)

    with pytest.raises(CheckpointError, match=f"NaN/inf weights .*{key}"):
        load_model(_tampered(ckpt, tmp_path, nan))
    with pytest.raises(CheckpointError, match=f"wrong kind .*{key}: checkpoint torch.int32"):
        load_model(_tampered(ckpt, tmp_path, as_int))
    images = tmp_path / "images"
    kps = _images_with_keypoints(images, ["a.png"])
    code, _, err = _cli(
        [
            "demo",
            images,
            "--checkpoint",
            _tampered(ckpt, tmp_path, nan),
            "--out",
            tmp_path / "o",
            "--keypoints",
            kps,
        ],
        capsys,
    )
    assert code == 2 and "NaN/inf weights" in err and not (tmp_path / "o").exists()


def test_checkpoint_with_a_damaged_block_is_refused(ckpt, tmp_path):
    from jotr.engine.checkpoint import load_checkpoint
    from jotr.errors import CheckpointError

    data = bytearray(ckpt.read_bytes())
    start = len(data) // 2
    data[start : start + 4096] = bytes(4096)  # a zeroed 4 KiB block inside the weights
    bad = tmp_path / "damaged.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)


def test_safetensors_checkpoints_load_and_bad_headers_are_refused(ckpt, tiny, tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    from jotr.config import config_to_dict
    from jotr.engine.checkpoint import load_checkpoint, load_model
    from jotr.errors import CheckpointError

    cfg, model = tiny
    path = tmp_path / "w.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"jotr_config": json.dumps(config_to_dict(cfg))})
    loaded, _ = load_model(path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    for name, blob in {
        "huge-header.safetensors": (10**12).to_bytes(8, "little") + b"{}",
        "bad-json.safetensors": (5).to_bytes(8, "little") + b"{nope" + bytes(16),
        "short.safetensors": b"\x01",
    }.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match="not a valid safetensors"):
            load_checkpoint(tmp_path / name)
    no_meta = tmp_path / "plain.safetensors"
    save_file(state, str(no_meta))
    with pytest.raises(CheckpointError, match="jotr_config"):
        load_checkpoint(no_meta)


def test_disk_full_during_a_checkpoint_save_is_one_line(tiny, tmp_path, monkeypatch):
    import torch

    from jotr.engine.checkpoint import save_checkpoint
    from jotr.errors import RunError

    cfg, model = tiny

    def full_disk(obj, f, *a, **kw):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4000")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError, match="could not write checkpoint .*disk full") as info:
        save_checkpoint(tmp_path / "last.pt", model=model, cfg=cfg, step=1, rng=False, commit="x")
    assert "\n" not in str(info.value) and not list(tmp_path.iterdir())


def test_coco_image_ids_of_different_types_are_not_merged():
    from jotr.errors import InputError
    from jotr.inference.keypoints import parse_coco_keypoints

    kps = [10.0, 10.0, 1.0] * 17
    same = parse_coco_keypoints([{"image_id": 1, "keypoints": kps}, {"image_id": 1, "keypoints": kps}])
    assert len(same["1"]) == 2
    with pytest.raises(InputError, match="differ only in type"):
        parse_coco_keypoints([{"image_id": 1, "keypoints": kps}, {"image_id": "1", "keypoints": kps}])


# =============================================================================== 7. partial / fatal data


def test_training_skips_and_counts_unreadable_images(tmp_path):
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from jotr.data.dataset import RecordDataset
    from jotr.data.pipeline import load_image
    from jotr.errors import InputError

    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), np.full((8, 8, 3), 7, np.uint8))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff" + bytes(100))

    class Pipeline:  # the real pipeline starts the same way: load_image(record.image_path)
        train = True

        def __call__(self, record, rng):
            return {"path": record.image_path, "pixel": int(load_image(record.image_path)[0, 0, 0])}

    records = [SimpleNamespace(image_path=str(p), body_model="toy") for p in (empty, corrupt, good)]
    ds = RecordDataset(SimpleNamespace(name="mem", records=records), Pipeline(), seed=0)
    assert [ds[i]["path"] for i in range(3)] == [str(good)] * 3  # deterministic replacement
    assert ds.skipped_images == {str(empty), str(corrupt)}
    Pipeline.train = False  # evaluation never skips silently
    with pytest.raises(InputError, match="could not be decoded"):
        ds[0]
    Pipeline.train = True
    only_bad = RecordDataset(SimpleNamespace(name="bad", records=records[:2]), Pipeline(), seed=0)
    with pytest.raises(InputError, match="unreadable images in a row"):
        only_bad[0]


# ======================================================================== 6. bad argument types, API


def test_python_api_bad_types_are_jotr_errors(tiny, tmp_path):
    import numpy as np

    from jotr.config import JOTRConfig, load_config, merge_config
    from jotr.engine.checkpoint import load_checkpoint, load_model
    from jotr.engine.trainer import train
    from jotr.errors import JOTRError
    from jotr.inference.predictor import JOTRPredictor
    from jotr.synth.writer import write_split
    from jotr.viz.renderer import Renderer

    cfg, model = tiny
    predictor = JOTRPredictor(model, cfg)
    person = np.array([[20 + j, 10 + 2 * j, 0.9] for j in range(17)])
    calls = [
        lambda: predictor.predict(np.array([object()] * 12).reshape(2, 2, 3), [person]),
        lambda: JOTRPredictor.from_checkpoint(123),
        lambda: JOTRPredictor(None, cfg),
        lambda: JOTRPredictor(model, {"model": {}}),
        lambda: load_config(5),
        lambda: load_config([5]),
        lambda: load_config([], [3]),
        lambda: merge_config(JOTRConfig(), None),
        lambda: train("config.yaml"),
        lambda: write_split(tmp_path, "oc", "3"),
        lambda: Renderer("a", 5),
        lambda: load_checkpoint(None),
        lambda: load_model(5),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(JOTRError) as info:
            call()
        assert "\n" not in str(info.value), i


def test_readme_safety_lists_the_limits_table():
    from jotr.limits import TABLE

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    safety = readme[readme.index("## Safety") :]
    for what, value, where in TABLE:
        assert f"| {what} | {value} | {where} |" in safety, what
