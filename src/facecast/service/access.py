"""Who may call the API and how often: API keys (Bearer), a per-key submission rate limit.

With FACECAST_API_KEYS empty the API is open (meant for a loopback address; `facecast serve`
refuses to bind anything else without keys unless FACECAST_ANONYMOUS_ACCESS=true). Callers are
then told apart by their address for the rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from facecast.service.errors import RateLimitedError, UnauthorizedError

BEARER = "bearer"
WS_TOKEN_PARAM = "access_token"
PRINCIPAL_HASH_CHARS = 16
WINDOW_S = 60.0
MAX_TRACKED = 10_000
"""Buckets kept in memory; idle ones are dropped beyond this."""


@dataclass(frozen=True)
class Principal:
    """The caller: `key:<hash prefix>` for an API key, `client:<address>` otherwise."""

    id: str


def _bearer(connection: HTTPConnection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == BEARER and token.strip():
        return token.strip()
    # Browsers cannot set headers on a WebSocket: there the key may come as ?access_token=.
    if connection.scope.get("type") == "websocket":
        return connection.query_params.get(WS_TOKEN_PARAM) or None
    return None


def authenticate(connection: HTTPConnection, api_keys: Sequence[str]) -> Principal:
    """The caller, or UnauthorizedError (401) when keys are configured and none matches."""
    token = _bearer(connection)
    if not api_keys:
        host = connection.client.host if connection.client else "unknown"
        return Principal(f"client:{host}")
    if token is not None:
        given = token.encode()
        matches = [hmac.compare_digest(given, key.encode()) for key in api_keys]
        if any(matches):
            digest = hashlib.sha256(given).hexdigest()[:PRINCIPAL_HASH_CHARS]
            return Principal(f"key:{digest}")
    raise UnauthorizedError("Send a valid API key as `Authorization: Bearer <key>`.")


class RateLimiter:
    """A token bucket per principal: `per_minute` submissions, refilled continuously.

    Kept in the API process's memory: with several API processes each allows the full rate.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, principal: Principal, now: float | None = None) -> None:
        """Use one token, or raise RateLimitedError with the seconds until the next one."""
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        rate = self.per_minute / WINDOW_S
        with self._lock:
            tokens, last = self._buckets.get(principal.id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[principal.id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimitedError(
                    f"More than {self.per_minute} submissions a minute; retry in {wait} s.", wait
                )
            self._buckets[principal.id] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_TRACKED:
                self._forget_full(now, rate)

    def _forget_full(self, now: float, rate: float) -> None:
        full = [
            who
            for who, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * rate >= self.per_minute
        ]
        for who in full:
            del self._buckets[who]
