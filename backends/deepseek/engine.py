"""The DeepSeek-OCR engine: one backend over two runners (vLLM, transformers), chosen by config.

The engine owns the decisions that must not differ between runners - which prompt, which mode actually runs
(and the warning when it is not the one asked for), the token budget, and how output becomes the unified
schema (grounding parser, usage and compression figures, truncation and looping warnings). Runners only
generate text. Neither this module nor the runners import Ray.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from PIL import Image

from backends.base import EngineHealth, EngineOptions, EngineRun, OCREngine
from backends.deepseek.adapters import Adapter, resolve_adapters
from backends.deepseek.config import (
    DEFAULT_MODELS,
    REFUSE_V1_TRANSFORMERS,
    DeepSeekConfig,
    DeepSeekOptions,
    variant_from_hf_config,
)
from backends.deepseek.grounding import parse_page
from backends.deepseek.modes import Variant, honoured_modes, page_costs, resolve_mode, vision_tokens
from backends.deepseek.prompts import IMAGE_TOKEN, PROMPT_BODIES, build_prompt
from backends.deepseek.runner import Generation, Runner, RunPlan
from backends.deepseek.source import ModelSource, resolve_source
from backends.deepseek.vllm_errors import classify_request_error
from backends.extraction import ExtractionRun, ExtractTask, PageAnswer
from shared.documents import PAGED_TYPES, Document, PageImage
from shared.errors import OCRError
from shared.schema import Capabilities, ModeCost, ModelInfo, PageResult, PageUsage

logger = logging.getLogger(__name__)

VARIANT_NAMES: dict[str, str] = {"ocr": "DeepSeek-OCR", "ocr2": "DeepSeek-OCR-2"}
RANDOM_WEIGHTS_VERSION = "{name} (random weights)"
"""``model.version`` of a backend on vLLM's dummy weights: every answer, metric label and accuracy run says so."""

ENFORCED_BY = "vLLM structured outputs (JSON schema grammar applied to every decoded token)"
"""What constrains an extraction on this engine (the response's ``enforced_by``)."""

REFUSE_EXTRACT_TRANSFORMERS = (
    "field extraction needs constrained decoding, which this backend's transformers engine does not have; "
    "DeepSeek-OCR on the vLLM engine enforces the schema (vLLM structured outputs)"
)


def compression_ratio(output_tokens: int | None, vision: int | None) -> float | None:
    """Output tokens per vision token (the paper's compression figure), rounded; None when unknown."""
    if not output_tokens or not vision:
        return None
    return round(output_tokens / vision, 4)


def pixels(page: PageImage) -> Image.Image:
    """The page's image (this engine reads pixels: ``needs_pixels`` stays true, so the pipeline renders them)."""
    if page.image is None:
        raise RuntimeError(f"page {page.index} reached the DeepSeek engine without pixels")
    return page.image


def page_result(page: PageImage, gen: Generation, plan: RunPlan) -> PageResult:
    """One page's generation as a schema page: blocks, markdown, usage and warnings."""
    width, height = pixels(page).size
    parsed = parse_page(
        gen.text,
        width=width,
        height=height,
        page_number=page.index + 1,
        finish_reason=gen.finish_reason,
        output_tokens=gen.output_tokens,
    )
    vision = gen.vision_tokens if gen.vision_tokens is not None else vision_tokens(width, height, plan.spec)
    return PageResult(
        index=page.index,
        width=width,
        height=height,
        dpi=page.dpi,
        markdown=parsed.markdown,
        blocks=parsed.blocks,
        usage=PageUsage(
            vision_tokens=vision,
            output_tokens=gen.output_tokens,
            compression_ratio=compression_ratio(gen.output_tokens, vision),
        ),
        warnings=[*gen.warnings, *parsed.warnings],
    )


def raw_page(page: PageImage, gen: Generation) -> dict[str, Any]:
    """One page of ``raw_result``: the model's text and finish, plus what the engine itself counted and timed
    (vLLM: prompt length and image positions it received, its scheduler timestamps)."""
    raw: dict[str, Any] = {
        "index": page.index,
        "text": gen.text,
        "finish_reason": gen.finish_reason,
        "output_tokens": gen.output_tokens,
    }
    if gen.prompt_tokens is not None:
        raw["prompt_tokens"] = gen.prompt_tokens
    if gen.image_positions is not None:
        raw["image_positions"] = gen.image_positions
    if gen.timeline is not None:
        raw["engine_timeline"] = gen.timeline
    return raw


PROMPT_CAPABILITIES: dict[str, Any] = {
    "prompts": {name: f"{IMAGE_TOKEN}\n{body}" for name, body in PROMPT_BODIES.items() if "{" not in body},
    "custom_prompt": True,
    "token_limit_option": "max_new_tokens",
}
"""A prompted model: its presets by name (``locate`` needs its text, so it is not offered whole), any prompt as
``custom``, generation capped by ``max_new_tokens`` (how the OpenAI route maps a chat's text and max_tokens)."""


class DeepSeekEngine(OCREngine):
    """DeepSeek-OCR / DeepSeek-OCR-2 on vLLM (production) or transformers (OCR-2, GPU or CPU)."""

    kind = "deepseek"
    media_types = PAGED_TYPES
    batch_pages = 64
    Config = DeepSeekConfig
    Options = DeepSeekOptions
    metric_options = ("mode",)

    def __init__(self, config: DeepSeekConfig | dict[str, Any] | None = None, *, runner: Runner | None = None) -> None:
        """Configure (cheap, no I/O).

        Args:
            config: A :class:`DeepSeekConfig` or its dict form.
            runner: A ready runner to use instead of loading one (tests inject fakes here).
        """
        super().__init__(config)
        assert isinstance(self.config, DeepSeekConfig)
        self.cfg: DeepSeekConfig = self.config
        self.batch_pages = self.cfg.batch_pages  # type: ignore[misc]  # per deployment, over the class default
        self._runner: Runner | None = runner
        self._variant: Variant = self.cfg.declared_variant() or "ocr2"
        self._source: ModelSource | None = None
        self._error: str | None = None
        self._error_code = "backend_unavailable"
        self._adapters: dict[str, Adapter] = {}

    @property
    def variant(self) -> Variant:
        """``ocr`` or ``ocr2``, as resolved (from config, model name, then the checkpoint's config.json)."""
        return self._variant

    @property
    def runner(self) -> Runner | None:
        """The loaded runner (None before start), for tools that read its own statistics (the benchmark)."""
        return self._runner

    def start(self) -> None:
        """Check the weights, load the runner, warm up.

        Raises:
            OCRError: ``models_missing`` with what to download and where; ``backend_unavailable`` when the
                engine cannot run here (no vLLM, a vLLM engine core that fails, a v1 checkpoint on transformers).
        """
        try:
            if self._runner is None:
                self._runner = self._load_runner()
            if self.cfg.warmup:
                self._warmup()
            self._error = None
        except OCRError as e:
            self._error, self._error_code = e.message, e.code
            logger.error("DeepSeek engine not ready: %s", e.message)
            self.close()  # a half-started runner (e.g. warm-up failed) must not keep its engine and threads
            raise
        except Exception as e:
            self._error = f"{type(e).__name__}: {e}"
            logger.exception("DeepSeek engine failed to start")
            self.close()
            raise

    def _load_runner(self) -> Runner:
        default_hub = DEFAULT_MODELS.get((self.cfg.engine, self._variant), DEFAULT_MODELS[("transformers", "ocr2")])
        self._source = resolve_source(
            self.cfg.model_ref(),
            offline=self.cfg.is_offline(),
            default_hub_id=default_hub,
            download_dir=self.cfg.download_dir,
            revision=self.cfg.revision,
            need_weights=self.cfg.load_format != "dummy",
        )
        if self.cfg.variant == "auto" and self._source.hf_config is not None:
            self._variant = variant_from_hf_config(self._source.hf_config) or self._variant
        if self.cfg.engine == "transformers":
            if self._variant == "ocr":
                raise OCRError("backend_unavailable", REFUSE_V1_TRANSFORMERS)
            if self._source.hf_config is not None and self._source.hf_config.get("model_type") != "deepseek_ocr2":
                raise OCRError(
                    "backend_unavailable",
                    f"{self._source.ref} is not a native transformers DeepSeek-OCR-2 checkpoint (model_type "
                    f"{self._source.hf_config.get('model_type')!r}); use deepseek-community/DeepSeek-OCR-2 on "
                    "transformers, or engine: vllm for DeepSeek's own repos",
                )
            from backends.deepseek.hf_runner import HFRunner

            runner: Runner = HFRunner(self.cfg, self._source)
        else:
            from backends.deepseek.vllm_runner import VLLMRunner

            self._adapters = resolve_adapters(
                self.cfg.adapters,
                max_rank=self.cfg.max_lora_rank,
                offline=self.cfg.is_offline(),
                download_dir=self.cfg.download_dir,
            )
            runner = VLLMRunner(self.cfg, self._source, self._variant, self._adapters)
        runner.load()
        return runner

    def _warmup(self) -> None:
        assert self._runner is not None
        spec, _ = resolve_mode("gundam", variant=self._variant, engine=self._runner.name)  # type: ignore[arg-type]
        plan = RunPlan(prompt="<image>\nFree OCR.", spec=self._runner.adapt(spec), max_new_tokens=2)
        self._runner.generate([Image.new("RGB", (64, 64), "white")], plan)

    def health(self) -> EngineHealth:
        runner = self._runner
        engine_name = runner.name if runner is not None else self.cfg.engine
        ready = runner is not None and self._error is None
        info: dict[str, Any] = {
            "engine": engine_name,
            "variant": self._variant,
            "model_source": self._source.ref if self._source else self.cfg.model_ref(),
            "offline": self.cfg.is_offline(),
            "modes_honoured": list(honoured_modes(self._variant, engine_name)),  # type: ignore[arg-type]
            "batch_pages": self.batch_pages,
            "max_new_tokens": self.cfg.max_new_tokens,
            "random_weights": self.cfg.random_weights(),
            "adapters": {name: {"source": source} for name, source in self.cfg.adapters.items()},
        }
        if runner is not None:
            try:
                info.update(runner.info())
            except Exception as e:  # health must answer even when the runner is half-broken
                info["runner_error"] = str(e)
        detail = self._error if self._error else (None if ready else "not started")
        if ready and (info.get("engine_dead") or "runner_error" in info):
            # a dead vLLM engine core never recovers in-process: unready makes Serve replace the replica
            ready, detail = False, f"{engine_name} engine stopped working: {info.get('runner_error', 'engine dead')}"

        return EngineHealth(
            ready=ready,
            model=ModelInfo(
                id=self.cfg.model_ref(),
                version=self.model_version(),
                engine=engine_name,
                device=runner.device() if runner is not None else None,
            ),
            detail=detail,
            info=info,
        )

    def model_version(self) -> str:
        """The variant's name, marked when the weights are random (``load_format: dummy``)."""
        name = VARIANT_NAMES[self._variant]
        return RANDOM_WEIGHTS_VERSION.format(name=name) if self.cfg.random_weights() else name

    def plan(self, options: DeepSeekOptions) -> tuple[RunPlan, list[str]]:
        """The prompt, mode and token budget for a request, and request-level warnings.

        Raises:
            OCRError: ``invalid_option`` for a token budget above the deployment's limit.
        """
        max_new = options.max_new_tokens or self.cfg.max_new_tokens
        if max_new > self.cfg.max_new_tokens_limit:
            raise OCRError(
                "invalid_option",
                f"max_new_tokens {max_new} exceeds this deployment's limit of {self.cfg.max_new_tokens_limit}",
                accepted={"max_new_tokens": f"1..{self.cfg.max_new_tokens_limit}"},
            )
        if options.ngram_guard and not self.cfg.ngram_guard:
            raise OCRError(
                "invalid_option",
                "this deployment runs without the n-gram guard (ngram_guard: false), so a request cannot turn it on",
                accepted={"ngram_guard": [False]},
            )
        if options.adapter is not None and options.adapter not in self.cfg.adapters:
            known = sorted(self.cfg.adapters)
            raise OCRError(
                "invalid_option",
                f"no adapter named {options.adapter!r} on this backend"
                + (f"; configured: {', '.join(known)}" if known else " (it serves the base model only)"),
                accepted={"adapter": known},
            )
        guard = self.cfg.ngram_guard if options.ngram_guard is None else options.ngram_guard
        engine_name = self._runner.name if self._runner is not None else self.cfg.engine
        spec, warnings = resolve_mode(options.mode, variant=self._variant, engine=engine_name)  # type: ignore[arg-type]
        if self._runner is not None:
            spec = self._runner.adapt(spec)
        plan = RunPlan(
            prompt=options.prompt_text(),
            spec=spec,
            max_new_tokens=max_new,
            ngram_guard=guard,
            adapter=options.adapter,
        )
        return plan, warnings

    def _model(self, adapter: str | None) -> ModelInfo:
        """The model info of an answer: the base model's, naming the adapter that answered."""
        info = self.model_info()
        return info.model_copy(update={"adapter": adapter}) if adapter else info

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        if not isinstance(options, DeepSeekOptions):
            options = self.parse_options(options.model_dump())
        assert isinstance(options, DeepSeekOptions)
        if self._error is not None:
            raise OCRError(self._error_code, self._error)
        if self._runner is None:
            raise OCRError("backend_unavailable", "the DeepSeek engine is not started")
        plan, warnings = self.plan(options)
        generations = self._runner.generate([pixels(p) for p in pages], plan) if pages else []
        if len(generations) != len(pages):
            raise RuntimeError(f"runner returned {len(generations)} generations for {len(pages)} pages")
        results = [page_result(page, gen, plan) for page, gen in zip(pages, generations, strict=True)]
        raw = {
            "prompt": plan.prompt,
            "mode": plan.spec.name,
            "ngram_guard": plan.ngram_guard,
            "pages": [raw_page(p, g) for p, g in zip(pages, generations, strict=True)],
        }
        if plan.adapter:
            raw["adapter"] = plan.adapter
        return EngineRun(
            pages=results,
            raw=raw,
            source_markdown="\n\n".join(g.text for g in generations),
            warnings=warnings,
            model=self._model(plan.adapter),
        )

    def extract(
        self, doc: Document, pages: list[PageImage], options: EngineOptions, task: ExtractTask
    ) -> ExtractionRun:
        """Constrained JSON per page (vLLM structured outputs), the pages' OCR in the same vLLM batch.

        The OCR for audit is read by the base model, whatever adapter extracts: an independent reading of the same
        pages. The n-gram guard is off for the constrained requests: the grammar bounds the output, and a banned
        30-gram can be the only continuation the grammar allows (arrays of similar objects repeat).

        Raises:
            OCRError: ``invalid_option`` on the transformers engine (no constrained decoding) or for a bad prompt.
        """
        if not isinstance(options, DeepSeekOptions):
            options = self.parse_options(options.model_dump())
        assert isinstance(options, DeepSeekOptions)
        if self._error is not None:
            raise OCRError(self._error_code, self._error)
        runner = self._runner
        if runner is None:
            raise OCRError("backend_unavailable", "the DeepSeek engine is not started")
        if not hasattr(runner, "generate_groups"):
            raise OCRError("invalid_option", REFUSE_EXTRACT_TRANSFORMERS)
        ocr_plan, warnings = self.plan(options)
        prompt = build_prompt("custom", custom_prompt=task.instruction)
        plan = replace(ocr_plan, prompt=prompt, ngram_guard=False, json_schema=task.json_schema)
        images = [pixels(p) for p in pages]
        audit = replace(ocr_plan, adapter=None)  # the OCR for audit is the base model's: an independent reading
        groups = [(images, plan)] + ([(images, audit)] if task.include_markdown else [])
        results = runner.generate_groups(groups) if pages else [[] for _ in groups]  # type: ignore[attr-defined]
        answers = [
            PageAnswer(
                index=page.index,
                text=gen.text,
                finish_reason=gen.finish_reason,
                output_tokens=gen.output_tokens,
                vision_tokens=gen.vision_tokens,
                warnings=list(gen.warnings),
            )
            for page, gen in zip(pages, results[0], strict=True)
        ]
        ocr = None
        if task.include_markdown:
            ocr = EngineRun(pages=[page_result(p, g, audit) for p, g in zip(pages, results[1], strict=True)])
        return ExtractionRun(
            answers=answers, ocr=ocr, model=self._model(plan.adapter), enforced_by=ENFORCED_BY, warnings=warnings
        )

    def capabilities(self) -> Capabilities:
        """Extraction needs constrained decoding (the vLLM runner); every runner has the model's tokenizer."""
        runner = self._runner.name if self._runner is not None else self.cfg.engine
        return (
            super()
            .capabilities()
            .model_copy(update={"extracts": runner == "vllm", "counts_tokens": True, **PROMPT_CAPABILITIES})
        )

    @classmethod
    def vision_token_costs(cls, sizes: list[tuple[int, int]]) -> list[ModeCost]:
        """Every mode of both models, DeepSeek-OCR first (:func:`backends.deepseek.modes.page_costs`): the models'
        geometry, not one deployment's (vLLM runs Gundam only)."""
        return [
            ModeCost(
                mode=mode,
                model=VARIANT_NAMES[variant],
                vision_tokens=sum(per_page),
                per_page=per_page,
                compression_ratio=None,
            )
            for mode, variant, per_page in page_costs(sizes)
        ]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text by the served model's own tokenizer.

        Raises:
            OCRError: ``backend_unavailable`` when the engine is not started.
        """
        if self._runner is None:
            raise OCRError("backend_unavailable", "the DeepSeek engine is not started")
        return self._runner.count_tokens(texts)

    def classify_error(self, error: Exception) -> OCRError | None:
        """vLLM's request-time failures as typed answers (a dead engine is 503, not a 500 with a traceback)."""
        return classify_request_error(error)

    def close(self) -> None:
        """Release the model."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
