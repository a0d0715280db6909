"""What is deployed, and whether it can work now."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from orchestrator.serving.api.deps import RouterDep, check_api_key
from orchestrator.serving.api.errors import documented
from shared.schema import BackendList, CascadeInfo

router = APIRouter(prefix="/v1", tags=["backends"], dependencies=[Depends(check_api_key)])


@router.get(
    "/backends",
    response_model=BackendList,
    responses=documented(),
    summary="Deployed backends with status, model and device",
)
async def list_backends(svc: RouterDep) -> BackendList:
    statuses = await svc.statuses(max_age_s=0)
    return BackendList(
        backends=[statuses[n] for n in svc.backends],
        auto_order=svc.auto_rule(),
        default_backend=svc.settings.default_backend,
        cascades=[
            CascadeInfo(name=name, first=p.first, then=p.then, rules=p.rules.enabled())
            for name, p in svc.settings.cascades.items()
        ],
    )
