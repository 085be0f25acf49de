"""Serving over the Open Inference Protocol v2 (the KServe/Triton REST protocol).

``unirun serve MODEL`` answers it from one process (Starlette on uvicorn, extra
``unirun[serve]``) or from Ray Serve replicas (``unirun[ray-serve]``); both put the same
:class:`OIPHandler` behind the same routes, so ``tritonclient``, KServe tooling and ``curl``
work unchanged. Importing this package imports no web framework and no Ray::

    from unirun.serve import OIPHandler
    from unirun.serve.local import BackgroundServer     # needs unirun[serve]

    with BackgroundServer(OIPHandler.from_path("model.onnx")) as server:
        ...  # tritonclient.http.InferenceServerClient(server.address)
"""

from __future__ import annotations

from .handler import DEFAULT_MAX_BODY, OIPHandler, Reply, ServedModel, load_models
from .protocol import ProtocolError

__all__ = ["DEFAULT_MAX_BODY", "OIPHandler", "ProtocolError", "Reply", "ServedModel", "load_models"]
