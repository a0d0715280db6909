"""LoRA adapters per request, fields as JSON and the model's tokenizer, on the real vLLM engine over HTTP.

One application for the module: DeepSeek-OCR (tiny decoder, byte-level tokenizer, dummy weights: see
:mod:`benchmarks.support.tiny_vllm_bytes`) with two random LoRA adapters written by ``peft``
(:mod:`benchmarks.support.tiny_lora`), plus a fake backend that cannot extract. What is checked is what vLLM does, not
recognition (the weights are random): adapters batched with the base model change decoding, each the same way
batched as alone; every preset's answer is generated under vLLM's JSON-schema grammar and validates; the router
refuses what cannot work and lists what can.
"""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from benchmarks.support.fake_engine import FAKE
from benchmarks.support.tiny_lora import build_tiny_lora
from benchmarks.support.tiny_vllm import tiny_engine_config
from benchmarks.support.tiny_vllm_bytes import build_byte_vllm_model
from orchestrator.client import OCRClient
from orchestrator.ops import samples
from orchestrator.ops.cli import app
from shared.evidence import leaves
from shared.json_schemas import load_preset
from shared.schema import ExtractResponse
from tests.conftest import METRICS_PORT
from tests.support.signals import wait_for_total
from tests.support.vllm_serving import PAGE, TIMEOUT, VLLM_MARKS, actor_options, backend_listing, post_ocr

pytestmark = VLLM_MARKS

APP = "deepseek-features"
BACKEND = "deepseek-ocr"
EXTRACT_TOKENS = 1800
"""Room for a preset's answer: random weights fill every string to its maxLength."""


EXACT_DTYPE = "float32"
"""Not the faster bfloat16 of the other tiny engines: the preset test checks an answer's bytes against vLLM's token
count, and in bfloat16 the random decoder's id_card answer had one token more than bytes (463, 462). xgrammar reads
DeepSeek's added control tokens as their literal text (its matcher for the id_card preset accepts ``<|det|>``,
``<|ref|>``, ``<image>`` and ``<unk>`` inside a string) and the detokenizer drops them as special tokens, so such a
token leaves no byte. float32's answers never took one; the check stays exact."""


@pytest.fixture(scope="module")
def features_url(deploy_app, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-features")
    model = build_byte_vllm_model(root / "ocr")
    adapters = {
        "receipts": str(build_tiny_lora(root / "receipts", base=model, seed=1)),
        "invoices": str(build_tiny_lora(root / "invoices", base=model, seed=2)),
    }
    config = tiny_engine_config(
        model,
        "ocr",
        adapters=adapters,
        max_loras=2,
        max_lora_rank=8,
        max_model_len=4096,
        max_num_seqs=8,
        dtype=EXACT_DTYPE,
    )
    url = deploy_app(
        APP,
        {
            "backends": {
                BACKEND: {
                    "engine": "deepseek",
                    "engine_config": config,
                    "deployment": {"max_ongoing_requests": 8, "ray_actor_options": actor_options(0.5)},
                },
                "fake": {"engine": FAKE, "deployment": {"ray_actor_options": {"num_cpus": 0.05}}},
            },
            "router": {"auto_order": [BACKEND, "fake"]},
            "allow_custom_engines": True,  # the fake backend
        },
    )
    yield url
    deploy_app.retire(APP)  # the engine holds a few GB: give them back to the rest of the session


def _concurrently(*calls):
    results: dict[int, object] = {}

    def run(i, fn):
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    return [results[i] for i in range(len(calls))]


def test_adapters_are_listed_and_an_unknown_one_is_refused_with_the_known(features_url):
    with httpx.Client(base_url=features_url, timeout=TIMEOUT) as client:
        listing = backend_listing(client)[BACKEND]
        info = listing["info"]
        r = client.post(
            "/v1/ocr",
            files={"file": ("p.png", samples.encode(PAGE))},
            data={"backend": BACKEND, "options": json.dumps({"adapter": "contracts"})},
        )
    assert set(info["adapters"]) == {"receipts", "invoices"}
    assert info["adapters"]["receipts"]["rank"] == 8 and "q_proj" in info["adapters"]["receipts"]["target_modules"]
    assert info["max_loras"] == 2 and info["max_lora_rank"] == 8 and listing["capabilities"]["extracts"] is True
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_option"
    assert r.json()["error"]["accepted"] == {"adapter": ["invoices", "receipts"]}


CODE_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^[a-z]{16}$"}},
    "required": ["code"],
    "additionalProperties": False,
}
"""ASCII-only answers, so three decodings can be compared as text (the byte-level tiny model's free text is mostly
bytes that are not UTF-8, which decode to nothing)."""


def test_two_adapters_and_the_base_model_decode_differently_in_one_batch(features_url):
    """Base, receipts and invoices on the same page at once (and an OCR request through an adapter): vLLM's
    scheduler runs them together, each decodes differently, the answer names its adapter, and an adapter batched
    with others gives exactly what it gives alone."""
    png = samples.encode(PAGE)

    def ask(adapter):
        def call():
            with OCRClient(features_url) as client:
                options = {"max_new_tokens": 64, **({"adapter": adapter} if adapter else {})}
                return client.extract(
                    png, "p.png", json_schema=CODE_SCHEMA, scope="page", include_markdown=False, options=options
                )

        return call

    def ocr_through_adapter():
        with httpx.Client(base_url=features_url, timeout=TIMEOUT) as client:
            return post_ocr(client, BACKEND, png, max_new_tokens=8, prompt="free", adapter="receipts")

    base_alone = ask(None)()
    base, receipts, invoices, ocr = _concurrently(ask(None), ask("receipts"), ask("invoices"), ocr_through_adapter)
    alone = ask("invoices")()
    texts = [r.pages[0].text for r in (base, receipts, invoices)]
    assert all(r.valid for r in (base, receipts, invoices, alone)), texts
    assert len(set(texts)) == 3, texts  # the adapters change decoding, each in its own way
    assert [r.model.adapter for r in (base, receipts, invoices)] == [None, "receipts", "invoices"]
    assert alone.pages[0].text == texts[2]  # batched with others or alone: the same answer
    # ... and the base model's too: no adapter leaks into a request that asked for none (vLLM's CPU LoRA ops
    # would apply the last loaded one; backends.deepseek.adapters.needs_null_adapter)
    assert base_alone.pages[0].text == texts[0] and base_alone.model.adapter is None
    assert ocr.model.adapter == "receipts" and ocr.model.id == base.model.id and ocr.raw_result["adapter"] == "receipts"
    with httpx.Client(base_url=features_url, timeout=TIMEOUT) as client:
        scheduler = backend_listing(client)[BACKEND]["info"]["scheduler"]
    assert scheduler["peak_running"] >= 3  # vLLM's own count: the requests ran in one batch
    # every extraction counted, by the adapter that answered and whether it validated (all three did)
    for adapter in ("none", "receipts", "invoices"):
        labels = {"application": APP, "backend": BACKEND, "adapter": adapter, "valid": "true"}
        wait_for_total(METRICS_PORT, "ray_ocrserve_extractions_total", 1, **labels)
    wait_for_total(METRICS_PORT, "ray_ocrserve_requests_total", 1, application=APP, adapter="receipts")


def _valid(preset: str, answer: object) -> bool:
    return Draft202012Validator(load_preset(preset)).is_valid(answer)


def test_every_preset_answer_is_constrained_by_vllm_and_validates(features_url, tmp_path):
    """receipt over raw HTTP (with the OCR for audit), invoice through the Python client on a 2-page PDF (pages
    merged), id_card through ``ocrserve extract`` - all three in one vLLM batch."""
    png = samples.encode(PAGE)
    pdf = samples.multi_page_pdf([PAGE, PAGE])
    card = tmp_path / "card.png"
    card.write_bytes(png)
    options = json.dumps({"max_new_tokens": EXTRACT_TOKENS})

    def receipt():
        with httpx.Client(base_url=features_url, timeout=TIMEOUT) as client:
            r = client.post(
                "/v1/extract",
                files={"file": ("receipt.png", png)},
                data={"preset": "receipt", "options": options, "include_markdown": "true"},
            )
        assert r.status_code == 200, r.text
        return ExtractResponse.model_validate(r.json())

    def invoice():
        with OCRClient(features_url) as client:
            return client.extract(
                pdf,
                "invoice.pdf",
                preset="invoice",
                dpi=50,
                include_markdown=False,
                options={"max_new_tokens": EXTRACT_TOKENS, "adapter": "invoices"},
            )

    def id_card():
        out = tmp_path / "card.json"
        args = ["extract", str(card), "--preset", "id_card", "--url", features_url, "--out", str(out)]  # OCR'd too
        result = CliRunner().invoke(app, [*args, "--adapter", "receipts", "--options", options])
        return result, out

    receipt_answer, invoice_answer, (cli, cli_out) = _concurrently(receipt, invoice, id_card)
    assert cli.exit_code in (0, 3), cli.output  # 3: the answer does not validate (a truncated answer)
    card_answer = ExtractResponse.model_validate_json(cli_out.read_text())
    finished = []
    for preset, answer in (("receipt", receipt_answer), ("invoice", invoice_answer), ("id_card", card_answer)):
        assert answer.json_schema == f"preset:{preset}" and answer.backend == BACKEND
        for page in answer.pages:
            if page.finish_reason == "stop":  # the JSON closed: under vLLM's grammar it always parses and validates
                # (raw control characters included: shared.json_schemas.read_answer)
                text = json.loads(page.text, strict=False)
                assert page.valid and _valid(preset, text), (preset, page.errors, page.text)
                # the text is exactly what vLLM generated: one token per byte with this tokenizer, so its bytes
                # are vLLM's own count of the tokens it decoded (the end token aside)
                assert len(page.text.encode()) == page.usage.output_tokens, (preset, page.usage, page.text)
            else:  # random weights can fill an array to maxItems: cut at max_new_tokens, said so, nothing invented
                assert page.finish_reason == "length" and page.data is None and not page.valid
                assert page.errors[0].startswith("truncated:")
        if all(page.finish_reason == "stop" for page in answer.pages):
            assert answer.valid and _valid(preset, answer.data), (preset, answer.errors)
            finished.append(preset)
        else:
            assert not answer.valid
    assert "id_card" in finished  # bounded strings only: it always closes within the budget
    if cli.exit_code == 0:
        assert json.loads(cli.output[cli.output.index("{") :]) == card_answer.data
    assert card_answer.model.adapter == "receipts" and invoice_answer.model.adapter == "invoices"
    assert receipt_answer.model.adapter is None and receipt_answer.markdown is not None
    assert receipt_answer.pages[0].markdown is not None and receipt_answer.usage.output_tokens
    assert [p.index for p in invoice_answer.pages] == [0, 1] and invoice_answer.markdown is None
    # evidence on the tiny model's real answers (receipt and id_card, OCR'd too for audit; id_card always closes):
    # every leaf value accounted for, each found one boxed on its page, the rest flagged not_found (random weights
    # mostly invent values), none dropped
    assert card_answer.data is not None
    for answer in (receipt_answer, card_answer):
        page = answer.pages[0]
        data = answer.data if answer.scope == "document" else page.data
        evidence = answer.evidence if answer.scope == "document" else page.evidence
        if data is None:
            continue
        assert evidence is not None and [e.path for e in evidence] == [path for path, _ in leaves(data)]
        for item in evidence:
            if item.match == "not_found":
                assert item.page is None and not item.boxes, item
            else:
                assert item.page == 0 and item.boxes, item
                assert all(0 <= v <= 1 for box in item.boxes for v in box.bbox_norm), item


def test_refusals_list_the_backends_that_can_extract(features_url):
    png = samples.encode(PAGE)
    with httpx.Client(base_url=features_url, timeout=TIMEOUT) as client:
        fake = client.post("/v1/extract", files={"file": ("p.png", png)}, data={"preset": "receipt", "backend": "fake"})
        docx = client.post(
            "/v1/extract",
            files={"file": ("d.html", b"<html><body><p>hello</p></body></html>")},
            data={"preset": "receipt"},
        )
    assert fake.status_code == 400 and fake.json()["error"]["accepted"] == {"backends": [BACKEND]}
    assert docx.status_code == 415


def test_render_counts_text_tokens_with_the_model_tokenizer(features_url):
    text = "Invoice 42: total 129.90 EUR\nThank you!"
    with OCRClient(features_url) as client:
        answer = client.render(text, mode="small", include_images=False)
    assert answer.tokenizer.startswith(f"backend:{BACKEND} (")
    assert answer.text_tokens == len(text.encode())  # the tiny tokenizer is byte-level: one token per byte
    assert answer.pages[0].png is None and answer.pages[0].text_tokens == len(text.encode())
