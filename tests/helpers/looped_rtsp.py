"""RTSP cameras that loop pre-rendered pictures (synthetic scenes), killable and restartable.

``tests/helpers/rtsp_server.py --frames PATTERN`` plays raw I420 frame files in a loop, in real
time, as an H.264 RTSP stream (what ``bench/soak.py`` serves). This module writes those files
from BGR images (:func:`write_i420_frames`) and runs the server under Debian's
``/usr/bin/python3`` (:class:`LoopedRtspServer`), with ``kill()`` (SIGKILL, a camera losing
power), ``restart()`` (a fresh server on the same port and path), and ``freeze()`` /
``thaw()`` (SIGSTOP / SIGCONT: the server keeps its connections, and the kernel accepts new
ones, but it sends nothing: a hung camera).

The ``rtsp_server`` fixture in ``tests/conftest.py`` serves only the test pattern; rules need
scenes with objects in them to raise events, hence this helper.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

HELPERS = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


def write_i420_frames(images: Iterable[npt.NDArray[np.uint8]], out: Path) -> tuple[str, int]:
    """Write each BGR image as one raw I420 file ``out/%05d.i420``.

    Args:
        images: (H, W, 3) uint8 BGR pictures, all one even size.
        out: folder (created).

    Returns:
        ``(pattern, count)``: the ``printf`` pattern the server's ``--frames`` takes, and the
        number of files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, image in enumerate(images, start=1):
        yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        (out / f"{count - 1:05d}.i420").write_bytes(yuv.tobytes())
    return str(out / "%05d.i420"), count


class LoopedRtspServer:
    """One ``rtsp_server.py --frames`` process on 127.0.0.1, restartable on the same port.

    Args:
        frames: the ``printf`` pattern of :func:`write_i420_frames`.
        width, height, fps: size and rate of the frames.
        path: the RTSP mount path.

    Raises:
        RuntimeError: the server did not print ``READY`` within 20 s (a missing GStreamer
            package is named in the message).
    """

    def __init__(self, frames: str, width: int, height: int, fps: int, path: str = "/cam") -> None:
        self.path = path
        self.port = 0
        self._args = [
            "--path",
            path,
            "--width",
            str(width),
            "--height",
            str(height),
            "--fps",
            str(fps),
            "--frames",
            frames,
        ]
        self.proc, self._lines = self._spawn()
        self.port = int(self._wait_ready().split()[1])

    @property
    def url(self) -> str:
        """``rtsp://127.0.0.1:PORT/PATH``."""
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def kill(self) -> None:
        """SIGKILL the server (no RTSP teardown), as when a camera loses power."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open and new ones are accepted by the kernel,
        but nothing is sent any more (a hung camera)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: a frozen server goes on where it stopped."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """A fresh server on the same port and path (the old one is killed first)."""
        self.kill()
        self.proc, self._lines = self._spawn()
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers (idempotent; a frozen server is thawed first)."""
        if self.proc.poll() is None:
            self.thaw()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def _spawn(self) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
        cmd = [SYSTEM_PYTHON, str(HELPERS / "rtsp_server.py"), "--port", str(self.port)]
        proc = subprocess.Popen(
            [*cmd, *self._args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        lines: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert proc.stdout is not None
            with proc.stdout:  # closed at EOF, when the server has exited
                for line in proc.stdout:
                    lines.put(line.strip())

        threading.Thread(target=drain, name="looped-rtsp-stdout", daemon=True).start()
        return proc, lines

    def _wait_ready(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise RuntimeError(f"RTSP helper printed no READY line within {timeout} s")
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    raise RuntimeError(
                        f"RTSP helper exited with {self.proc.returncode} before READY "
                        "(needs python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer "
                        "base, good and ugly plugins)"
                    ) from None
                continue
            if line.startswith("READY"):
                return line
            if line.startswith("ERROR"):
                self.kill()
                raise RuntimeError(f"RTSP helper: {line}")
