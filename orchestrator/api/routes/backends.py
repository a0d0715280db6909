"""What is deployed, and whether it can work now."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from orchestrator.api.deps import RouterDep, check_api_key
from shared.schema import BackendStatus

router = APIRouter(prefix="/v1", tags=["backends"], dependencies=[Depends(check_api_key)])


class BackendList(BaseModel):
    backends: list[BackendStatus] = Field(description="Every deployed backend with its health.")
    auto_order: list[str] = Field(
        description="Order in which 'auto' tries backends (first ready one that reads the type)."
    )
    default_backend: str = Field(description="Backend used when a request names none.")


@router.get("/backends", response_model=BackendList, summary="Deployed backends with status, model and device")
async def list_backends(svc: RouterDep) -> BackendList:
    statuses = await svc.statuses(max_age_s=0)
    return BackendList(
        backends=[statuses[n] for n in svc.backends],
        auto_order=svc.auto_rule(),
        default_backend=svc.settings.default_backend,
    )
