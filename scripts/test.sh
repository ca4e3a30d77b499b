#!/usr/bin/env bash
# One command: install everything the tests need and run them all (lint, types, tests).
source "$(dirname "$0")/common.sh"

install_debian_packages
install_python store,dev,train
export YOLO_OFFLINE=1 YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/.venv/ultralytics-config}"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy"
echo "== pytest"
"$VENV/bin/pytest" "$@"
