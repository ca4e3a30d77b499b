#!/usr/bin/env bash
# One command: install streetwatch and run the main job on a generated street, end to end.
#  1. a case store on SQLite (runs/demo/store) with a demo operator, a demo device (edge box) and the demo
#     city (configs/reference/demo-city.yaml: units, places, routing rules);
#  2. the demo clip: a fixed camera over a shopping street (4 minutes, rendered from seed 7) where a car
#     and a truck park in no-parking zones, a stall sets up and packs away, and bags are dumped and later
#     removed, while traffic and people pass; with its ground-truth incident timeline; its camera and zones
#     are registered in the store (runs/demo/clip/store.yaml), so the zone editor shows them on the real
#     frame and confirming a case dispatches it to its unit with a deadline;
#  3. the edge daemon on the clip with the bundled demo model (models/streetwatch-demo-n.onnx);
#  4. the cases in the store, event-level precision and recall against the timeline, and the operator
#     console's URL and credentials (the store keeps running; the script says how to stop it).
source "$(dirname "$0")/common.sh"

START=$SECONDS
PORT=${STREETWATCH_DEMO_PORT:-8765}
SEED=${STREETWATCH_DEMO_SEED:-7}
MODEL=${STREETWATCH_DEMO_MODEL:-models/streetwatch-demo-n.yaml}
install_python store
SW="$VENV/bin/streetwatch"
if [ -f runs/demo/store.pid ]; then  # a store left running by the previous demo
    kill "$(cat runs/demo/store.pid)" 2>/dev/null || true
    sleep 1
fi
rm -rf runs/demo && mkdir -p runs/demo

echo "== 1/4 case store (SQLite) with a demo operator, device and city"
export STREETWATCH_DATA_DIR=runs/demo/store STREETWATCH_RUN_JOBS=false
"$SW" api migrate >/dev/null
PASSWORD=$("$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(12))")
STREETWATCH_PASSWORD="$PASSWORD" "$SW" api create-user operator --role admin --display-name "Demo operator"
(umask 077 && "$SW" api create-device demo-box > runs/demo/device.key)
"$SW" api import-config configs/reference/demo-city.yaml
nohup "$SW" api serve --port "$PORT" > runs/demo/store.log 2>&1 &
echo $! > runs/demo/store.pid
for _ in $(seq 1 100); do
    "$VENV/bin/python" -c "import httpx; httpx.get('http://127.0.0.1:$PORT/healthz').raise_for_status()" \
        2>/dev/null && break
    sleep 0.2
done

echo "== 2/4 rendering the demo clip (seed $SEED)"
"$SW" scenes render-demo runs/demo/clip --seed "$SEED" --model "$MODEL" \
    --store-url "http://127.0.0.1:$PORT" --device-key-file runs/demo/device.key --device demo-box
"$SW" api import-config runs/demo/clip/store.yaml  # the camera and the daemon's zones, in the store

echo "== 3/4 the edge daemon on the clip with $MODEL"
"$SW" run --config runs/demo/clip/daemon.yaml

echo "== 4/4 cases in the store, scored against the clip's timeline"
STREETWATCH_PASSWORD="$PASSWORD" "$VENV/bin/python" - "$PORT" <<'PY'
import os
import sys

import httpx

base = f"http://127.0.0.1:{sys.argv[1]}"
login = {"username": "operator", "password": os.environ["STREETWATCH_PASSWORD"]}
token = httpx.post(f"{base}/api/v1/auth/login", json=login).json()
headers = {"Authorization": f"Bearer {token['access_token']}"}
cases = httpx.get(f"{base}/api/v1/cases", headers=headers, params={"limit": 200}).json()
print(f"{cases['count']} case(s) in the store")
for case in cases["data"]:
    print(
        f"  case {case['id']}: {case['violation_code']} at camera {case['camera_code']} zone {case['zone_code']}, "
        f"status {case['status']}, confidence {case['confidence']:.2f}, first seen {case['first_seen_at']}, "
        f"confirmed {case['confirmed_at']}, {case['sighting_count']} sighting(s)"
    )
PY
STREETWATCH_PASSWORD="$PASSWORD" "$SW" scenes score runs/demo/clip/timeline.json --store-url "http://127.0.0.1:$PORT"

echo "== done in $((SECONDS - START)) s. Clip: runs/demo/clip/demo.mp4 (timeline.json, daemon.yaml beside it);"
echo "   evidence images (redacted: the violation and its zone sharp; the undrawn training frame, every zone): runs/demo/clip/edge/evidence/"
echo "== operator console: http://127.0.0.1:$PORT/console  (user operator, password $PASSWORD)"
echo "   API docs: http://127.0.0.1:$PORT/docs. The store keeps running; stop it with: kill \$(cat runs/demo/store.pid)"
