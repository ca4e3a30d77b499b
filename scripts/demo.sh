#!/usr/bin/env bash
# One command: install streetwatch and run the main job on embedded defaults.
# Today: the detector on real CCTV footage (vtest.avi), writing an annotated video and JSON to runs/demo.
source "$(dirname "$0")/common.sh"

install_debian_packages
install_python store,dev
MODEL=${STREETWATCH_DEMO_MODEL:-models/yolox-nano-coco.yaml}
echo "== running the detector on $VTEST with $MODEL"
"$VENV/bin/streetwatch" detect "$VTEST" --model "$MODEL" --out runs/demo "$@"
echo "== annotated video: runs/demo/vtest.mp4, detections: runs/demo/vtest.json"
