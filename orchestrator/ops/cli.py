"""``ocrserve``: start the service, OCR files against it, inspect it.

ocrserve serve                      # CPU profile on 127.0.0.1:8000, OCRs a sample, keeps serving
ocrserve serve --config serve_config.yaml
ocrserve ocr page.pdf --url http://127.0.0.1:8000 --backend rapidocr --out out/
ocrserve ocr report.pdf --chunks layout --chunk-tokens 512     # + out/report.chunks.jsonl for a retrieval index
ocrserve backends --url http://127.0.0.1:8000
ocrserve extract receipt.png --preset receipt --url http://127.0.0.1:8000
ocrserve compress-bench --url http://127.0.0.1:8000 --backends rapidocr
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.client import OCRClient, ServiceError, write_chunks, write_outputs
from shared.requests import ChunkingOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-backend OCR serving on Ray Serve.")
console = Console(stderr=True)

DEFAULT_URL = os.environ.get("OCRSERVE_URL", "http://127.0.0.1:8000")
API_KEY_VAR = "OCRSERVE_API_KEY"
"""The API key the client commands send (unless ``--api-key``), and ``serve``'s demo when the config has none."""


@contextmanager
def _reported_failures() -> Iterator[None]:
    """An error answer, or no answer at all (after the client's retries), as a line or two and exit status 1."""
    try:
        yield
    except ServiceError as e:
        console.print(f"[red]{e}[/]")
        if e.error.error.accepted is not None:
            console.print(f"accepted: {json.dumps(e.error.error.accepted)}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as e:
        console.print(f"[red]no answer from the service: {type(e).__name__}: {e}[/]")
        raise typer.Exit(1) from None


def _progress() -> Progress:
    """The progress bar every long command shows: what, bar, done/total, time."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


@app.command()
def serve(
    profile: Annotated[
        str, typer.Option(help="Bundled profile name (orchestrator/ops/profiles/) or production.")
    ] = "cpu",
    config: Annotated[Path | None, typer.Option(help="A Serve config file (overrides --profile).")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP host (default: the config's).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: the config's).")] = None,
    demo: Annotated[bool, typer.Option(help="OCR sample documents through HTTP once the service is up.")] = True,
    verbose: Annotated[bool, typer.Option(help="Stream every replica's log to this terminal.")] = False,
    once: Annotated[
        bool, typer.Option(help="Stop after the demo instead of serving on (exit status 1 if the demo failed).")
    ] = False,
    out: Annotated[Path, typer.Option(help="Where the demo writes its markdown, JSON and boxes PNGs.")] = Path("out"),
) -> None:
    """Start Ray and the service on this machine (no GPU needed for the CPU profile).

    The demo sends the config's ``router.api_key`` (else $OCRSERVE_API_KEY). Whatever happens in the demo, the
    service keeps serving: a failed demo is one line saying why (with ``--once``: exit status 1).
    """
    from orchestrator.ops import local

    path = config or local.profile_path(profile)
    cfg = local.load_config(path, host=host, port=port)
    console.print(f"[bold]Starting[/] {path} ...")
    t0 = time.monotonic()
    try:
        url = local.start(cfg, log_to_driver=verbose)
    except RuntimeError as e:
        console.print(f"[red]error:[/] {e}")
        local.stop()
        raise typer.Exit(2) from None
    console.print(f"[green]Serving[/] on {url} (started in {time.monotonic() - t0:.1f} s). API docs: {url}/docs")
    console.print(f"[bold]Web page:[/] {url}/ui/ (upload a document, pick backends, compare them side by side)")
    if not verbose:
        console.print("Replica logs: /tmp/ray/session_latest/logs/serve/ (or run with --verbose)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stop during the demo shuts down as cleanly as after
    demo_ok = True
    try:
        if demo:
            demo_ok = _demo_or_say_why(cfg, url, out)
        if once:
            raise typer.Exit(0 if demo_ok else 1)
        console.print("Press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("Shutting down ...")
        local.stop()


def _demo_or_say_why(cfg, url: str, out: Path) -> bool:
    """The demo against the application ``cfg`` serves at ``url``; False, after one line saying why, if it failed."""
    app_url, api_key = _demo_target(cfg, url)
    try:
        _demo(app_url, out, api_key=api_key)
    except Exception as e:  # any failure: the service it demonstrates stays up
        reason = str(e) if isinstance(e, ServiceError) else f"{type(e).__name__}: {e}"
        console.print(f"[yellow]demo failed:[/] {' '.join(reason.split())[:300]} (still serving on {app_url})")
        return False
    return True


def _demo_target(cfg, url: str) -> tuple[str, str | None]:
    """Where the config's application (the first built by our builder) answers, and the API key it wants: its
    ``router.api_key``, else $OCRSERVE_API_KEY (None: no key)."""
    from orchestrator.serving.config import AppArgs

    for app in cfg.applications:
        if app.import_path.startswith("orchestrator."):
            key = AppArgs.model_validate(app.args or {}).router.api_key
            prefix = (app.route_prefix or "/").rstrip("/")
            return url + prefix, key.get_secret_value() if key is not None else os.environ.get(API_KEY_VAR)
    return url, os.environ.get(API_KEY_VAR)


def _demo(url: str, out: Path, *, api_key: str | None = None) -> None:
    """OCR two generated documents (a two-column scan and a born-digital PDF) with every ready backend that reads
    them, through HTTP; print a table with NED against the known text and write the results."""
    from backends.textpdf import article_pages
    from orchestrator.ops.samples import PARAGRAPHS, encode, two_column_page
    from shared.metrics import ned

    image, scan_truth = two_column_page()
    titles = ["Serving OCR", "Comparing backends"]
    pdf = article_pages([PARAGRAPHS[:3], PARAGRAPHS[3:]], titles=titles)
    pdf_truth = "\n\n".join([titles[0], *PARAGRAPHS[:3], titles[1], *PARAGRAPHS[3:]])
    documents = [
        ("demo-scan.png", encode(image), "image/png", scan_truth),
        ("demo-digital.pdf", pdf, "application/pdf", pdf_truth),
    ]
    table = Table(title=f"Demo through {url}/v1/ocr: generated documents with known text")
    for col in ("document", "backend", "result", "pages", "seconds", "NED vs truth"):
        table.add_column(col)
    with OCRClient(url, api_key=api_key) as client:
        answer = client.backends()
        listing = answer.backends
        ready = {b.name for b in listing if b.status == "ready"}
        for name, data, media_type, truth in documents:
            readers = [b.name for b in listing if b.name in ready and media_type in b.media_types]
            # each cascade too, when both its backends are up: it picks per page which one reads it
            readers += [c.name for c in answer.cascades if {c.first, c.then} <= ready]
            for reader in readers:
                try:
                    result = client.ocr_bytes(data, name, backend=reader)
                except ServiceError as e:
                    table.add_row(name, reader, f"[yellow]{e.error.error.code}[/]", "-", "-", "-")
                    continue
                write_outputs(result, out, f"{Path(name).stem}-{reader}")
                ok = f"{ned(result.markdown, truth):.3f}"
                by = sorted({p.backend for p in result.pages if p.backend and p.backend != reader})
                label = f"{reader} ({', '.join(by)})" if by else reader
                table.add_row(name, label, "[green]ok[/]", str(len(result.pages)), f"{result.timings.total_s:.2f}", ok)
                if reader == listing[0].name:
                    typer.echo(f"--- {name} read by {reader} ---\n{result.markdown}\n")
    console.print(table)
    console.print(f"Markdown, JSON and boxes PNGs in {out}/; an error's reason is in its answer and GET /v1/backends.")


@app.command()
def ocr(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Document to OCR (PDF or image...).")],
    url: Annotated[str, typer.Option(help="Service base URL.")] = DEFAULT_URL,
    backend: Annotated[str, typer.Option(help="Backend name, or auto.")] = "auto",
    pages: Annotated[str | None, typer.Option(help="1-based page range, e.g. 1-3,7.")] = None,
    dpi: Annotated[float | None, typer.Option(help="PDF rasterisation DPI.")] = None,
    options: Annotated[str | None, typer.Option(help='Backend options as JSON, e.g. \'{"tier": "flash"}\'.')] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    boxes: Annotated[bool, typer.Option(help="Ask for boxes images.")] = True,
    raw: Annotated[bool, typer.Option(help="Ask for the backend's raw output.")] = False,
    chunk_pages: Annotated[int, typer.Option(min=1, help="Pages per request (progress is shown per chunk).")] = 4,
    job: Annotated[
        bool,
        typer.Option(
            "--job",
            help="Send it as one job (durable, fanned out over the backend's replicas; progress from its "
            "event stream) instead of one request per chunk.",
        ),
    ] = False,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_VAR, help="API key, when the service has one.")] = None,
    chunks: Annotated[
        str,
        typer.Option(help="Chunks for a retrieval index: none, layout (by section) or tokens (size + overlap)."),
    ] = "none",
    chunk_tokens: Annotated[int, typer.Option(help="Most tokens per chunk (overlap included).")] = 512,
    chunk_overlap: Annotated[int, typer.Option(help="tokens mode: tokens repeated from the previous chunk.")] = 0,
    tokenizer: Annotated[
        str, typer.Option(help="cl100k_base, o200k_base, or backend:<name> (that backend's model tokenizer).")
    ] = "cl100k_base",
) -> None:
    """OCR a file against a running service; writes markdown, JSON and a boxes PNG per page (and STEM.chunks.jsonl
    with --chunks)."""
    opts = json.loads(options) if options else None
    chunking = _chunking_options(chunks, chunk_tokens, chunk_overlap, tokenizer)
    with (
        OCRClient(url, api_key=api_key) as client,
        _progress() as bar,
    ):
        task = bar.add_task(f"{file.name} → {backend}", total=None)
        common: dict[str, Any] = dict(
            pages=pages, backend=backend, dpi=dpi, options=opts, include_boxes_image=boxes, include_raw=raw
        )
        progress = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        with _reported_failures():
            try:
                if job:
                    result = client.run_job(file.read_bytes(), file.name, progress=progress, **common)
                elif chunking.chunking == "none":
                    result = client.ocr_file(file, chunk_pages=chunk_pages, progress=progress, **common)
                else:
                    result = client.ocr_chunks(file, chunking, chunk_pages=chunk_pages, progress=progress, **common)
            except ValueError as e:
                console.print(f"[red]{e}[/]")
                raise typer.Exit(2) from None
    files = write_outputs(result, out, file.stem)
    if result.chunks is not None:
        files.append(write_chunks(result, out, file.stem))
        info = result.chunking
        console.print(
            f"{len(result.chunks)} chunk(s), {info.mode if info else '?'} mode, tokens by "
            f"{info.tokenizer if info else '?'}; {sum(c.oversize for c in result.chunks)} oversize table(s)"
        )
    console.print(
        f"[green]{len(result.pages)} page(s)[/] by [bold]{result.backend}[/] ({result.model.id}) in "
        f"{result.timings.total_s:.2f} s; wrote {len(files)} file(s) to {out}/"
    )
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    typer.echo(result.markdown)


def _chunking_options(mode: str, tokens: int, overlap: int, tokenizer: str) -> ChunkingOptions:
    """The --chunks options as the server's own model, or a usage error saying what is wrong."""
    from pydantic import ValidationError

    from shared.errors import validation_problems

    try:
        return ChunkingOptions.model_validate(
            {"chunking": mode, "chunk_tokens": tokens, "chunk_overlap": overlap, "tokenizer": tokenizer}
        )
    except ValidationError as e:
        raise typer.BadParameter(validation_problems(e), param_hint="--chunks/--chunk-tokens/--chunk-overlap") from None


@app.command()
def backends(
    url: Annotated[str, typer.Option(help="Service base URL.")] = DEFAULT_URL,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_VAR)] = None,
) -> None:
    """List the deployed backends with status, model and device."""
    with OCRClient(url, api_key=api_key) as client, _reported_failures():
        listing = client.backends()
    table = Table()
    for col in ("name", "engine", "status", "model", "device", "detail"):
        table.add_column(col)
    for b in listing.backends:
        table.add_row(
            b.name,
            b.engine,
            b.status,
            b.model.id if b.model else "-",
            (b.model.device if b.model else None) or "-",
            b.detail or "",
        )
    Console().print(table)
    Console().print(f"auto tries: {', '.join(listing.auto_order)}")


@app.command()
def compare(
    manifest: Annotated[
        Path | None, typer.Argument(help="Manifest (JSON lines: id, file, truth, truth_format).")
    ] = None,
    backends: Annotated[str, typer.Option(help="Comma-separated backends to score.")] = "rapidocr",
    url: Annotated[str, typer.Option(help="Service base URL.")] = DEFAULT_URL,
    out: Annotated[Path, typer.Option(help="Run folder (an existing one is resumed).")] = Path("runs/latest"),
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Requests in flight at once.")] = 2,
    options: Annotated[
        str | None, typer.Option(help='Per-backend options JSON: {"mineru": {"tier": "flash"}}.')
    ] = None,
    dpi: Annotated[float | None, typer.Option(help="PDF rasterisation DPI.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="On resume, send failed pairs again.")] = False,
    diff: Annotated[
        tuple[Path, Path] | None, typer.Option(help="Compare two finished runs: --diff RUN_A RUN_B.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_VAR)] = None,
    mlflow: Annotated[bool, typer.Option(help="Log the run to MLflow (a local SQLite store in ./mlruns).")] = False,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI to log to (implies --mlflow), e.g. http://mlflow:5000.")
    ] = None,
) -> None:
    """Accuracy run: every manifest document through every backend, scored against its reference; or --diff."""
    from orchestrator.evaluation.report import COLUMNS, diff_runs
    from orchestrator.evaluation.run import run_accuracy

    if diff is not None:
        _print_diff(diff_runs(*diff), *diff)
        return
    if manifest is None:
        console.print("[red]give a MANIFEST, or --diff RUN_A RUN_B[/]")
        raise typer.Exit(2)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    with _progress() as bar:
        task = bar.add_task(f"{manifest.name} × {', '.join(names)}", total=None)
        try:
            report = run_accuracy(
                manifest,
                url=url,
                backends=names,
                out=out,
                concurrency=concurrency,
                options=json.loads(options) if options else None,
                dpi=dpi,
                api_key=api_key,
                retry_failed=retry_failed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except ValueError as e:
            console.print(f"[red]error:[/] {e}")
            raise typer.Exit(2) from None
    table = Table(title=f"{report.documents} documents — {out}/report.html")
    table.add_column("backend")
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for name, summary in report.backends.items():
        values = [getattr(summary, k) for k, _ in COLUMNS]
        table.add_row(name, *[f"{v:.3f}" if isinstance(v, float) else str(v) for v in values])
    Console().print(table)
    if mlflow or mlflow_uri:
        from orchestrator.evaluation.tracking import default_tracking_uri, log_to_mlflow

        uri = mlflow_uri or default_tracking_uri()
        try:
            run_id = log_to_mlflow(out, tracking_uri=uri)
        except RuntimeError as e:
            console.print(f"[red]error:[/] {e}")
            raise typer.Exit(2) from None
        console.print(f"MLflow run {run_id} logged to {uri}")


def _print_diff(d: dict, a: Path, b: Path) -> None:
    console_out = Console()
    console_out.print(f"[bold]{a}[/] → [bold]{b}[/]; same dataset: {d['same_dataset']}")
    table = Table()
    for col in ("backend", "NED mean a → b", "Δ", "NED dataset Δ", "CER Δ", "failures a → b", "model changed"):
        table.add_column(col)
    for name, row in d["backends"].items():
        if not (row["in_a"] and row["in_b"]):
            table.add_row(name, "only in " + ("a" if row["in_a"] else "b"), "", "", "", "", "")
            continue
        ned_row = row["ned_mean"]
        table.add_row(
            name,
            f"{ned_row['a']} → {ned_row['b']}",
            f"{ned_row['delta']:+.4f}" if ned_row["delta"] is not None else "–",
            f"{row['ned_dataset']['delta']:+.4f}" if row["ned_dataset"]["delta"] is not None else "–",
            f"{row['cer_mean']['delta']:+.4f}" if row["cer_mean"]["delta"] is not None else "–",
            f"{row['failures']['a']} → {row['failures']['b']}",
            str(row["model_changed"]),
        )
    console_out.print(table)


@app.command()
def extract(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Document (PDF or image).")],
    preset: Annotated[str | None, typer.Option(help="Shipped schema: receipt, invoice, id_card.")] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", exists=True, dir_okay=False, help="A JSON Schema file instead.")
    ] = None,
    url: Annotated[str, typer.Option(help="Service base URL.")] = DEFAULT_URL,
    backend: Annotated[str | None, typer.Option(help="Backend (default: the first that can extract).")] = None,
    scope: Annotated[str, typer.Option(help="document (pages merged) or page (one answer per page).")] = "document",
    adapter: Annotated[str | None, typer.Option(help="LoRA adapter of the backend to use.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Instruction instead of the default one.")] = None,
    pages: Annotated[str | None, typer.Option(help="1-based page range, e.g. 1-3,7.")] = None,
    options: Annotated[str | None, typer.Option(help='More backend options as JSON: \'{"mode": "base"}\'.')] = None,
    markdown: Annotated[bool, typer.Option(help="Also OCR the pages, for audit (in the JSON answer).")] = True,
    out: Annotated[Path | None, typer.Option(help="Write the whole answer (JSON) here.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_VAR)] = None,
) -> None:
    """Extract fields as JSON constrained to a schema; prints the answer, exits 3 when it does not validate."""
    if (preset is None) == (schema is None):
        console.print("[red]give exactly one of --preset and --schema[/]")
        raise typer.Exit(2)
    opts = json.loads(options) if options else {}
    if adapter:
        opts["adapter"] = adapter
    with OCRClient(url, api_key=api_key) as client, _reported_failures():
        result = client.extract(
            file.read_bytes(),
            file.name,
            json_schema=json.loads(schema.read_text()) if schema else None,
            preset=preset,
            backend=backend,
            scope=scope,
            prompt=prompt,
            include_markdown=markdown,
            pages=pages,
            options=opts or None,
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.model_dump_json(indent=2))
    model = result.model.id + (f" + adapter {result.model.adapter}" if result.model.adapter else "")
    state = "[green]valid[/]" if result.valid else "[red]not valid[/]"
    console.print(f"{result.json_schema} by [bold]{result.backend}[/] ({model}): {state}; {result.enforced_by}")
    for w in [*result.errors, *result.warnings]:
        console.print(f"[yellow]{w}[/]")
    answer = result.data if result.scope == "document" else [p.data for p in result.pages]
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    if not result.valid:
        raise typer.Exit(3)


@app.command("compress-bench")
def compress_bench(
    url: Annotated[str, typer.Option(help="Service base URL.")] = DEFAULT_URL,
    backends: Annotated[str, typer.Option(help="Comma-separated backends that read the pages back.")] = "rapidocr",
    modes: Annotated[str, typer.Option(help="Comma-separated modes to render for.")] = "tiny,small,base,large,gundam",
    corpus: Annotated[
        Path | None, typer.Option(exists=True, help="A .txt file or a folder of them (default: built-in corpus).")
    ] = None,
    font: Annotated[str, typer.Option(help="monospace or proportional.")] = "monospace",
    font_size: Annotated[int | None, typer.Option(help="Font size in px for every mode (default: per mode).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the table as JSON here.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar=API_KEY_VAR)] = None,
) -> None:
    """Optical compression vs fidelity: text rendered per mode, read back by each backend, scored against itself."""
    from orchestrator.evaluation.compression import as_dicts, load_corpus, run_compression

    names = [b.strip() for b in backends.split(",") if b.strip()]
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    try:
        passages = load_corpus(corpus)
    except ValueError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    with OCRClient(url, api_key=api_key) as client, _progress() as bar:
        task = bar.add_task(f"{len(passages)} passage(s) × {', '.join(mode_list)}", total=None)
        with _reported_failures():
            rows = run_compression(
                client,
                backends=names,
                modes=mode_list,
                corpus=passages,
                font=font,
                font_size_px=font_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    table = Table(title=f"Optical compression: {len(passages)} passage(s), {font} font, read back through {url}")
    columns = ("mode", "backend", "pages", "text tok", "vision tok", "compression", "vision ran", "NED")
    for col in (*columns, "precision", "exact lines", "s/page", "failed"):
        table.add_column(col, justify="left" if col in ("mode", "backend") else "right")

    def fmt(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    for r in rows:
        table.add_row(
            r.mode,
            r.backend,
            str(r.pages),
            str(r.text_tokens),
            str(r.vision_tokens),
            fmt(r.ratio, ".2f") + ("x" if r.ratio is not None else ""),
            "–" if r.vision_ran is None else str(r.vision_ran),
            fmt(r.ned, ".3f"),
            fmt(r.precision, ".1%"),
            fmt(r.exact_rate, ".1%"),
            fmt(r.seconds_per_page, ".2f"),
            str(r.failures),
        )
    Console().print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(as_dicts(rows), indent=2))


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON schema of the builder's args (the reference of serve_config.yaml's args:)."""
    from orchestrator.serving.config import AppArgs

    typer.echo(json.dumps(AppArgs.model_json_schema(), indent=2))


@app.command("openapi")
def openapi() -> None:
    """Print the API's OpenAPI document (the source of the response schema's documentation)."""
    from orchestrator.serving.api import create_api
    from orchestrator.serving.router import Router

    typer.echo(json.dumps(create_api(Router({})).openapi(), indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
