"""Typed dependencies the routes declare: job service, settings, base URL, caller, rate limit.

They are `async` because they never block: FastAPI would run plain functions in its thread
pool, one hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from facecast.config import Settings
from facecast.service.access import Principal, RateLimiter, authenticate
from facecast.service.jobs import JobService

SCHEME_FOR_LINKS = {"ws": "http", "wss": "https"}


async def get_service(connection: HTTPConnection) -> JobService:
    """The app's job service (built in the app's lifespan)."""
    return cast(JobService, connection.app.state.jobs)


def app_settings(connection: HTTPConnection) -> Settings:
    """The settings the app was created with."""
    return cast(Settings, connection.app.state.settings)


async def get_app_settings(connection: HTTPConnection) -> Settings:
    """The settings the app was created with (as a dependency)."""
    return app_settings(connection)


async def get_base_url(connection: HTTPConnection) -> str:
    """The URL the client called, as http(s), for download links."""
    url = connection.base_url
    return str(url.replace(scheme=SCHEME_FOR_LINKS.get(url.scheme, url.scheme)))


_bearer_scheme = HTTPBearer(auto_error=False, description="An API key (FACECAST_API_KEYS).")


async def get_principal(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The caller; 401 when API keys are configured and the request has no valid one."""
    return authenticate(request, app_settings(request))


async def get_submitter(
    principal: Annotated[Principal, Depends(get_principal)], request: Request
) -> Principal:
    """The caller of a job submission, after taking one from its rate limit (429 when empty)."""
    cast(RateLimiter, request.app.state.rate_limiter).take(principal)
    return principal


ServiceDep = Annotated[JobService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
SubmitterDep = Annotated[Principal, Depends(get_submitter)]
