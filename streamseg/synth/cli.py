"""``streamseg synth``: render a synthetic scene with its ground truth to a folder."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from streamseg.argtypes import positive_float, positive_int
from streamseg.synth.export import render_scene_video
from streamseg.synth.frame import DIFFICULTIES, SCENE_KINDS

logger = logging.getLogger(__name__)


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT like 640x360, got {text!r}"
        ) from None
    return width, height


def synth_main(argv: Sequence[str]) -> int:
    """Parse ``argv`` (after ``synth``), render, print the paths; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="streamseg synth",
        description="Render a synthetic scene: H.264 video, MOTS ground truth, COCO annotations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("kind", choices=SCENE_KINDS, help="scene kind")
    parser.add_argument("--out", required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (same seed, same scene)")
    parser.add_argument("--frames", type=positive_int, default=150, help="frames to render")
    parser.add_argument("--resolution", type=_resolution, default="640x360", help="WxH")
    parser.add_argument("--fps", type=positive_float, default=15.0, help="frame rate")
    parser.add_argument(
        "--difficulty",
        choices=DIFFICULTIES,
        default="easy",
        help="occlusion: objects cross and hide one another by design",
    )
    parser.add_argument(
        "--objects", type=positive_int, default=None, help="exact number of objects"
    )
    parser.add_argument("--no-images", action="store_true", help="skip the per-frame JPEGs")
    args = parser.parse_args(list(argv))
    try:
        paths = render_scene_video(
            args.kind,
            args.seed,
            args.out,
            args.frames,
            args.resolution,
            fps=args.fps,
            difficulty=args.difficulty,
            num_objects=args.objects,
            write_images=not args.no_images,
        )
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:  # --out is a file, under a file, or not writable
        parser.error(f"--out {args.out}: {exc}")
    for name, path in paths.items():
        print(f"{name:8} {path}")
    return 0
