"""Job webhooks: a signed POST to the job's `webhook` URL once the job is final.

The body is a `WebhookEvent` (JSON). Headers:

    X-Facecast-Timestamp: <unix seconds>
    X-Facecast-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with
                          FACECAST_WEBHOOK_SECRET>

Receivers recompute the HMAC over the timestamp, a dot and the raw body, compare in constant
time, and refuse old timestamps (replays). Private destinations (loopback, private, link-local,
reserved, and IPv6 forms that embed such an IPv4 address) are refused at submission with a 422
and again at delivery, which connects to the very address it checked. Delivery runs as a Celery
task in the workers and is retried with exponential backoff
(FACECAST_WEBHOOK_MAX_ATTEMPTS, _BACKOFF_SECONDS).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

import httpx

from facecast import __version__
from facecast.config import Settings
from facecast.service.access import download_path
from facecast.service.errors import InvalidRequestError
from facecast.service.schemas import JobManifest, JobState, WebhookEvent, iso
from facecast.service.storage import AUDIO, VIDEO, VIDEO_WEBM, Storage

SIGNATURE_HEADER = "X-Facecast-Signature"
TIMESTAMP_HEADER = "X-Facecast-Timestamp"
EVENT_HEADER = "X-Facecast-Event"
MAX_URL_CHARS = 2048
SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"),)
"""The well-known NAT64 prefix: the last 32 bits are the IPv4 address reached."""
LOCAL_NAT64 = (ipaddress.IPv6Network("64:ff9b:1::/48"),)
"""Local-use NAT64 prefixes (RFC 8215) embed IPv4 at operator-chosen offsets: never public."""
ISATAP_ID, ISATAP_MASK = 0x00005EFE, 0xFDFFFFFF
"""ISATAP interface ids (0000:5efe or 0200:5efe) end in an IPv4 address."""


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
    """A webhook URL as given at submission: http(s) with a host that resolves to public
    addresses (unless FACECAST_WEBHOOK_ALLOW_PRIVATE); refused otherwise (422)."""
    if not settings.webhook_secret:
        raise InvalidRequestError(
            "Webhooks are not enabled on this server (FACECAST_WEBHOOK_SECRET is unset)."
        )
    if len(url) > MAX_URL_CHARS or any(ord(c) < 33 for c in url):
        raise InvalidRequestError("webhook: not a valid URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequestError("webhook: not a valid URL.") from exc
    if parts.scheme not in SCHEMES or not parts.hostname or parts.username or parts.password:
        raise InvalidRequestError("webhook: send an http(s) URL with a host and no credentials.")
    try:
        resolve(parts.hostname, port or DEFAULT_PORTS[parts.scheme], settings.webhook_allow_private)
    except WebhookRefusedError as exc:
        raise InvalidRequestError(
            "webhook: the host resolves to a loopback, private or reserved address."
        ) from exc
    except WebhookError as exc:
        raise InvalidRequestError("webhook: the host name does not resolve.") from exc
    return url


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64, ISATAP,
    IPv4-compatible), or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    value = int(ip)
    if any(ip in network for network in NAT64):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if (value >> 32) & ISATAP_MASK == ISATAP_ID:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 == 0:  # ::a.b.c.d, the deprecated IPv4-compatible form (and :: and ::1)
        return ipaddress.IPv4Address(value)
    return None


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; IPv6 forms that embed an IPv4 address
    are judged by that address (64:ff9b::7f00:1 is 127.0.0.1)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in LOCAL_NAT64):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses of `host`, resolved once; WebhookRefusedError when any is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookError(f"{host} has no address")
    if not allow_private and not all(is_public(address) for address in addresses):
        raise WebhookRefusedError(f"{host} resolves to a non-public address")
    return addresses


def check_destination(url: str, allow_private: bool) -> list[str]:
    """The checked addresses of a webhook URL's host (see `resolve`)."""
    parts = urlsplit(url)
    return resolve(parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme], allow_private)


def event(
    manifest: JobManifest, state: JobState, storage: Storage, settings: Settings
) -> WebhookEvent:
    """The webhook body of a final job (links absolute when FACECAST_PUBLIC_URL is set).

    Its links expire FACECAST_URL_TTL after the job finished, so that every retry of a
    delivery sends the same body (and signature)."""
    base = (settings.public_url or "").rstrip("/")
    links = {}
    for field, name in (("video_url", VIDEO), ("video_url", VIDEO_WEBM), ("audio_url", AUDIO)):
        if storage.has(state.job_id, name):
            path = download_path(settings, state.job_id, name, state.finished_at)
            links[field] = base + path
    return WebhookEvent(
        job_id=state.job_id,
        kind=state.kind,
        status=state.status,
        error=state.error,
        client_ref=manifest.request.client_ref,
        finished_at=iso(state.finished_at),
        **links,
    )


def _pinned(url: str, address: str) -> tuple[str, str, dict[str, str]]:
    """The URL with `address` as its host, the Host header, and the TLS name (SNI) to use."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    literal = f"[{address}]" if ":" in address else address
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if parts.port is None else f"{shown}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=f"{literal}:{port}").geturl(), host_header, extensions


def deliver(url: str, body: bytes, settings: Settings) -> None:
    """POST the signed body once; WebhookError unless the receiver answers 2xx within
    FACECAST_WEBHOOK_DEADLINE_SECONDS in all.

    The host is resolved once and checked; the connection goes to that checked address, with
    the URL's host in `Host` and in TLS (SNI and certificate check), so a DNS answer that
    changes between check and connect (rebinding) cannot reach another address. The deadline
    covers connecting, sending and the whole answer: a receiver that sends a byte every few
    seconds never trips a per-read timeout, but it trips this one.
    """
    if not settings.webhook_secret:
        raise WebhookRefusedError("FACECAST_WEBHOOK_SECRET is unset")
    addresses = check_destination(url, settings.webhook_allow_private)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"facecast/{__version__}",
        EVENT_HEADER: "job.finished",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(settings.webhook_secret, timestamp, body),
    }
    deadline = settings.webhook_deadline_seconds
    try:
        asyncio.run(asyncio.wait_for(_post(url, addresses, body, headers, settings), deadline))
    except TimeoutError as exc:
        raise WebhookError(f"the receiver took longer than {deadline:g} s in all") from exc


async def _post(
    url: str, addresses: list[str], body: bytes, headers: dict[str, str], settings: Settings
) -> None:
    failure: Exception | None = None
    timeout = settings.webhook_timeout_seconds
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for address in addresses:
            target, host_header, extensions = _pinned(url, address)
            request = client.build_request(
                "POST",
                target,
                content=body,
                headers={**headers, "Host": host_header},
                extensions=extensions,
            )
            try:
                answer = await client.send(request)
            except httpx.ConnectError as exc:  # the next address may answer
                failure = exc
                continue
            except httpx.HTTPError as exc:
                raise WebhookError(f"{type(exc).__name__}: {exc}") from exc
            if not answer.is_success:
                raise WebhookError(f"the receiver answered {answer.status_code}")
            return
    raise WebhookError(f"{type(failure).__name__}: {failure}")


def backoff(settings: Settings, retries: int) -> float:
    """Seconds before retry number `retries + 1`."""
    return float(settings.webhook_backoff_seconds * 2**retries)
