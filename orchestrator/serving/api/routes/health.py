"""Liveness apart from readiness: alive means the router answers; ready means a backend can take work."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from orchestrator.serving.api.deps import RouterDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the router process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: at least one backend is ready", response_model=None)
async def readyz(svc: RouterDep) -> JSONResponse:
    statuses = await svc.statuses()
    ready = sorted(n for n, s in statuses.items() if s.status == "ready")
    body = {
        "status": "ready" if ready else "not_ready",
        "ready_backends": ready,
        "backends": {n: s.status for n, s in statuses.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
