"""The web page (``/ui``) and the API docs (``/docs``), served by the router from files in packages.

No separate web server and no CDN: the page is static files in ``orchestrator/serving/web`` (plain ES modules, no
build step, two small vendored libraries) and the docs page loads Swagger UI from the ``fastapi-offline`` wheel,
so both work on a cluster with no way out. FastAPI's own ``/docs`` and ``/redoc`` load their scripts from a public
CDN and are switched off in :func:`orchestrator.serving.api.app.create_api`; ReDoc is not offered (its bundle
fetches its logo from a CDN even when served locally), ``/docs`` and ``/openapi.json`` cover the same ground.

Everything here works under any route prefix (``serve run`` with ``route_prefix: /ocr``): URLs are built from the
request's ``root_path``. The page holds no data and needs no API key; the ``/v1`` calls it makes carry the key the
person types in. The page gets a strict Content-Security-Policy: OCR output comes from untrusted documents and is
rendered as HTML (sanitised in the browser as well), so no inline script or remote resource may run even if
something slipped through.
"""

from __future__ import annotations

import html
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from shared.errors import OCRError

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
"""``orchestrator/serving/web``: index.html, style.css, js/, vendor/ (package data)."""
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
"""Swagger UI's bundle as shipped in the ``fastapi-offline`` wheel."""
DOCS_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"})

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
"""What the page's files are served as (ES modules must be a JavaScript type); nothing else is served."""

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ROOT_PLACEHOLDER = "{{ROOT}}"

router = APIRouter(include_in_schema=False)


def root_path(request: Request) -> str:
    """The prefix the app is mounted under ('' at the root of the host), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    """The service's address opens the web page."""
    return RedirectResponse(f"{root_path(request)}/ui/", status_code=307)


@router.get("/ui")
async def ui_slash(request: Request) -> RedirectResponse:
    """``/ui`` → ``/ui/``, so the page's relative module imports resolve under it."""
    return RedirectResponse(f"{root_path(request)}/ui/", status_code=307)


@lru_cache(maxsize=1)
def _index_html() -> str:
    return (WEB_DIR / "index.html").read_text(encoding="utf-8")


@router.get("/ui/")
async def ui_page(request: Request) -> HTMLResponse:
    """The page, told where the API is (the app's prefix) through a placeholder in ``index.html``."""
    page = _index_html().replace(ROOT_PLACEHOLDER, html.escape(root_path(request), quote=True))
    return HTMLResponse(page, headers=_page_headers())


@router.get("/ui/{path:path}")
async def ui_file(path: str) -> Response:
    """A file of the page (scripts, styles, vendored libraries and their licences)."""
    target = (WEB_DIR / path).resolve()
    media_type = MEDIA_TYPES.get(target.suffix)
    if media_type is None or not target.is_relative_to(WEB_DIR) or not target.is_file():
        raise OCRError("not_found", f"no file {path!r} in the web page", accepted="/ui/")
    return FileResponse(target, media_type=media_type, headers={**_page_headers(), "Cache-Control": "no-cache"})


def _page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from local assets (FastAPI's default page loads it from a CDN: blank on an offline cluster)."""
    root = root_path(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    """One of Swagger UI's files (a fixed list: nothing else of the package is served)."""
    if name not in DOCS_FILES:
        raise OCRError("not_found", f"no docs asset {name!r}", accepted=sorted(DOCS_FILES))
    return FileResponse(DOCS_ASSETS / name, headers={"Cache-Control": "public, max-age=86400"})
