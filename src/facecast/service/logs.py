"""JSON log lines that carry the job id, and a handler that keeps each job's log tail."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import unquote_plus

from facecast.service.storage import is_job_id

job_id_var: ContextVar[str | None] = ContextVar("facecast_job_id", default=None)
"""The job the current code works on (set by the worker around a task, by the API per request)."""

FRAMEWORK_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")
SECRET_NAMES = frozenset({"access_token", "sig"})
"""Query parameters that carry a key or a link signature (`?access_token=` on WebSockets)."""
QUERY_PARAM = re.compile(r"(^|[?&;\s\"'(])([^=&?#;\s\"'()]+)=([^&#;\s\"']*)")
"""`name=value` in a logged URL (or free text); the name is compared after percent-decoding,
because the server decodes `access%5Ftoken` to `access_token` before it reads the key."""
MAX_UNQUOTE = 4
REQUEST_LOGGERS = ("uvicorn.access", "uvicorn.error")
"""Where uvicorn logs request lines (HTTP, and WebSocket handshakes)."""


def _is_secret(name: str) -> bool:
    # Decoded like the server decodes it, and again (a double-encoded name is still a hint).
    for _ in range(MAX_UNQUOTE):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().lower() in SECRET_NAMES


def redact(text: str) -> str:
    """`text` with the values of secret query parameters (however their names are
    percent-encoded) replaced by `***`."""

    def blank(match: re.Match[str]) -> str:
        if not _is_secret(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}=***"

    return QUERY_PARAM.sub(blank, text)


class RedactSecretsFilter(logging.Filter):
    """Blanks keys and signatures in request lines before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_request_logs() -> None:
    """Install `RedactSecretsFilter` on uvicorn's request loggers (once per process)."""
    for name in REQUEST_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
            log.addFilter(RedactSecretsFilter())


def record_job_id(record: logging.LogRecord) -> str | None:
    """The job a log record belongs to: explicit, from the context, or from Celery's task id."""
    explicit = getattr(record, "job_id", None)
    if isinstance(explicit, str):
        return explicit
    current = job_id_var.get()
    if current is not None:
        return current
    # Celery's own lines ("Task facecast.animate[<id>] received") carry the task id, which is
    # the job id; the worker's main process logs them outside any job context.
    if isinstance(record.args, dict):
        candidate = record.args.get("id")
        if isinstance(candidate, str) and is_job_id(candidate):
            return candidate
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, job_id (when known), exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = record_job_id(record)
        if job_id is not None:
            payload["job_id"] = job_id
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log line inside the block with `job_id`."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


def configure_logging(level: str | int = "INFO") -> None:
    """Send every logger (ours, uvicorn's, Celery's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in FRAMEWORK_LOGGERS:
        framework = logging.getLogger(name)
        framework.handlers.clear()
        framework.propagate = True
