"""`facecast serve`: the API and its workers in one command, for a single machine.

With `REDIS_URL` set the workers use that Redis. Without it everything runs with no server:
Celery's filesystem transport and job state in files, all under the data directory.
Ctrl-C or SIGTERM stops the API, then the workers (they finish or hand back their jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from facecast.config import get_settings
from facecast.errors import ErrorCode
from facecast.safety import bundled_model
from facecast.service.app import create_app
from facecast.service.logs import configure_logging
from facecast.service.queueing import QUEUES, WEBHOOK_CONCURRENCY, WEBHOOK_QUEUE

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
COLD_SHUTDOWN_WAIT_S = 5.0
WORKER_NICENESS = 10


def _prepare_worker_process() -> None:
    """In the child before exec: lowest CPU priority, and die with `facecast serve`.

    Renders saturate every core. Under SCHED_IDLE (Linux) they run only when the API, Redis and
    everything else on the machine have nothing to do, so submissions and status polls are
    answered at once; a nice value alone still let renders delay requests by tens of ms.
    PR_SET_PDEATHSIG sends SIGTERM if `facecast serve` dies without cleaning up.
    """
    os.nice(WORKER_NICENESS)
    if hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_workers(concurrency: int, loglevel: str) -> subprocess.Popen[bytes]:
    """One Celery worker with `concurrency` processes on all queues, in its own process group."""
    command = [
        sys.executable,
        "-m",
        "facecast.worker",
        f"--concurrency={concurrency}",
        f"--queues={','.join(QUEUES)}",
        f"--loglevel={loglevel}",
    ]
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_prepare_worker_process)


def start_webhook_worker(loglevel: str) -> subprocess.Popen[bytes]:
    """A worker of threads for the webhooks queue alone: deliveries wait on receivers, never
    on a render worker (and a slow receiver never holds one)."""
    command = [
        sys.executable,
        "-m",
        "facecast.worker",
        f"--concurrency={WEBHOOK_CONCURRENCY}",
        f"--queues={WEBHOOK_QUEUE}",
        "--pool=threads",
        f"--loglevel={loglevel}",
    ]
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_prepare_worker_process)


def stop_workers(process: subprocess.Popen[bytes], grace: float) -> None:
    """Warm shutdown (running jobs may finish), then cold, then kill the whole group."""
    steps = ((signal.SIGTERM, grace), (signal.SIGQUIT, COLD_SHUTDOWN_WAIT_S))
    for sig, wait in steps:
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        logger.warning("workers did not stop; killing them")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # also any pool process left behind
    process.wait()


class _Signals:
    """SIGINT/SIGTERM outside uvicorn's own handling: the first stops, a second one kills."""

    def __init__(self) -> None:
        self.workers: subprocess.Popen[bytes] | None = None
        self.webhooks: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle)

    def handle(self, sig: int, _frame: object) -> None:
        # uvicorn re-raises the signal that stopped it once it is done; that one is expected.
        for process in (self.workers, self.webhooks):
            if self.stopping and process is not None and process.poll() is None:
                logger.warning("second %s: killing the workers", signal.Signals(sig).name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        self.stopping = True


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n%s"
)


def _timeout_response() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": ErrorCode.REQUEST_TIMEOUT,
                "message": "The request headers came too slowly.",
            }
        }
    ).encode()
    return REQUEST_TIMEOUT_RESPONSE % (len(body), body)


def http_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a deadline for request headers.

    uvicorn times out idle keep-alive connections but not a client that connects and then sends
    its headers a byte at a time (slowloris): such a connection is answered 408 and closed once
    `seconds` pass without complete headers. Bodies have their own deadline (guards.py).
    """
    base: Any
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class HeaderDeadlineProtocol(base):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being served: its headers came in time
            transport.write(_timeout_response())
            transport.close()

    return HeaderDeadlineProtocol


LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(host: str, api_keys: list[str], anonymous: bool | None) -> None:
    """Refuse to serve a reachable address without API keys unless anonymity is asked for."""
    allowed = is_loopback(host) if anonymous is None else anonymous
    if not api_keys and not allowed:
        raise SystemExit(
            f"facecast serve: refusing to listen on {host} without API keys. Set "
            "FACECAST_API_KEYS (comma-separated), or FACECAST_ANONYMOUS_ACCESS=true to serve "
            "without them (e.g. behind a proxy that authenticates)."
        )


def screening_off_reason(
    host: str, screen: bool, model: Path | None, installed: Path | None
) -> str | None:
    """Why `facecast serve` on `host` runs without the photo screen, or None when it screens.

    The screen's model comes from the nudenet wheel, installed apart (see deploy/README.md).
    A newcomer trying the service on a loopback address gets a warning without it; an address
    others can reach is refused, so no exposed service runs unscreened by accident.
    """
    if not screen or model is not None or installed is not None:
        return None
    if not is_loopback(host):
        raise SystemExit(
            f"facecast serve: refusing to listen on {host} without the photo screen's model. "
            "Install it with `pip install --no-deps nudenet==3.4.2`, set FACECAST_NUDITY_MODEL, "
            "or set FACECAST_NUDITY_SCREEN=false."
        )
    return (
        "photos are not screened: the screen's model is not installed "
        "(pip install --no-deps nudenet==3.4.2); required before serving other addresses"
    )


def serve(host: str, port: int, workers: int) -> None:
    """Start the API (uvicorn) and `workers` worker processes; return when stopped."""
    settings = get_settings()
    check_access(host, [*settings.api_keys, *settings.admin_keys], settings.anonymous_access)
    unscreened = screening_off_reason(
        host, settings.nudity_screen, settings.nudity_model, bundled_model()
    )
    if unscreened:
        os.environ["FACECAST_NUDITY_SCREEN"] = "false"  # the workers inherit it
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FACECAST_DATA_DIR"] = str(data_dir)  # the workers inherit one absolute path
    get_settings.cache_clear()
    settings = get_settings()
    loglevel = os.environ.get("FACECAST_LOG_LEVEL", "info")
    configure_logging(loglevel)
    if unscreened:
        logger.warning(unscreened)
    mode = "redis" if settings.redis_url else f"server-less queue in {data_dir}"
    logger.info("starting %d worker process(es) (%s)", workers, mode)
    signals = _Signals()
    signals.install()
    signals.workers = start_workers(workers, loglevel) if workers > 0 else None
    # Also with --workers 0 (an API host): webhooks of jobs that end anywhere go out from here.
    signals.webhooks = start_webhook_worker(loglevel)
    started = time.monotonic()
    if host not in WILDCARD_HOSTS and "*" not in settings.allowed_hosts:
        settings = settings.model_copy(update={"allowed_hosts": [*settings.allowed_hosts, host]})
    if os.environ.get("FORWARDED_ALLOW_IPS"):
        logger.warning(
            "FORWARDED_ALLOW_IPS is ignored: facecast serve believes X-Forwarded-For only from "
            "FACECAST_TRUSTED_PROXIES (set it to your proxy's address)"
        )
    try:
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_config=None,
            lifespan="on",
            # Forwarded headers are judged by the app against FACECAST_TRUSTED_PROXIES;
            # uvicorn's own handling would believe any local client.
            proxy_headers=False,
            http=http_protocol(settings.header_timeout_seconds),
        )
        uvicorn.Server(config).run()
    finally:
        signals.stopping = True
        logger.info("stopping workers (up %.0f s)", time.monotonic() - started)
        if signals.workers is not None:
            stop_workers(signals.workers, settings.shutdown_grace_seconds)
        stop_workers(signals.webhooks, settings.shutdown_grace_seconds)
