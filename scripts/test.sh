#!/usr/bin/env bash
# One command: install everything the tests need and run them all (lint, types, tests).
# PostgreSQL and Mosquitto: the reachable ones, else private ones for this run (scripts/services.sh).
source "$(dirname "$0")/common.sh"
source scripts/services.sh

find_services
install_debian_packages "${PRIVATE_SERVICES[@]}"
install_python store,dev,train
start_private_services
export YOLO_OFFLINE=1 YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/.venv/ultralytics-config}"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/pytest" "$@"
