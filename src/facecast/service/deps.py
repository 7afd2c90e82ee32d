"""Typed dependencies the routes declare: the job service, settings, the public base URL."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from facecast.config import Settings
from facecast.service.jobs import JobService

SCHEME_FOR_LINKS = {"ws": "http", "wss": "https"}


def get_service(connection: HTTPConnection) -> JobService:
    """The app's job service (built in the app's lifespan)."""
    return cast(JobService, connection.app.state.jobs)


def get_app_settings(connection: HTTPConnection) -> Settings:
    """The settings the app was created with."""
    return cast(Settings, connection.app.state.settings)


def get_base_url(connection: HTTPConnection) -> str:
    """The URL the client called, as http(s), for download links."""
    url = connection.base_url
    return str(url.replace(scheme=SCHEME_FOR_LINKS.get(url.scheme, url.scheme)))


ServiceDep = Annotated[JobService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
BaseUrlDep = Annotated[str, Depends(get_base_url)]
