"""GET /health, /ready and /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from facecast import __version__
from facecast.errors import ErrorCode
from facecast.service import metrics
from facecast.service.access import keys_configured
from facecast.service.deps import PrincipalDep, ServiceDep, SettingsDep
from facecast.service.errors import AdminOnlyError
from facecast.service.routes import error_responses
from facecast.service.schemas import ErrorInfo, Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: the API process answers."""
    return Health(version=__version__)


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `checks` says why."}},
)
def ready(service: ServiceDep) -> JSONResponse:
    """Readiness: broker reachable, at least one worker alive, its engine warmed up."""
    report = service.readiness()
    if not report.ready:
        failed = ", ".join(name for name, check in report.checks.items() if not check.ok)
        report = report.model_copy(
            update={"error": ErrorInfo(code=ErrorCode.NOT_READY, message=f"Not ready: {failed}.")}
        )
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **error_responses(401, 403),
    },
)
def prometheus(
    service: ServiceDep, settings: SettingsDep, caller: PrincipalDep
) -> PlainTextResponse:
    """Jobs by state, queue depth, workers, stage and job durations (every tenant's numbers:
    with keys configured, for admin keys only)."""
    if keys_configured(settings) and not caller.admin:
        raise AdminOnlyError("GET /metrics needs an admin key (FACECAST_ADMIN_KEYS).")
    return PlainTextResponse(metrics.render(service.snapshot()), media_type=metrics.CONTENT_TYPE)
