"""What one input may cost: the size, pixel, people and count limits shared by the CLI, the Python API and
the web page (README "Safety" lists them). Inputs beyond a limit get a one-line
:class:`jotr.errors.InputError` naming the input and the limit, before the expensive work starts.

The web page (``jotr serve``) starts from the same numbers and is stricter where one request must stay cheap
(``WEB_*``; :class:`jotr.web.handlers.Limits`)."""

from __future__ import annotations

# ---------------------------------------------------------------------------------------- images (all)
MAX_IMAGE_PIXELS = 40_000_000  # width x height, read from the header before anything is decoded
MAX_IMAGE_FILE_BYTES = 256 * 2**20  # an image file larger than this is refused unread

# --------------------------------------------------------------------------------------- people, camera
MAX_PEOPLE_PER_IMAGE = 64  # CLI / API: more people for one image is an error (each costs a network crop)
PREDICT_CHUNK = 16  # people per network batch inside JOTRPredictor.predict (bounds peak memory)
MIN_FOCAL = 1.0  # focal length range, pixels (--focal, predict(focal=...))
MAX_FOCAL = 1e6

# ------------------------------------------------------------------------------------------ files
MAX_KEYPOINT_FILE_BYTES = 512 * 2**20  # a keypoint JSON (COCO / OpenPose) larger than this is refused
MAX_JSON_INT_DIGITS = 100  # longer integer literals in a JSON input are refused (not parsed)
MAX_CONFIG_BYTES = 1 * 2**20  # a YAML config file larger than this is refused
MAX_CONFIG_NODES = 100_000  # YAML nodes of one config file; aliases/anchors are refused outright

# -------------------------------------------------------------------------------------- web page only
WEB_MAX_UPLOAD_MB = 10.0  # per uploaded file
WEB_MAX_SIDE = 1600  # images with a longer side are scaled down (with their keypoints) for inference
WEB_MAX_PEOPLE = 20  # people beyond this many are not reconstructed (a note says so)
WEB_TIMEOUT_S = 60.0  # a request still running after this gets a message
WEB_KEEP_S = 600.0  # request folders older than this are removed at the next request
WEB_CLIENT_QUOTA_MB = 200.0  # uploads per client address per WEB_QUOTA_WINDOW_S
WEB_QUOTA_WINDOW_S = 600.0

# One table for the README and ``jotr serve --help``: (what, limit, where).
TABLE: tuple[tuple[str, str, str], ...] = (
    ("image pixels (width x height)", f"{MAX_IMAGE_PIXELS / 1e6:g} Mpx", "CLI, API, web"),
    ("image file size", f"{MAX_IMAGE_FILE_BYTES // 2**20} MiB", "CLI, API"),
    ("people per image", f"{MAX_PEOPLE_PER_IMAGE}", f"CLI, API (web: the first {WEB_MAX_PEOPLE})"),
    ("focal length", f"{MIN_FOCAL:g} to {MAX_FOCAL:g} px", "CLI, API"),
    ("keypoint file size", f"{MAX_KEYPOINT_FILE_BYTES // 2**20} MiB (regular files only)", "CLI, API"),
    (
        "JSON integer digits",
        f"{MAX_JSON_INT_DIGITS} (deeper nesting than the parser handles: an error)",
        "CLI, API, web",
    ),
    (
        "config file size / YAML nodes",
        f"{MAX_CONFIG_BYTES // 2**20} MiB / {MAX_CONFIG_NODES}, no aliases",
        "CLI, API",
    ),
    ("upload size per file", f"{WEB_MAX_UPLOAD_MB:g} MB", "web"),
    ("uploads per client", f"{WEB_CLIENT_QUOTA_MB:g} MB per {WEB_QUOTA_WINDOW_S / 60:g} min", "web"),
    ("image side used for inference", f"{WEB_MAX_SIDE} px (larger images are scaled down)", "web"),
    ("request time", f"{WEB_TIMEOUT_S:g} s", "web"),
)
