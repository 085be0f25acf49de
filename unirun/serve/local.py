"""The one-process server: the Starlette app on uvicorn.

Concurrent requests run on the model's thread pool while the event loop keeps accepting;
SIGINT/SIGTERM stop accepting, let running requests finish (up to ``grace_s``), then close the
models.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from types import TracebackType

import uvicorn

from .app import make_app
from .handler import OIPHandler

__all__ = ["BackgroundServer", "bind", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``port=0`` picks a free one (read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, even before uvicorn has started
    except OSError:
        sock.close()
        raise
    return sock


def _config(
    handler: OIPHandler, grace_s: float, access_log: bool, log_level: str
) -> uvicorn.Config:
    return uvicorn.Config(
        make_app(handler),
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(grace_s),
        access_log=access_log,
        log_level=log_level,
        # The protocol answers with its own JSON; uvicorn's server header adds nothing.
        server_header=False,
    )


def serve(
    handler: OIPHandler,
    sock: socket.socket,
    *,
    grace_s: float = 10.0,
    access_log: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve until SIGINT/SIGTERM on an already bound socket (see :func:`bind`)."""
    uvicorn.Server(_config(handler, grace_s, access_log, log_level)).run(sockets=[sock])


class BackgroundServer:
    """The one-process server on a thread, for tests, benchmarks and notebooks::

    with BackgroundServer(OIPHandler.from_path("model.onnx")) as server:
        client = tritonclient.http.InferenceServerClient(server.address)

    ``port=0`` picks a free port (see :attr:`address`). Stopping the server closes the
    handler's models, as the command line does on shutdown.
    """

    def __init__(
        self,
        handler: OIPHandler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        grace_s: float = 5.0,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.handler = handler
        self._sock = bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(_config(handler, grace_s, False, "warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._start_timeout_s = start_timeout_s

    @property
    def address(self) -> str:
        """``host:port`` as tritonclient wants it (no scheme)."""
        return f"{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.address} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
