"""What every benchmark records the same way: the machine it ran on and its JSON document."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def write_json(out: Path, name: str, document: dict[str, Any], *, indent: int | None = 1) -> Path:
    """``document`` as ``out/<name>_<timestamp to the millisecond>.json`` (one file per run)."""
    stamp = "".join(c for c in document["timestamp"][:23] if c.isdigit() or c == "T")
    path = out / f"{name}_{stamp}.json"
    path.write_text(json.dumps(document, indent=indent), encoding="utf-8")
    return path


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the file-only Agg backend (no display on a server); None when matplotlib is
    not installed (the benchmarks then write their JSON without a picture)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(plt: Any, figure: Any, path: Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` as a 100-dpi PNG and free it."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
