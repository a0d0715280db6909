"""MinerU in its parse process: deadlines and memory caps that kill it cleanly, failures typed, nothing fetched.

The engine runs as a replica runs it (``backends.pipeline.run_document``), with an empty models directory (the
flash tier reads born-digital PDFs and office/HTML/EPUB/CSV files without models). Documents are generated here:
:mod:`benchmarks.support.hostile_documents`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("mineru", reason="the mineru extra is not installed")
pytest.importorskip("docx", reason="python-docx (test extra) builds the documents")

from backends.mineru.errors import ProcessBroken, classify_parse_error, device_fault  # noqa: E402
from backends.pipeline import run_document  # noqa: E402
from backends.registry import create_engine  # noqa: E402
from benchmarks.support import hostile_documents as hostile  # noqa: E402
from shared.documents import Document, open_document  # noqa: E402
from shared.errors import OCRError  # noqa: E402
from shared.processes import descendants  # noqa: E402
from shared.requests import OutputOptions, RunRequest
from tests.support.runs import run_request

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mineru-models")


def _engine(models_dir: Path, **config):
    saved = dict(os.environ)
    engine = create_engine("mineru", {"models_dir": str(models_dir), **config})
    engine.start()
    return engine, saved


@pytest.fixture(scope="module")
def engine(models_dir):
    eng, saved = _engine(models_dir, parse_timeout_s=6, parse_timeout_per_page_s=1)
    yield eng
    eng.close()
    os.environ.clear()
    os.environ.update(saved)


def _run(engine, data: bytes, name: str, **kw):
    doc = open_document(data, name=name, accepted=engine.media_types)
    return run_document(
        engine,
        doc,
        run_request("test", **kw),
        backend="mineru",
    )


def _unchecked(data: bytes, name: str, media_type: str) -> Document:
    """A document that skips the router's checks: what the engine alone does with it is under test."""
    return Document(data, name, media_type, hashlib.sha256(data).hexdigest(), 1, [0], 144.0)


def _slow_docx() -> bytes:
    """~170,000 elements: inside every router limit, yet ~20 s of MinerU on 2 busy cores."""
    base = hostile.docx(["x"])
    prefix = hostile.word_document("").split("<w:body>")[0].encode() + b"<w:body>"
    paragraph = b"<w:p><w:r><w:t>Words of an ordinary paragraph.</w:t></w:r></w:p>"
    return hostile.streamed_member(
        base, "word/document.xml", paragraph * 1000, 50, prefix=prefix, suffix=b"</w:body></w:document>"
    )


def _gone(pid: int) -> bool:
    """Killed *and* reaped (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- typed failures ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MemoryError(), "document_too_complex"),
        (RecursionError("maximum recursion depth exceeded"), "document_too_complex"),
        (ValueError("CSV exceeds max_grid_slots=250000"), "document_too_complex"),
        (type("HtmlResourceLimitError", (ValueError,), {})("HTML images exceed ..."), "document_too_complex"),
        (type("EpubEncryptedError", (ValueError,), {})("DRM"), "encrypted_document"),
        (KeyError("word/document.xml"), "invalid_document"),
        (OSError("File contains no valid workbook part"), "invalid_document"),
        (FileNotFoundError("Model repo MinerU-4_models_onnx is not ready"), "models_missing"),
        (OCRError("invalid_option", "kept as it is"), "invalid_option"),
    ],
)
def test_what_mineru_raises_on_a_document_is_typed(error, code):
    typed = classify_parse_error(error, tier="flash")
    assert typed.code == code and typed.message and typed.status < 600


def _engine_failures() -> list[tuple[BaseException, str]]:
    """What torch, vLLM and MinerU raise when the GPU or the inference engine fails, with the fault it is."""
    import torch
    from mineru.parser.tier import TierDependencyError

    server_error = type("VLLMServerError", (Exception,), {})  # vLLM's classes, by name (vllm may be absent)
    return [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "CUDA out of memory"),
        (torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), "CUDA error"),
        (RuntimeError("CUDA error: device-side assert triggered"), "CUDA error"),
        (RuntimeError("Engine core initialization failed. See root cause above."), "inference engine failure"),
        (type("EngineDeadError", (server_error,), {})("EngineCore encountered an issue."), "vLLM engine failure"),
        (TierDependencyError("standard", ["vllm"]), ""),
        (ImportError("libcudart.so.13: cannot open shared object file"), ""),
    ]


def test_gpu_and_engine_failures_are_the_backends_not_the_documents():
    """A CUDA OOM or a vLLM start-up error inside parse() used to come back as invalid_document (422)."""
    for error, fault in _engine_failures():
        typed = classify_parse_error(error, tier="standard")
        assert typed.code == "backend_unavailable" and typed.status == 503, (error, typed)
        assert (device_fault(error) or "") == fault, error
    for error in (ValueError("CSV exceeds max_grid_slots=250000"), KeyError("word/document.xml"), MemoryError()):
        assert device_fault(error) is None  # the document's own failures stay the document's


def test_a_process_that_saw_a_device_fault_answers_then_ends():
    """The parse process whose CUDA context faulted must not take the next document."""
    import io

    from backends.mineru.channel import encode, read_message
    from backends.mineru.worker import _serve

    class Broken:
        def run(self, *args):
            raise ProcessBroken(OCRError("backend_unavailable", "CUDA error: an illegal memory access"))

    requests = io.BytesIO(encode(("run", None, [], None, "standard")) + encode(("run", None, [], None, "flash")))
    channel = io.BytesIO()
    _serve(Broken(), requests, channel)
    channel.seek(0)
    kind, error = read_message(channel)
    assert kind == "fatal" and error.code == "backend_unavailable"
    assert read_message(channel) is None  # nothing more: the process ended instead of reading the second document


def test_the_engine_replaces_a_process_that_reported_a_device_fault(monkeypatch):
    from backends.mineru.engine import MinerUEngine
    from backends.mineru.process import ProcessFacts

    calls: list[str] = []

    class Process:
        facts = ProcessFacts(warm_tiers={"flash"})

        def wait_ready(self):
            calls.append("ready")

        def call(self, message, **kw):
            calls.append("call")
            return ("fatal", OCRError("backend_unavailable", "CUDA out of memory"))

        def kill(self):
            calls.append("kill")

        def spawn(self):
            calls.append("spawn")

    engine = MinerUEngine()
    engine._started, engine._process = True, Process()
    doc = open_document(hostile.good_documents()[0][1], name="note.docx", accepted=engine.media_types)
    with pytest.raises(OCRError) as e:
        engine.run(doc, [], engine.parse_options({}))
    assert e.value.code == "backend_unavailable" and e.value.status == 503
    assert calls == ["ready", "call", "kill", "spawn"]  # answered, then a fresh process warms up


def test_documents_mineru_cannot_read_are_422_not_500(engine):
    for case in hostile.parser_failures():
        with pytest.raises(OCRError) as e:
            _run(engine, case.data, case.filename)
        assert (e.value.status, e.value.code) == (case.status, case.code), case.id
        assert "MinerU could not read this document" in e.value.message


# -- the deadline and the memory cap -------------------------------------------------------------------------


def test_the_deadline_kills_the_whole_parse_process_group_and_leaves_nothing_running(engine):
    old = engine.health().info["parse_process"]
    scratch = Path(engine._process.facts.scratch)
    threads = threading.active_count()
    with pytest.raises(OCRError) as e:
        _run(engine, _slow_docx(), "slow.docx")
    # the parse deadline ended it (how long that took is the deadline's business, measured in the engine)
    assert e.value.code == "document_too_complex" and e.value.status == 413
    assert e.value.accepted["parse_timeout_s"] == 6 and "within 6 s" in e.value.message
    assert _gone(old["pid"]) and not descendants(old["pid"])  # killed and reaped, render workers too
    assert not scratch.exists()  # the document it was reading is not left on disk
    assert threading.active_count() == threads  # no thread left parsing
    now = engine.health().info["parse_process"]
    assert now["pid"] != old["pid"] and now["killed"] == old["killed"] + 1
    name, data, text = hostile.good_documents()[0]
    assert text in _run(engine, data, name).markdown  # a fresh process answers the next document


def test_a_parse_process_killed_from_outside_is_typed_and_replaced(engine):
    engine.health()  # make sure the process is up
    pid = engine.health().info["parse_process"]["pid"]
    killer = threading.Timer(1.0, lambda: os.kill(pid, 9))
    killer.start()
    try:
        with pytest.raises(OCRError) as e:
            _run(engine, _slow_docx(), "slow.docx")
    finally:
        killer.cancel()
    assert e.value.code == "document_too_complex" and "killed" in e.value.message
    assert _gone(pid)
    name, data, text = hostile.good_documents()[1]
    assert text in _run(engine, data, name).markdown


def test_the_memory_cap_kills_a_parse_that_grows_past_it(models_dir):
    from shared.processes import tree_rss_mb

    probe, saved = _engine(models_dir, warmup=True)
    try:
        warm = tree_rss_mb(probe.health().info["parse_process"]["pid"])
    finally:
        probe.close()
    cap = int(warm) + 150
    engine, _ = _engine(models_dir, parse_memory_mb=cap, parse_timeout_s=120)
    try:
        sheet = hostile.table_xlsx([[f"r{r}c{c}" for c in range(10)] for r in range(9000)])  # ~800 MB in MinerU
        with pytest.raises(OCRError) as e:
            _run(engine, sheet, "big.xlsx")
        assert e.value.code == "document_too_complex" and e.value.accepted == {"parse_memory_mb": cap}
        assert engine.health().info["parse_process"]["killed"] == 1
        name, data, text = hostile.good_documents()[2]
        assert text in _run(engine, data, name).markdown
    finally:
        engine.close()
        os.environ.clear()
        os.environ.update(saved)


def test_close_stops_the_parse_process(models_dir):
    engine, saved = _engine(models_dir, warmup=False)
    pid = engine.health().info["parse_process"]["pid"]
    scratch = Path(engine._process.facts.scratch)
    assert scratch.is_dir() and scratch.stat().st_mode & 0o777 == 0o700
    engine.close()
    os.environ.clear()
    os.environ.update(saved)
    assert _gone(pid) and not scratch.exists()


# -- nothing fetched, nothing read ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorder():
    with hostile.recording_server() as served:
        yield served


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> tuple[Path, str]:
    token = "CANARY-" + hashlib.sha256(os.urandom(16)).hexdigest()[:20]
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(token)
    return path, token


def test_remote_references_are_never_fetched(engine, recorder, canary):
    url, hits = recorder
    before = len(hits)
    for name, data, text in hostile.remote_reference_documents(url):
        response = _run(engine, data, name, include_raw=True)
        assert text in response.markdown and canary[1] not in response.model_dump_json(), name
    time.sleep(0.5)
    assert hits[before:] == []


def test_local_files_stay_unread_even_without_the_router(engine, recorder, canary):
    """The router refuses these; here they go straight to the engine: its own locks must hold too."""
    url, hits = recorder
    path, token = canary
    before = len(hits)
    svg = base64.b64encode(hostile.svg_pointing_at(str(path))).decode()
    documents = [
        _unchecked(
            hostile.html(f'<p>t</p><img src="file://{path}"><img src="data:image/svg+xml;base64,{svg}">'),
            "a.html",
            "text/html",
        ),
        _unchecked(
            hostile.rewrite(
                hostile.docx(["x"]),
                {
                    "word/document.xml": hostile.word_document(
                        "<w:p><w:r><w:t>&x;&y;</w:t></w:r></w:p>",
                        doctype=f'<!DOCTYPE w:document [<!ENTITY x SYSTEM "file://{path}"><!ENTITY y SYSTEM '
                        f'"{url}/xxe">]>',
                    )
                },
            ),
            "x.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]
    for doc in documents:
        try:
            response = run_document(
                engine,
                doc,
                RunRequest(request_id="t", output=OutputOptions(include_raw=True), options={"embed_images": True}),
                backend="mineru",
            )
        except OCRError as e:  # refusing is as good as not reading
            assert token not in e.message
            continue
        assert token not in response.model_dump_json()
    time.sleep(0.5)
    assert hits[before:] == []


def _sealed_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_parse_process_has_no_network(recorder):
    url, hits = recorder
    before = len(hits)
    result = _sealed_python(
        "import socket, urllib.request\n"
        "from backends.mineru.sandbox import seal, blocked_attempts\n"
        "a, b = socket.socketpair(); a.send(b'x'); assert b.recv(1) == b'x'  # local plumbing still works\n"
        f"urllib.request.urlopen({url + '/before-seal'!r}).read()\n"
        "seal()\n"
        "for target in [" + repr(url + "/after-seal") + "]:\n"
        "    try:\n"
        "        urllib.request.urlopen(target, timeout=5).read(); print('FETCHED')\n"
        "    except Exception as e:\n"
        "        print('REFUSED', type(e).__name__)\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 1)); print('CONNECTED')\n"
        "except PermissionError:\n"
        "    print('REFUSED socket')\n"
        "print(len(blocked_attempts()))\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FETCHED" not in result.stdout and "CONNECTED" not in result.stdout
    assert result.stdout.count("REFUSED") == 2
    time.sleep(0.3)
    assert hits[before:] == ["/before-seal"]  # the same code reached the server before seal(), not after


def test_the_parse_process_runs_with_vllms_v1_runner_and_its_warm_tiers(models_dir, monkeypatch):
    """The environment the parse process itself reports: MinerU's local vLLM gets VLLM_USE_V2_MODEL_RUNNER=0."""
    from backends.vllm_env import RUNNER_ENV

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    engine, saved = _engine(models_dir, vlm_engine="vllm", tiers=["flash", "standard"])
    try:
        process = engine.health().info["parse_process"]
        assert process["env"][RUNNER_ENV] == "0"
        assert process["env"]["MINERU_MODEL_VLM_ENGINE"] == "vllm"
        assert process["warm_tiers"] == ["flash"]  # standard's models are absent here: left cold, not failed
        assert "MinerULogitsProcessor" in engine.health().info["vllm_model_runner"]
    finally:
        engine.close()
        os.environ.clear()
        os.environ.update(saved)


def test_the_configured_vlm_server_is_reached_from_the_sealed_process(models_dir):
    """vlm_server_url used to be refused by the sandbox like any other host: the parse process now asks it for its
    models at start (over loopback here), as MinerU's HTTP client does first."""
    with hostile.recording_server() as (url, hits):
        engine, saved = _engine(models_dir, vlm_server_url=url + "/v1", tiers=["flash", "standard"])
        try:
            report = engine.health().info["parse_process"]["vlm_server"]
            assert report["reachable"] is True and report["url"] == url + "/v1/models", report
            assert "/v1/models" in hits
        finally:
            engine.close()
            os.environ.clear()
            os.environ.update(saved)


def test_only_the_configured_endpoint_is_let_through(recorder):
    """seal() with the operator's endpoint: it answers; any other host or port - what a document names - is
    refused before a packet leaves."""
    url, hits = recorder
    with hostile.recording_server() as (other, other_hits):
        result = _sealed_python(
            "import socket, urllib.request\n"
            "from backends.mineru.sandbox import seal, blocked_attempts\n"
            f"seal([{url!r}])\n"
            f"print('ALLOWED', urllib.request.urlopen({url + '/v1/models'!r}, timeout=5).status)\n"
            f"for target in [{other + '/x'!r}, 'http://example.invalid/x']:\n"
            "    try:\n"
            "        urllib.request.urlopen(target, timeout=5).read(); print('FETCHED', target)\n"
            "    except Exception as e:\n"
            "        print('REFUSED', type(e).__name__)\n"
            f"port = {int(other.rsplit(':', 1)[1])}\n"
            "try:\n"
            "    socket.create_connection(('127.0.0.1', port), timeout=5); print('CONNECTED')\n"
            "except PermissionError:\n"
            "    print('REFUSED socket')\n"
        )
        time.sleep(0.3)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ALLOWED 200" in result.stdout
    assert "FETCHED" not in result.stdout and "CONNECTED" not in result.stdout
    assert result.stdout.count("REFUSED") == 3
    assert "/v1/models" in hits and other_hits == []


def test_svg_is_rasterised_without_reading_the_files_it_names(tmp_path):
    red = tmp_path / "red.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(red)
    svg = hostile.svg_pointing_at(str(red)).decode()
    probe = (
        "import io, resvg_py\nfrom PIL import Image\n"
        f"svg = {svg!r}\n"
        "def centre():\n"
        "    png = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True)\n"
        "    return Image.open(io.BytesIO(bytes(png))).convert('RGB').getpixel((32, 32))\n"
        "print('before', centre())\n"
        "from backends.mineru.sandbox import seal\nseal()\n"
        "print('after', centre())\n"
    )
    result = _sealed_python(probe)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "before (255, 0, 0)" in result.stdout  # resvg on its own reads the file: the vector is real
    assert "after (0, 0, 255)" in result.stdout  # sealed: the reference is gone, only the blue rect is drawn


def test_html_relative_resources_do_not_resolve_to_files(tmp_path, engine):
    """MinerU's own default resolves relative images next to the document; the engine's context resolves none."""
    from mineru.parser import parse
    from PIL import Image

    from backends.mineru.sandbox import html_source_context

    Image.new("RGB", (32, 32), "red").save(tmp_path / "secret.png")
    page = tmp_path / "page.html"
    page.write_bytes(hostile.html('<p>Text</p><img src="secret.png" alt="pic">'))

    def embedded(context) -> bool:
        result = parse(page, tier="flash", source_context=context)
        return "base64" in result.markdown(image_renderer=None)

    assert embedded(None)  # MinerU alone would read secret.png from the document's directory
    assert not embedded(html_source_context())
