"""Who may call the API, what they may see, and how often: API keys (Bearer) with two roles,
per-key job ownership, signed download links, a per-key submission rate limit.

Keys and roles: FACECAST_API_KEYS are tenant keys; each key owns the jobs it creates and sees
only those (another key gets 404, so job ids leak nothing). FACECAST_ADMIN_KEYS see and cancel
every job. With no keys at all the API is open (meant for a loopback address; `facecast serve`
refuses to bind anything else without keys unless FACECAST_ANONYMOUS_ACCESS=true): every caller
is then the one tenant `anonymous`, told apart by address only for the rate limit.

Download links (`video_url`, `audio_url`, `stream_url`) carry `?sig=...&exp=...`: `exp` is
when the link stops working (Unix seconds, FACECAST_URL_TTL after the link was handed out) and
`sig` an HMAC of the job id, file name and `exp`, so that players, which cannot send headers,
fetch them without the key; a link works for whoever has it, like the file itself, until `exp`.
A tampered link answers 404 like a missing file; a genuine but expired one 403 `link_expired`.
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

from facecast.config import Settings
from facecast.service.errors import LinkExpiredError, RateLimitedError, UnauthorizedError

BEARER = "bearer"
WS_TOKEN_PARAM = "access_token"
SIGNATURE_PARAM = "sig"
EXPIRY_PARAM = "exp"
SIGNATURE_CHARS = 32
ANONYMOUS = "anonymous"
"""The tenant of every caller when no keys are configured (and of jobs made that way)."""
PRINCIPAL_HASH_CHARS = 16
WINDOW_S = 60.0
MAX_TRACKED = 10_000
"""Buckets kept in memory; idle ones are dropped beyond this."""


@dataclass(frozen=True)
class Principal:
    """The caller: `id` for rate limits and idempotency keys, `tenant` for job ownership."""

    id: str
    """`key:<hash prefix>` for an API key, `client:<address>` otherwise."""
    tenant: str = ANONYMOUS
    """Owner of the jobs this caller creates: the key's `key:<hash prefix>`, or `anonymous`."""
    admin: bool = False
    """Admin keys see and cancel every job."""

    def may_see(self, owner: str | None) -> bool:
        """True when this caller may see a job owned by `owner` (None: made before owners)."""
        return self.admin or (owner or ANONYMOUS) == self.tenant


def _bearer(connection: HTTPConnection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == BEARER and token.strip():
        return token.strip()
    # Browsers cannot set headers on a WebSocket: there the key may come as ?access_token=.
    if connection.scope.get("type") == "websocket":
        return connection.query_params.get(WS_TOKEN_PARAM) or None
    return None


def _matches(given: bytes, keys: Sequence[str]) -> bool:
    # Compare against every key, so the time taken says nothing about which one matched.
    return any([hmac.compare_digest(given, key.encode()) for key in keys])


def keys_configured(settings: Settings) -> bool:
    """True when the API asks for keys (tenant or admin)."""
    return bool(settings.api_keys or settings.admin_keys)


def authenticate(connection: HTTPConnection, settings: Settings) -> Principal:
    """The caller, or UnauthorizedError (401) when keys are configured and none matches."""
    if not keys_configured(settings):
        host = connection.client.host if connection.client else "unknown"
        return Principal(f"client:{host}")
    token = _bearer(connection)
    if token is not None:
        given = token.encode()
        admin = _matches(given, settings.admin_keys)
        if admin or _matches(given, settings.api_keys):
            key_id = f"key:{hashlib.sha256(given).hexdigest()[:PRINCIPAL_HASH_CHARS]}"
            return Principal(key_id, tenant=key_id, admin=admin)
    raise UnauthorizedError("Send a valid API key as `Authorization: Bearer <key>`.")


def _link_secret(settings: Settings) -> bytes:
    if settings.link_secret:
        return settings.link_secret.encode()
    # Derived from the keys: links stop working when the keys change, like the keys themselves.
    keys = [*sorted(settings.api_keys), *sorted(settings.admin_keys)]
    material = "\n".join(["facecast-links", *keys])
    return hashlib.sha256(material.encode()).digest()


def link_signature(settings: Settings, job_id: str, name: str, expires: int) -> str:
    """The `sig` of a download link to file `name` of job `job_id` that ends at `expires`."""
    message = f"{job_id}/{name}/{expires}".encode()
    mac = hmac.new(_link_secret(settings), message, hashlib.sha256)
    return mac.hexdigest()[:SIGNATURE_CHARS]


def link_query(settings: Settings, job_id: str, name: str, now: float | None = None) -> str:
    """`sig=...&exp=...` for a link to `name` of `job_id`, valid FACECAST_URL_TTL from now."""
    expires = int(time.time() if now is None else now) + settings.url_ttl
    signature = link_signature(settings, job_id, name, expires)
    return f"{SIGNATURE_PARAM}={signature}&{EXPIRY_PARAM}={expires}"


def download_path(settings: Settings, job_id: str, name: str, now: float | None = None) -> str:
    """`/files/<job>/<name>`, signed when keys are configured (valid FACECAST_URL_TTL from
    `now`, default the present)."""
    path = f"/files/{job_id}/{name}"
    if not keys_configured(settings):
        return path
    return f"{path}?{link_query(settings, job_id, name, now)}"


def stream_path(settings: Settings, job_id: str) -> str:
    """`/files/<job>/stream/index.m3u8`, signed (for every stream file) when keys are configured."""
    from facecast.video import HLS_PLAYLIST

    path = f"/files/{job_id}/stream/{HLS_PLAYLIST}"
    if not keys_configured(settings):
        return path
    return f"{path}?{link_query(settings, job_id, 'stream')}"


def link_is_valid(
    settings: Settings,
    job_id: str,
    name: str,
    signature: str | None,
    expires: int | None,
    now: float | None = None,
) -> bool:
    """True when `signature` signs this link and `expires`; False when it does not (or is
    missing); LinkExpiredError (403) for a genuine link whose `expires` has passed."""
    if not signature or expires is None:
        return False
    expected = link_signature(settings, job_id, name, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return False
    if (time.time() if now is None else now) >= expires:
        raise LinkExpiredError("This link has expired; fetch the job again for a fresh one.")
    return True


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
