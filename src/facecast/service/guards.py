"""ASGI guards around the whole API: who the client is, which Host and Origin it may use, how
long it may take to send a request, and that every error leaves as the one JSON error shape.

- Forwarded headers (`X-Forwarded-For`, `-Proto`) count only from FACECAST_TRUSTED_PROXIES;
  from anyone else they are ignored, so a client cannot pick its own rate-limit bucket.
- `Host` must be in FACECAST_ALLOWED_HOSTS (loopback names by default, plus the host of
  FACECAST_PUBLIC_URL): a DNS-rebinding page reaches the API under its own name and is refused.
- Browser requests that change something (POST, DELETE, ..., and WebSocket handshakes) must
  come from an allowed `Origin`: the API's own, FACECAST_PUBLIC_URL's, or FACECAST_CORS_ORIGINS.
  This holds with and without API keys (cross-site form posts, cross-site WebSockets).
- A request body must arrive within FACECAST_BODY_TIMEOUT_SECONDS (408 otherwise); headers have
  their own deadline in the HTTP server (see runner.py).
- Errors produced below the routes (Range errors, CORS preflight refusals, ...) are rewritten to
  `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facecast.config import Settings
from facecast.errors import ErrorCode

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    408: ErrorCode.REQUEST_TIMEOUT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    416: ErrorCode.RANGE_NOT_SATISFIABLE,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.RATE_LIMITED,
}
"""Error codes for statuses answered without a more specific code."""
WS_POLICY_VIOLATION = 1008
MAX_ERROR_BODY = 4096
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def error_body(code: ErrorCode, message: str) -> dict[str, dict[str, str]]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and CIDR networks; ValueError names the first bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or network: {value!r}") from exc
    return tuple(networks)


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


MAX_PORT_DIGITS = 5


def host_name(host: str) -> str:
    """`Host` without its port, lower case; IPv6 literals without brackets. "" (never
    allowed) when what follows the name is not `:` and a decimal port (`localhost:evil.example`)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return ""
        name, rest = host[1:end], host[end + 1 :]
    elif host.count(":") == 1:
        name, port = host.split(":")
        rest = ":" + port
    else:
        name, rest = host, ""
    if rest:
        port = rest[1:]
        numeric = port.isascii() and port.isdigit() and len(port) <= MAX_PORT_DIGITS
        if not rest.startswith(":") or not numeric:
            return ""
    return name


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """FACECAST_ALLOWED_HOSTS plus the host of FACECAST_PUBLIC_URL."""
    hosts = {host_name(h) for h in settings.allowed_hosts}
    if settings.public_url:
        hosts.add((urlsplit(settings.public_url).hostname or "").lower())
    return frozenset(h for h in hosts if h)


def allowed_origins(settings: Settings) -> frozenset[str]:
    """Origins besides the API's own that may send changing requests."""
    origins = {o.rstrip("/").lower() for o in settings.cors_origins}
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(origins)


class ForwardedMiddleware:
    """The client address and scheme, from forwarded headers of trusted proxies only."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and _in(client[0], self.trusted):
            headers = Headers(scope=scope)
            hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
            # The nearest hop not a trusted proxy is the client; hops further left are claims.
            while hops and _in(hops[-1], self.trusted):
                hops.pop()
            if hops:
                scope["client"] = (hops[-1], 0)
            proto = headers.get("x-forwarded-proto", "").strip().lower()
            if proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = proto
        await self.app(scope, receive, send)


class HostOriginMiddleware:
    """Refuse unknown `Host` headers (400) and changing requests from foreign origins (403)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.any_host = "*" in settings.allowed_hosts
        self.hosts = allowed_hosts(settings)
        self.origins = allowed_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and not self.any_host and host_name(host) not in self.hosts:
            await self._refuse(
                scope, receive, send, 400, ErrorCode.INVALID_HOST, "This Host is not served here."
            )
            return
        origin = headers.get("origin")
        changing = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if changing and origin is not None and not self._origin_ok(origin, host):
            await self._refuse(
                scope,
                receive,
                send,
                403,
                ErrorCode.FORBIDDEN_ORIGIN,
                "Requests from this web page's origin are not allowed (FACECAST_CORS_ORIGINS).",
            )
            return
        await self.app(scope, receive, send)

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if origin in self.origins:
            return True
        netloc = urlsplit(origin).netloc if "://" in origin else ""
        return bool(netloc) and host is not None and netloc == host.strip().lower()

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, code: ErrorCode, message: str
    ) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        await JSONResponse(error_body(code, message), status_code=status)(scope, receive, send)


class BodyDeadlineMiddleware:
    """408 when a request body stalls for `read_s` or is not complete within `total_s`."""

    def __init__(self, app: ASGIApp, read_s: float, total_s: float) -> None:
        self.app = app
        self.read_s = read_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.total_s
        complete = False

        async def bounded_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            wait = min(self.read_s, max(0.0, deadline - anyio.current_time()))
            with anyio.move_on_after(wait):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    complete = True
                return message
            # An HTTPException passes FastAPI's body parsing unchanged; the app answers it.
            raise HTTPException(408, "The request body came too slowly.", {"Connection": "close"})

        await self.app(scope, bounded_receive, send)


class JsonErrorsMiddleware:
    """Rewrite error responses that are not JSON (from Starlette internals, CORS, Range) into
    the one error shape, keeping status and headers such as `Allow` and `Content-Range`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                kind = headers.get("content-type", "")
                if message["status"] >= 400 and not kind.startswith("application/json"):
                    start = message
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await send_json(start, b"".join(chunks))

        async def send_json(original: Message, text: bytes) -> None:
            status = original["status"]
            message = text.decode("utf-8", "replace").strip()[:MAX_ERROR_BODY]
            body = json.dumps(
                error_body(
                    HTTP_CODES.get(status, ErrorCode.HTTP_ERROR), message or f"HTTP {status}."
                )
            ).encode()
            kept = [
                (name, value)
                for name, value in original.get("headers", [])
                if name.lower() not in (b"content-type", b"content-length")
            ]
            head_only = scope.get("method") == "HEAD"
            headers = [
                *kept,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head_only else body})

        await self.app(scope, receive, rewriting_send)
