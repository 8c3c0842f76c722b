"""/docs (Swagger UI) and /redoc (ReDoc), served with their assets from this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (blank offline, and third-party code on
Chorus's origin) and start them with inline scripts. Here the assets come from the
`fastapi-offline` package (Swagger UI 5 and ReDoc 2, served at /static/docs/), Swagger UI is
started by /static/swagger-init.js, and ReDoc starts itself from its <redoc> element, so neither
page has inline script. Each page has its own Content-Security-Policy (below).

DOCS_ENABLED turns both pages and their assets off (404). The OpenAPI schema
(/api/v1/openapi.json) stays either way: it is the API's contract, which clients generate code
from, it runs nothing in a browser, and Chorus's source (and so its API) is public anyway.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.core.csp import policy

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/docs"

_COMMON = {
    "default-src": "'self'",
    "script-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Swagger UI needs nothing more than Chorus's pages. ReDoc injects <style> elements
# (styled-components) and runs its search in a worker made from a blob; the "API docs by
# Redocly" logo it loads from cdn.redoc.ly is blocked on purpose (ReDoc then hides it), so
# reading the docs tells no third party.
SWAGGER_POLICY = policy({**_COMMON, "style-src": "'self'"})
REDOC_POLICY = policy(
    {**_COMMON, "style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"}
)


def _page(title: str, head: str, body: str, csp: str) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{ASSETS_URL}/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Serve /docs, /redoc and their assets."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(
            f"{app.title} — API",
            f'<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">',
            f'<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>\n'
            f'<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>\n'
            '<script src="/static/swagger-init.js"></script>',
            SWAGGER_POLICY,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(
            f"{app.title} — API",
            "",
            f'<redoc spec-url="{openapi_url}"></redoc>\n'
            f'<script src="{ASSETS_URL}/redoc.standalone.js"></script>',
            REDOC_POLICY,
        )
