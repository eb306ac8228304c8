"""``jotr serve`` end to end in a real browser: the server runs as its own process on a free loopback port
(tiny random-weight checkpoint), headless Debian Chromium driven by Playwright uploads a shipped example image
with its keypoints, waits for the overlay, then sends a corrupt keypoint file and reads the message (other bad
uploads: tests/test_web.py). At the end the server is stopped with SIGTERM; it must exit and leave nothing
behind (its temporary folder, the working folder and HOME stay empty).

A screenshot of the page goes to ``tmp_path`` and, when ``JOTR_WEB_SCREENSHOT`` names a file, there too
(``docs/web_demo.png`` in the README was made that way; ``JOTR_WEB_CHECKPOINT`` names another checkpoint, or
``pretrained`` for the shipped model).

Skipped with the reason when gradio (``jotr[web]``), Playwright or ``/usr/bin/chromium`` is missing;
``scripts/setup.sh`` installs all three. Playwright's own browser download is not used (no internet)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",  # WebGL in software for the 3D viewer (local content only)
]
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "jotr" / "web" / "examples"

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if importlib.util.find_spec("gradio") is None:
        return "gradio is not installed (pip install 'jotr[web]'; scripts/setup.sh does)"
    if importlib.util.find_spec("playwright") is None:
        return "the Python playwright package is not installed (scripts/setup.sh installs it)"
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"{CHROMIUM} not found: Debian's chromium package is not installed (scripts/setup.sh installs it)"
        )
    return None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path | None:
    """A tiny random-weight checkpoint (toy body), or ``JOTR_WEB_CHECKPOINT`` (None: the shipped model)."""
    reason = _missing()
    if reason:  # before building anything
        pytest.skip(reason)
    import torch

    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model
    from jotr.models.config import ModelConfig

    chosen = os.environ.get("JOTR_WEB_CHECKPOINT")
    if chosen:
        return None if chosen == "pretrained" else Path(chosen)
    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(model=ModelConfig.small()), {"body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    with torch.no_grad():  # a camera that keeps the random-weight meshes in view
        for p in model.cam_head.parameters():
            p.zero_()
        model.cam_head.layers[0].bias[2] = 1.9
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, model=model, cfg=cfg, step=0, rng=False, commit="test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 300.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"jotr serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if "jotr serve: ready at" in log.read_text():  # printed once gradio's own start-up checks passed
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail(f"jotr serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, timeout: float = 120.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"jotr serve did not stop within {timeout:.0f} s of SIGTERM")
    return proc.returncode


def test_serve_in_headless_chromium(checkpoint, tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    tmp, cwd, home, mpl = tmp_path / "tmp", tmp_path / "cwd", tmp_path / "home", tmp_path / "mpl"
    for d in (tmp, cwd, home, mpl):
        d.mkdir()
    # MPLCONFIGDIR: matplotlib's per-user font cache (made once per machine) is not the server's to clean
    env = dict(
        os.environ,
        TMPDIR=str(tmp),
        HOME=str(home),
        MPLCONFIGDIR=str(mpl),
        PYTHONUNBUFFERED="1",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    from jotr.body.anny_cache import default_cache_dir

    env["ANNY_CACHE_DIR"] = str(default_cache_dir())  # the filled cache, although HOME is redirected
    log = tmp_path / "serve.log"
    model = [] if checkpoint is None else ["--checkpoint", str(checkpoint)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jotr", "serve", *model, "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        t_start = time.monotonic()
        startup = _wait_until_up(proc, url, log)
        print(f"server up after {startup:.1f} s")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.wait_for_selector("#jotr-run", timeout=60_000)
                print(f"page loaded {time.monotonic() - t_start:.1f} s after the server start")
                page.set_input_files("#jotr-image input[type=file]", str(EXAMPLES / "two_people.jpg"))
                page.set_input_files("#jotr-keypoints input[type=file]", str(EXAMPLES / "two_people.json"))
                page.wait_for_selector('#jotr-keypoints [aria-label="two_people.json"]', timeout=30_000)
                t0 = time.monotonic()
                page.click("#jotr-run")
                overlay = page.wait_for_selector("#jotr-overlay img", timeout=120_000)
                page.wait_for_function(
                    "el => el.complete && el.naturalWidth > 0", arg=overlay, timeout=30_000
                )
                print(f"overlay after {time.monotonic() - t0:.1f} s")
                assert overlay.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [320, 240]
                status = page.inner_text("#jotr-status")
                assert "2 of 2 people reconstructed" in status, status
                page.wait_for_selector('#jotr-files [aria-label="params.json"]', timeout=30_000)
                page.wait_for_selector("#jotr-side img", timeout=30_000)
                page.wait_for_timeout(1500)  # let the 3D viewer draw before the screenshot
                shot = tmp_path / "web_demo.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("JOTR_WEB_SCREENSHOT"):
                    shutil.copyfile(shot, os.environ["JOTR_WEB_SCREENSHOT"])

                # a corrupt keypoint file: a message on the page, and the server goes on
                bad = tmp_path / "bad.json"
                bad.write_text("{this is not json")
                page.click('#jotr-keypoints button[aria-label="Clear"]')
                page.set_input_files("#jotr-keypoints input[type=file]", str(bad))
                page.wait_for_selector('#jotr-keypoints [aria-label="bad.json"]', timeout=30_000)
                page.click("#jotr-run")
                page.wait_for_selector("#jotr-status >> text=not valid JSON", timeout=60_000)
                print(f"bad upload answered {time.monotonic() - t_start:.1f} s after the server start")
            finally:
                browser.close()
        assert proc.poll() is None, "the server died"
    finally:
        t_stop = time.monotonic()
        code = _stop(proc)
        print(f"server stopped {time.monotonic() - t_stop:.1f} s after SIGTERM")
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # nothing left behind: the server's temporary folder is gone, nothing written to cwd or HOME
    assert list(tmp.iterdir()) == [] and list(cwd.iterdir()) == [] and list(home.iterdir()) == []
