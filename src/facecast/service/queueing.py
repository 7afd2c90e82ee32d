"""The Celery side both the API and the workers share: configuration, task names, the queues.

With `REDIS_URL` set, Redis is the broker. Without it, Celery's filesystem transport under
`<data dir>/_broker` gives a working queue with no server at all (one machine only). Celery keeps
no task results: job state lives in the state store (see state.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu import Queue
from kombu.exceptions import OperationalError

from facecast.config import Settings
from facecast.service.errors import QueueUnavailableError, StorageFullError
from facecast.service.storage import DISK_FULL, Storage

TASK_ANIMATE = "facecast.animate"
TASK_TTS = "facecast.tts"
TASK_WEBHOOK = "facecast.webhook"
QUEUES = ("default", "gpu")
"""`default` takes CPU work; `gpu` is for GPU backends on GPU hosts."""
WEBHOOK_QUEUE = "webhooks"
"""Webhook deliveries, taken by a worker of their own (threads, `facecast serve` starts
one), so a slow receiver never holds a render worker."""
WEBHOOK_CONCURRENCY = 4
"""Deliveries one webhook worker runs at once (threads: they wait on the network)."""

FILESYSTEM_BROKER_URL = "filesystem://localhost/"
"""The filesystem transport ignores the host; naming one keeps kombu from warning that none was
given, once per connection (a dozen lines at every `facecast serve` start)."""
PUBLISH_RETRIES = 2
BROKER_TIMEOUT_S = 3.0
"""Longest wait for the broker's Redis on one operation: a stalled Redis is a quick 503."""
VISIBILITY_MARGIN_S = 300
WORKER_START_TIMEOUT_S = 300.0
"""A worker process may warm up for this long before Celery gives up on it."""


BROKER_FILE_MAX_AGE_S = 3600.0
"""Processed message files of the server-less queue older than this are removed."""


def prune_broker_files(storage: Storage, now: float) -> None:
    """Drop old processed message files of the server-less queue."""
    folder = broker_folders(storage)["processed"]
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if now - entry.stat().st_mtime > BROKER_FILE_MAX_AGE_S:
            entry.unlink(missing_ok=True)


def broker_folders(storage: Storage) -> dict[str, Path]:
    """Folders of the filesystem transport."""
    base = storage.broker_dir
    return {"queue": base / "queue", "control": base / "control", "processed": base / "processed"}


def _filesystem_broker(settings: Settings, storage: Storage) -> dict[str, Any]:
    folders = broker_folders(storage)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": FILESYSTEM_BROKER_URL,
        "broker_transport_options": {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            "processed_folder": str(folders["processed"]),
            # A rename inside the data dir is atomic, so each message has one taker.
            "store_processed": True,
            "polling_interval": settings.broker_poll_seconds,
        },
    }


def _redis_broker(settings: Settings, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "visibility_timeout": settings.job_time_limit * 2 + VISIBILITY_MARGIN_S,
        "socket_timeout": BROKER_TIMEOUT_S,
        "socket_connect_timeout": BROKER_TIMEOUT_S,
    }
    if settings.lost_job_seconds is not None:
        # Look for abandoned jobs often enough that the timeout is what decides.
        options["visibility_timeout"] = settings.lost_job_seconds
        options["unacked_restore_interval"] = max(1, settings.lost_job_seconds // 10)
        options["unacked_restore_throttle"] = 1
        # A host killed while it held the restore lock must not block the others for long.
        options["unacked_mutex_expire"] = settings.lost_job_seconds
    return {"broker_url": url, "broker_transport_options": options}


def celery_config(settings: Settings, storage: Storage) -> dict[str, Any]:
    """The Celery configuration every facecast process uses."""
    broker = (
        _redis_broker(settings, settings.redis_url)
        if settings.redis_url
        else _filesystem_broker(settings, storage)
    )
    return broker | {
        "task_queues": tuple(Queue(name) for name in (*QUEUES, WEBHOOK_QUEUE)),
        "task_routes": {TASK_WEBHOOK: {"queue": WEBHOOK_QUEUE}},
        "task_default_queue": QUEUES[0],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.job_soft_time_limit,
        "task_time_limit": settings.job_time_limit,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_publish_retry_policy": {"max_retries": PUBLISH_RETRIES, "interval_start": 0.2},
        "worker_hijack_root_logger": False,
        "worker_proc_alive_timeout": WORKER_START_TIMEOUT_S,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }


def make_celery(settings: Settings, storage: Storage) -> Celery:
    """A configured Celery app with no tasks (the worker module registers those)."""
    app = Celery("facecast", set_as_current=False)
    app.conf.update(celery_config(settings, storage))
    return app


class TaskQueue:
    """Hands jobs to the workers and measures the queues (the API's view of Celery)."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.app = make_celery(settings, storage)
        self._redis = (
            redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=BROKER_TIMEOUT_S,
                socket_connect_timeout=BROKER_TIMEOUT_S,
            )
            if settings.redis_url
            else None
        )

    def send(self, task: str, job_id: str, queue: str, task_id: str | None = None) -> None:
        """Queue `task` for `job_id`; the Celery task id is the job id unless given."""
        try:
            self.app.send_task(
                task, args=[job_id], task_id=task_id or job_id, queue=queue, ignore_result=True
            )
        except OSError as exc:
            if exc.errno in DISK_FULL:  # the server-less queue writes a file per message
                raise StorageFullError("The server's storage is full; try again later.") from exc
            raise QueueUnavailableError(
                "The job queue cannot be reached; try again later."
            ) from exc
        except OperationalError as exc:
            raise QueueUnavailableError(
                "The job queue cannot be reached; try again later."
            ) from exc

    def warm_up(self) -> None:
        """Connect and build Celery's publishing machinery now, not in the first requests.

        The first `send_task` of a process costs ~30 ms (transport, producer pool, channel), and
        each producer the pool adds under concurrent submissions connects and declares the
        queues again (~5 ms with Redis): the whole pool is filled here.
        """
        app = self.app
        _ = app.amqp.send_task_message, app.backend
        pool = app.producer_pool
        producers = [pool.acquire(block=True, timeout=5) for _ in range(max(1, pool.limit or 1))]
        try:
            for producer in producers:
                producer.connection.ensure_connection(max_retries=1)
                for queue in app.amqp.queues.values():
                    producer.maybe_declare(queue)
        finally:
            for producer in producers:
                producer.release()

    def ping(self) -> None:
        """Raise when the broker cannot be reached."""
        if self._redis is not None:
            self._redis.ping()
            return
        folder = broker_folders(self.storage)["queue"]
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise OSError(f"{folder} is not a directory")

    def depth(self, queue: str) -> int:
        """Messages waiting in `queue`."""
        if self._redis is not None:
            return int(self._redis.llen(queue))
        folder = broker_folders(self.storage)["queue"]
        suffix = f".{queue}.msg"
        return sum(1 for path in folder.iterdir() if path.name.endswith(suffix))

    def close(self) -> None:
        """Release broker connections."""
        if self._redis is not None:
            self._redis.close()
        self.app.close()


def webhook_sender(queue: Callable[[], TaskQueue]) -> Callable[[str], None]:
    """A function that queues the webhook task of a job on the webhooks queue (one task id per
    job: a second ending of the same job sends no second delivery)."""

    def send(job_id: str) -> None:
        queue().send(TASK_WEBHOOK, job_id, WEBHOOK_QUEUE, task_id=f"{job_id}-webhook")

    return send
