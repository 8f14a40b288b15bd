"""``streamseg validate``: check pipeline files without running anything."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from streamseg.config.errors import ConfigError
from streamseg.config.loader import ClassNamesOf, load_pipeline
from streamseg.config.model import BUILTIN_WEIGHTS
from streamseg.config.pipeline import PipelineConfig
from streamseg.config.sources import FileSourceConfig, UsbSourceConfig
from streamseg.sources.usb import usb_device_path

logger = logging.getLogger(__name__)


def validate_files(paths: Sequence[str], class_names_of: ClassNamesOf | None = None) -> int:
    """Validate each file; print ``OK <path>`` to stdout or its errors to stderr.

    A bad file never raises: every problem is printed as ``file:line:column: key.path: message``.
    ``${VAR}`` references are resolved from the process environment, so a missing variable is
    reported as it would be at run time.

    Args:
        paths: pipeline YAML files.
        class_names_of: the model's class names from its ``model`` section, when they can be
            read without running it (``streamseg.models.names.model_class_names``): rules and
            ``model.classes`` naming other classes are then errors.

    Returns:
        The exit code: 0 when every file is valid, 1 when any is not (or no file was given).
    """
    if not paths:
        print("error: no pipeline file given", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        try:
            config = load_pipeline(path, class_names_of=class_names_of)
        except ConfigError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            count = len(exc.issues)
            print(f"FAILED {path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
            continue
        except Exception as exc:  # a loader bug must not hide the other files' results
            failed += 1
            logger.debug("validating %s failed unexpectedly", path, exc_info=True)
            print(
                f"{path}: internal error while validating ({type(exc).__name__}: {exc}); "
                "please report it",
                file=sys.stderr,
            )
            continue
        logger.debug("%s: %d sources", path, len(config.sources))
        print(f"OK {path}")
        for warning in missing_files(config) + unusable_outputs(config):
            print(f"warning: {path}: {warning}", file=sys.stderr)
    return 1 if failed else 0


def missing_files(config: PipelineConfig) -> list[str]:
    """The local files a valid pipeline names that do not exist here: file sources, USB camera
    devices, model weights and the MQTT TLS files. Warnings, not errors: the file may be put
    there (or mounted, or the camera plugged in) before the run. Relative paths are taken from
    the current folder, as a run from here would."""
    found: list[str] = []

    def check(where: str, path: str, consequence: str) -> None:
        if not os.path.exists(path):
            found.append(f"{where}: {path!r} does not exist here; {consequence}")

    for index, source in enumerate(config.sources):
        if isinstance(source, FileSourceConfig) and "://" not in source.path:
            check(
                f"sources[{index}].path",
                source.path,
                "a run from this folder could not open it",
            )
        elif isinstance(source, UsbSourceConfig):
            check(
                f"sources[{index}].device",
                usb_device_path(source.device),
                "a run on this machine would find no camera (in a container, pass the device "
                "through)",
            )
    if config.model.weights != BUILTIN_WEIGHTS:
        check("model.weights", config.model.weights, "a run from this folder could not load it")
    mqtt = config.outputs.mqtt
    if mqtt is not None and mqtt.tls.enabled:
        for key in ("ca_certs", "certfile", "keyfile"):
            path = getattr(mqtt.tls, key)
            if path is not None:
                check(
                    f"outputs.mqtt.tls.{key}",
                    path,
                    "a run from this folder could not connect to the broker",
                )
    return found


def output_locations(config: PipelineConfig) -> list[tuple[str, str, bool]]:
    """Where a run of ``config`` writes: ``(key path, location, is a folder)`` for each file
    output (the video path once per stream) and each output folder. The MQTT outbox is not
    listed: opening it reports its own problems, naming the file and what to do."""
    outputs = config.outputs
    found: list[tuple[str, str, bool]] = []
    if outputs.jsonl is not None:
        found.append(("outputs.jsonl.path", outputs.jsonl.path, False))
    if outputs.events is not None:
        found.append(("outputs.events.path", outputs.events.path, False))
    if outputs.video is not None:
        for source in config.sources:
            found.append(("outputs.video.path", outputs.video.path_for(source.id), False))
    if outputs.mots is not None:
        found.append(("outputs.mots.dir", outputs.mots.dir, True))
    record = outputs.record
    if record is not None:
        if record.continuous is not None and record.continuous_on:
            found.append(("outputs.record.continuous.dir", record.continuous.dir, True))
        if record.clips is not None and record.clips_on:
            found.append(("outputs.record.clips.dir", record.clips.dir, True))
        if record.snapshots is not None and record.snapshots_on:
            found.append(("outputs.record.snapshots.dir", record.snapshots.dir, True))
    return found


def unusable_outputs(config: PipelineConfig) -> list[str]:
    """The outputs a run from the current folder could not write, each as ``key: problem``: a
    file output that names a folder, an output folder that names a file, a location under a
    file, or one in a folder this user may not write in. ``streamseg validate`` prints them
    as warnings (the run may be on another machine); ``streamseg run`` refuses to start with
    them, before it loads the model, instead of failing on the first open with a bare
    ``[Errno 21] Is a directory``."""
    found: list[str] = []
    for key, location, is_folder in output_locations(config):
        problem = _location_problem(location, is_folder)
        if problem is not None:
            found.append(f"{key}: {location!r} {problem}")
    return found


def _location_problem(location: str, is_folder: bool) -> str | None:
    """Why ``location`` cannot be written as a file (or created as a folder), or None."""
    if os.path.isdir(location):
        if not is_folder:
            return "is a folder; expected the path of a file to write"
        if not os.access(location, os.W_OK | os.X_OK):
            return "is a folder this user may not write in"
        return None
    if os.path.exists(location):
        if is_folder:
            return "is a file; expected a folder"
        if not os.access(location, os.W_OK):
            return "is a file this user may not write"
        return None
    # Not there yet: the run creates it and any missing parents; the nearest existing one
    # must be a folder this user may write in.
    parent = os.path.dirname(os.path.abspath(location))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"lies under {parent!r}, which is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: this user may not write in {parent!r}"
    return None
