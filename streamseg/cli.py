"""The ``streamseg`` command: run, validate, info, demo, synth, train."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from rich.console import Console
from rich.logging import RichHandler

logger = logging.getLogger(__name__)


def _setup_logging(level: str, console: Console) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def _cmd_validate(args: argparse.Namespace) -> int:
    from streamseg.config.validate import validate_files

    return validate_files(args.files)


def _cmd_info(args: argparse.Namespace, console: Console) -> int:
    from streamseg.models import ModelLoadError
    from streamseg.models.info import describe_model, format_info

    try:
        info = describe_model(args.model, device=args.device)
    except ModelLoadError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    Console().print(format_info(info), highlight=False)
    return 0


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


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from streamseg.config import ConfigError, load_pipeline
    from streamseg.models import ModelLoadError
    from streamseg.runtime.pipeline import Pipeline
    from streamseg.runtime.progress import file_progress
    from streamseg.runtime.report import print_summary

    try:
        config = load_pipeline(args.file)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 1
    pipeline = Pipeline(config)
    _install_stop_handlers(pipeline.stop_event)
    try:
        if args.progress:
            with file_progress(pipeline, console):
                summary = pipeline.run()
        else:
            summary = pipeline.run()
    except (ModelLoadError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    print_summary(summary, Console())
    states = [s.state for s in summary.sources.values()]
    if states and all(s.value == "failed" for s in states):
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamseg`` command."""
    parser = argparse.ArgumentParser(
        prog="streamseg", description="Video-stream analytics on object pixels."
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline file")
    run.add_argument("file", help="pipeline YAML")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    validate = sub.add_parser("validate", help="check pipeline files without running them")
    validate.add_argument("files", nargs="+", help="pipeline YAML files")

    info = sub.add_parser("info", help="describe a model file (input size, classes, layout)")
    info.add_argument("model", help="'builtin' or a TorchScript/ONNX file in the YOLO-seg layout")
    info.add_argument("--device", default="cpu", help="auto | cpu | cuda[:i]")

    demo = sub.add_parser("demo", help="render a synthetic yard scene and run the demo pipeline")
    demo.add_argument("--pipeline", default="pipelines/demo.yaml", help="demo pipeline file")
    sub.add_parser("synth", help="render synthetic scenes with ground truth", add_help=False)
    sub.add_parser("train", help="train or fine-tune the built-in model", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamseg`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # train and synth own their arguments.
    if argv and argv[0] == "train":
        from streamseg.train.cli import train_main

        return train_main(argv[1:])
    if argv and argv[0] == "synth":
        from streamseg.synth.cli import synth_main

        return synth_main(argv[1:])
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    _setup_logging(args.log_level, console)
    if args.command == "validate":
        return _cmd_validate(args)
    if args.command == "info":
        return _cmd_info(args, console)
    if args.command == "run":
        return _cmd_run(args, console)
    if args.command == "demo":
        from streamseg.runtime.demo import demo_main

        return demo_main(console, args.pipeline)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
