"""The mixed load run (also ``benchmarks/load.py --mixed``): real engines, real documents, good and hostile together.

The CPU profile as ``ocrserve serve`` starts it (RapidOCR, MinerU's flash tier, the router), or any service on
loopback, under N clients for T seconds. Each client walks its own shuffled round of:

- good documents: the development scans to RapidOCR, the development born-digital PDFs to MinerU, a generated page
  to ``auto``, generated DOCX/HTML/CSV/XLSX/EPUB to MinerU (each with a sentence that must come back);
- hostile documents: the structured-format corpus of :mod:`benchmarks.support.hostile_documents` (zip bombs, entities,
  giant grids, local-file references...) and image bombs, each with the 4xx it is owed.

Every answer is classified: as owed, wrong (another 4xx, or a good document without its text), 5xx, or lost (no
answer: time-out, connection error). A local HTTP server counts any request a component makes to the URLs the
documents name. Resident memory of every Serve replica, with the processes it started (MinerU's parse process),
is read after a warm-up pass and at the end. Exits 1 when anything was 5xx or lost, or a URL was fetched.

    .venv/bin/python benchmarks/load_mixed.py --clients 4 --seconds 600       # starts the CPU profile here
    .venv/bin/python benchmarks/load_mixed.py --url http://127.0.0.1:8000 --clients 2 --seconds 60
    .venv/bin/python benchmarks/load_mixed.py --clients 1 --seconds 1          # smallest run
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this clone's code and benchmarks.support

from backends.textpdf import article_pages  # noqa: E402
from benchmarks.support import hostile_documents as hostile  # noqa: E402
from orchestrator.ops import samples  # noqa: E402

SMALLEST_RUN = "--clients 1 --seconds 1"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""

DEV = ROOT.parent / "shared" / "data" / "dev"


@dataclass(frozen=True)
class Item:
    """One upload of the workload and the answer it is owed."""

    kind: str  # good | hostile
    label: str
    backend: str
    filename: str
    data: bytes
    status: int
    code: str | None = None
    text: str | None = None
    """For good documents: a string the markdown must contain (None: any non-empty markdown)."""


def workload(*, canary_path: str, canary_url: str) -> list[Item]:
    """The good and hostile uploads of one round (development data where present, generated otherwise)."""
    items: list[Item] = []
    for name in ("phototest.tif", "eurotext.tif"):
        if (DEV / "images" / name).is_file():
            items.append(Item("good", f"scan {name}", "rapidocr", name, (DEV / "images" / name).read_bytes(), 200))
    for name in ("multi_page.pdf", "code_and_formula.pdf", "2305.03393v1-pg9.pdf", "amt_handbook_sample.pdf"):
        if (DEV / "pdfs" / name).is_file():
            items.append(Item("good", f"pdf {name}", "mineru", name, (DEV / "pdfs" / name).read_bytes(), 200))
    page, truth = samples.one_column_page()
    items.append(Item("good", "generated page", "auto", "page.png", samples.encode(page), 200, text=truth.split()[0]))
    sentence = "The harbour master logged eleven arrivals before noon."
    items.append(
        Item(
            "good",
            "generated pdf",
            "mineru",
            "gen.pdf",
            article_pages([[sentence]], titles=["Log"]),
            200,
            text="eleven",
        )
    )
    for name, data, text in hostile.good_documents():
        items.append(Item("good", f"generated {name.rsplit('.', 1)[1]}", "mineru", name, data, 200, text=text))
    for case in hostile.corpus(canary_path=canary_path, canary_url=canary_url):
        items.append(Item("hostile", case.id, "mineru", case.filename, case.data, case.status, case.code))
    for label, data, code in (
        ("png-bomb-30000", hostile.png_header(30_000, 30_000), "too_many_pixels"),
        ("png-bomb-100000", hostile.png_header(100_000, 100_000), "too_many_pixels"),
    ):
        items.append(Item("hostile", label, "rapidocr", f"{label}.png", data, 413, code))
    return items


def replica_memory(app: str) -> dict[str, float]:
    """Deployment name -> resident MiB of each Serve replica of application ``app`` on this machine, with every
    process it started (MinerU's parse process and render workers). Other Ray clusters' replicas are not counted."""
    out: dict[str, float] = {}
    prefix = f"ray::ServeReplica:{app}:"
    for p in psutil.process_iter(["pid", "name"]):
        name = p.info["name"] or ""
        if not name.startswith(prefix) or "." in name[len(prefix) :]:  # "x.perform_graceful_shutdown": leaving
            continue
        try:
            total = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
        except psutil.Error:
            continue
        label = name[len(prefix) :]
        out[label if label not in out else f"{label} ({p.info['pid']})"] = total / 2**20
    return out


def run_mixed(url: str | None, *, clients: int, seconds: float, port: int = 0, app: str = "ocr") -> bool:
    """The mixed run against ``url``, or against the CPU profile started here (as ``ocrserve serve`` starts it, on
    ``port``, 0 for a free one) and stopped after; returns whether it met the bar (see :func:`run`)."""
    from orchestrator.ops import local

    started = url is None
    if url is None:
        config = local.load_config(local.profile_path("cpu"), port=port or local.free_port())
        url = local.start(config, num_cpus=8, log_to_driver=False)
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise SystemExit(f"refusing to load {host}: loopback targets only")
    try:
        return run(url, clients=clients, seconds=seconds, app=app)
    finally:
        if started:
            local.stop()


def run(url: str, *, clients: int, seconds: float, app: str = "ocr", seed: int = 7) -> bool:
    """The mixed run against ``url``; prints the report and returns whether it met the bar (0 lost, 0 5xx).

    Args:
        url: The service (loopback).
        clients: Concurrent clients.
        seconds: Duration of the measured part (after one warm-up pass of the good documents).
        app: The Serve application whose replicas' memory is reported (the CPU profile's is ``ocr``).
        seed: Shuffle seed (each client shuffles its rounds with seed + client number).
    """
    with hostile.recording_server() as (canary_url, hits):
        return _run(url, clients=clients, seconds=seconds, app=app, seed=seed, canary_url=canary_url, hits=hits)


def _run(url: str, *, clients: int, seconds: float, app: str, seed: int, canary_url: str, hits: list[str]) -> bool:
    """:func:`run` with the recording server up at ``canary_url`` (what it was asked for lands in ``hits``)."""
    canary = Path(tempfile.mkdtemp(prefix="canary-")) / "secret.txt"
    token = "CANARY-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    canary.write_text(token)
    items = workload(canary_path=str(canary), canary_url=canary_url)
    print(f"workload: {sum(i.kind == 'good' for i in items)} good, {sum(i.kind == 'hostile' for i in items)} hostile")

    with httpx.Client(base_url=url, timeout=600) as c:  # warm-up: every good document once, not counted
        for item in items:
            if item.kind == "good":
                c.post("/v1/ocr", files={"file": (item.filename, item.data)}, data={"backend": item.backend})
    memory_start = replica_memory(app)

    outcomes: collections.Counter[tuple[str, str, str]] = collections.Counter()
    latencies: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    problems: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client_loop(number: int) -> None:
        rng = random.Random(seed + number)
        with httpx.Client(base_url=url, timeout=600) as c:
            while time.monotonic() < stop_at:
                order = items[:]
                rng.shuffle(order)
                for item in order:
                    if time.monotonic() >= stop_at:
                        return
                    outcome, seconds_taken, note = _send(c, item, token)
                    with lock:
                        outcomes[(item.kind, item.backend, outcome)] += 1
                        if outcome == "as owed":
                            latencies[(item.kind, item.backend)].append(seconds_taken)
                        elif len(problems) < 50:
                            problems.append(f"{item.label}: {note}")

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - started
    time.sleep(0.5)
    memory_end = replica_memory(app)

    total = sum(outcomes.values())
    print(f"\nmixed run: {url}, {clients} clients, {wall:.0f} s, {total} requests ({total / wall:.2f} req/s)")
    print(
        f"{'kind':<9}{'backend':<10}{'requests':>9}{'as owed':>9}{'wrong':>7}{'5xx':>6}{'lost':>6}"
        f"{'p50 s':>8}{'p95 s':>8}"
    )
    for kind, backend in sorted({(k, b) for k, b, _ in outcomes}):
        counts = {o: outcomes[(kind, backend, o)] for o in ("as owed", "wrong", "5xx", "lost")}
        lat = latencies[(kind, backend)]
        p50 = statistics.median(lat) if lat else float("nan")
        p95 = sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else float("nan")
        print(
            f"{kind:<9}{backend:<10}{sum(counts.values()):>9}{counts['as owed']:>9}{counts['wrong']:>7}"
            f"{counts['5xx']:>6}{counts['lost']:>6}{p50:>8.2f}{p95:>8.2f}"
        )
    print(f"requests to the documents' URLs seen by the recording server: {len(hits)}")
    title = f"replica of {app} (with the processes it started)"
    print(f"\n{title:<52}{'RSS start MiB':>14}{'end MiB':>9}{'growth':>8}")
    for name in sorted(set(memory_start) | set(memory_end)):
        a, b = memory_start.get(name, 0.0), memory_end.get(name, 0.0)
        print(f"{name[:50]:<52}{a:>14.0f}{b:>9.0f}{b - a:>+8.0f}")
    for line in problems:
        print("  problem:", line)
    bad = sum(n for (_, _, o), n in outcomes.items() if o in ("5xx", "lost"))
    return bad == 0 and not hits


def _send(client: httpx.Client, item: Item, token: str) -> tuple[str, float, str]:
    started = time.perf_counter()
    try:
        r = client.post("/v1/ocr", files={"file": (item.filename, item.data)}, data={"backend": item.backend})
    except httpx.HTTPError as e:
        return "lost", time.perf_counter() - started, type(e).__name__
    took = time.perf_counter() - started
    if r.status_code >= 500:
        return "5xx", took, f"{r.status_code} {r.text[:200]}"
    if token in r.text:
        return "wrong", took, "the canary file's content is in the answer"
    if r.status_code != item.status:
        return "wrong", took, f"{r.status_code} (owed {item.status}) {r.text[:200]}"
    body = r.json()
    if item.kind == "hostile" and body.get("error", {}).get("code") != item.code:
        return "wrong", took, f"code {body.get('error', {}).get('code')} (owed {item.code})"
    if item.kind == "good" and not (body.get("markdown") and (item.text is None or item.text in body["markdown"])):
        return "wrong", took, f"markdown without {item.text!r}"
    return "as owed", took, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="Target service (loopback only); default: start the CPU profile here.")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=600, help="Measured part, after one warm-up pass.")
    parser.add_argument("--port", type=int, default=0, help="HTTP port of a service started here (0: a free one)")
    parser.add_argument("--app", default="ocr", help="Serve application whose replicas' memory is reported")
    args = parser.parse_args()
    ok = run_mixed(args.url, clients=args.clients, seconds=args.seconds, port=args.port, app=args.app)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
