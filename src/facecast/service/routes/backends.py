"""GET /backends: renderers and post-processors, what they need and whether jobs can use them."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from facecast.service.access import keys_configured
from facecast.service.deps import PrincipalDep, ServiceDep, SettingsDep
from facecast.service.routes import error_responses
from facecast.service.schemas import BackendList

router = APIRouter(tags=["backends"])


@router.get("/backends", response_model=BackendList, responses=error_responses(401))
async def list_backends(
    service: ServiceDep, settings: SettingsDep, caller: PrincipalDep
) -> BackendList:
    """Every renderer (`renderer=`), upscaler (`upscale=`) and refiner (`refine=`): whether
    this server has it, whether a live worker offers it, its device, speed and licence, and
    for missing ones the files the operator must provide (those operator details, which name
    server paths, only for admin keys when keys are configured)."""
    listing = await run_in_threadpool(service.backends)
    if keys_configured(settings) and not caller.admin:
        return without_operator_details(listing)
    return listing


def without_operator_details(listing: BackendList) -> BackendList:
    """The listing a tenant key sees: what it may ask for, not where the server keeps files."""
    hidden = {"missing": [], "how_to_get": "", "source": ""}
    return BackendList(backends=[view.model_copy(update=hidden) for view in listing.backends])
