"""Run every benchmark in turn and save each one's JSON line, with the machine's description, as
``benchmarks/results/<name>.json``.

    python -m benchmarks.run_all [--quick] [--only NAME ...] [--skip NAME ...] [--threads 2]
                                 [--results-dir benchmarks/results] [--args NAME="--flag value" ...]

Each benchmark runs as ``python -m benchmarks.bench_<name> ...`` in a child process (its own interpreter, its
own peak memory), with ``OMP_NUM_THREADS`` = ``--threads`` and the Anny cache of jotr's rule
(``$ANNY_CACHE_DIR``, else ``~/.cache/jotr/anny``). ``--quick`` passes tiny sizes and one repetition to every
benchmark (a check that they all run, in a few minutes; the figures are not meaningful). ``--args NAME="..."``
replaces the arguments given to one benchmark.

A result file holds ``{"name", "command", "quick", "started_utc", "wall_s", "machine", "load_average",
"result", "table"}``: ``result`` is the benchmark's JSON line, ``table`` its printed table, ``machine`` the
CPU model (``/proc/cpuinfo``), CPU count, memory, threads, Python/torch/onnxruntime versions and the git
commit, ``load_average`` the 1/5/15-minute load before and after. Files are written atomically; a benchmark
that fails leaves no file (its error is printed) and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "benchmarks" / "results"

# name -> (full arguments, --quick arguments); the order is the run order (cheap first).
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "body": (["--batches", "16", "64", "--reps", "20"], ["--batches", "2", "--reps", "1"]),
    "contrastive": (
        ["--batches", "8", "32", "--reps", "5", "--ref-reps", "2"],
        ["--batches", "2", "--reps", "1", "--ref-reps", "1"],
    ),
    "inference": (
        ["--configs", "paper", "small", "--batches", "1", "8", "32", "--reps", "3"],
        ["--configs", "small", "--batches", "1", "--reps", "1", "--modes", "naive", "fp32", "bf16"],
    ),
    "onnx": (["--configs", "small", "paper", "--batches", "1", "8", "--reps", "5"], ["--quick"]),
    "train_step": (["--batch", "8", "--reps", "3"], ["--batch", "2", "--reps", "1"]),
    "scaling": ([], ["--quick"]),
    "detector": (["--threads", "2"], ["--quick", "--threads", "1"]),
    "synth": (
        ["--num", "40", "--workers", "1", "2"],
        ["--families", "oc", "--num", "2", "--workers", "1", "--width", "160", "--height", "120"],
    ),
    "synth_memory": (
        ["--family", "pc", "--num", "100"],
        ["--family", "none", "--num", "2", "--width", "96", "--height", "96"],
    ),
    "train_loop": (["--batch", "16", "--steps", "12"], ["--batch", "2", "--steps", "1"]),
    "data": (
        ["--images", "32", "--persons", "3", "--batch", "16", "--workers", "0", "2", "--epochs", "2"],
        ["--images", "4", "--persons", "1", "--batch", "2", "--workers", "0", "--epochs", "2"],
    ),
    "tracking": ([], ["--quick"]),
    "memory": (
        ["--model", "shipped", "--requests", "200", "--frames", "200", "--synth", "40"],
        ["--model", "tiny", "--requests", "2", "--frames", "2", "--synth", "0"],
    ),
}
# benchmarks that take --threads (the others run single-threaded torch or pick their own workers)
TAKES_THREADS = {"body", "contrastive", "inference", "onnx", "train_step", "scaling", "train_loop"}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2")))
    except OSError:
        pass
    return []


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - a missing or broken package is reported as None
        return None


def machine_info(threads: int) -> dict:
    """The machine and software the figures come from."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "mem_total_gb": _mem_total_gb(),
        "threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "git_commit": _git_commit(),
    }


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def parse_json_line(stdout: str, name: str) -> tuple[dict, str]:
    """The benchmark's JSON line (the last line that is a JSON object with a "bench" key) and the rest."""
    lines = stdout.rstrip("\n").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i].strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "bench" in data:
                return data, "\n".join(lines[:i] + lines[i + 1 :])
    raise ValueError(f"benchmark {name!r} printed no JSON line")


def run_module(
    name: str,
    args: list[str],
    *,
    results_dir: Path,
    threads: int,
    quick: bool,
    timeout: float | None = None,
    machine: dict | None = None,
) -> Path:
    """Run ``benchmarks.bench_<name>`` with ``args`` in a child process and write its result file.

    Raises RuntimeError (with the child's stderr tail) when it fails; then no file is written."""
    from jotr.utils.io import atomic_write_text

    cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", *args]
    if name in TAKES_THREADS and "--threads" not in args:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _load()
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"benchmark {name!r} took more than {timeout} s") from exc
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"benchmark {name!r} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    try:
        result, table = parse_json_line(res.stdout, name)
    except ValueError as exc:
        raise RuntimeError(f"{exc}; stdout tail:\n{res.stdout[-2000:]}") from exc
    record = {
        "name": name,
        "command": "python -m " + " ".join(shlex.quote(c) for c in cmd[2:]),
        "env": {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"]},
        "quick": quick,
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(wall, 1),
        "machine": machine if machine is not None else machine_info(threads),
        "load_average": {"before": load_before, "after": _load()},
        "result": result,
        "table": table,
    }
    path = Path(results_dir) / f"{name}.json"
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (a smoke run)")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    p.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[], help="leave these out")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per benchmark")
    p.add_argument(
        "--args",
        action="append",
        default=[],
        metavar='NAME="ARGS"',
        help="replace the arguments of one benchmark, e.g. --args inference='--no-compile'",
    )
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    overrides: dict[str, list[str]] = {}
    for text in a.args:
        name, sep, rest = text.partition("=")
        if not sep or name not in BENCHMARKS:
            p.error(f"--args expects NAME=ARGS with NAME one of {sorted(BENCHMARKS)}, got {text!r}")
        overrides[name] = shlex.split(rest)
    names = [n for n in (a.only or BENCHMARKS) if n not in a.skip]

    machine = machine_info(a.threads)
    print(
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, {machine['mem_total_gb']} GB, "
        f"{a.threads} threads, torch {machine['torch']}; load {_load()}",
        flush=True,
    )
    failed = []
    for name in names:
        full, quick = BENCHMARKS[name]
        args = overrides.get(name, quick if a.quick else full)
        print(f"== {name}: python -m benchmarks.bench_{name} {' '.join(args)}", flush=True)
        try:
            path = run_module(
                name,
                args,
                results_dir=a.results_dir,
                threads=a.threads,
                quick=a.quick,
                timeout=a.timeout,
                machine=machine,
            )
        except RuntimeError as exc:
            failed.append(name)
            print(f"   FAILED: {exc}", flush=True)
            continue
        record = json.loads(path.read_text())
        print(record["table"])
        print(f"   -> {path} ({record['wall_s']} s, load {record['load_average']['after']})", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
