"""The API key on every route, and exception text kept out of 500 answers, over real HTTP.

The routes come from the app's own route table (the FastAPI app every router replica serves), so a route added
without the key check fails here by itself. The routes that must stay open are one reviewed list, each with why.
Runs against the ``strict`` app (API key, ``debug_errors`` off) and the ``signals`` app (``debug_errors`` on).
"""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route

from orchestrator.ops import samples
from orchestrator.serving.api import create_api
from shared.schema import ErrorResponse
from tests.conftest import STRICT_KEY

pytestmark = pytest.mark.cluster

OPEN_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: Kubernetes and load balancers call it without credentials",
    ("GET", "/readyz"): "readiness probe, likewise",
    ("GET", "/"): "redirects to the web page",
    ("GET", "/ui"): "redirects to the web page",
    ("GET", "/ui/"): "the web page: holds no data; its own /v1 calls carry the key the person types in",
    ("GET", "/ui/{path:path}"): "the web page's static files (scripts, styles, vendored libraries)",
    ("GET", "/docs"): "the API docs page (Swagger UI)",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI's helper page",
    ("GET", "/docs/assets/{name}"): "Swagger UI's static files",
    ("GET", "/openapi.json"): "the API description the docs page reads",
}
"""Every route that answers without ``x-api-key``: reviewed like code. Anything else must refuse with 401."""

OPENAI_ROUTES = {("POST", "/v1/chat/completions"), ("GET", "/v1/models")}
"""Routes that answer in OpenAI's error shape (``{"error": {"message", "type", "param", "code"}}``)."""

PATH_PARAMS = {"job_id": "0" * 32, "path": "style.css", "name": "swagger-ui.css"}
"""Values for path parameters (the key is checked before any of them is looked at)."""


def route_table() -> list[tuple[str, str]]:
    """(method, path) of every route of the router's HTTP app (HEAD is GET's twin)."""
    app = create_api(object())  # the routes do not touch the router until a request comes
    table = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    return sorted(table)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_PARAMS.get(m.group(1), "x"), path)


def call(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, base + concrete(path), headers=headers, timeout=60, follow_redirects=False)


def test_the_route_table_is_the_one_served(strict_url):
    """The table the next test walks is the deployed app's: its documented routes are exactly the served ones."""
    served = set(httpx.get(f"{strict_url}/openapi.json", timeout=60).json()["paths"])
    documented = {path for _, path in route_table() if path.startswith("/v1/") or path in ("/healthz", "/readyz")}
    assert served == documented
    assert set(OPEN_ROUTES) <= set(route_table()), "an open route that no longer exists: update OPEN_ROUTES"


@pytest.mark.parametrize(("method", "path"), route_table(), ids=lambda v: v)
def test_every_route_checks_the_api_key_unless_it_is_on_the_open_list(strict_url, method, path):
    anonymous = call(strict_url, method, path)
    wrong = call(strict_url, method, path, {"x-api-key": STRICT_KEY + "-not"})
    right = call(strict_url, method, path, {"x-api-key": STRICT_KEY})
    bearer = call(strict_url, method, path, {"authorization": f"Bearer {STRICT_KEY}"})  # as OpenAI clients send it
    assert right.status_code != 401, right.text[:300]  # the key is what it checks, not a blanket refusal
    assert bearer.status_code != 401, bearer.text[:300]
    if (method, path) in OPEN_ROUTES:
        assert anonymous.status_code in (200, 307, 503), (anonymous.status_code, anonymous.text[:300])
        return
    wrong_bearer = call(strict_url, method, path, {"authorization": f"Bearer {STRICT_KEY}-not"})
    for refused in (anonymous, wrong, wrong_bearer):
        assert refused.status_code == 401, (refused.status_code, refused.text[:300])
        if (method, path) in OPENAI_ROUTES:
            body = refused.json()["error"]
            assert body["code"] == "unauthorized" and body["type"] == "authentication_error"
            continue
        error = ErrorResponse.model_validate(refused.json()).error
        assert error.code == "unauthorized" and error.accepted == ["x-api-key", "authorization"]


LEAKS = ("fake engine failure", "RuntimeError", "Traceback", 'File "', ".py")
"""What exception text looks like: the fake engine's message, the exception's type, a traceback, source paths."""


def test_a_500_answer_hides_the_exception_unless_debug_errors_is_on(strict_url, signals_url):
    key = {"x-api-key": STRICT_KEY}
    png = samples.encode(samples.one_column_page(width=400)[0])
    form = {"backend": "steady", "options": '{"fail": true}'}
    hidden = httpx.post(f"{strict_url}/v1/ocr", files={"file": ("p.png", png)}, data=form, headers=key, timeout=60)
    assert hidden.status_code == 500
    error = ErrorResponse.model_validate(hidden.json())
    assert error.error.code == "internal_error"
    assert error.error.message == f"internal error; quote request id {error.request_id}"
    assert not [leak for leak in LEAKS if leak in hidden.text], hidden.text
    # one backend failing inside a comparison: its column says so, still without the exception's text
    compared = httpx.post(
        f"{strict_url}/v1/compare",
        files={"file": ("p.png", png)},
        data={"backends": "steady,rapidocr", "options": '{"steady": {"fail": true}}'},
        headers=key,
        timeout=120,
    )
    assert compared.status_code == 200
    failed = {e["backend"]: e for e in compared.json()["entries"]}["steady"]
    assert failed["ok"] is False and failed["error"]["code"] == "internal_error"
    assert "fake engine failure" not in compared.text and "Traceback" not in compared.text

    shown = httpx.post(
        f"{signals_url}/v1/ocr",
        files={"file": ("p.png", png)},
        data={"backend": "fake", "options": '{"fail": true}'},
        timeout=60,
    )
    assert shown.status_code == 500  # the signals app runs with debug_errors: true
    message = ErrorResponse.model_validate(shown.json()).error.message
    assert "fake engine failure" in message and "RuntimeError" in message
