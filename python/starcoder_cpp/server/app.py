"""The Starlette application: the three APIs' routes on one engine."""

from __future__ import annotations

import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from . import llamacpp, openai_api, tgi
from .state import ServerState

_STATIC = os.path.join(os.path.dirname(__file__), "static")


def create_app(state: ServerState) -> Starlette:
    routes: list = []
    tgi.setup(state, routes)
    openai_api.setup(state, routes)
    llamacpp.setup(state, routes)

    async def playground(request):
        # A static page (no data in it, no CDN); its requests carry the key.
        return FileResponse(os.path.join(_STATIC, "index.html"), media_type="text/html")

    routes.append(Route("/", playground, methods=["GET"]))

    async def not_found(request, exc):
        return JSONResponse({"error": {"code": 404, "message": f"no route {request.method} {request.url.path}",
                                       "type": "not_found_error"}}, status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state.engine.start()
        try:
            yield
        finally:
            state.engine.stop()

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
