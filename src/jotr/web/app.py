"""The Gradio page of ``jotr serve`` around :class:`jotr.web.handlers.WebDemo`.

Importing this module imports gradio: set ``GRADIO_TEMP_DIR`` first (``jotr.commands.serve`` does), since
gradio reads it at import time to decide where uploads go."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from jotr.errors import InputError
from jotr.web.handlers import (
    KEYPOINT_FORMATS,
    Limits,
    PageResult,
    UploadGuard,
    WebDemo,
    examples_dir,
    list_examples,
    uploaded_file,
)

logger = logging.getLogger(__name__)

TITLE = "JOTR: occluded 3D human mesh recovery"
INTRO = (
    "Upload a photo (or pick an example) and, optionally, the people's 2D keypoints as a COCO results / "
    "annotation JSON or an OpenPose JSON. Without keypoints the built-in multi-person detector finds "
    "everybody. You get the meshes over the image, a side view, a 3D view to turn, and the "
    "meshes (`.obj` / `.ply` / `.glb`) and parameters (`params.json`) to download."
)
CSS = """
#jotr-status { min-height: 3em; }
"""


def theme() -> gr.themes.Base:
    """The default theme with local fonts only (the default one loads Google fonts over the network)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )


def build_app(demo: WebDemo, *, queue_size: int = 16, title: str = TITLE) -> gr.Blocks:
    """The page. One request runs at a time (the rest wait in a queue of at most ``queue_size``)."""

    roots = [Path(get_upload_folder()).resolve(), examples_dir().resolve()]

    def run(image: Any, keypoints: Any, keypoint_format: Any, focal: Any = None):
        try:
            image_path, image_name = uploaded_file(image, roots)
            keypoints_path, _ = uploaded_file(keypoints, roots)
        except InputError as exc:
            result = PageResult.error(str(exc))
        else:
            fmt = keypoint_format if isinstance(keypoint_format, str) else "auto"
            result = demo.reconstruct(image_path, keypoints_path, fmt, image_name=image_name, focal=focal)
        return result.message, result.overlay, result.side, result.scene_glb, result.files or None

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 1800)) as app:
        gr.Markdown(f"# {title}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label="Image",
                    type="filepath",
                    image_mode=None,
                    sources=["upload"],
                    elem_id="jotr-image",
                )
                keypoints = gr.File(
                    label="2D keypoints (optional): COCO results / annotation JSON or OpenPose JSON",
                    file_types=[".json"],
                    type="filepath",
                    elem_id="jotr-keypoints",
                )
                keypoint_format = gr.Dropdown(
                    list(KEYPOINT_FORMATS),
                    value="auto",
                    label="Keypoint format (auto: from the joint count)",
                    elem_id="jotr-format",
                )
                focal = gr.Number(
                    value=None,
                    label="Focal length of the photo in pixels (optional; 0: sqrt(W² + H²))",
                    elem_id="jotr-focal",
                )
                button = gr.Button("Reconstruct", variant="primary", elem_id="jotr-run")
                examples = list_examples()
                if examples:
                    gr.Examples(
                        examples,
                        inputs=[image, keypoints],
                        label="Examples: synthetic scenes (`jotr synth`) with detector-like keypoints",
                        cache_examples=False,
                    )
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="jotr-status")
                with gr.Row():
                    overlay = gr.Image(
                        label="Overlay", type="numpy", format="png", interactive=False, elem_id="jotr-overlay"
                    )
                    side = gr.Image(
                        label="Side view", type="numpy", format="png", interactive=False, elem_id="jotr-side"
                    )
                scene = gr.Model3D(
                    label="3D view (drag to turn, scroll to zoom)",
                    clear_color=(0.95, 0.95, 0.95, 1.0),
                    height=420,
                    elem_id="jotr-3d",
                )
                files = gr.File(
                    label="Downloads: meshes (.obj / .ply / .glb) and parameters (params.json)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="jotr-files",
                )
        button.click(
            run,
            inputs=[image, keypoints, keypoint_format, focal],
            outputs=[status, overlay, side, scene, files],
            api_name="reconstruct",
            concurrency_limit=1,
            preprocess=False,  # raw file payloads: bad uploads are answered by WebDemo (see uploaded_file)
        )
    app.queue(max_size=queue_size, default_concurrency_limit=1)
    return app


def _patient_url_ok(url: str, wait_s: float = 120.0) -> bool:
    """gradio's start-up reachability check with more patience: gradio gives up after 5 HEAD requests of 3 s
    and then refuses to start, which happened here on a CPU-starved machine although the server was up."""
    import httpx

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.head(url, timeout=10, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def launch(
    app: gr.Blocks,
    *,
    host: str,
    port: int,
    limits: Limits,
    allowed_paths: list[str],
    prevent_thread_lock: bool = False,
) -> None:
    """Serve ``app`` on ``host:port`` (blocks until interrupted unless ``prevent_thread_lock``); uploads go
    through :class:`UploadGuard` (per-client quota, size cap, unnamed files refused)."""
    import gradio.networking
    from starlette.middleware import Middleware

    gradio.networking.url_ok = _patient_url_ok  # see _patient_url_ok
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        quiet=True,  # no gradio banner and no "set share=True" hint: jotr serve prints its own ready line
        inbrowser=False,
        show_error=True,
        max_file_size=f"{limits.max_upload_mb:g}mb",
        app_kwargs={"middleware": [Middleware(UploadGuard, limits=limits)]},
        allowed_paths=[str(examples_dir()), *allowed_paths],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        prevent_thread_lock=prevent_thread_lock,
        theme=theme(),
        css=CSS,
        footer_links=[],
    )
