"""The operations HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

prometheus_client's ``start_http_server`` serves only ``/metrics``; orchestrators also probe
liveness and readiness, so one small :class:`http.server.ThreadingHTTPServer` serves all three on
the port of the ``metrics:`` section:

- ``/metrics``: the registry in the Prometheus text format.
- ``/healthz``: ``200`` while the process can answer (liveness).
- ``/readyz``: ``200`` when the readiness check passes (the pipeline: model loaded, sources
  started and not all of them down, :meth:`Pipeline.readiness`), else ``503``; both with a JSON
  body ``{"ready": bool, "reason": str}``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """The answer of a readiness check.

    Attributes:
        ready: whether the process should receive work (``/readyz`` answers 200).
        reason: a short operator-readable explanation (``"model not loaded"``, ``"ok"``).
    """

    ready: bool
    reason: str


ReadinessCheck = Callable[[], Readiness]
"""Called on every ``/readyz`` request, from a server thread; must be cheap and thread-safe."""


class _Handler(BaseHTTPRequestHandler):
    """Serves the three paths; the server carries the registry and the readiness check."""

    server: _OpsHTTPServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path == "/healthz":
            self._send_json(200, {"alive": True})
        elif path == "/readyz":
            try:
                readiness = self.server.readiness()
            except Exception as exc:  # a broken check must answer "not ready", not hang up
                logger.exception("readiness check failed")
                readiness = Readiness(False, f"readiness check failed: {exc}")
            status = 200 if readiness.ready else 503
            self._send_json(status, {"ready": readiness.ready, "reason": readiness.reason})
        else:
            hint = f"no such path {path!r}; expected /metrics, /healthz or /readyz"
            self._send_json(404, {"error": hint})

    def _send_json(self, status: int, body: dict[str, object]) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Probes hit these paths every few seconds: keep them out of the info log.
        logger.debug("%s " + format, self.address_string(), *args)


class _OpsHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, readiness: ReadinessCheck
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.readiness = readiness


class OpsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread.

    Args:
        registry: the Prometheus registry ``/metrics`` exposes.
        readiness: the check behind ``/readyz``.
        host: address to bind.
        port: TCP port to bind; ``0`` picks a free one (see :attr:`port`).

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """

    def __init__(
        self, registry: CollectorRegistry, readiness: ReadinessCheck, host: str, port: int
    ) -> None:
        self.host = host
        try:
            self._server = _OpsHTTPServer((host, port), registry, readiness)
        except OSError as exc:  # "[Errno 98] Address already in use" alone names no port
            raise OSError(
                exc.errno,
                f"metrics endpoint (metrics.host, metrics.port) {host}:{port}: {exc.strerror}",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="ops-http",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False
        logger.info("metrics on http://%s:%d/metrics (/healthz, /readyz)", host, self.port)

    @property
    def port(self) -> int:
        """The bound TCP port (the one the OS picked when ``port=0`` was asked)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
