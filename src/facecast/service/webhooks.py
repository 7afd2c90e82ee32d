"""Job webhooks: a signed POST to the job's `webhook` URL once the job is final.

The body is a `WebhookEvent` (JSON). Headers:

    X-Facecast-Timestamp: <unix seconds>
    X-Facecast-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with
                          FACECAST_WEBHOOK_SECRET>

Receivers recompute the HMAC over the timestamp, a dot and the raw body, compare in constant
time, and refuse old timestamps (replays). Delivery runs as a Celery task in the workers and is
retried with exponential backoff (FACECAST_WEBHOOK_MAX_ATTEMPTS, _BACKOFF_SECONDS).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

import httpx

from facecast import __version__
from facecast.config import Settings
from facecast.service.errors import InvalidRequestError
from facecast.service.schemas import JobManifest, JobState, WebhookEvent, iso
from facecast.service.storage import AUDIO, VIDEO, Storage

SIGNATURE_HEADER = "X-Facecast-Signature"
TIMESTAMP_HEADER = "X-Facecast-Timestamp"
EVENT_HEADER = "X-Facecast-Event"
MAX_URL_CHARS = 2048
SCHEMES = frozenset({"http", "https"})


class WebhookError(Exception):
    """A delivery that did not succeed (worth a retry)."""


class WebhookRefusedError(WebhookError):
    """A delivery that must not be made (a private address); not retried."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signed: str) -> bool:
    """What a receiver does: True when `signed` matches (constant-time comparison)."""
    return hmac.compare_digest(signature(secret, timestamp, body), signed)


def check_url(url: str, settings: Settings) -> str:
    """A webhook URL as given at submission: http(s) with a host; refused otherwise (422)."""
    if not settings.webhook_secret:
        raise InvalidRequestError(
            "Webhooks are not enabled on this server (FACECAST_WEBHOOK_SECRET is unset)."
        )
    if len(url) > MAX_URL_CHARS or any(ord(c) < 33 for c in url):
        raise InvalidRequestError("webhook: not a valid URL.")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or parts.username or parts.password:
        raise InvalidRequestError("webhook: send an http(s) URL with a host and no credentials.")
    return url


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to loopback, private or link-local addresses."""
    if allow_private:
        return
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookError(f"cannot resolve {parts.hostname}: {exc}") from exc
    if not all(_public(str(info[4][0])) for info in infos):
        raise WebhookRefusedError(f"{parts.hostname} resolves to a non-public address")


def event(manifest: JobManifest, state: JobState, storage: Storage, base: str) -> WebhookEvent:
    """The webhook body of a final job."""
    links = {}
    for field, name in (("video_url", VIDEO), ("audio_url", AUDIO)):
        if storage.has(state.job_id, name):
            links[field] = f"{base.rstrip('/')}/files/{state.job_id}/{name}"
    return WebhookEvent(
        job_id=state.job_id,
        kind=state.kind,
        status=state.status,
        error=state.error,
        client_ref=manifest.request.client_ref,
        finished_at=iso(state.finished_at),
        **links,
    )


def deliver(url: str, body: bytes, settings: Settings) -> None:
    """POST the signed body once; WebhookError unless the receiver answers 2xx."""
    if not settings.webhook_secret:
        raise WebhookRefusedError("FACECAST_WEBHOOK_SECRET is unset")
    check_destination(url, settings.webhook_allow_private)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"facecast/{__version__}",
        EVENT_HEADER: "job.finished",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(settings.webhook_secret, timestamp, body),
    }
    try:
        answer = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
    if not answer.is_success:
        raise WebhookError(f"the receiver answered {answer.status_code}")


def backoff(settings: Settings, retries: int) -> float:
    """Seconds before retry number `retries + 1`."""
    return float(settings.webhook_backoff_seconds * 2**retries)
