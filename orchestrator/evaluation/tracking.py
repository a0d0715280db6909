"""Accuracy runs logged to MLflow, so runs over weeks can be compared, searched and plotted in one place.

A run folder already holds everything (``run.json``, ``report.json``, ``report.html``) and ``--diff`` compares two
of them without MLflow; this adds the experiment-tracking view teams already use. Logged per accuracy run:

- params: the backends, each one's engine, model id, version and device, the request options, the DPI, the
  dataset fingerprint and size, the code version;
- metrics: per backend ``<backend>.<figure>`` for every numeric figure of its :class:`BackendSummary` (NED, CER,
  WER, TEDS, latency, pages/s, failures, compute cost);
- artifacts: ``report.html``, ``report.md``, ``report.json`` and ``run.json``.

The client is MLflow's own ``MlflowClient`` with an explicit tracking URI (no process-wide state). The embedded
default is a local SQLite store under ``./mlruns`` (MLflow's recommended local backend; its plain-file store is in
maintenance mode); any tracking server URI works the same way. Needs the ``mlflow`` extra (``mlflow-skinny``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.evaluation.runfolder import REPORT, RUN, Report, RunInfo

EXPERIMENT = "ocrserve-accuracy"


def default_tracking_uri(base: Path | None = None) -> str:
    """``sqlite:///<base>/mlruns/mlflow.db`` (base: the working directory), created on first use."""
    root = (base or Path.cwd()) / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _client(tracking_uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise RuntimeError(f"MLflow logging needs the mlflow extra: pip install 'ocrserve[mlflow]' ({e})") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if tracking_uri.startswith("sqlite:///"):  # artifacts beside the database, not in whatever cwd a later run has
        artifacts = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifacts)


def run_params(info: RunInfo) -> dict[str, str]:
    """What the run was: backends and models, options, data, code (MLflow params are strings)."""
    params = {
        "backends": ",".join(info.backends),
        "dataset_sha256": info.dataset_sha256,
        "documents": str(len(info.documents)),
        "dpi": str(info.dpi),
        "options": json.dumps(info.options, sort_keys=True),
        "code_version": str(info.code.get("package")),
        "git_commit": str(info.code.get("git_commit")),
        "service_url": info.url,
    }
    for name, facts in info.backends.items():
        model = facts.get("model") or {}
        params[f"{name}.engine"] = str(facts.get("engine"))
        for key in ("id", "version", "engine", "device"):
            params[f"{name}.model_{key}"] = str(model.get(key))
    return params


def run_metrics(report: Report) -> dict[str, float]:
    """Every numeric figure of every backend's summary, as ``<backend>.<figure>``."""
    metrics: dict[str, float] = {}
    for name, summary in report.backends.items():
        for key, value in summary.model_dump().items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            metrics[f"{name}.{key}"] = float(value)
    return metrics


def log_to_mlflow(run_dir: Path, *, tracking_uri: str, experiment: str = EXPERIMENT) -> str:
    """Log the finished run in ``run_dir`` as one MLflow run; returns its run id.

    Raises:
        RuntimeError: MLflow is not installed.
        FileNotFoundError: ``run_dir`` has no ``run.json`` or ``report.json`` (the run did not finish).
    """
    from mlflow.entities import Metric, Param

    info = RunInfo.model_validate_json((run_dir / RUN).read_text())
    report = Report.model_validate_json((run_dir / REPORT).read_text())
    client = _client(tracking_uri)
    run = client.create_run(
        _experiment_id(client, experiment, tracking_uri),
        run_name=run_dir.name,
        tags={"ocrserve.run_dir": str(run_dir.resolve()), "ocrserve.started_at": info.started_at},
    )
    run_id = run.info.run_id
    now_ms = int(time.time() * 1000)
    try:
        client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in run_params(info).items()],
            metrics=[Metric(k, v, timestamp=now_ms, step=0) for k, v in run_metrics(report).items()],
        )
        for name in ("report.html", "report.md", REPORT, RUN):
            if (run_dir / name).exists():
                client.log_artifact(run_id, str(run_dir / name))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
