"""What the router tells operators, over real HTTP and Ray's Prometheus endpoint: shadow reads that never delay the
client (proven by order, not by time), every ``ocrserve_*`` metric present and moving, and the Prometheus alert
rules valid and firing on the series the service really exports.

Runs against the ``signals`` app (tests/conftest.py): fake engines wired so that each signal happens on demand.
The DeepSeek-only metrics (tokens, compression, extractions) move in ``test_deepseek_vllm_http.py``, where the
tiny vLLM engine answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from orchestrator.ops import samples
from tests.conftest import METRICS_PORT, REPO, SIGNALS_APP
from tests.support.signals import Gate, Scrape, scrape, until, wait_for_total

pytestmark = pytest.mark.cluster

PNG = samples.encode(samples.one_column_page(width=400)[0])
ALERT_RULES = REPO / "deploy" / "prometheus" / "ocrserve-alerts.yaml"
DEEPSEEK_ONLY = {
    "ocrserve_extractions_total",
    "ocrserve_vision_tokens_total",
    "ocrserve_output_tokens_total",
    "ocrserve_compression_ratio",
}
"""Metrics only an engine with tokens (DeepSeek) moves: tests/e2e/test_deepseek_vllm_http.py checks them."""


@pytest.fixture(scope="module")
def client(signals_url):
    with httpx.Client(base_url=signals_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def gate(signals_url, signals_gates) -> Gate:
    """The gate the shadow backend 'twin' holds every read behind."""
    return Gate(signals_gates, "shadow")


def ocr(client: httpx.Client, backend: str, **options) -> httpx.Response:
    return client.post(
        "/v1/ocr", files={"file": ("p.png", PNG)}, data={"backend": backend, "options": json.dumps(options)}
    )


def app_total(name: str, **labels: str) -> float:
    return scrape(METRICS_PORT).total(f"ray_{name}", application=SIGNALS_APP, **labels)


def wait_app_total(name: str, minimum: float, **labels: str) -> float:
    return wait_for_total(METRICS_PORT, f"ray_{name}", minimum, application=SIGNALS_APP, **labels)


def router_metric_names() -> dict[str, str]:
    """Every metric the router defines, name -> counter|histogram, read from RouterMetrics itself: a metric added
    there without a test here fails ``test_every_router_metric_is_exported_and_moves``."""
    import ray.serve.metrics

    from orchestrator.serving.telemetry import RouterMetrics

    defined: dict[str, str] = {}

    class Recording:
        def __init__(self, kind: str):
            self.kind = kind

        def __call__(self, name, **_):
            defined[name] = self.kind
            return object()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray.serve.metrics, "Counter", Recording("counter"))
        mp.setattr(ray.serve.metrics, "Histogram", Recording("histogram"))
        assert RouterMetrics().enabled
    return defined


def test_shadow_reads_export_agreement_and_the_client_never_waits_for_them(client, gate):
    """Every read of the shadow backend is held at a gate the test opens only after the client has all its
    answers: had any answer waited for its shadow, it could not have come back. Then the shadow reads finish and
    their agreement is exported."""
    pair = {"primary": "fake", "shadow": "twin"}
    before = {o: app_total("ocrserve_shadow_requests_total", outcome=o, **pair) for o in ("sent", "dropped", "ok")}
    assert not gate.is_open()
    answers = [ocr(client, "fake") for _ in range(3)]
    assert [(r.status_code, r.json()["backend"]) for r in answers] == [(200, "fake")] * 3
    # ...answered while the gate is still shut; the shadow reads of the first two are waiting at it, and the third
    # was dropped (max_in_flight 2): a client that waited for its shadow would still be waiting
    assert until(lambda: gate.waiting() == 2, "two shadow reads waiting at the gate")
    sent = wait_app_total("ocrserve_shadow_requests_total", before["sent"] + 2, outcome="sent", **pair)
    dropped = wait_app_total("ocrserve_shadow_requests_total", before["dropped"] + 1, outcome="dropped", **pair)
    assert (sent - before["sent"], dropped - before["dropped"]) == (2, 1)  # every answer accounted for
    assert app_total("ocrserve_shadow_requests_total", outcome="ok", **pair) == before["ok"]  # none finished

    gate.open()
    assert wait_app_total("ocrserve_shadow_requests_total", before["ok"] + 2, outcome="ok", **pair) == before["ok"] + 2
    assert until(lambda: gate.waiting() == 0, "the shadow reads left the gate")
    agreement = until(
        lambda: scrape(METRICS_PORT).series("ray_ocrserve_shadow_agreement_count", application=SIGNALS_APP, **pair),
        "shadow agreement exported",
    )
    [series] = agreement
    assert series.labels["primary_model"] == "fake@0" and series.labels["shadow_model"] == "fake@0"
    total = app_total("ocrserve_shadow_agreement_sum", **pair)
    # two fakes read the same page identically (Ray exports the sum from bucket midpoints: 0.9975 for 1.0)
    assert series.value >= 2 and total / series.value == pytest.approx(1.0, abs=0.003)


def test_every_router_metric_is_exported_and_moves(client, gate):
    """Each metric RouterMetrics defines is in the scrape, and grows when the traffic it counts happens."""
    defined = router_metric_names()
    checked_here = set(defined) - DEEPSEEK_ONLY
    assert DEEPSEEK_ONLY <= set(defined) and len(checked_here) >= 8

    def values() -> dict[str, float]:
        """Every checked metric's total from one scrape (a scrape of Ray's endpoint is the slow part)."""
        scraped = scrape(METRICS_PORT)
        return {
            name: scraped.total(
                f"ray_{name}" if defined[name] == "counter" else f"ray_{name}_count", application=SIGNALS_APP
            )
            for name in checked_here
        }

    before = values()
    gate.open()  # shadow reads may finish (the previous test opened it too, unless run alone)
    assert ocr(client, "fake", sleep_s=0.2).status_code == 200  # engine time enough to charge some compute
    assert client.post("/v1/ocr", files={"file": ("p.png", b"")}, data={"backend": "fake"}).status_code == 400
    kept, escalated = ocr(client, "keeps"), ocr(client, "escalates")
    assert [p["backend"] for p in kept.json()["pages"]] == ["fake"] and kept.json()["escalations"] == []
    assert escalated.json()["escalations"][0]["rules"] == ["first_failed"]

    def still_flat() -> list[str]:
        now = values()
        return sorted(name for name in checked_here if now[name] <= before[name])

    until(lambda: not still_flat(), "every router metric moved")
    text = scrape(METRICS_PORT).text
    for name in checked_here:
        assert f"# TYPE ray_{name} {defined[name]}" in text  # exported with the type it was defined with


def _alert_series(scraped: Scrape, name: str, values: str, **labels: str) -> list[dict[str, str]]:
    """Input series of a promtool test: every scraped series of ``name`` with ``labels`` (its real label set, as
    Prometheus would store it), each given the history ``values``."""
    found = scraped.series(name, application=SIGNALS_APP, **labels)
    assert found, f"{name}{labels} not in the scrape"
    return [
        {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}", "values": values}
        for s in found
    ]


def test_alert_rules_are_valid_and_fire_on_the_series_the_service_exports(client, gate, tmp_path):
    """``promtool check rules``, then ``promtool test rules`` over the label sets of a real scrape of this app.

    Why promtool's unit tests rather than a Prometheus server scraping the test cluster: the rules look at 15
    minutes, an hour and a day of history and wait 5-30 minutes (``for``) before firing, so a server running for
    a test's minute evaluates every one of them to nothing. promtool runs the same rules on Prometheus' own
    evaluator over synthetic time, with the series names and label sets the service really exports: a rule that
    names a metric or label the service does not have never fires, and the test fails.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: run scripts/apt-install.sh /usr/bin/promtool prometheus")
    check = subprocess.run([promtool, "check", "rules", str(ALERT_RULES)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 3 rules found" in check.stdout, check.stdout + check.stderr

    gate.open()
    assert ocr(client, "fake", fail=True).status_code == 500  # internal_error
    assert ocr(client, "keeps").status_code == 200 and ocr(client, "escalates").status_code == 200
    assert ocr(client, "fake").status_code == 200  # a shadow read, agreement exported
    need = [
        ("ray_ocrserve_requests_total", {"code": "internal_error", "backend": "fake"}),
        ("ray_ocrserve_cascade_pages_total", {"policy": "escalates", "outcome": "escalated"}),
        ("ray_ocrserve_cascade_pages_total", {"policy": "keeps", "outcome": "kept"}),
        ("ray_ocrserve_shadow_agreement_count", {"primary": "fake", "shadow": "twin"}),
    ]

    def with_every_series() -> Scrape | None:
        s = scrape(METRICS_PORT)
        return s if all(s.series(name, application=SIGNALS_APP, **labels) for name, labels in need) else None

    scraped = until(with_every_series, "the series the alert rules read")
    pair = {"primary": "fake", "shadow": "twin"}
    tests = {
        "rule_files": [str(ALERT_RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {  # a 500 in the last 10 minutes fires at once; requests that succeeded never do
                "interval": "1m",
                "input_series": _alert_series(
                    scraped, "ray_ocrserve_requests_total", "0x20 1+1x10", code="internal_error"
                )
                + _alert_series(scraped, "ray_ocrserve_requests_total", "0+5x30", code="ok"),
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": "OCRServerErrors", "exp_alerts": []},
                    {
                        "eval_time": "25m",
                        "alertname": "OCRServerErrors",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "backend": "fake"},
                                "exp_annotations": {"summary": "internal errors on fake"},
                            }
                        ],
                    },
                ],
            },
            {  # a cascade escalating every page (from minute 60) fires once that has lasted 30 minutes; one that
                # keeps its pages never does
                "interval": "1m",
                "input_series": _alert_series(
                    scraped, "ray_ocrserve_cascade_pages_total", "0x60 2+2x60", policy="escalates", outcome="escalated"
                )
                + _alert_series(scraped, "ray_ocrserve_cascade_pages_total", "0+2x120", policy="keeps", outcome="kept"),
                "alert_rule_test": [
                    {"eval_time": "80m", "alertname": "OCRCascadeEscalatesMostPages", "exp_alerts": []},
                    {
                        "eval_time": "100m",
                        "alertname": "OCRCascadeEscalatesMostPages",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "info", "policy": "escalates"},
                                "exp_annotations": {"summary": "cascade escalates escalates over 80 % of pages"},
                            }
                        ],
                    },
                ],
            },
            {  # a day of agreement 0.99, then half an hour at 0.5 (30 reads a minute): the pair is flagged
                "interval": "1m",
                "input_series": _alert_series(
                    scraped, "ray_ocrserve_shadow_agreement_count", "0+30x1440 43230+30x30", **pair
                )
                + _alert_series(scraped, "ray_ocrserve_shadow_agreement_sum", "0+29.7x1440 42783+15x30", **pair),
                "alert_rule_test": [
                    {"eval_time": "1440m", "alertname": "OCRBackendsDisagree", "exp_alerts": []},
                    {
                        "eval_time": "1470m",
                        "alertname": "OCRBackendsDisagree",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "primary": "fake", "shadow": "twin"},
                                "exp_annotations": {
                                    "summary": "fake and twin agree much less than yesterday",
                                    "description": "Mean text agreement of fake vs twin dropped by more than 0.15 "
                                    "against the previous day. Check which model version changed (primary_model / "
                                    "shadow_model labels).",
                                },
                            }
                        ],
                    },
                ],
            },
        ],
    }
    path = Path(tmp_path) / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr
