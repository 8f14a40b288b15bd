"""A recording process stopped by SIGTERM leaves a finished file; one killed by SIGKILL leaves a
file that decodes up to its last fragment (it loses at most one keyframe interval)."""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

FPS = 20
KEYFRAME_S = 0.25
FRAMES_PER_FRAGMENT = int(FPS * KEYFRAME_S)

CHILD = """
from __future__ import annotations
import json, signal, sys, time
import numpy as np
import numpy.typing as npt
import supervision as sv
from streamseg.config.record import RecordConfig
from streamseg.record import Recorder
from streamseg.types import Frame

WIDTH, HEIGHT, BITS, BLOCK = {width}, {height}, {bits}, {block}
{index_image}

stop = False

def on_term(signum, frame):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
config = RecordConfig.model_validate({{
    "encoder": {{"keyframe_interval_s": {keyframe_s}, "fps": {fps}}},
    "continuous": {{"dir": sys.argv[1], "annotated": False, "segment_s": 3600}},
}})
recorder = Recorder(config, lossless_streams={{"cam"}})
empty = sv.Detections.empty()
i = 0
while not stop:
    recorder.write(Frame("cam", i, i / {fps}, time.time(), index_image(i)), empty)
    i += 1
    if i % 5 == 0:
        encoded = recorder.stats()["cam"].frames_encoded["clean"]
        print(json.dumps({{"written": i, "encoded": encoded}}), flush=True)
    time.sleep(0.005)
recorder.close()
stats = recorder.stats()["cam"]
print(json.dumps({{"done": i, "encoded": stats.frames_encoded["clean"]}}), flush=True)
"""


def start_child(kit: type, out: Path) -> subprocess.Popen[str]:
    # The child draws the same frames as the tests' helper, from its source.
    script = CHILD.format(
        index_image=textwrap.dedent(inspect.getsource(kit.index_image)),
        width=kit.WIDTH,
        height=kit.HEIGHT,
        bits=kit.BITS,
        block=kit.BLOCK,
        keyframe_s=KEYFRAME_S,
        fps=FPS,
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_encoded(child: subprocess.Popen[str], frames: int) -> dict[str, Any]:
    """Read the child's progress lines until it has encoded ``frames``; return that line."""
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            assert child.stderr is not None
            pytest.fail(f"child ended early: {child.stderr.read()[-2000:]}")
        progress: dict[str, Any] = json.loads(line)
        if progress["encoded"] >= frames:
            return progress
    pytest.fail("child too slow")


def recorded_file(out: Path) -> Path:
    (path,) = (out / "cam").glob("cam_*.mp4")
    return path


def test_sigterm_leaves_a_finished_playable_file(kit: type, tmp_path: Path) -> None:
    child = start_child(kit, tmp_path)
    wait_for_encoded(child, 23)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr[-2000:]
    done = json.loads(stdout.strip().splitlines()[-1])
    assert done["encoded"] == done["done"] > 23  # every frame handed over was encoded
    decoded = kit.decode(recorded_file(tmp_path))
    assert decoded.error is None
    assert decoded.indices == list(range(done["done"]))
    assert decoded.duration_s == pytest.approx(done["done"] / FPS, abs=0.06)


def test_sigkill_leaves_a_file_that_decodes_up_to_its_last_fragment(
    kit: type, tmp_path: Path
) -> None:
    child = start_child(kit, tmp_path)
    progress = wait_for_encoded(child, 23)
    child.kill()
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    decoded = kit.decode(recorded_file(tmp_path))
    # Every fragment finished before the kill decodes, in order, with nothing missing; at
    # most the open fragment (one keyframe interval) and what followed the report is lost.
    encoded = progress["encoded"]
    complete = FRAMES_PER_FRAGMENT * ((encoded - 1) // FRAMES_PER_FRAGMENT)
    assert len(decoded.indices) >= complete >= 20
    assert decoded.indices == list(range(len(decoded.indices)))
    assert decoded.pts_s[-1] == pytest.approx((len(decoded.indices) - 1) / FPS, abs=1e-3)
