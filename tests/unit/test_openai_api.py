"""OpenAI's chat-completions protocol (shared.openai_api, shared.chat_prompts): requests read,
refusals in OpenAI's error shape, answers that the official ``openai`` package's own types and client accept, and
the answer formats OCR clients parse (MinerU's layout with mineru-vl-utils' own parser)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import openai
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChatCompletionChunk

from backends.deepseek.engine import PROMPT_CAPABILITIES
from orchestrator.ops import samples
from shared.chat_prompts import KNOWN_PROMPTS, OLMOCR_V4, known, normalise_prompt, plan_prompt
from shared.errors import OCRError
from shared.openai_api import (
    ChatCompletionRequest,
    ChatRequestError,
    completion,
    content_pieces,
    model_list,
    openai_error,
    page_content,
    read_messages,
    sse,
    stream_chunks,
)
from shared.schema import Capabilities, ErrorCode
from shared.tokens import bundled_counter
from tests.support.responses import make_response

PNG = samples.encode(samples.numbered_pages(1)[0][0])
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
MAX = 1 << 20


def _request(content, **fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "rapidocr", "messages": [{"role": "user", "content": content}], **fields}
    )


def _image(url: str = DATA_URL) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _refused(request: ChatCompletionRequest, **limits) -> ChatRequestError:
    with pytest.raises(ChatRequestError) as e:
        read_messages(request, max_bytes=limits.get("max_bytes", MAX), max_images=limits.get("max_images", 4))
    return e.value


def test_a_page_and_a_prompt_are_read_and_harmless_fields_ignored():
    request = ChatCompletionRequest.model_validate(
        {
            "model": "rapidocr",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [_image(), {"type": "text", "text": "\nText Recognition:"}]},
            ],
            "temperature": 0.0,
            "top_k": 1,
            "max_completion_tokens": 100,
            "skip_special_tokens": False,
            "vllm_xargs": {"no_repeat_ngram_size": 100},
            "priority": 3,
        }
    )
    chat = read_messages(request, max_bytes=MAX, max_images=4)
    assert [i.data for i in chat.images] == [PNG] and chat.images[0].media_type == "image/png"
    assert chat.prompt == "Text Recognition:"
    assert request.token_limit() == 100
    assert {"temperature", "top_k", "skip_special_tokens", "vllm_xargs", "priority", "messages[0] (system)"} <= set(
        chat.ignored
    )
    several = read_messages(_request([_image(), _image(), {"type": "text", "text": "Free OCR."}]), max_bytes=MAX,
                            max_images=4)  # fmt: skip
    assert len(several.images) == 2 and several.prompt == "Free OCR."
    pdf = read_messages(
        _request(
            [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]
        ),
        max_bytes=MAX,
        max_images=4,
    )
    assert pdf.images[0].data == b"%PDF-" and pdf.images[0].name == "a.pdf"


@pytest.mark.parametrize(
    ("content", "fields", "code", "param", "says"),
    [
        ([_image("https://example.com/page.png")], {}, "invalid_option", "messages[0].content[0].image_url.url",
         "never fetches"),
        ([_image("file:///etc/passwd")], {}, "invalid_option", "messages[0].content[0].image_url.url", "never fetches"),
        ([_image("data:image/png,notbase64")], {}, "invalid_option", None, "base64 data URL"),
        ([_image("data:image/png;base64,@@@@")], {}, "invalid_option", None, "does not decode"),
        ([_image("data:image/png;base64,")], {}, "empty_document", None, "no bytes"),
        ([{"type": "text", "text": "Free OCR."}], {}, "invalid_option", "messages", "no image"),
        ("just text", {}, "invalid_option", "messages", "no image"),
        ([_image()], {"n": 2}, "invalid_option", "n", "n=1"),
        ([_image()], {"tools": [{"type": "function"}]}, "invalid_option", "tools", "tool"),
        ([_image()], {"response_format": {"type": "json_object"}}, "invalid_option", "response_format", "/v1/extract"),
        ([_image()], {"logprobs": True}, "invalid_option", "logprobs", "log-probabilities"),
        ([{"type": "file", "file": {"file_id": "file-1"}}], {}, "invalid_option", None, "file_id"),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_refused_saying_why(content, fields, code, param, says):
    error = _refused(_request(content, **fields))
    assert error.code == code and says in error.message
    if param:
        assert error.param == param


def test_an_unknown_part_type_is_a_validation_error():
    with pytest.raises(ValueError):
        _request([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])


def test_size_and_count_are_checked_before_decoding():
    huge = "data:image/png;base64," + "A" * (4 * MAX)
    error = _refused(_request([_image(huge)]))
    assert error.code == "document_too_large" and error.accepted == {"max_bytes": MAX}
    error = _refused(_request([_image(), _image(), _image()]), max_images=2)
    assert error.code == "too_many_pages"


def test_a_conversation_history_is_refused():
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [_image()]},
                {"role": "assistant", "content": "text"},
                {"role": "user", "content": "again"},
            ],
        }
    )
    error = _refused(request)
    assert error.param == "messages[1]" and "one turn" in error.message


@pytest.mark.parametrize(
    ("code", "status", "kind", "openai_code"),
    [
        (ErrorCode.UNKNOWN_BACKEND, 404, "not_found_error", "model_not_found"),
        (ErrorCode.INVALID_OPTION, 400, "invalid_request_error", "invalid_option"),
        (ErrorCode.DOCUMENT_TOO_LARGE, 413, "invalid_request_error", "document_too_large"),
        (ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415, "invalid_request_error", "unsupported_media_type"),
        (ErrorCode.UNAUTHORIZED, 401, "authentication_error", "unauthorized"),
        (ErrorCode.OVERLOADED, 503, "server_error", "overloaded"),
        (ErrorCode.TIMEOUT, 504, "server_error", "timeout"),
    ],
)
def test_errors_take_openais_shape_and_this_projects_status(code, status, kind, openai_code):
    got_status, body = openai_error(OCRError(code, "what went wrong", accepted=["a", "b"]), request_id="r1")
    assert got_status == status
    error = body.model_dump()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == kind and error["code"] == openai_code
    assert "what went wrong" in error["message"] and '["a", "b"]' in error["message"] and "r1" in error["message"]
    assert error["param"] == ("model" if code == ErrorCode.UNKNOWN_BACKEND else None)


def _chat(prompt: str = "Free OCR."):
    return read_messages(_request([_image(), {"type": "text", "text": prompt}]), max_bytes=MAX, max_images=4)


def test_a_completion_is_valid_for_the_openai_package_with_usage_from_the_engine_or_a_named_tokenizer():
    page = [("title", "Report", "# Report"), ("text", "Hello world.", "Hello world.")]
    counter = bundled_counter()
    deepseek = completion([make_response([page], tokens=(256, 12))], model="deepseek-ocr", chat=_chat(),
                          answer_format="markdown", counter=counter, created=1, completion_id="chatcmpl-1")  # fmt: skip
    parsed = OpenAIChatCompletion.model_validate(json.loads(deepseek.model_dump_json()))
    assert parsed.choices[0].message.content == "# Report\n\nHello world." and parsed.choices[0].finish_reason == "stop"
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (256, 12, 268)
    assert deepseek.ocrserve.usage_source == "engine"
    rapid = completion([make_response([page])], model="rapidocr", chat=_chat(), answer_format="text",
                       counter=counter, created=1, completion_id="chatcmpl-2")  # fmt: skip
    parsed = OpenAIChatCompletion.model_validate(json.loads(rapid.model_dump_json()))
    assert parsed.choices[0].message.content == "Report\n\nHello world."
    assert parsed.usage.completion_tokens == counter.count(["Report\n\nHello world."])[0]
    assert parsed.usage.prompt_tokens == counter.count(["Free OCR."])[0]
    assert rapid.ocrserve.usage_source == "tokenizer:cl100k_base"
    truncated = completion([make_response([page], warnings=["truncated: the output hit the token limit"])],
                           model="m", chat=_chat(), answer_format="markdown", counter=counter, created=1,
                           completion_id="c")  # fmt: skip
    assert truncated.choices[0].finish_reason == "length"


def test_the_stream_is_openais_chunks_then_done():
    page = [("text", f"Paragraph {i}.", f"Paragraph {i}.") for i in range(4)]
    answer = completion([make_response([page])], model="rapidocr", chat=_chat(), answer_format="markdown",
                        counter=bundled_counter(), created=1, completion_id="chatcmpl-s")  # fmt: skip
    events = list(sse(stream_chunks(answer, include_usage=True)))
    assert events[-1] == "data: [DONE]\n\n" and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [OpenAIChatCompletionChunk.model_validate(json.loads(e[6:])) for e in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content and len(content_pieces(text)) == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == answer.usage.total_tokens
    assert all(c.id == "chatcmpl-s" for c in chunks)


def test_the_model_list_is_openais():
    listing = model_list(["rapidocr", "mineru", "cascade", "rapidocr"], created=5)
    assert [Model.model_validate(m.model_dump()).id for m in listing.data] == ["rapidocr", "mineru", "cascade"]
    assert listing.model_dump()["object"] == "list"


def test_minerus_own_client_parses_the_layout_answer():
    from mineru_vl_utils.mineru_client import DEFAULT_PROMPTS, MinerUClientHelper

    helper = MinerUClientHelper(
        backend="http-client", prompts=DEFAULT_PROMPTS, sampling_params={}, layout_image_size=(1036, 1036),
        min_image_edge=28, max_image_edge_ratio=50, simple_post_process=False, handle_equation_block=True,
        abandon_list=False, abandon_paratext=False, image_analysis=False, debug=False,
    )  # fmt: skip
    response = make_response([[("title", "Report", "# Report"), ("text", "Body.", "Body."), ("table", "<table/>", ""),
                               ("figure", "", ""), ("footer", "7", "")]])  # fmt: skip
    blocks = helper.parse_layout_output(page_content(response, "mineru_layout"))
    assert [b["type"] for b in blocks] == ["title", "text", "table", "image", "footer"]
    for block, ours in zip(blocks, response.pages[0].blocks):
        assert block["bbox"] == pytest.approx(ours.bbox_norm, abs=0.001)
    # the prompts this service knows are the ones the installed client sends
    mineru = {p.text for p in KNOWN_PROMPTS if p.name.startswith("mineru")}
    assert mineru == {DEFAULT_PROMPTS[k] for k in ("[layout]", "[default]", "table", "equation")}


def test_olmocr_answers_carry_its_front_matter():
    response = make_response([[("text", "Body.", "Body.")]])
    content = page_content(response, "olmocr")
    head, body = content.split("---\n", 2)[1:]
    fields = dict(line.split(": ", 1) for line in head.strip().split("\n"))
    assert fields == {"primary_language": "null", "is_rotation_valid": "True", "rotation_correction": "0",
                      "is_table": "False", "is_diagram": "False"}  # fmt: skip
    assert body == "Body."


DEEPSEEK = Capabilities(**PROMPT_CAPABILITIES)  # what the DeepSeek engine publishes
PROMPTLESS = Capabilities(reads=["image/png"])  # RapidOCR, MinerU's pipeline


def test_prompts_pass_through_to_a_prompted_engine_and_only_known_ones_reach_other_engines():
    plan = plan_prompt("<image>\n<|grounding|>Convert the document to markdown.", capabilities=DEEPSEEK,
                       backend="d", max_tokens=512)  # fmt: skip
    assert plan.options == {"prompt": "markdown", "max_new_tokens": 512} and plan.answer_format == "markdown"
    assert plan_prompt("Free OCR.", capabilities=DEEPSEEK, backend="d").options == {"prompt": "free"}
    assert plan_prompt("Free OCR.", capabilities=DEEPSEEK, backend="d").answer_format == "text"
    custom = plan_prompt("Read the handwritten note.", capabilities=DEEPSEEK, backend="d")
    assert custom.options == {"prompt": "custom", "custom_prompt": "Read the handwritten note."}
    assert plan_prompt("", capabilities=DEEPSEEK, backend="d").options == {}
    assert plan_prompt(OLMOCR_V4, capabilities=PROMPTLESS, backend="r").answer_format == "olmocr"
    assert plan_prompt(" Layout   Detection: ", capabilities=None, backend="m").answer_format == "mineru_layout"
    assert plan_prompt("", capabilities=PROMPTLESS, backend="r", max_tokens=9).ignored
    assert known("<image>\nFree OCR.").name == "deepseek-free"
    with pytest.raises(ChatRequestError) as e:
        plan_prompt("Describe this image in detail.", capabilities=PROMPTLESS, backend="r")
    assert e.value.code == "invalid_option" and OLMOCR_V4 in e.value.accepted["prompts"]


def test_the_known_prompted_model_prompts_are_the_ones_its_engine_publishes():
    published = {normalise_prompt(text) for text in DEEPSEEK.prompts.values()}
    known_here = {normalise_prompt(p.text) for p in KNOWN_PROMPTS if p.sent_by == "DeepSeek-OCR"}
    assert known_here and known_here <= published


def test_the_openai_client_drives_the_protocol(monkeypatch):
    """The official client against a scripted server made of this module's functions: what it sends is read, what
    it gets back parses, plain and streamed, and refusals raise its own exception types."""
    counter = bundled_counter()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=model_list(["rapidocr"], created=1).model_dump())
        body = ChatCompletionRequest.model_validate_json(request.content)
        try:
            if body.model != "rapidocr":
                raise OCRError(ErrorCode.UNKNOWN_BACKEND, f"no backend named {body.model!r}", accepted=["rapidocr"])
            chat = read_messages(body, max_bytes=MAX, max_images=4)
            plan = plan_prompt(chat.prompt, capabilities=PROMPTLESS, backend="rapidocr")
        except OCRError as e:
            status, error = openai_error(e)
            return httpx.Response(status, json=error.model_dump())
        page = [("text", f"Read {len(chat.images[0].data)} bytes.", f"Read {len(chat.images[0].data)} bytes.")]
        answer = completion([make_response([page])], model=body.model, chat=chat, answer_format=plan.answer_format,
                            counter=counter, created=int(time.time()), completion_id="chatcmpl-x")  # fmt: skip
        if body.stream:
            include = bool(body.stream_options and body.stream_options.include_usage)
            text = "".join(sse(stream_chunks(answer, include_usage=include)))
            return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=json.loads(answer.model_dump_json()))

    client = openai.OpenAI(
        base_url="http://service/v1", api_key="k", max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )  # fmt: skip
    messages = [{"role": "user", "content": [{"type": "text", "text": "Free OCR."}, _image()]}]
    assert [m.id for m in client.models.list()] == ["rapidocr"]
    answer = client.chat.completions.create(model="rapidocr", messages=messages, temperature=0)
    assert answer.choices[0].message.content == f"Read {len(PNG)} bytes." and answer.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="rapidocr", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(parts) == f"Read {len(PNG)} bytes."
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=messages)
    assert e.value.code == "model_not_found" and "rapidocr" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="rapidocr", messages=[{"role": "user", "content": [_image("http://example.com/a.png")]}]
        )
    assert "never fetches" in e.value.message and e.value.param == "messages[0].content[0].image_url.url"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="rapidocr", messages=[{"role": "user", "content": "no page"}])
    assert "no image" in e.value.message
