"""Checks of what a valid configuration refers to on this box: camera files, the device key file, the model.

``streetwatch validate-config`` runs them all after the YAML itself is valid, each problem as
``file:line: field: message``; ``streetwatch run`` uses :func:`no_camera_opens` to refuse a configuration
whose cameras are all files and none of them can be opened or read to its end (a truncated file); a live
camera is retried instead.
"""

from __future__ import annotations

import stat
from pathlib import Path

from detector.errors import DetectorError
from detector.yaml_lines import YamlSyntaxError, load_located_yaml
from pipeline.config import CameraConfig, DaemonConfig
from pipeline.errors import DeviceKeyError


def where(path: Path, loc: tuple[str | int, ...]) -> str:
    """``file:line`` of ``loc`` in ``path`` (just ``file`` when the line cannot be found)."""
    try:
        line = load_located_yaml(path).line_of(loc)
    except (OSError, UnicodeDecodeError, YamlSyntaxError):
        line = None
    return f"{path}:{line}" if line else str(path)


def open_problem(camera: CameraConfig) -> str | None:
    """Why the camera's stream cannot be opened as a video now (None: it opens and has a video stream)."""
    import av
    import av.error

    from pipeline.sources import input_arguments, redact_url

    target, fmt, options = input_arguments(camera)
    try:
        timeout = (camera.timeout_s, camera.timeout_s)
        with av.open(target, mode="r", format=fmt, container_options=options, timeout=timeout) as container:
            if not container.streams.video:
                return f"{redact_url(camera.url)}: no video stream in it"
    except (av.error.FFmpegError, OSError) as exc:
        return f"{redact_url(camera.url)}: cannot open: {exc}"
    return None


def read_problem(camera: CameraConfig) -> str | None:
    """Why the camera cannot be read: :func:`open_problem`, and for a file also a truncated one (its
    packets stop well before the length it declares; read without decoding, so it is quick)."""
    problem = open_problem(camera)
    if problem is not None or not _is_file(camera):
        return problem
    from detector.media import MediaError, check_whole
    from pipeline.sources import input_arguments

    try:
        check_whole(Path(input_arguments(camera)[0]))
    except MediaError as exc:
        return str(exc)
    return None


def _is_file(camera: CameraConfig) -> bool:
    from pipeline.sources import source_kind

    return source_kind(camera.url) == "file"


def no_camera_opens(config: DaemonConfig) -> str | None:
    """When every camera is a file and none can be read whole, one line saying why for each; else None."""
    if not all(_is_file(camera) for camera in config.cameras):
        return None  # a live camera is retried with backoff until it answers
    problems = []
    for camera in config.cameras:
        problem = read_problem(camera)
        if problem is None:
            return None
        problems.append(f"camera {camera.id}: {problem}")
    return "no camera can be opened (all are files): " + "; ".join(problems)


def camera_file_problems(path: Path, config: DaemonConfig) -> list[str]:
    """Camera files that are missing, not videos or truncated (relative paths are read from the working
    directory)."""
    problems = []
    for index, camera in enumerate(config.cameras):
        if not _is_file(camera):
            continue
        problem = read_problem(camera)
        if problem is not None:
            loc = ("cameras", index, "url")
            problems.append(f"{where(path, loc)}: cameras.{index}.url: {problem}")
        if camera.detect_url is not None:  # the substream: a file too (the config checks both are)
            problem = read_problem(camera.model_copy(update={"url": camera.detect_url, "detect_url": None}))
            if problem is not None:
                loc = ("cameras", index, "detect_url")
                problems.append(f"{where(path, loc)}: cameras.{index}.detect_url: {problem}")
    return problems


def device_key_problems(path: Path, config: DaemonConfig) -> list[str]:
    """The device key file must exist, hold one key and be readable by its owner only."""
    from pipeline.pusher import read_device_key

    key_file = config.store.device_key_file
    prefix = f"{where(path, ('store', 'device_key_file'))}: store.device_key_file: {key_file}"
    try:
        read_device_key(key_file)
    except DeviceKeyError as exc:
        detail = str(exc).removeprefix(f"store.device_key_file {key_file}: ")
        return [f"{prefix}: {detail}"]
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        return [f"{prefix}: mode {mode:o} lets group or others read the key; chmod 600 {key_file}"]
    return []


def model_load_problems(path: Path, config: DaemonConfig) -> list[str]:
    """Load the model as the daemon does (ONNX Runtime session, card checks) and check the class names."""
    from detector.loader import load_model
    from detector.model_info import check_image_input

    detector = config.detector
    prefix = f"{where(path, ('detector', 'model'))}: detector.model"
    try:
        loaded = load_model(detector.model, provider=detector.provider, intra_op_threads=1)
        check_image_input(loaded.info)
    except DetectorError as exc:
        return [f"{prefix}: {exc}"]
    known = set(loaded.card.classes)
    return [
        f"{where(path, ('detector', 'classes', name))}: detector.classes.{name}: {name!r} is not a class "
        f"of model {detector.model.name} (it has {len(known)} classes)"
        for name in detector.classes
        if name not in known
    ]


def environment_problems(path: Path, config: DaemonConfig) -> list[str]:
    """Every problem :func:`camera_file_problems`, :func:`device_key_problems` and
    :func:`model_load_problems` find."""
    return [
        *camera_file_problems(path, config),
        *device_key_problems(path, config),
        *model_load_problems(path, config),
    ]
