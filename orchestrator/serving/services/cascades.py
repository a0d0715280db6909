"""Running a cascade: ``first`` on the pages, ``then`` on the pages its answer flags, one answer
(the policy, the rules and the merge are pure, in :mod:`orchestrator.serving.cascade`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from deployments.backend import call_backend
from orchestrator.serving.cascade import CascadePolicy, merge_cascade, plan_escalations
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.telemetry import RouterMetrics
from orchestrator.serving.timing import phase
from shared.documents import Document
from shared.errors import OCRError
from shared.requests import RunRequest
from shared.schema import OCRResponse
from shared.textlayer import pages_without_text

logger = logging.getLogger("ray.serve")


async def run_cascade(
    directory: BackendDirectory,
    metrics: RouterMetrics,
    name: str,
    policy: CascadePolicy,
    doc: Document,
    run: RunRequest,
    timeout_s: float,
) -> OCRResponse:
    """Pages through ``policy.first``; the pages its answer flags through ``policy.then``; one answer.

    Pages without a text layer go straight to ``then`` when that rule is on, and the whole document when
    ``first`` refuses or fails it (``first_failed``). The second call gets only its pages (the same bytes,
    fewer ``page_indices``) and what is left of the request's time. If it fails, the first answer's pages
    stand with a warning; only pages no backend answered make the request fail, with the second's error.
    """
    scanned: set[int] = set()
    if policy.rules.no_text_layer:
        found = await asyncio.to_thread(pages_without_text, doc.data, doc.media_type, doc.page_indices)
        scanned = set(found)
    plan: dict[int, list[str]] = {i: ["no_text_layer"] for i in doc.page_indices if i in scanned}
    rest = [i for i in doc.page_indices if i not in scanned]
    first: OCRResponse | None = None
    if rest:
        try:
            with phase("backend"):
                first = await call_backend(
                    directory.handle(policy.first),
                    policy.first,
                    dataclasses.replace(doc, page_indices=rest) if scanned else doc,
                    run,
                    timeout_s=timeout_s,
                )
        except OCRError as e:
            if not policy.rules.first_failed:
                raise
            logger.info("cascade %s, request %s: %s refused (%s)", name, run.request_id, policy.first, e.code)
            plan.update({i: ["first_failed"] for i in rest})
    if first is not None:
        plan.update(plan_escalations(first, policy, pages_without_text_layer=scanned))
    second, failure = None, None
    if plan:
        pages = sorted(plan)
        left_s = max(1.0, timeout_s - (time.time() - run.received_at))
        escalated = run.model_copy(update={"request_id": f"{run.request_id}:{policy.then}"})
        try:
            with phase("escalation"):
                second = await call_backend(
                    directory.handle(policy.then),
                    policy.then,
                    dataclasses.replace(doc, page_indices=pages),
                    escalated,
                    timeout_s=left_s,
                )
        except OCRError as e:
            answered = {p.index for p in first.pages} if first is not None else set()
            if not set(pages) <= answered:  # pages nobody answered: no answer to give
                raise
            logger.warning("cascade %s, request %s: %s failed (%s)", name, run.request_id, policy.then, e.code)
            failure = f"{e.code}: {e.message}"
    metrics.cascade(name, pages=len(doc.page_indices), plan=plan)
    merged = merge_cascade(name, policy, first, plan, second, failure=failure)
    merged.document = doc.info()
    return merged
