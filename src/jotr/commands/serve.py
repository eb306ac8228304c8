"""``jotr serve [--checkpoint CKPT] [--host 127.0.0.1] [--port 7860]``: the local web demo (``jotr[web]``).

A Gradio page (:mod:`jotr.web.app`): upload an image (or pick an example), optionally a keypoint JSON; get
the overlay, a side view, a 3D view of the meshes, downloads of ``.obj`` / ``.ply`` / ``params.json`` and
per-person errors. Inference is :class:`~jotr.inference.predictor.JOTRPredictor` (the shipped model unless
``--checkpoint`` is given). Binds to 127.0.0.1 by default. Uploads and outputs live in one temporary folder,
removed when the server stops (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import signal

logger = logging.getLogger(__name__)
SERVE_PREFIX = "jotr-serve-"  # the server's temporary folder (uploads, outputs) in the system temp folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jotr.web.handlers import Limits

    d = Limits()
    p.add_argument("--checkpoint", default=None, help="jotr checkpoint (.pt); default: the shipped model")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    p.add_argument("--bf16", action="store_true", help="run the network under bfloat16 autocast")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for loading the checkpoint (e.g. body.smpl_model_path=...)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=d.max_upload_mb, help=f"per file (default {d.max_upload_mb:g})"
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=d.max_side,
        help=f"larger images are scaled down to this longer side for inference (default {d.max_side})",
    )
    p.add_argument("--max-people", type=int, default=d.max_people, help=f"per image (default {d.max_people})")
    p.add_argument(
        "--timeout",
        type=float,
        default=d.timeout_s,
        help=f"seconds one request may take before it is stopped with a message (default {d.timeout_s:g})",
    )
    p.add_argument(
        "--queue-size", type=int, default=16, help="requests waiting at most; more are refused (default 16)"
    )
    p.add_argument(
        "--client-quota-mb",
        type=float,
        default=d.client_quota_mb,
        help=f"uploads per client address per {d.quota_window_s / 60:g} min (default {d.client_quota_mb:g})",
    )


def load_predictor(args: argparse.Namespace):
    """``--checkpoint`` if given, else the shipped model (``JOTRPredictor.from_pretrained``)."""
    from jotr.errors import InputError
    from jotr.inference.predictor import JOTRPredictor

    if args.checkpoint:
        return JOTRPredictor.from_checkpoint(
            args.checkpoint, device=args.device, overrides=args.overrides, bf16=args.bf16
        )
    if not hasattr(JOTRPredictor, "from_pretrained"):
        raise InputError("this jotr has no shipped model; pass --checkpoint CKPT")
    return JOTRPredictor.from_pretrained(device=args.device, overrides=args.overrides, bf16=args.bf16)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    import math

    from jotr.errors import InputError
    from jotr.utils.io import clean_abandoned_temp_dirs, make_owned_temp_dir
    from jotr.web.handlers import Limits, WebDemo

    if importlib.util.find_spec("gradio") is None:
        raise InputError("jotr serve needs the web extra: pip install 'jotr[web]'")
    for name in ("max_upload_mb", "max_side", "max_people", "timeout", "queue_size", "client_quota_mb"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"--{name.replace('_', '-')} must be a positive finite number, got {value}")
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    limits = Limits(
        max_upload_mb=args.max_upload_mb,
        max_side=args.max_side,
        max_people=args.max_people,
        timeout_s=args.timeout,
        client_quota_mb=args.client_quota_mb,
    )
    predictor = load_predictor(args)
    predictor.faces  # build the output mesh now, not on the first request  # noqa: B018

    for stale in clean_abandoned_temp_dirs(SERVE_PREFIX):  # left by a server that was killed (SIGKILL)
        logger.info("removed %s (temporary folder of a server that no longer runs)", stale)
    root = make_owned_temp_dir(SERVE_PREFIX)
    # gradio reads these at import time: uploads and its cache go into our temporary folder.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(root / "examples_cache"))
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    demo = WebDemo(predictor, root / "requests", limits)
    app = None
    try:
        from jotr.web.app import build_app, launch

        app = build_app(demo, queue_size=args.queue_size)
        launch(
            app,
            host=args.host,
            port=args.port,
            limits=limits,
            allowed_paths=[str(root / "requests")],
            prevent_thread_lock=True,
        )
        print(
            f"jotr serve: ready at http://{args.host}:{args.port} (Ctrl-C stops; temporary files in {root})",
            flush=True,
        )
        # After launch: its own reachability check (3 s) must not compete with the renderer's imports.
        demo.warm_up()
        app.block_thread()  # until Ctrl-C / SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
        if app is not None:
            app.close(verbose=False)  # the queue and its threads too (launch() only stops the HTTP server)
        demo.close()
        shutil.rmtree(root, ignore_errors=True)
        logger.info("server stopped; removed %s", root)
    return 0
