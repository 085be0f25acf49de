"""The ASGI application (Starlette) that puts an :class:`OIPHandler` on HTTP.

Used as is by the one-process server (uvicorn) and built inside each Ray Serve replica, so both
modes answer the same routes with the same handler. Every error, unknown routes and wrong
methods included, is the protocol's ``{"error": message}`` body.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .handler import OIPHandler, Reply, Runner, error_reply
from .protocol import ProtocolError

__all__ = ["make_app"]

log = logging.getLogger("unirun.serve")


def make_app(handler: OIPHandler, *, run: Runner | None = None, close: bool = True) -> Starlette:
    """An ASGI app answering the Open Inference Protocol v2 REST routes for ``handler``.

    ``run`` replaces how validated requests reach the model (Ray Serve batching); ``close``
    closes the handler's models when the app shuts down (graceful shutdown: the server first
    stops accepting connections and lets running requests finish)."""

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        if not handler.ready():
            return _reply(error_reply(503, "the server is shutting down"))
        return JSONResponse({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(handler.server_metadata())

    async def model_list(request: Request) -> Response:
        return JSONResponse({"models": list(handler.models)})

    async def repository_index(request: Request) -> Response:
        return JSONResponse(handler.repository_index())

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(_served(handler, request).metadata)

    async def model_ready(request: Request) -> Response:
        served = _served(handler, request)
        if not handler.ready():
            return _reply(error_reply(503, f"model {served.name!r} is shutting down"))
        return JSONResponse({"name": served.name, "ready": True})

    async def model_config(request: Request) -> Response:
        return JSONResponse(_served(handler, request).config)

    async def infer(request: Request) -> Response:
        body = await _read_body(request, handler.max_body_bytes)
        params = request.path_params
        reply = await handler.infer(
            params["name"], params.get("version"), body, request.headers, run
        )
        return _reply(reply)

    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/", server_metadata, methods=["GET"]),
        Route("/v2/models", model_list, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/config", model_config, methods=["GET"]),
            Route(f"{prefix}/infer", infer, methods=["POST"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close:
            handler.close()
            log.info("unirun serve: models closed, shutdown complete")

    return Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: _http_error,
            ProtocolError: _protocol_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )


def _served(handler: OIPHandler, request: Request) -> Any:
    return handler.model(request.path_params["name"], request.path_params.get("version"))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(
            f"the request body ({declared} bytes) is over the {limit}-byte limit", 413
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"the request body is over the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _reply(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    path = request.url.path
    messages = {404: f"no route {path}", 405: f"{request.method} is not allowed on {path}"}
    return _reply(error_reply(status, messages.get(status, str(getattr(exc, "detail", exc)))))


async def _protocol_error(request: Request, exc: Exception) -> Response:
    return _reply(error_reply(getattr(exc, "status", 400), str(exc)))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s", request.url.path, exc_info=exc)
    return _reply(error_reply(500, f"internal server error ({type(exc).__name__}); see the log"))
