"""Fields as JSON: the shipped schemas, schema checks, reading a model's answer, and merging pages' answers.

Pure and light (json, jsonschema): the router re-validates every answer with it, whatever the backend said, and
the engines use the same functions to read what their model generated. Nothing here fills a value in: an answer
that does not parse stays ``None`` with the reason, a field the model left null stays null, and the merge of a
document's pages only *chooses* among values the model produced (first non-null per field, arrays concatenated),
saying so when pages disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from shared.errors import OCRError
from shared.schema import ErrorCode

PRESETS: tuple[str, ...] = ("receipt", "invoice", "id_card")
"""Schemas shipped as package data (``shared/presets/<name>.json``)."""

MAX_SCHEMA_BYTES = 64 * 1024
"""Largest schema a request may send (compiling a grammar from it happens on the GPU replica's CPU)."""

MAX_ERRORS = 20
"""Validation errors reported per answer (a wrong array can produce thousands)."""


@cache
def _preset_text(name: str) -> str:
    return resources.files("shared").joinpath("presets", f"{name}.json").read_text(encoding="utf-8")


def load_preset(name: str) -> dict[str, Any]:
    """A shipped schema by name (a fresh copy each call).

    Raises:
        OCRError: ``invalid_option`` for an unknown name, listing the shipped ones.
    """
    if name not in PRESETS:
        raise OCRError(ErrorCode.INVALID_OPTION, f"unknown preset {name!r}", accepted={"preset": list(PRESETS)})
    return json.loads(_preset_text(name))


def check_schema(schema: Any) -> None:
    """Refuse what is not a usable JSON Schema for an answer (an object schema, Draft 2020-12 valid, bounded size).

    Raises:
        OCRError: ``invalid_option`` saying what is wrong.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise OCRError(ErrorCode.INVALID_OPTION, "json_schema must be a JSON object")
    size = len(json.dumps(schema))
    if size > MAX_SCHEMA_BYTES:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"json_schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted",
            accepted={"max_schema_bytes": MAX_SCHEMA_BYTES},
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise OCRError(ErrorCode.INVALID_OPTION, f"json_schema is not a valid JSON Schema: {e.message}") from None
    if schema.get("type") not in ("object", None) and "properties" not in schema:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            'json_schema must describe an object ("type": "object" with "properties"): fields are extracted',
        )


def resolve_schema(json_schema: dict[str, Any] | None, preset: str | None) -> tuple[dict[str, Any], str]:
    """The schema a request names (its own, or a preset) and its display name, checked.

    Returns:
        (schema, name) where name is ``preset:<name>`` or ``custom:<12 hex of the schema's sha256>``.

    Raises:
        OCRError: ``invalid_option`` for neither or both given, an unknown preset or an invalid schema.
    """
    if (json_schema is None) == (preset is None):
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            "give exactly one of json_schema (a JSON Schema object) and preset (a shipped schema's name)",
            accepted={"preset": list(PRESETS), "json_schema": "a JSON Schema object"},
        )
    if preset is not None:
        return load_preset(preset), f"preset:{preset}"
    check_schema(json_schema)
    digest = hashlib.sha256(json.dumps(json_schema, sort_keys=True).encode()).hexdigest()[:12]
    return dict(json_schema or {}), f"custom:{digest}"


def validation_errors(schema: dict[str, Any], data: Any) -> list[str]:
    """Every way ``data`` fails ``schema`` (at most :data:`MAX_ERRORS`), as ``path: message``; empty when valid."""
    from jsonschema import Draft202012Validator

    errors = []
    for error in sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        errors.append(f"{path}: {error.message[:200]}")
        if len(errors) >= MAX_ERRORS:
            break
    return errors


@dataclass
class Answer:
    """A model's answer read against a schema.

    Attributes:
        data: The parsed JSON, or None when it did not parse.
        valid: Parsed and valid against the schema.
        errors: Why not, when not.
    """

    data: Any
    valid: bool
    errors: list[str] = field(default_factory=list)


def read_answer(text: str, schema: dict[str, Any], *, finish_reason: str | None = None) -> Answer:
    """Parse a model's output as JSON (``json.loads``, never ``eval``) and validate it.

    Control characters inside strings are read as the characters they are (``strict=False``): JSON wants them
    escaped, but xgrammar's rule for a string with a length bound admits any character but a quote, a backslash,
    CR and LF, so an answer vLLM constrained to the schema can hold a raw one (seen: U+0014 in an ``id_card``
    field). Refusing that answer as "not JSON" would throw away values the grammar produced and the schema accepts.

    Args:
        text: What the model generated, special tokens already removed.
        schema: The schema the answer was constrained to.
        finish_reason: ``length`` when generation stopped at the token budget (the JSON is then cut short).
    """
    stripped = text.strip()
    if finish_reason == "length":
        return Answer(
            None,
            False,
            [f"truncated: max_new_tokens was reached before the JSON closed ({len(stripped)} characters generated)"],
        )
    try:
        data = json.loads(stripped, strict=False)
    except ValueError as e:
        return Answer(None, False, [f"not JSON: {e}"])
    errors = validation_errors(schema, data)
    return Answer(data, not errors, errors)


def merge_answers(answers: list[tuple[int, Any]]) -> tuple[Any, list[str]]:
    """One document's answer from its pages' answers, choosing among what the model produced.

    Rules: objects merge field by field; a scalar field takes the first non-null value in page order (later
    different values are reported as conflicts); arrays are concatenated in page order. No value is made up: a
    field null on every page stays null.

    Args:
        answers: ``(page index, parsed answer)`` of the pages whose answer parsed, in page order.

    Returns:
        (merged answer, warnings about conflicts).
    """
    warnings: list[str] = []
    if not answers:
        return None, warnings
    merged = answers[0][1]
    for index, value in answers[1:]:
        merged = _merge(merged, value, path="", page=index, first_page=answers[0][0], warnings=warnings)
    return merged, warnings


def _merge(a: Any, b: Any, *, path: str, page: int, first_page: int, warnings: list[str]) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            sub = f"{path}/{key}" if path else key
            out[key] = (
                _merge(a[key], value, path=sub, page=page, first_page=first_page, warnings=warnings)
                if key in a
                else value
            )
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [*a, *b]
    if a is None:
        return b
    if b is not None and b != a:
        warnings.append(
            f"merge: {path or '(root)'} differs between pages: kept {json.dumps(a)[:60]} (first page with a value), "
            f"page {page + 1} says {json.dumps(b)[:60]}"
        )
    return a


def field_names(schema: dict[str, Any]) -> list[str]:
    """Top-level property names of an object schema, in declared order (for the default instruction)."""
    props = schema.get("properties")
    return list(props) if isinstance(props, dict) else []


def default_instruction(schema: dict[str, Any]) -> str:
    """The instruction sent when a request gives none: what to extract, named from the schema.

    The schema itself is enforced by constrained decoding, not by the prompt; the prompt only says what the
    document is and which fields are wanted, with null for what cannot be read.
    """
    title = schema.get("title")
    what = f"the {str(title).replace('_', ' ')} fields" if title else "the fields"
    names = ", ".join(field_names(schema)[:30])
    fields = f" ({names})" if names else ""
    return f"Extract {what}{fields} from the document as JSON; use null for anything not present."
