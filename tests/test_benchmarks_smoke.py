"""The benchmark scripts (``benchmarks/``) import and run in a tiny mode, so that they don't rot.

Nothing here checks a time: only that the scripts run end to end and that what they report is consistent
(row counts, per-person = per-image / people, ONNX parity, result files)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``benchmarks`` is a folder of the repository, not an installed package
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


def test_detector_benchmark_quick(capsys):
    from benchmarks.bench_detector import main as bench_detector

    assert bench_detector(["--quick", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    photos = result["sets"]["photos"]
    assert result["bench"] == "detector" and photos["images"] == 2 and photos["people"] == 2
    assert 0 <= photos["recall"] <= 1 and photos["detections"] >= photos["found"]


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
    row = train_step_case("small", 1, reps=1, contrastive=False, count_flops=True)
    assert row["config"] == "small" and row["batch"] == 1 and row["contrastive"] is False
    assert row["step_s"] > 0 and math.isclose(row["ms_per_sample"], 1000.0 * row["step_s"])
    assert row["gflop"] > 0.5  # ResNet-18 at 128 px alone is ~0.6 GFLOP forward per sample


@pytest.mark.slow
def test_onnx_bench_small(tmp_path):
    from benchmarks.bench_onnx import bench_config

    rows = bench_config("small", [2], reps=1, threads=2, opset=20, folder=tmp_path)
    assert len(rows) == 1 and rows[0]["batch"] == 2
    r = rows[0]
    assert r["max_abs_diff"] < 1e-3  # same network, same inputs
    assert r["torch_ms"] > 0 and r["onnxruntime_ms"] > 0
    assert math.isclose(r["speedup_onnxruntime_vs_torch"], r["torch_ms"] / r["onnxruntime_ms"])


@pytest.mark.slow
def test_run_all_scaling_predictor_writes_result_file(tmp_path):
    """The predictor part of bench_scaling (random-weight checkpoint -> JOTRPredictor) through run_all."""
    args = ["--parts", "predictor", "--configs", "small", "--people", "1", "3", "--reps", "1"]
    path = run_all.run_module("scaling", args, results_dir=tmp_path, threads=2, quick=True, timeout=600)
    assert path == tmp_path / "scaling.json"
    record = json.loads(path.read_text())
    assert record["result"]["bench"] == "scaling" and record["result"]["train"] == []
    rows = record["result"]["predictor"]
    assert [r["people"] for r in rows] == [1, 3]
    for r in rows:
        assert math.isclose(r["ms_per_person"], r["image_ms"] / r["people"])
        assert r["network_ms"] > 0
    assert record["machine"]["threads"] == 2 and "JOTRPredictor" in record["table"]
    assert record["command"].startswith("python -m benchmarks.bench_scaling --parts predictor")


def test_run_all_failure_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="failed"):
        run_all.run_module("onnx", ["--reps", "0"], results_dir=tmp_path / "bad", threads=2, quick=True)
    assert not (tmp_path / "bad").exists()
