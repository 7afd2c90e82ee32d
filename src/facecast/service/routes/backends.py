"""GET /backends: renderers and post-processors, what they need and whether jobs can use them."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from facecast.service.deps import PrincipalDep, ServiceDep
from facecast.service.routes import error_responses
from facecast.service.schemas import BackendList

router = APIRouter(tags=["backends"])


@router.get("/backends", response_model=BackendList, responses=error_responses(401))
async def list_backends(service: ServiceDep, _: PrincipalDep) -> BackendList:
    """Every renderer (`renderer=`), upscaler (`upscale=`) and refiner (`refine=`): whether
    this server has it, whether a live worker offers it, its device, speed and licence, and
    for missing ones the files the operator must provide."""
    return await run_in_threadpool(service.backends)
