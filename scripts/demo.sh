#!/usr/bin/env bash
# One command: install streetwatch and run the main job on embedded defaults.
#  1. the detector on real CCTV footage (vtest.avi): annotated video + JSON in runs/demo/
#  2. the whole chain on the same clip: a case store (SQLite) with a demo operator and device, the edge
#     daemon with a no-parking zone over the parked van, and the cases it created.
source "$(dirname "$0")/common.sh"

install_debian_packages
install_python store,dev
SW="$VENV/bin/streetwatch"
MODEL=${STREETWATCH_DEMO_MODEL:-models/yolox-nano-coco.yaml}
rm -rf runs/demo && mkdir -p runs/demo

echo "== 1/2 the detector on $VTEST with $MODEL"
"$SW" detect "$VTEST" --model "$MODEL" --out runs/demo

echo "== 2/2 case store + edge daemon on the same clip"
export STREETWATCH_DATA_DIR=runs/demo/store STREETWATCH_RUN_JOBS=false
"$SW" api migrate >/dev/null
PASSWORD=$("$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(12))")
STREETWATCH_PASSWORD="$PASSWORD" "$SW" api create-user operator --role admin --display-name "Demo operator"
(umask 077 && "$SW" api create-device demo-box > runs/demo/device.key)
"$SW" api serve --port 8765 > runs/demo/store.log 2>&1 &
STORE_PID=$!
trap 'kill $STORE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    "$VENV/bin/python" -c "import httpx; httpx.get('http://127.0.0.1:8765/healthz').raise_for_status()" \
        2>/dev/null && break
    sleep 0.2
done
"$SW" run --config configs/demo-vtest.yaml
"$VENV/bin/python" - "$PASSWORD" <<'PY'
import sys

import httpx

base = "http://127.0.0.1:8765"
token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "operator", "password": sys.argv[1]}).json()
headers = {"Authorization": f"Bearer {token['access_token']}"}
cases = httpx.get(f"{base}/api/v1/cases", headers=headers).json()
print(f"== {cases['count']} case(s) in the store")
for case in cases["data"]:
    print(
        f"  case {case['id']}: {case['violation_code']} at camera {case['camera_code']} zone {case['zone_code']}, "
        f"status {case['status']}, confidence {case['confidence']:.2f}, first seen {case['first_seen_at']}, "
        f"confirmed {case['confirmed_at']}, {case['sighting_count']} sighting(s)"
    )
PY
echo "== annotated video: runs/demo/vtest.mp4; evidence images: runs/demo/edge/evidence/"
echo "== case store API: http://127.0.0.1:8765/docs  (operator / $PASSWORD) — stopped when this script ends;"
echo "   serve it again with: STREETWATCH_DATA_DIR=runs/demo/store $SW api serve --port 8765"
