"""GET /api/public/openapi.json: the OpenAPI 3.1 description of the public endpoints.

The document is a static file shipped with the package (ingest/openapi.json), read once;
its `info.version` is set to the running version, so the two cannot drift apart.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson
from aiohttp import web

from health.version import VERSION

PATH = "/api/public/openapi.json"


def document() -> dict[str, Any]:
    doc = orjson.loads(files("ingest").joinpath("openapi.json").read_bytes())
    doc["info"]["version"] = VERSION
    return doc


_BODY = orjson.dumps(document())


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json", headers={"Cache-Control": "public, max-age=300"})
