"""Fixtures shared across the test suite: real video files and a real RTSP server.

* ``h264_file``: factory writing an H.264 clip with PyAV whose frames encode their own index
  (a white square whose x position is ``MARKER_X0 + MARKER_STEP * i``), so a test can tell
  which frame it got back.
* ``rtsp_server``: factory starting ``tests/helpers/rtsp_server.py`` (GStreamer rtsp-server)
  with Debian's ``/usr/bin/python3`` on a free port, with kill / restart for reconnect tests.
* ``silent_tcp_server``: a TCP port that accepts connections and never says a word.
* ``mosquitto``: factory starting a real mosquitto broker on a free loopback port
  (``tests/helpers/mosquitto.py``), restartable on the same port.
"""

from __future__ import annotations

import contextlib
import fractions
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from helpers.mosquitto import INSTALL_HINT as MOSQUITTO_INSTALL_HINT
from helpers.mosquitto import MOSQUITTO, Mosquitto

HELPERS = Path(__file__).parent / "helpers"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_DEBIAN_PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
)

MARKER_X0 = 4
MARKER_STEP = 2
MARKER_W = 12
MARKER_ROWS = (52, 68)


# ---------------------------------------------------------------------------- rule measures


@pytest.fixture(params=["compiled", "numpy"])
def measure_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test twice: with the compiled kernels (numba, a dev dependency) and on the numpy
    paths they replace (``streamseg.accel``). Both must give what the test expects."""
    from streamseg import accel

    if request.param == "numpy":
        monkeypatch.setattr(accel, "kernels", lambda: None)
    else:
        assert accel.kernels() is not None, "numba is a dev dependency: the kernels must load"
    return str(request.param)


# ---------------------------------------------------------------------------- video files


@dataclass(frozen=True)
class VideoClip:
    """A clip written by ``h264_file``.

    Attributes:
        path: the file.
        frames: number of frames written.
        fps: frame rate (frame i has pts i / fps).
        width, height: frame size in pixels.
        gop: keyframe interval in frames.
    """

    path: Path
    frames: int
    fps: int
    width: int
    height: int
    gop: int

    def marker_x(self, index: int) -> int:
        """Left edge of the marker square in frame ``index``."""
        span = self.width - MARKER_X0 - MARKER_W
        return MARKER_X0 + (MARKER_STEP * index) % span

    def index_of(self, image: npt.NDArray[np.uint8]) -> int:
        """Recover the frame index from a decoded BGR image (exact while the marker does not
        wrap, which holds for clips shorter than ``(width - 16) / 2`` frames)."""
        band = image[MARKER_ROWS[0] : MARKER_ROWS[1]].astype(np.float32).mean(axis=(0, 2))
        bright = np.flatnonzero(band > 128)
        if bright.size == 0:
            raise AssertionError("no marker square found in the image")
        return round((int(bright[0]) - MARKER_X0) / MARKER_STEP)


def render_marker_frame(index: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The BGR image of frame ``index``: dark background, white square at ``marker_x``."""
    image = np.full((height, width, 3), 16, dtype=np.uint8)
    span = width - MARKER_X0 - MARKER_W
    x = MARKER_X0 + (MARKER_STEP * index) % span
    image[MARKER_ROWS[0] : MARKER_ROWS[1], x : x + MARKER_W] = 255
    return image


def write_h264(
    path: Path, frames: int = 48, fps: int = 24, width: int = 160, height: int = 120, gop: int = 12
) -> VideoClip:
    """Encode a marker clip with libx264 (mp4/mkv by suffix, raw Annex-B for ``.h264``)."""
    container = av.open(str(path), "w", format="h264" if path.suffix == ".h264" else None)
    try:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                render_marker_frame(i, width, height), format="bgr24"
            )
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return VideoClip(path, frames, fps, width, height, gop)


@pytest.fixture
def h264_file(tmp_path: Path) -> Callable[..., VideoClip]:
    """Factory: ``h264_file(name="clip.mp4", frames=48, fps=24, width=160, height=120, gop=12)``
    writes a marker clip into the test's tmp dir and returns a :class:`VideoClip`."""

    def make(name: str = "clip.mp4", **kwargs: int) -> VideoClip:
        return write_h264(tmp_path / name, **kwargs)

    return make


# ---------------------------------------------------------------------------- RTSP server


def check_rtsp_server_deps() -> None:
    """Fail (not skip) with the Debian packages to install when gst-rtsp-server is missing."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); "
        "gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.fail(f"{SYSTEM_PYTHON} not found; install python3-gi ({RTSP_DEBIAN_PACKAGES})")
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        missing = (
            "python3-gi"
            if "No module named 'gi'" in result.stderr
            else "gir1.2-gst-rtsp-server-1.0"
        )
        pytest.fail(
            f"the RTSP integration tests need GStreamer's RTSP server for {SYSTEM_PYTHON}: "
            f"install the Debian package {missing} (all of: {RTSP_DEBIAN_PACKAGES}). "
            f"Probe said: {result.stderr.strip()[-300:]}"
        )


@dataclass
class RtspServer:
    """One ``tests/helpers/rtsp_server.py`` process (restartable on the same port)."""

    port: int
    path: str
    extra_args: list[str]
    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @property
    def url(self) -> str:
        """``rtsp://127.0.0.1:PORT/PATH``."""
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def url_with_credentials(self, user: str, password: str) -> str:
        """The URL with ``user:password@`` (checked only by a server started with
        ``credentials``)."""
        return f"rtsp://{user}:{password}@127.0.0.1:{self.port}{self.path}"

    def wait_for(self, prefix: str, timeout: float) -> str:
        """Wait for a stdout line starting with ``prefix``; fail the test on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"RTSP helper printed no {prefix!r} line within {timeout} s")
            try:
                line = self.lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    pytest.fail(f"RTSP helper exited with {self.proc.returncode} before {prefix!r}")
                continue
            if line.startswith(prefix):
                return line
            if line.startswith("ERROR"):
                pytest.fail(f"RTSP helper: {line}")

    def kill(self) -> None:
        """SIGKILL the server (no RTSP teardown), as when a camera loses power."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start a fresh server process on the same port and path."""
        self.kill()
        self.proc, self.lines = _spawn_rtsp_helper(self.port, self.path, self.extra_args)
        self.wait_for("READY", timeout=20)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _spawn_rtsp_helper(
    port: int, path: str, extra_args: list[str]
) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    cmd = [
        SYSTEM_PYTHON,
        str(HELPERS / "rtsp_server.py"),
        "--port",
        str(port),
        "--path",
        path,
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())

    threading.Thread(target=drain, name="rtsp-helper-stdout", daemon=True).start()
    return proc, lines


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., RtspServer]]:
    """Factory: ``rtsp_server(path="/test", width=160, height=120, fps=25, freeze_after=None,
    credentials=None)`` (``"user:password"``: basic authentication required)
    starts a GStreamer RTSP server on 127.0.0.1 and a free port, waits for it to listen and
    returns an :class:`RtspServer`. Servers are stopped at teardown."""
    check_rtsp_server_deps()
    started: list[RtspServer] = []

    def start(
        path: str = "/test",
        width: int = 160,
        height: int = 120,
        fps: int = 25,
        freeze_after: float | None = None,
        credentials: str | None = None,
    ) -> RtspServer:
        extra = ["--width", str(width), "--height", str(height), "--fps", str(fps)]
        if freeze_after is not None:
            extra += ["--freeze-after", str(freeze_after)]
        if credentials is not None:
            extra += ["--credentials", credentials]
        proc, lines = _spawn_rtsp_helper(0, path, extra)
        server = RtspServer(port=0, path=path, extra_args=extra, proc=proc, lines=lines)
        started.append(server)
        server.port = int(server.wait_for("READY", timeout=20).split()[1])
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent_tcp_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never answers; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_forever() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=accept_forever, name="silent-tcp", daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()


# ---------------------------------------------------------------------------- MQTT broker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Factory: ``mosquitto(persistence=True, users=None, websockets_port=None, tls=None)``
    starts ``/usr/sbin/mosquitto`` on 127.0.0.1 and a free port (see ``helpers/mosquitto.py``;
    ``stop()`` / ``start()`` / ``restart()`` keep the port). Brokers are stopped at teardown."""
    if not os.path.exists(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} not found: {MOSQUITTO_INSTALL_HINT}")
    started: list[Mosquitto] = []

    def start(**options: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto{len(started)}", **options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.kill()
