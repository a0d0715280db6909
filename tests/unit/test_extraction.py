"""Fields as JSON, the pure parts: shipped schemas, schema checks, reading answers, merging pages, the router's
re-validation and its choice of an extracting backend (fake statuses, no Ray)."""

from __future__ import annotations

import asyncio
import json

import pytest
from jsonschema import Draft202012Validator

from backends.extraction import PageAnswer, assemble, instruction
from orchestrator.ops import samples
from orchestrator.serving.router import Router
from orchestrator.serving.services.extract import recheck_extraction
from shared.documents import open_document
from shared.errors import OCRError
from shared.json_schemas import (
    PRESETS,
    check_schema,
    default_instruction,
    load_preset,
    merge_answers,
    read_answer,
    resolve_schema,
)
from shared.requests import ExtractOptions, ExtractRunRequest
from shared.schema import BackendStatus, Capabilities, ModelInfo, Timings

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": ["number", "null"]}, "items": {"type": "array", "maxItems": 3}},
    "required": ["total", "items"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_a_valid_schema_whose_fields_may_be_null(name):
    schema = load_preset(name)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == name and schema["type"] == "object"
    nulls = {k: None for k in schema["properties"] if k not in ("line_items", "seller", "buyer")}
    # a field the model could not fill is null: every scalar field of a preset admits null
    for key in nulls:
        assert Draft202012Validator(schema["properties"][key]).is_valid(None), key


def test_unknown_preset_and_bad_schemas_are_refused_with_what_is_accepted():
    with pytest.raises(OCRError) as e:
        load_preset("passport")
    assert e.value.code == "invalid_option" and e.value.accepted == {"preset": list(PRESETS)}
    for bad in ({"type": "objekt"}, {"type": "array", "items": {}}, ["not", "an", "object"]):
        with pytest.raises(OCRError) as e:
            check_schema(bad)
        assert e.value.status == 400
    with pytest.raises(OCRError, match="exactly one"):
        resolve_schema(SCHEMA, "receipt")
    with pytest.raises(OCRError, match="exactly one"):
        resolve_schema(None, None)
    schema, name = resolve_schema(SCHEMA, None)
    assert schema == SCHEMA and name.startswith("custom:") and len(name) == len("custom:") + 12
    assert resolve_schema(None, "invoice")[1] == "preset:invoice"


def test_answers_are_parsed_never_evaluated_and_validated():
    ok = read_answer('{"total": 12.5, "items": []}', SCHEMA)
    assert ok.valid and ok.data == {"total": 12.5, "items": []}
    wrong = read_answer('{"total": "12", "items": [1, 2, 3, 4]}', SCHEMA)
    assert not wrong.valid and wrong.data is not None
    assert any(e.startswith("total:") for e in wrong.errors) and any(e.startswith("items:") for e in wrong.errors)
    code = read_answer("__import__('os').system('true')", SCHEMA)
    assert code.data is None and code.errors[0].startswith("not JSON")
    cut = read_answer('{"total": 1', SCHEMA, finish_reason="length")
    assert cut.data is None and "truncated" in cut.errors[0]


def test_a_raw_control_character_the_grammar_let_through_is_read_not_refused():
    """xgrammar (what vLLM constrains a preset's answer with) admits U+0014 raw in a string with a length bound;
    the answer still parses, keeps the character and validates."""
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    bounded = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}, "required": ["name"]}
    text = '{"name": "A\x14B"}'
    assert accepts(xgrammar.Grammar.from_json_schema(json.dumps(bounded), any_whitespace=False), text)
    answer = read_answer(text, bounded)
    assert answer.valid and answer.data == {"name": "A\x14B"}


def test_merge_takes_first_non_null_concatenates_arrays_and_reports_conflicts():
    merged, warnings = merge_answers(
        [
            (0, {"vendor": None, "total": 10, "items": [1], "seller": {"name": "A", "vat": None}}),
            (1, {"vendor": "Shop", "total": 10, "items": [2, 3], "seller": {"name": "B", "vat": "X1"}}),
            (2, {"vendor": None, "total": 12, "items": [], "seller": {"name": None, "vat": None}}),
        ]
    )
    assert merged == {"vendor": "Shop", "total": 10, "items": [1, 2, 3], "seller": {"name": "A", "vat": "X1"}}
    assert len(warnings) == 2 and any("seller/name" in w for w in warnings) and any("page 3" in w for w in warnings)
    nothing, _ = merge_answers([(0, {"vendor": None}), (1, {"vendor": None})])
    assert nothing == {"vendor": None}  # never invented: null on every page stays null
    assert merge_answers([]) == (None, [])


def _request(scope: str, **kw) -> ExtractRunRequest:
    return ExtractRunRequest(
        request_id="r", received_at=0.0, json_schema=SCHEMA, schema_name="custom:x", scope=scope, **kw
    )


def _assemble(scope: str, texts: list[str]):
    doc = open_document(samples.multi_page_pdf(samples.numbered_pages(len(texts))[0]), name="d.pdf")
    answers = [PageAnswer(index=i, text=t, finish_reason="stop") for i, t in enumerate(texts)]
    return assemble(
        _request(scope),
        answers,
        [],
        backend="b",
        model=ModelInfo(id="m", engine="vllm", adapter="receipts"),
        document=doc,
        enforced_by="test",
        warnings=[],
        timings=Timings(),
    )


def test_document_scope_merges_valid_pages_and_leaves_invalid_ones_out():
    result = _assemble("document", ['{"total": null, "items": [1]}', "{oops", '{"total": 3, "items": [2]}'])
    assert result.valid and result.data == {"total": 3, "items": [1, 2]}
    assert [p.valid for p in result.pages] == [True, False, True]
    assert any("page(s) [2] left out" in w for w in result.warnings)
    assert result.model.adapter == "receipts"
    too_many = _assemble("document", ['{"total": 1, "items": [1, 2]}', '{"total": 1, "items": [3, 4]}'])
    assert not too_many.valid and any("items" in e for e in too_many.errors)  # merged, not trimmed to fit


def test_page_scope_is_valid_only_when_every_page_is():
    result = _assemble("page", ['{"total": 1, "items": []}', '{"total": "x", "items": []}'])
    assert result.data is None and not result.valid and result.errors[0].startswith("page 2: total")


def test_router_revalidates_and_never_trusts_a_backend_that_says_valid():
    result = _assemble("document", ['{"total": 1, "items": []}'])
    result.data = {"total": "forged", "items": []}  # a backend claiming valid for an invalid answer
    result.pages[0].data = {"total": "forged", "items": []}
    recheck_extraction(result, SCHEMA)
    assert not result.valid and result.errors[0].startswith("router: total")
    assert not result.pages[0].valid and result.pages[0].errors[0].startswith("router:")


def test_default_instruction_names_the_fields_and_asks_for_null():
    text = default_instruction(load_preset("receipt"))
    assert text.startswith("Extract the receipt fields (vendor, date, currency, total, tax, line_items)")
    assert "null" in text
    assert instruction(_request("page", prompt="Fields as JSON.")) == "Fields as JSON."


def _router(statuses: dict[str, BackendStatus]) -> Router:
    router = Router({name: object() for name in statuses}, {"auto_order": list(statuses)})

    async def fake_statuses(**_):
        return statuses

    router.directory.statuses = fake_statuses  # type: ignore[method-assign]
    return router


def _status(name: str, *, extract: bool, ready: bool = True) -> BackendStatus:
    return BackendStatus(
        name=name,
        engine="deepseek" if extract else "rapidocr",
        status="ready" if ready else "unavailable",
        media_types=["image/png", "application/pdf"],
        capabilities=Capabilities(extracts=extract),
    )


def test_extractor_choice_and_refusals_list_the_backends_that_can():
    both = _router({"rapidocr": _status("rapidocr", extract=False), "ds": _status("ds", extract=True)})
    assert asyncio.run(both.extract_service.extractor(None, "image/png")) == "ds"
    assert asyncio.run(both.extract_service.extractor("ds", "image/png")) == "ds"
    with pytest.raises(OCRError) as e:
        asyncio.run(both.extract_service.extractor("rapidocr", "image/png"))
    assert e.value.status == 400 and e.value.accepted == {"backends": ["ds"]}
    with pytest.raises(OCRError) as e:
        asyncio.run(both.extract_service.extractor("nope", "image/png"))
    assert e.value.status == 404
    with pytest.raises(OCRError) as e:
        asyncio.run(both.extract_service.extractor(None, "text/html"))
    assert e.value.status == 415
    none = _router({"rapidocr": _status("rapidocr", extract=False)})
    with pytest.raises(OCRError) as e:
        asyncio.run(none.extract_service.extractor(None, "image/png"))
    assert e.value.status == 400 and e.value.accepted == {"backends": []}


def test_extract_options_read_a_schema_from_a_form_string():
    opts = ExtractOptions.model_validate({"json_schema": json.dumps(SCHEMA), "scope": "page"})
    assert opts.json_schema == SCHEMA and opts.scope == "page" and opts.include_markdown
