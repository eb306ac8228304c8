"""The benchmark scripts (``benchmarks/``) import and run in a tiny mode, so that they don't rot.

Nothing here checks a time: only that the scripts run end to end and that what they report is consistent
(row counts, per-person = per-image / people, ONNX parity, result files)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``benchmarks`` is a top-level folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import run_all  # noqa: E402

MODULES = [f"benchmarks.bench_{name}" for name in run_all.BENCHMARKS] + ["benchmarks.run_all"]


@pytest.mark.parametrize("module", MODULES)
def test_every_benchmark_imports_and_has_main(module):
    mod = importlib.import_module(module)
    assert callable(mod.main)
    assert mod.__doc__ and "python -m" in mod.__doc__  # the docstring says how to run it


def test_run_all_knows_every_benchmark_file():
    files = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert files == set(run_all.BENCHMARKS)


def test_machine_info_and_json_line_parsing():
    info = run_all.machine_info(2)
    assert info["threads"] == 2 and info["cpu_count"] >= 1
    assert info["torch"] == torch.__version__
    data, table = run_all.parse_json_line('table line\n{"bench": "x", "v": 1}\n', "x")
    assert data == {"bench": "x", "v": 1} and table == "table line"
    with pytest.raises(ValueError, match="no JSON line"):
        run_all.parse_json_line("only a table\n{not json\n", "x")


def test_make_people_inside_image():
    from benchmarks.bench_scaling import make_people

    people = make_people(8, 640, 480)
    assert len(people) == 8
    for kps in people:
        assert kps.shape == (17, 3)
        assert (kps[:, 0] > 0).all() and (kps[:, 0] < 640).all()
        assert (kps[:, 1] > 0).all() and (kps[:, 1] < 480).all()
        assert (kps[:, 2] > 0.05).all()


def test_scaling_train_step_small():
    from benchmarks.bench_scaling import train_step_case

    torch.set_num_threads(2)
    row = train_step_case("small", 2, reps=1, contrastive=False, count_flops=True)
    assert row["config"] == "small" and row["batch"] == 2
    assert row["step_s"] > 0 and math.isclose(row["ms_per_sample"], 500.0 * row["step_s"])
    assert row["gflop"] > 0.5  # ResNet-18 at 128 px alone is ~0.6 GFLOP per sample forward


def test_scaling_predictor_small(tmp_path):
    from benchmarks.bench_scaling import predictor_case, write_random_checkpoint
    from jotr.inference.predictor import JOTRPredictor

    ckpt = write_random_checkpoint(tmp_path, "small")
    predictor = JOTRPredictor.from_checkpoint(ckpt, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    row = predictor_case(predictor, image, 3, reps=1, bf16=False)
    assert row["people"] == 3
    assert math.isclose(row["ms_per_person"], row["image_ms"] / 3)
    assert 0 < row["network_ms"] and row["image_ms"] > 0


@pytest.mark.slow
def test_onnx_bench_small(tmp_path):
    from benchmarks.bench_onnx import bench_config

    rows = bench_config("small", [1, 2], reps=1, threads=2, opset=20, folder=tmp_path)
    assert [r["batch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["max_abs_diff"] < 1e-3  # same network, same inputs
        assert r["torch_ms"] > 0 and r["onnxruntime_ms"] > 0
        assert math.isclose(r["speedup_onnxruntime_vs_torch"], r["torch_ms"] / r["onnxruntime_ms"])


@pytest.mark.slow
def test_run_all_writes_result_file_and_nothing_on_failure(tmp_path):
    args = ["--parts", "predictor", "--configs", "small", "--people", "1", "--reps", "1"]
    path = run_all.run_module("scaling", args, results_dir=tmp_path, threads=2, quick=True, timeout=300)
    record = json.loads(path.read_text())
    assert path == tmp_path / "scaling.json"
    assert record["result"]["bench"] == "scaling"
    assert [r["people"] for r in record["result"]["predictor"]] == [1]
    assert record["machine"]["threads"] == 2 and "predictor" in record["table"].lower()
    assert record["command"].startswith("python -m benchmarks.bench_scaling --parts predictor")

    with pytest.raises(RuntimeError, match="failed"):
        run_all.run_module("onnx", ["--reps", "0"], results_dir=tmp_path / "bad", threads=2, quick=True)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
