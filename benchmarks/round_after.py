"""Step 5 of a finished bootstrap round again, with any model card: the round's unseen clips and demo clip
through the same daemon configuration in a fresh store, scored event by event as the round scores them.

    PYTHONPATH=. .venv/bin/python -m benchmarks.round_after --round runs/bootstrap \\
        --card runs/bootstrap/models/streetwatch-city.yaml --out runs/after-again

For comparing daemons or cards on the same model and clips without another hour of rendering and training
(benchmarks/README.md, Bootstrap round: a card with ``input.blur_outside_zones`` against the same card
without it). Writes ``OUT/result.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from benchmarks import bootstrap_round as br
from datasets.scenes.score import load_timeline
from datasets.scenes.video import CLASS_TO_VIOLATION


def round_clips(round_dir: Path) -> tuple[list[br.Clip], br.Clip]:
    """The unseen clips and the demo clip of a finished round, as its ``render`` step made them."""
    folders = sorted(
        (p for p in (round_dir / "clips").glob("u*") if p.name[1:].isdigit()), key=lambda p: int(p.name[1:])
    )
    if not folders or not (round_dir / "clips" / "demo" / "timeline.json").is_file():
        raise SystemExit(f"error: {round_dir}: no finished round here (clips/u0 and clips/demo)")

    def clip(folder: Path, index: int, seed: int, look: int) -> br.Clip:
        timeline = folder / "timeline.json"
        duration = float(json.loads(timeline.read_text(encoding="utf-8"))["duration_s"])
        return br.Clip(folder.name, index, seed, look, folder, load_timeline(timeline), duration)

    unseen = [
        clip(
            folder,
            br.UNSEEN_INDEX + int(folder.name[1:]),
            br.UNSEEN_SEED + int(folder.name[1:]),
            br.UNSEEN_SEED + int(folder.name[1:]),
        )
        for folder in folders
    ]
    return unseen, clip(round_dir / "clips" / "demo", br.DEMO_INDEX, br.DEMO_SEED, 0)


def here(clip: br.Clip, out: Path) -> br.Clip:
    """``clip`` with a folder of its own under ``out`` (its video linked): the daemon's configuration is
    written there, and the round's folder stays as the round left it."""
    folder = out / "clips" / clip.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.mp4").symlink_to((clip.folder / "demo.mp4").resolve())
    return replace(clip, folder=folder)


def after_again(round_dir: Path, card: Path, out: Path) -> dict[str, Any]:
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"error: {out}: not empty (a fresh store needs a new folder)")
    if not card.is_file():
        raise SystemExit(f"error: {card}: no such model card")
    found, demo_found = round_clips(round_dir)
    unseen, demo_clip = [here(c, out) for c in found], here(demo_found, out)
    with br.case_store(out.resolve()) as state:
        br.register(state, "after", [*unseen, demo_clip])
        for clip in [*unseen, demo_clip]:
            path = br.write_config(state, "after", clip)
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
            config["detector"]["model"] = str(card.resolve())
            config["detector"]["classes"] = dict(CLASS_TO_VIOLATION)
            path.write_text(yaml.safe_dump(config, sort_keys=False, width=110), encoding="utf-8")
            br.run_daemon(path)
        api = br.Api(state)
        scores = {
            "unseen": br.event_scores(api, "after", unseen),
            "demo": br.event_scores(api, "after", [demo_clip]),
        }
    for kind in br.KINDS:  # events true / missed / false, as the round's table
        print(
            f"{kind:<9} unseen {br.pr(scores['unseen'][kind])} {scores['unseen'][kind]}  "
            f"demo {br.pr(scores['demo'][kind])} {scores['demo'][kind]}"
        )
    result: dict[str, Any] = {"card": str(card), **scores}
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round", type=Path, required=True, help="A finished round's --out folder.")
    parser.add_argument("--card", type=Path, required=True, help="The model card the daemon runs.")
    parser.add_argument("--out", type=Path, required=True, help="New folder for the store and the result.")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    after_again(args.round, args.card, args.out)


if __name__ == "__main__":
    main()
