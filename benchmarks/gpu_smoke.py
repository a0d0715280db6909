"""GPU smoke test of DeepSeek-OCR-2's transformers engine: ten minutes on a fresh GPU machine, one JSON report.

What the CPU suite cannot show, checked on the GPU with the engine's own code (:mod:`backends.deepseek.hf_generate`:
attention choice, loading, the padded batch, the n-gram guard) on tiny random checkpoints it builds itself (dense
and mixture-of-experts decoders, :mod:`benchmarks.support.tiny_deepseek`):

- ``attention``: the model loads and generates with attention ``auto``, ``sdpa``, ``eager`` (and
  ``flash_attention_2`` when flash-attn imports here), on both checkpoints, and reports what was set.
- ``bf16``: every parameter and the activations that matter (vision tower, decoder layers, logits) are bfloat16.
- ``batch_equivalence``: in float32 (TF32 off), the smallest page alone decodes to the same tokens, from the same
  first-step logits, as the same page left-padded in a batch of 4 pages of other shapes (other prompt lengths).
- ``ngram_guard``: the guard bans the right token on device logits, and a guarded generation repeats no n-gram.
- ``max_new_tokens``: no page decodes past the budget, and ``finish_reason`` says so.
- ``figures``: peak device memory and seconds per page (a batch of 4, bfloat16, ``auto`` attention).

It needs torch, transformers, tokenizers, safetensors and pillow - nothing else of this project's dependencies
(no vLLM, no Ray, no pydantic, no network, no weights): a GPU machine as it comes. Run it from a fresh clone::

    python3 benchmarks/gpu_smoke.py                       # the GPU (exits 2 without one)
    python3 benchmarks/gpu_smoke.py --device cpu          # anywhere; the test suite runs it so

It prints one JSON object on stdout (logs go to stderr) and exits 0 when every check passed, 1 otherwise.
Random weights: the text is noise; the checks are about plumbing, dtypes and numerics, never about OCR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.deepseek.hf_generate import (  # noqa: E402
    NGramSettings,
    choose_attention,
    flash_attention_status,
    generate_batch,
    load_pretrained,
    ngram_guard,
    processor_geometry,
)
from backends.deepseek.modes import V2_MODES  # noqa: E402
from backends.deepseek.ngram import banned_next_tokens  # noqa: E402
from benchmarks.support.tiny_deepseek import build_tiny_model  # noqa: E402

logger = logging.getLogger("gpu_smoke")

PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
"""The engine's ``markdown`` preset (``backends.deepseek.prompts``; not imported: it needs pydantic)."""
PAGE_SIZES: tuple[tuple[int, int], ...] = ((240, 160), (160, 240), (96, 96), (300, 100))
"""Pages of different shapes: different tile counts (the tiny model's tiles are 96 px), so different prompt
lengths and real left padding."""
ATTENTIONS = ("auto", "sdpa", "eager")
FLASH = "flash_attention_2"

SMALLEST_RUN = "--device cpu --repeats 1"
"""The whole smoke run on the CPU, one timed batch: tests/benchmarks/test_gpu_smoke.py runs it, checking its report."""


def pages() -> list[Any]:
    """Four generated pages with a few lines of text each."""
    from PIL import Image, ImageDraw

    out = []
    for i, (width, height) in enumerate(PAGE_SIZES):
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for line in range(0, height - 20, 24):
            draw.text((8, 8 + line), f"Page {i + 1} line {line // 24 + 1}: smoke test", fill="black")
        out.append(image)
    return out


class Smoke:
    """The checks, sharing the checkpoints, the pages and the device."""

    def __init__(self, device: str, work_dir: Path) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.cuda = device.startswith("cuda")
        self.work_dir = work_dir
        self.images = pages()
        self.checkpoints: dict[str, Path] = {}
        self.flash, self.flash_reason = flash_attention_status()

    # -- helpers ----------------------------------------------------------------------------------------------

    def load(self, name: str, *, attention: str, dtype: str) -> tuple[Any, Any, dict[str, str]]:
        arg, report = choose_attention(
            attention, cuda=self.cuda, flash_available=self.flash, dtype=dtype, flash_reason=self.flash_reason
        )
        processor, model = load_pretrained(
            str(self.checkpoints[name]), device=self.device, dtype=dtype, attention=arg, local_files_only=True
        )
        return processor, model, report

    def generate(self, processor: Any, model: Any, images: list[Any], *, dtype: str, **kw: Any) -> list[Any]:
        spec = processor_geometry(V2_MODES["gundam"], processor)
        kw.setdefault("max_new_tokens", 8)
        kw.setdefault("guard", NGramSettings(ngram_size=30, window_size=90))
        return generate_batch(model, processor, images, prompt=PROMPT, spec=spec, device=self.device, dtype=dtype, **kw)

    @contextlib.contextmanager
    def peak(self, into: dict[str, Any]) -> Iterator[None]:
        """Peak device memory (CUDA) or the process's peak resident size (CPU) over the block, MiB."""
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        yield
        if self.cuda:
            self.torch.cuda.synchronize()
            into["peak_memory_mb"] = round(self.torch.cuda.max_memory_allocated() / 2**20, 1)
        else:
            into["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    # -- checks -----------------------------------------------------------------------------------------------

    def checkpoints_built(self) -> dict[str, Any]:
        started = time.perf_counter()
        out: dict[str, Any] = {}
        for name, moe in (("dense", False), ("moe", True)):
            path = build_tiny_model(self.work_dir / f"tiny-ocr2-{name}", moe=moe)
            self.checkpoints[name] = path
            config = json.loads((path / "config.json").read_text())
            out[name] = {"mlp_layer_types": config["text_config"]["mlp_layer_types"]}
        out["seconds"] = round(time.perf_counter() - started, 2)
        out["ok"] = out["dense"]["mlp_layer_types"] == ["dense", "dense"] and "sparse" in out["moe"]["mlp_layer_types"]
        return out

    def attention_and_bf16(self) -> tuple[dict[str, Any], dict[str, Any]]:
        attentions = list(ATTENTIONS) + ([FLASH] if self.cuda and self.flash else [])
        runs: dict[str, Any] = {}
        bf16: dict[str, Any] = {}
        for name in self.checkpoints:
            for attention in attentions:
                key = f"{name}/{attention}"
                processor, model, report = self.load(name, attention=attention, dtype="bfloat16")
                dtypes = _watch_dtypes(model)
                started = time.perf_counter()
                (gen,) = self.generate(processor, model, self.images[:1], dtype="bfloat16")
                runs[key] = {
                    "requested": attention,
                    "report": report,
                    "decoder": model.config.text_config._attn_implementation,
                    "vision": model.config.vision_config._attn_implementation,
                    "output_tokens": gen.output_tokens,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                runs[key]["ok"] = gen.output_tokens >= 1 and runs[key]["decoder"] == report["decoder"]
                params = {str(p.dtype) for p in model.parameters() if p.is_floating_point()}
                bf16[key] = {"parameters": sorted(params), "activations": dtypes.seen()}
                bf16[key]["ok"] = params == {"torch.bfloat16"} and set(dtypes.seen().values()) == {"torch.bfloat16"}
                dtypes.remove()
                del model
                self.free()
        flash = {"importable": self.flash, "reason": self.flash_reason, "ran": self.cuda and self.flash}
        return (
            {"runs": runs, "flash_attn": flash, "ok": all(r["ok"] for r in runs.values())},
            {"runs": bf16, "ok": all(r["ok"] for r in bf16.values())},
        )

    def batch_equivalence(self) -> dict[str, Any]:
        """The smallest page alone, then in a batch with the three larger ones (the most left padding of the batch):
        the same tokens, and first-step logits equal to float32 rounding."""
        torch = self.torch
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # exact float32
        target = PAGE_SIZES.index(min(PAGE_SIZES, key=lambda size: size[0] * size[1]))
        out: dict[str, Any] = {"page": list(PAGE_SIZES[target])}
        try:
            for name in self.checkpoints:
                processor, model, _ = self.load(name, attention="auto", dtype="float32")
                first, hook = _first_logits(model)
                (alone,) = self.generate(processor, model, [self.images[target]], dtype="float32", max_new_tokens=12)
                alone_logits = first.pop()
                batch = self.generate(processor, model, self.images, dtype="float32", max_new_tokens=12)
                batch_logits = first.pop()
                hook.remove()
                lengths = [g.vision_tokens for g in batch]
                diff = float((alone_logits[0] - batch_logits[target]).abs().max())
                row = {
                    "alone": alone.token_ids,
                    "in_batch": batch[target].token_ids,
                    "first_logits_max_abs_diff": diff,
                    "vision_tokens_per_page": lengths,
                    "padded": lengths[target] < max(lengths),
                }
                row["ok"] = alone.token_ids == batch[target].token_ids and row["padded"] and diff < 1e-3
                out[name] = row
                del model
                self.free()
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        out["ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
        return out

    def ngram_guard(self) -> dict[str, Any]:
        torch = self.torch
        # on the device's own logits: completing "1 2 3" again is banned, whitelisted 7 never is
        settings = NGramSettings(ngram_size=3, window_size=10, whitelist=frozenset({7}))
        guard = ngram_guard(2, settings)
        ids = torch.tensor([[9, 9, 1, 2, 3, 1, 2], [9, 9, 1, 2, 7, 1, 2]], device=self.device)
        scores = guard(ids, torch.zeros(2, 10, device=self.device))
        banned_ok = bool(
            scores[0, 3] == float("-inf")
            and torch.isfinite(scores[0, :3]).all()
            and torch.isfinite(scores[0, 4:]).all()
            and torch.isfinite(scores[1]).all()
        )
        # in a real generation that loops: all-zero logits make greedy decoding repeat token 0 forever, unless the
        # guard (applied to the device's logits inside generate) bans every n-gram's return
        processor, model, _ = self.load("moe", attention="auto", dtype="bfloat16")
        flat = model.get_output_embeddings().register_forward_hook(lambda _m, _i, out: out * 0)
        tight = NGramSettings(ngram_size=3, window_size=90)
        try:
            guarded = self.generate(processor, model, self.images, dtype="bfloat16", max_new_tokens=40, guard=tight)
            free = self.generate(processor, model, self.images, dtype="bfloat16", max_new_tokens=40, guard=None)
        finally:
            flat.remove()
        del model
        self.free()
        repeats = [_repeats(g.token_ids, tight) for g in guarded]
        unguarded = [_repeats(g.token_ids, tight) for g in free]
        return {
            "device_logits_ok": banned_ok,
            "repeats_with_guard": repeats,
            "repeats_without_guard": unguarded,
            "ok": banned_ok and not any(repeats) and all(unguarded),  # the loop was real, and the guard broke it
        }

    def max_new_tokens(self) -> dict[str, Any]:
        processor, model, _ = self.load("dense", attention="auto", dtype="bfloat16")
        gens = self.generate(processor, model, self.images, dtype="bfloat16", max_new_tokens=5)
        del model
        self.free()
        rows = [{"output_tokens": g.output_tokens, "finish_reason": g.finish_reason} for g in gens]
        ok = all(
            r["output_tokens"] <= 5 and (r["finish_reason"] == "length") == (r["output_tokens"] == 5) for r in rows
        )
        return {"budget": 5, "pages": rows, "ok": ok}

    def figures(self, repeats: int) -> dict[str, Any]:
        out: dict[str, Any] = {"pages_per_batch": len(self.images), "max_new_tokens": 16, "dtype": "bfloat16"}
        processor, model, report = self.load("moe", attention="auto", dtype="bfloat16")
        out["attention"] = report
        self.generate(processor, model, self.images, dtype="bfloat16", max_new_tokens=16)  # warm-up
        times = []
        with self.peak(out):
            for _ in range(repeats):
                started = time.perf_counter()
                self.generate(processor, model, self.images, dtype="bfloat16", max_new_tokens=16)
                if self.cuda:
                    self.torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
        del model
        self.free()
        out["seconds_per_page"] = round(statistics.median(times) / len(self.images), 4)
        out["runs"] = repeats
        return out

    def free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


class _DtypeWatch:
    """Forward hooks recording the output dtype of the vision tower, each decoder layer and the logits."""

    def __init__(self) -> None:
        self.dtypes: dict[str, str] = {}
        self.handles: list[Any] = []

    def hook(self, name: str) -> Callable[..., None]:
        def record(_module: Any, _inputs: Any, output: Any) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) else getattr(output, "last_hidden_state", output)
            if hasattr(tensor, "dtype"):
                self.dtypes[name] = str(tensor.dtype)

        return record

    def seen(self) -> dict[str, str]:
        return dict(self.dtypes)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _watch_dtypes(model: Any) -> _DtypeWatch:
    watch = _DtypeWatch()
    targets: dict[str, Any] = {}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("lm_head"):
            targets["logits"] = module
        elif leaf.isdigit() and ".layers." in name and "language_model" in name:
            targets[f"decoder_layer_{leaf}"] = module
        elif name.endswith("vision_model") or name.endswith("vision_tower") or name.endswith("sam_model"):
            targets.setdefault("vision", module)
    for key, module in targets.items():
        watch.handles.append(module.register_forward_hook(watch.hook(key)))
    return watch


def _first_logits(model: Any) -> tuple[list[Any], Any]:
    """A list that receives the last position's logits of the model's first forward pass after each ``pop()``
    (the prefill of a ``generate``), and the hook's handle."""
    first: list[Any] = []

    def keep(_module: Any, _inputs: Any, logits: Any) -> None:
        if not first:
            first.append(logits[:, -1, :].detach().float().cpu())

    return first, model.get_output_embeddings().register_forward_hook(keep)


def _repeats(ids: list[int] | None, settings: NGramSettings) -> int:
    """Tokens in ``ids`` that completed an n-gram already seen in the window (what the guard forbids)."""
    ids = ids or []
    return sum(
        1
        for i in range(settings.ngram_size - 1, len(ids))
        if ids[i] in banned_next_tokens(ids[:i], ngram_size=settings.ngram_size, window_size=settings.window_size)
    )


def run(device: str, work_dir: Path, repeats: int) -> dict[str, Any]:
    import torch
    import transformers

    report: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": device,
            "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor(),
            "cuda": torch.version.cuda,
        },
        "checks": {},
    }
    started = time.perf_counter()
    smoke = Smoke(device, work_dir)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("checkpoints", smoke.checkpoints_built),
        ("attention_and_bf16", smoke.attention_and_bf16),
        ("batch_equivalence", smoke.batch_equivalence),
        ("ngram_guard", smoke.ngram_guard),
        ("max_new_tokens", smoke.max_new_tokens),
    ]
    for name, step in steps:
        logger.info("check %s", name)
        try:
            result = step()
        except Exception as e:  # one broken check must not hide the others
            result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
        if name == "attention_and_bf16" and isinstance(result, tuple):
            report["checks"]["attention"], report["checks"]["bf16"] = result
        else:
            report["checks"][name] = result
        if name == "checkpoints" and not result.get("ok"):
            break
    try:
        report["figures"] = smoke.figures(repeats)
    except Exception as e:
        report["figures"] = {"error": f"{type(e).__name__}: {e}"}
        report["checks"]["figures"] = {"ok": False, "error": report["figures"]["error"]}
    report["total_s"] = round(time.perf_counter() - started, 2)
    report["ok"] = all(check.get("ok") for check in report["checks"].values())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    parser.add_argument("--work-dir", type=Path, default=None, help="where to build the checkpoints (default: temp)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches for the seconds-per-page figure")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here is fetched: the checkpoints are built locally
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch

    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "no CUDA device here; run with --device cpu"}))
        return 2
    torch.manual_seed(0)
    if opts.work_dir is not None:
        opts.work_dir.mkdir(parents=True, exist_ok=True)
        report = run(opts.device, opts.work_dir, opts.repeats)
    else:
        with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
            report = run(opts.device, Path(tmp), opts.repeats)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
