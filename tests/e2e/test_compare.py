"""Side-by-side comparison over real HTTP, and accuracy runs with reports, resume and diff."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from orchestrator.evaluation.report import diff_runs
from orchestrator.evaluation.run import RESULTS, run_accuracy
from orchestrator.ops import samples
from shared.agreement import disagreements
from shared.schema import CompareResponse
from tests.conftest import dev_file

pytestmark = pytest.mark.cluster


def test_compare_runs_backends_concurrently_and_scores_agreement(rapidocr_url):
    image, _ = samples.two_column_page()
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        r = client.post(
            "/v1/compare",
            files={"file": ("page.png", samples.encode(image))},
            data={"backends": "rapidocr,rapidocr-default,fake", "options": json.dumps({"fake": {"fail": True}})},
        )
    assert r.status_code == 200, r.text
    cmp = CompareResponse.model_validate(r.json())
    entries = {e.backend: e for e in cmp.entries}
    assert [e.backend for e in cmp.entries] == ["rapidocr", "rapidocr-default", "fake"]
    assert entries["rapidocr"].ok and entries["rapidocr-default"].ok
    assert not entries["fake"].ok and entries["fake"].error.code == "internal_error"  # failed alone
    assert all(e.seconds > 0 for e in cmp.entries)
    (pair,) = cmp.agreement  # only the two that answered
    assert {pair.a, pair.b} == {"rapidocr", "rapidocr-default"}
    assert pair.agreement >= 0.95 and pair.ned == pytest.approx(1 - pair.agreement)
    assert entries["rapidocr"].result.pages[0].boxes_image is None  # off by default in comparisons


def test_compare_matches_blocks_and_flags_the_one_that_differs(rapidocr_url):
    """Two backends that read the page identically but for one block: that block, and only it, is flagged."""
    image, _ = samples.one_column_page()
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        r = client.post(
            "/v1/compare", files={"file": ("p.png", samples.encode(image))}, data={"backends": "truth,edited"}
        )
    assert r.status_code == 200, r.text
    (page,) = CompareResponse.model_validate(r.json()).pages
    scores = {(m.a, m.b, m.a_index, m.b_index): m.agreement for m in page.matches}
    assert scores[("truth", "edited", 0, 0)] == 1.0 and scores[("truth", "edited", 1, 1)] == 1.0
    assert scores[("truth", "edited", 2, 2)] < 0.5
    assert page.unmatched == {"truth": [], "edited": []}
    assert disagreements(page, "edited") == [2]


def test_compare_of_real_engines_matches_their_blocks(rapidocr_url):
    """Two RapidOCR settings on a generated page: most blocks matched, and matched text mostly agreeing."""
    image, _ = samples.two_column_page()
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        r = client.post(
            "/v1/compare",
            files={"file": ("p.png", samples.encode(image))},
            data={"backends": "rapidocr,rapidocr-default"},
        )
    cmp = CompareResponse.model_validate(r.json())
    (page,) = cmp.pages
    blocks = {e.backend: len(e.result.pages[0].blocks) for e in cmp.entries}
    assert len(page.matches) >= 0.7 * min(blocks.values())
    assert sum(m.agreement for m in page.matches) / len(page.matches) >= 0.9


def test_compare_refuses_unknown_backends(rapidocr_url):
    with httpx.Client(base_url=rapidocr_url, timeout=60) as client:
        r = client.post(
            "/v1/compare",
            files={"file": ("p.png", samples.encode(samples.one_column_page()[0]))},
            data={"backends": "rapidocr,ghost"},
        )
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_backend"


def _generated_manifest(tmp_path):
    lines = []
    for i, make in enumerate((samples.one_column_page, samples.two_column_page)):
        image, truth = make()
        (tmp_path / f"doc{i}.png").write_bytes(samples.encode(image))
        (tmp_path / f"doc{i}.txt").write_text(truth)
        lines.append(
            json.dumps({"id": f"doc{i}", "file": f"doc{i}.png", "truth": f"doc{i}.txt", "truth_format": "text"})
        )
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_accuracy_run_writes_reports_resumes_and_diffs(rapidocr_url, tmp_path):
    manifest = _generated_manifest(tmp_path)
    out = tmp_path / "run"
    report = run_accuracy(manifest, url=rapidocr_url, backends=["rapidocr", "fake"], out=out)
    rows = [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]
    assert len(rows) == 4 and all(r["ok"] for r in rows)
    rapid = report.backends["rapidocr"]
    assert rapid.ned_mean <= 0.02 and rapid.failures == 0 and rapid.pages_per_s > 0
    assert report.backends["fake"].ned_mean > 0.5  # the stand-in reads nothing of the page
    for name in ("run.json", "report.json", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    run_info = json.loads((out / "run.json").read_text())
    assert set(run_info["documents"]) == {"doc0", "doc1"} and len(run_info["dataset_sha256"]) == 64
    assert run_info["backends"]["rapidocr"]["model"]["engine"] == "onnxruntime"
    page_html = (out / "report.html").read_text()
    assert "doc0" in page_html and "doc1" in page_html and 'src="docs/doc0/rapidocr.page-1.png"' in page_html
    assert (out / "docs" / "doc1" / "rapidocr.page-1.png").exists()

    # interrupted run: drop one finished pair, run again: only that pair is sent
    lines = (out / RESULTS).read_text().splitlines()
    (out / RESULTS).write_text("\n".join(lines[:-1]) + "\n")
    run_accuracy(manifest, url=rapidocr_url, backends=["rapidocr", "fake"], out=out)
    again = (out / RESULTS).read_text().splitlines()
    assert len(again) == 4 and again[:3] == lines[:3]

    # a second run with a regression: the diff shows it
    other = tmp_path / "run2"
    shutil.copytree(out, other)
    broken = [json.loads(x) for x in (other / RESULTS).read_text().splitlines()]
    for r in broken:
        if r["backend"] == "rapidocr":
            r["ned"], r["distance"] = r["ned"] + 0.1, r["distance"] + 10
    (other / RESULTS).write_text("\n".join(json.dumps(r) for r in broken) + "\n")
    from orchestrator.evaluation.report import write_reports
    from orchestrator.evaluation.runfolder import read_manifest

    write_reports(other, read_manifest(manifest), ["rapidocr", "fake"])
    d = diff_runs(out, other)
    assert d["same_dataset"] and d["backends"]["rapidocr"]["ned_mean"]["delta"] == pytest.approx(0.1)
    assert d["backends"]["fake"]["ned_mean"]["delta"] == 0


def test_accuracy_run_over_the_dev_manifest(rapidocr_url, tmp_path):
    manifest = dev_file("manifest.jsonl")
    out = tmp_path / "dev-run"
    report = run_accuracy(manifest, url=rapidocr_url, backends=["rapidocr"], out=out, dpi=50, concurrency=2)
    rows = {r["doc"]: r for r in map(json.loads, (out / RESULTS).read_text().splitlines())}
    assert len(rows) == 7 and all(r["ok"] for r in rows.values())
    assert rows["phototest"]["ned"] <= 0.05 and rows["8071_093"]["ned"] <= 0.20
    assert report.backends["rapidocr"].documents == 7
    md = (out / "report.md").read_text()
    assert "| rapidocr |" in md


def test_accuracy_run_logged_to_mlflow_by_the_cli(rapidocr_url, tmp_path):
    """`ocrserve compare --mlflow-uri` logs params, metrics and the report; MLflow's own client reads them back."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from orchestrator.evaluation.runfolder import read_report
    from orchestrator.ops.cli import app

    manifest = _generated_manifest(tmp_path)
    out = tmp_path / "tracked"
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    args = ["compare", str(manifest), "--backends", "rapidocr,fake", "--url", rapidocr_url, "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--mlflow-uri", uri])
    assert result.exit_code == 0, result.output
    report = read_report(out)

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ocrserve-accuracy").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id in result.output
    params, metrics = run.data.params, run.data.metrics
    assert params["backends"] == "rapidocr,fake" and params["documents"] == "2"
    assert params["dataset_sha256"] == json.loads((out / "run.json").read_text())["dataset_sha256"]
    assert params["rapidocr.model_engine"] == "onnxruntime"
    assert metrics["rapidocr.ned_mean"] == pytest.approx(report.backends["rapidocr"].ned_mean)
    assert metrics["fake.failures"] == 0 and metrics["rapidocr.pages_per_s"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.json", "run.json"} <= artifacts


def test_accuracy_run_scores_tables_with_teds(rapidocr_url, tmp_path):
    """A reference with a table: the run scores it with TEDS (RapidOCR reads generated tables as HTML)."""
    from benchmarks.support.layout_samples import report_page

    page = report_page()
    (tmp_path / "report.png").write_bytes(samples.encode(page.image))
    (tmp_path / "report.md").write_text(page.markdown)
    manifest = tmp_path / "manifest.jsonl"
    row = {"id": "report", "file": "report.png", "truth": "report.md", "truth_format": "markdown"}
    manifest.write_text(json.dumps(row) + "\n")
    report = run_accuracy(manifest, url=rapidocr_url, backends=["rapidocr", "fake"], out=tmp_path / "run")
    assert report.backends["rapidocr"].docs_with_tables == 1 and report.backends["rapidocr"].teds >= 0.9
    assert report.backends["fake"].teds == 0.0  # a reference table nobody read scores 0
    assert "TEDS" in (tmp_path / "run" / "report.md").read_text()
