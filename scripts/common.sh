# Shared set-up steps for scripts/demo.sh and scripts/test.sh (sourced, not run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${STREETWATCH_VENV:-.venv}
VTEST=/usr/share/doc/opencv-doc/examples/data/vtest.avi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: opencv-doc carries vtest.avi, real CCTV footage used by the demo and the tests;
# the arguments are further packages to have (scripts/services.sh: postgresql, mosquitto).
install_debian_packages() {
    local missing=()
    [ -f "$VTEST" ] || missing+=(opencv-doc)
    # GStreamer's RTSP server, run by tests/pipeline/rtsp_server.py under the system python3 (a real
    # camera for the source and daemon tests): appsrc (base), h264parse (bad), rtph264pay and udp (good).
    # Debian's chromium: the browser the console tests drive through Playwright (never `playwright install`).
    local package
    for package in gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# A virtual environment with streetwatch installed editable, with the given extras.
install_python() {
    local extras=$1
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "== installing streetwatch[$extras] into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    # Ultralytics pulls opencv-python (GUI build); keep the headless build's files in place.
    if "$VENV/bin/python" -m pip show -q opencv-python 2>/dev/null; then
        "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "opencv-python-headless"
    fi
}
