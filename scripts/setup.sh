#!/usr/bin/env bash
# One-shot set-up on a fresh machine: Debian packages, virtual environment, torch (CPU wheel first),
# the package with its extras, and the Anny body-model cache. Safe to re-run: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${JOTR_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. Debian packages: OSMesa for headless rendering (pyrender).
if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing libosmesa6"
    (apt-get update -qq || true) >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libosmesa6 >/dev/null
  else
    echo "[setup] WARNING: libOSMesa not found and cannot apt-get install it (need root); rendering tests will be skipped"
  fi
fi

# 1b. Debian's Chromium for the web demo's browser test (Playwright drives /usr/bin/chromium; Playwright's own
#     browser download needs the internet). Optional: without it that test is skipped with the reason.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing chromium"
    (apt-get update -qq || true) >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || echo "[setup] WARNING: could not install chromium; the web demo's browser test will be skipped"
  else
    echo "[setup] WARNING: /usr/bin/chromium missing and cannot apt-get install it (need root); the browser test will be skipped"
  fi
fi

# 1c. Photographs for the synthetic data's backgrounds (`jotr synth --backgrounds auto`, the default): the
#     Debian wallpaper packages mate-backgrounds (~46 MB) and plasma-workspace-wallpapers (~93 MB), GPL-2+
#     (see /usr/share/doc/<package>/copyright). Optional: without them the generator draws procedural
#     backgrounds only; `jotr synth --backgrounds DIR` takes any folder of images instead.
if [ ! -d /usr/share/backgrounds/mate/nature ] || [ ! -d /usr/share/wallpapers/Path ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing mate-backgrounds and plasma-workspace-wallpapers (background photographs)"
    (apt-get update -qq || true) >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mate-backgrounds \
      plasma-workspace-wallpapers >/dev/null \
      || echo "[setup] WARNING: could not install the wallpaper packages; synthetic scenes get procedural backgrounds"
  else
    echo "[setup] WARNING: no background photographs and cannot apt-get install them (need root); synthetic scenes get procedural backgrounds (or pass jotr synth --backgrounds DIR)"
  fi
fi

# 2. Virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# 3. Python packages. torch==2.13.0 first: it takes the local CPU wheel; a bare 'torch' would pull CUDA.
STAMP="$VENV/.jotr-installed"
HASH=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "[setup] installing torch==2.13.0 and jotr"
  "$VPY" -m pip install -q --upgrade pip
  "$VPY" -m pip install -q torch==2.13.0
  "$VPY" -m pip install -q -e ".[render,onnx,web,dev]"
  # pyrender pins PyOpenGL 3.1.0, whose OSMesa binding is incomplete; 3.1.7 works (see docs/dependencies).
  "$VPY" -m pip install -q PyOpenGL==3.1.7 2>&1 | grep -v "incompatible" || true
  echo "$HASH" > "$STAMP"
fi

# 4. Anny cache (one to four minutes and ~830 MB, once): the full mesh and the reduced training rig/topology, in
#    jotr's one cache folder: $ANNY_CACHE_DIR when set, else ~/.cache/jotr/anny (XDG_CACHE_HOME honoured), where
#    the CLI, the Python API, the web demo and the tests look with no variable. A cache that earlier versions
#    built in .cache/anny of this checkout is linked there instead of being built a second time.
"$VPY" -m jotr.body.anny_cache --adopt "$ROOT/.cache/anny"
