"""The ``streamseg`` command: run, validate, info, preview, demo, synth, train, eval, outbox,
alert-test."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

if TYPE_CHECKING:
    from streamseg.config import PipelineConfig
    from streamseg.runtime.shard import Shard
    from streamseg.track.evaluate import TrackingScores

logger = logging.getLogger(__name__)


PLAIN_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Log lines when stderr is not a terminal (systemd's journal, docker, a file): one record per
line, never wrapped."""


def _setup_logging(level: str, console: Console) -> None:
    """Rich's columns on a terminal; plain lines elsewhere. Rich wraps at 80 columns when it
    has no terminal to measure, which split each record of the journal or ``docker logs`` into
    2-4 entries and broke a grep for a camera's name."""
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(PLAIN_LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def _cmd_validate(args: argparse.Namespace) -> int:
    from streamseg.config.validate import validate_files
    from streamseg.models.names import model_class_names

    return validate_files(args.files, class_names_of=model_class_names)


def _cmd_alert_test(args: argparse.Namespace, console: Console) -> int:
    from streamseg.config import ConfigError, load_pipeline
    from streamseg.outputs.mqtt.alert_test import AlertTestError, send_test_alert

    try:
        config = load_pipeline(args.file)
        result = send_test_alert(config, args.rule, args.stream, args.timeout)
    except (ConfigError, AlertTestError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    mqtt_config = config.outputs.mqtt
    assert mqtt_config is not None
    what = (
        f"test occurrence {result.event_id} of rule {result.rule_id!r} on stream "
        f"{result.stream_id!r} to {result.topic}"
    )
    if result.refusals:
        refused = "; ".join(f"the {kind}: {reason}" for kind, reason in result.refusals)
        console.print(
            f"[red]error:[/red] {escape(f'sent {what}, but the broker refused {refused}')} "
            f"(its ACL must let this login write {escape(result.topic)})",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    took = (
        "the broker took the start and the end"
        if mqtt_config.protocol == "5"
        else "the broker acknowledged the start and the end (MQTT 3.1.1: an acknowledgement "
        "does not say whether it took them)"
    )
    print(f"sent {what}: {took} in {result.seconds:.2f} s; consumers see details.test: true")
    return 0


def _cmd_info(args: argparse.Namespace, console: Console) -> int:
    from streamseg.models import ModelLoadError
    from streamseg.models.info import describe_model, format_info

    try:
        info = describe_model(args.model, device=args.device)
    except ModelLoadError as exc:
        console.print(f"[red]error:[/red] {escape(_as_info_words(str(exc)))}", soft_wrap=True)
        return 1
    Console().print(format_info(info), highlight=False)
    return 0


_PIPELINE_WORDS = (
    ("model.weights: ", ""),
    ("set `device: auto` or `device: cpu`", "use --device auto or --device cpu"),
)
"""The loader's messages name the pipeline's keys; ``streamseg info`` takes the model as its
argument and the device as ``--device``."""


def _as_info_words(message: str) -> str:
    """A model-loading message in ``streamseg info``'s terms (:data:`_PIPELINE_WORDS`)."""
    for pipeline_words, info_words in _PIPELINE_WORDS:
        message = message.replace(pipeline_words, info_words)
    if message.startswith("device: "):
        message = "--device " + message.removeprefix("device: ")
    return message


def _install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set the pipeline's stop event; the run then flushes and closes outputs."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning(
                "%s again: still stopping, outputs are being finalized", signal.Signals(signum).name
            )
            return
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _ignore_stop_signals() -> None:
    """Once the run has returned, SIGINT/SIGTERM change nothing: ignore them. Python's exit
    puts the default handlers back, under which a second signal (a supervisor forwarding it
    twice) would kill the process with 143/130 after a clean stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _shard_arg(text: str) -> Shard:
    """argparse ``type`` of ``--shard``: ``i/n``."""
    from streamseg.runtime.shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count_arg(least: int, what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type: ``what``, a whole number >= ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"expected {what} >= {least}, got {text!r}")
        return value

    return parse


_shard_count_arg = _count_arg(1, "a whole number of shards")
"""argparse ``type`` of ``--shard-from-hostname``: a shard count >= 1."""


class _ShardFromHostname(argparse.Action):
    """``--shard-from-hostname n``: the shard index is the ordinal ending ``$HOSTNAME``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from streamseg.runtime.shard import shard_from_hostname

        assert isinstance(values, int)  # _shard_count_arg ran first
        try:
            shard = shard_from_hostname(os.environ.get("HOSTNAME", ""), values)
        except ValueError as exc:
            parser.error(f"argument {option_string}: {exc}")
        namespace.shard = shard


def _idle_empty_shard(config: PipelineConfig, shard: Shard, stop: threading.Event) -> int:
    """A shard that owns no source waits, healthy and ready, until SIGTERM/SIGINT (``stop``,
    which the stop handlers set); then 0.

    Exiting at once would make an orchestrator restart the pod in a loop (a StatefulSet with
    more replicas than cameras, or an unlucky draw of few cameras).

    With MQTT it still connects: it says it is ``online`` on its availability topic, clears
    the retained topics an earlier configuration left for the streams it would run, and sends
    what its outbox still holds from a layout in which it had sources.
    """
    from streamseg.outputs.mqtt import build_mqtt_publisher
    from streamseg.runtime.health import OpsServer, Readiness
    from streamseg.runtime.metrics import PipelineMetrics

    logger.warning("shard %s owns none of the pipeline's sources: idle until stopped", shard)
    metrics = PipelineMetrics()
    server = None
    publisher = build_mqtt_publisher(config, registry=metrics.registry, shard=shard)
    try:
        if publisher is not None:
            publisher.start()
        if config.metrics.enabled:
            reason = f"shard {shard} owns no source"
            server = OpsServer(
                metrics.registry,
                lambda: Readiness(True, reason),
                config.metrics.host,
                config.metrics.port,
            )
        # A timed wait: Python runs signal handlers in the main thread only, and a SIGTERM the
        # kernel delivers to another thread (the metrics server's) does not wake an untimed wait.
        while not stop.wait(0.5):
            pass
    finally:
        if server is not None:
            server.stop()
        if publisher is not None:
            publisher.close()
    return 0


def _fatal(console: Console, text: str, as_json: bool, label: bool = True) -> int:
    """Say why the run cannot go on, and return the exit code (1).

    Under ``--log-format json`` it is an ERROR record with ``"fatal": true``, so a log
    collector sees it like every other line; else red text on ``console`` (``label``: after
    "error:"; a config error already starts with its file and line).
    """
    if as_json:
        logger.error("%s", text, extra={"fatal": True})
    else:
        console.print(
            f"[red]error:[/red] {text}" if label else f"[red]{text}[/red]",
            highlight=False,
            soft_wrap=True,  # a long path or message stays on one line, as it is copied
        )
    return 1


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    # Before the imports (torch takes seconds): a SIGTERM from here on stops the run cleanly
    # instead of killing the process without a word.
    stopped_early = threading.Event()
    _install_stop_handlers(stopped_early)
    from streamseg.config import ConfigError, load_pipeline
    from streamseg.config.validate import unusable_outputs
    from streamseg.models import ModelLoadError
    from streamseg.models.names import model_class_names
    from streamseg.outputs.mqtt.outbox import OutboxError
    from streamseg.runtime.pipeline import Pipeline
    from streamseg.runtime.progress import file_progress
    from streamseg.runtime.report import analysed_nothing, log_summary, print_summary
    from streamseg.runtime.shard import shard_config
    from streamseg.runtime.status import StatusLogger

    as_json = args.log_format == "json"
    if as_json:
        from streamseg.runtime.logs import setup_json_logging

        setup_json_logging(args.log_level)
    try:
        config = load_pipeline(args.file, class_names_of=model_class_names)
    except ConfigError as exc:
        return _fatal(console, str(exc), as_json, label=False)
    if args.shard is not None:
        config = shard_config(config, args.shard)
        if not config.sources:
            try:
                return _idle_empty_shard(config, args.shard, stopped_early)
            except (OSError, ValueError, OutboxError) as exc:
                return _fatal(console, str(exc), as_json)
    # Before the model loads (seconds): an output that cannot be written ends the run anyway.
    unusable = unusable_outputs(config)
    if unusable:
        return _fatal(
            console, "\n".join(f"{args.file}: {problem}" for problem in unusable), as_json
        )
    pipeline = Pipeline(config, shard=args.shard)
    _install_stop_handlers(pipeline.stop_event)
    if stopped_early.is_set():
        pipeline.stop_event.set()  # Pipeline.start then starts nothing
    try:
        with contextlib.ExitStack() as stack:
            # JSON mode keeps stderr to JSON lines: no progress bar there.
            if args.progress and not as_json:
                stack.enter_context(file_progress(pipeline, console))
            if args.status_every > 0:
                stack.enter_context(StatusLogger(pipeline, args.status_every))
            summary = pipeline.run()
    except (ModelLoadError, ValueError, OSError, OutboxError) as exc:
        # OutboxError: the MQTT outbox file is in use, damaged, not writable or not an outbox;
        # the message names the file and what to do.
        return _fatal(console, str(exc), as_json)
    finally:
        _ignore_stop_signals()
    if as_json:
        # The end table as data, and nothing else: a log collector reads stdout and stderr as
        # one stream, and the table's lines are not JSON.
        log_summary(summary)
    else:
        print_summary(summary, Console())
    return 2 if analysed_nothing(summary) else 0


def _cmd_preview(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    import cv2

    from streamseg.config import ConfigError, load_pipeline
    from streamseg.outputs.preview import capture_frame, draw_preview

    try:
        config = load_pipeline(args.file)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 1
    known = [source.id for source in config.sources]
    wanted = args.sources or known
    unknown = [source_id for source_id in wanted if source_id not in known]
    if unknown:
        console.print(
            f"[red]error:[/red] --source {', '.join(unknown)}: not in {args.file} (its sources: "
            f"{', '.join(known)})",
            highlight=False,
        )
        return 1
    out = Path(args.out)
    failed = 0
    for source_id in wanted:
        source = config.source(source_id)
        try:
            frame = capture_frame(source, args.timeout, args.at)
            image = draw_preview(frame.image, source_id, config.zones, source.calibration)
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{source_id}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"could not write {path}")
        except (TimeoutError, OSError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            failed += 1
            continue
        Console(soft_wrap=True).print(f"wrote {path}", highlight=False)
    return 1 if failed else 0


def _print_tracking_scores(scores: TrackingScores, console: Console) -> None:
    """One rich table per class key: a row per sequence, then the combined row."""
    from rich.table import Table

    columns = ("HOTA", "DetA", "AssA", "IDF1", "MOTSA", "sMOTSA", "IDSW", "IDs/GT")
    for cls in scores.classes:
        table = Table(title=f"tracking, class {cls} (TrackEval MOTS, points out of 100)")
        table.add_column("sequence", no_wrap=True, min_width=8)
        for column in columns:
            table.add_column(column, justify="right", no_wrap=True)
        rows = [*scores.sequences[cls].items(), ("combined", scores.combined[cls])]
        for i, (name, s) in enumerate(rows):
            empty = s.gt_dets == 0 and s.pred_dets == 0
            figures = (s.hota, s.deta, s.assa, s.idf1, s.motsa, s.smotsa)
            table.add_row(
                name,
                *(("-" if empty else f"{100 * v:.1f}") for v in figures),
                str(s.idsw),
                f"{s.pred_ids}/{s.gt_ids}",
                end_section=i == len(rows) - 2,
            )
        console.print(table)


def _cmd_eval_tracking(args: argparse.Namespace, console: Console) -> int:
    import json

    from streamseg.track.evaluate import TrackingEvalError, evaluate_tracking

    try:
        scores = evaluate_tracking(args.gt, args.pred, args.classes, verbose=args.verbose)
    except TrackingEvalError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    _print_tracking_scores(scores, Console())
    if args.json is not None:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(scores.to_dict(), fh, indent=2)
        except OSError as exc:
            console.print(f"[red]error:[/red] --json {args.json}: {exc}", highlight=False)
            return 1
    return 0


OWN_ARGUMENTS = ("train", "synth")
"""Commands that parse their own arguments (``streamseg train --help`` lists them)."""

LOG_LEVELS = ("debug", "info", "warning", "error")
"""Choices of ``--log-level`` (before the command, or after it)."""


def _own_subcommand(argv: Sequence[str]) -> tuple[list[str], str, list[str]] | None:
    """``(global options, command, its arguments)`` when ``argv`` runs one of
    :data:`OWN_ARGUMENTS`, else None. Global options (``--log-level X`` or ``--log-level=X``)
    come before the command."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1 if "=" in argv[i] or argv[i] in ("-h", "--help", "--version") else 2
    if i < len(argv) and argv[i] in OWN_ARGUMENTS:
        return list(argv[:i]), argv[i], list(argv[i + 1 :])
    return None


def version_report() -> str:
    """``streamseg --version``: this version and what it runs on, for a bug report (the
    libraries' versions, whether torch sees a GPU, how the rules' measures run)."""
    import platform
    from importlib import metadata

    import torch

    from streamseg import __version__, accel

    def installed(name: str) -> str:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return f"{name} not installed"

    if torch.cuda.is_available():
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        device = f"CUDA {torch.version.cuda}: {gpus}"
    else:
        device = "no CUDA device"
    if accel.kernels() is not None:
        rules = f"compiled kernels ({installed('numba')})"
    elif accel.disabled():
        rules = f"numpy ({accel.ENV_SWITCH}=0)"
    else:
        rules = "numpy (numba not installed: pip install 'streamseg[fast]')"
    libraries = ", ".join(
        installed(name)
        for name in (
            "torch",
            "numpy",
            "opencv-python",
            "av",
            "supervision",
            "paho-mqtt",
            "onnxruntime",
        )
    )
    return "\n".join(
        [
            f"streamseg {__version__}",
            f"python {platform.python_version()} on {platform.platform()}",
            libraries,
            f"torch device: {device}",
            f"rule measures: {rules}",
        ]
    )


class _VersionAction(argparse.Action):
    """``--version``: prints :func:`version_report` (built only when asked: it imports torch)."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, help: str | None = None, **_: object
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_report())
        parser.exit()


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    value = _non_negative_seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _non_negative_seconds(text: str) -> float:
    """An argparse type: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _global_parser(**kwargs: object) -> argparse.ArgumentParser:
    """The ``streamseg`` parser with only its global options."""
    parser = argparse.ArgumentParser(prog="streamseg", **kwargs)  # type: ignore[arg-type]
    parser.add_argument(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        help="least level of the log records shown (also accepted after the command)",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the version, the libraries and the device it runs on, and exit",
    )
    return parser


def _add_outbox_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``outbox`` command (:mod:`streamseg.outputs.mqtt.cli`)."""
    outbox = sub.add_parser(
        "outbox",
        help="show the events waiting in a pipeline's MQTT outbox; put quarantined ones back",
        description=(
            "Show what waits in a pipeline's MQTT outbox (events per topic, stored when, "
            "whether a run holds it) and what its quarantine file holds. Reading works while "
            "the pipeline runs and changes no data. --requeue moves the quarantined events "
            "back into the outbox, to be sent by the next run (stop the pipeline first)."
        ),
    )
    outbox.add_argument(
        "target", help="pipeline YAML (its outputs.mqtt outbox) or an outbox .sqlite3 file"
    )
    outbox.add_argument(
        "--list",
        dest="limit",
        type=_count_arg(0),
        default=0,
        metavar="N",
        help="also list the first N waiting events, in the order they are sent",
    )
    outbox.add_argument(
        "--max-events",
        type=_count_arg(1),
        default=None,
        metavar="N",
        help="the outbox bound --requeue keeps to (default: the pipeline's "
        "outputs.mqtt.outbox.max_events; 100000 for an outbox file)",
    )
    outbox.add_argument("--json", action="store_true", help="print the report as JSON")
    outbox.add_argument(
        "--requeue",
        action="store_true",
        help="move the quarantined events back into the outbox (the pipeline must be stopped)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamseg`` command."""
    parser = _global_parser(description="Video-stream analytics on object pixels.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline file")
    run.add_argument("file", help="pipeline YAML")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object per line (time, level, logger, message, extra fields)",
    )
    run.add_argument(
        "--status-every",
        type=_non_negative_seconds,
        default=60.0,
        metavar="SECONDS",
        help="log a status line (per stream: state, fps, drops, reconnects) this often; "
        "0: never (default: 60)",
    )
    sharding = run.add_mutually_exclusive_group()
    sharding.add_argument(
        "--shard",
        type=_shard_arg,
        default=None,
        metavar="I/N",
        help="run only the sources shard I of N owns (rendezvous hashing of source ids)",
    )
    sharding.add_argument(
        "--shard-from-hostname",
        type=_shard_count_arg,
        action=_ShardFromHostname,
        metavar="N",
        help="like --shard I/N with I the trailing -<int> of $HOSTNAME (StatefulSet pods)",
    )

    validate = sub.add_parser("validate", help="check pipeline files without running them")
    validate.add_argument("files", nargs="+", help="pipeline YAML files")

    info = sub.add_parser("info", help="describe a model file (input size, classes, layout)")
    info.add_argument("model", help="'builtin' or a TorchScript/ONNX file in the YOLO-seg layout")
    info.add_argument("--device", default="cpu", help="auto | cpu | cuda[:i]")

    preview = sub.add_parser(
        "preview",
        help="draw each source's zones, line sides and ground calibration on one of its frames",
        description=(
            "Take one frame from each source of a pipeline and write it as a PNG with the "
            "stream's zones and lines (an arrow from points[0] to points[1], the L and R sides a "
            "cross rule's direction names) and, for a calibrated stream, its four marks and a "
            "ground grid in metres: a grid that does not lie flat on the ground means the "
            "calibration is wrong."
        ),
    )
    preview.add_argument("file", help="pipeline YAML")
    preview.add_argument(
        "--out", default="out/preview", help="folder for <source id>.png (default: out/preview)"
    )
    preview.add_argument(
        "--source",
        dest="sources",
        action="append",
        metavar="ID",
        help="only this source (repeat for several; default: every source)",
    )
    preview.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to wait for a source's first frame (default: 15)",
    )
    preview.add_argument(
        "--at",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="use the first frame this many seconds of stream time into the source (a file is "
        "read up to it, a camera watched that long)",
    )

    demo = sub.add_parser("demo", help="render a synthetic yard scene and run the demo pipeline")
    demo.add_argument(
        "--pipeline",
        default=None,
        help="demo pipeline file (default: pipelines/demo.yaml here, in the checkout, or in "
        "the container image)",
    )
    sub.add_parser("synth", help="render synthetic scenes with ground truth", add_help=False)

    evaluate = sub.add_parser("eval", help="score outputs against ground truth")
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True)
    tracking = eval_sub.add_parser(
        "tracking",
        help="score MOTS tracks with TrackEval (HOTA, DetA, AssA, IDF1, MOTSA, sMOTSA, IDSW)",
        description=(
            "Score MOTS tracks against MOTS ground truth with TrackEval. --gt: a sequence "
            "folder as 'streamseg synth --out' writes it (DIR/gt/gt.txt), or a folder of them. "
            "--pred: a folder of <seq>.txt MOTS files as outputs.mots writes them (one per "
            "stream), one such file, or the ground-truth layout. Sequences pair by name; one "
            "sequence on each side always pairs."
        ),
    )
    tracking.add_argument("--gt", required=True, help="ground-truth folder")
    tracking.add_argument("--pred", required=True, help="predictions folder (or one file)")
    tracking.add_argument(
        "--classes",
        nargs="+",
        default=["all"],
        metavar="CLASS",
        help=(
            "class keys to score: 'all' (every object together, matched within its class; the "
            "default) and/or class names of the built-in model (person, cow, ...)"
        ),
    )
    tracking.add_argument("--json", default=None, help="also write the scores to this JSON file")
    tracking.add_argument("--verbose", action="store_true", help="show TrackEval's own output")
    sub.add_parser("train", help="train or fine-tune the built-in model", add_help=False)
    _add_outbox_parser(sub)
    alert_test = sub.add_parser(
        "alert-test",
        help="send a test occurrence of a rule to the pipeline's MQTT broker",
        description=(
            "Publish a start and an end message of one test occurrence of a rule on the "
            "pipeline's events topic (details.test: true), as the pipeline would, and say "
            "whether the broker took them: checks the address, TLS, login, ACL and whatever "
            "listens. Leaves a running pipeline alone (own client id, no retained topic, no "
            "outbox)."
        ),
    )
    alert_test.add_argument("file", help="pipeline YAML")
    alert_test.add_argument("--rule", default=None, help="rule id (default: the first rule)")
    alert_test.add_argument(
        "--stream", default=None, help="stream id (default: the first the rule runs on)"
    )
    alert_test.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long the connection and both acknowledgements may take (default: 10)",
    )
    # --log-level after the verb too (`streamseg validate --log-level debug f.yaml`): the verbs
    # take it with no default of their own, so the one before the verb stands when absent.
    verbs = [verb for name, verb in sub.choices.items() if name not in OWN_ARGUMENTS]
    for verb in [*verbs, *eval_sub.choices.values()]:
        verb.add_argument(
            "--log-level",
            default=argparse.SUPPRESS,
            choices=LOG_LEVELS,
            help="as before the command",
        )
    return parser


def _take_log_level(args: list[str]) -> tuple[str | None, list[str]]:
    """``--log-level X`` (or ``--log-level=X``) taken out of a command's own arguments (train
    and synth parse theirs): the level given last, or None, and the other arguments."""
    level: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--log-level" and i + 1 < len(args):
            level, i = args[i + 1], i + 2
            continue
        if arg.startswith("--log-level="):
            level, i = arg.split("=", 1)[1], i + 1
            continue
        rest.append(arg)
        i += 1
    return level, rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamseg`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # train and synth own their arguments (after the global options, like every command).
    own = _own_subcommand(argv)
    if own is not None:
        global_options, command, rest = own
        level, rest = _take_log_level(rest)
        if level is not None:
            global_options = [*global_options, "--log-level", level]
        if global_options:
            options = _global_parser().parse_args(global_options)
            _setup_logging(options.log_level, Console(stderr=True))
        if command == "train":
            from streamseg.train.cli import train_main

            return train_main(rest)
        from streamseg.synth.cli import synth_main

        return synth_main(rest)
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    _setup_logging(args.log_level, console)
    if args.command == "validate":
        return _cmd_validate(args)
    if args.command == "info":
        return _cmd_info(args, console)
    if args.command == "run":
        return _cmd_run(args, console)
    if args.command == "preview":
        return _cmd_preview(args, console)
    if args.command == "eval":
        return _cmd_eval_tracking(args, console)
    if args.command == "alert-test":
        return _cmd_alert_test(args, console)
    if args.command == "outbox":
        from streamseg.outputs.mqtt.cli import outbox_main

        return outbox_main(args, console)
    if args.command == "demo":
        from streamseg.runtime.demo import demo_main

        return demo_main(console, args.pipeline)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
