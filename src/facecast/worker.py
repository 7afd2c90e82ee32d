"""Celery app factory and the thin tasks that call the pipeline.

Start workers with `facecast worker` (or `python -m facecast.worker`); `facecast serve` starts
them for you. Each worker process warms the engine up when it starts and reports a heartbeat,
which GET /ready reads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from billiard.exceptions import WorkerLostError
from celery import Celery, Task, signals
from celery.worker.request import Request

from facecast import audio, face, pipeline
from facecast.config import Settings, get_settings
from facecast.errors import CanceledError
from facecast.image import load_photo
from facecast.safety import ExplicitImageError, NudityScreen
from facecast.service import webhooks
from facecast.service.execution import (
    Heartbeat,
    fail_lost_job,
    requeue_lost_job,
    running_job,
    worker_context,
)
from facecast.service.logs import configure_logging, job_context
from facecast.service.queueing import (
    QUEUES,
    TASK_ANIMATE,
    TASK_TTS,
    TASK_WEBHOOK,
    WEBHOOK_QUEUE,
    make_celery,
)
from facecast.service.schemas import JobResult
from facecast.service.storage import AUDIO, open_storage
from facecast.service.streaming import StreamWatch
from facecast.service.transitions import stream_started
from facecast.video import hls_target, stream_playlist

logger = logging.getLogger("facecast.worker")  # also when run as __main__

WARMUP_TEXT = "Hallo."
WARMUP_PHOTO = "grace_hopper.jpg"
"""A portrait that ships inside matplotlib's wheel (a dependency)."""
WARMUP_SIZE = 512
"""The usual job size: the warm-up's frame loop is this host's first measured render rate
(facecast.rates), which estimates scale by frame area."""
PARTIAL_AUDIO = "audio_partial.wav"
SCREENED_PHOTOS = 512
"""Photos whose passed screening a worker process remembers (by content hash)."""
AI_JOB_TAG = "facecast_job_id"
"""MP4 metadata key that names the job a video came from (next to the AI-generated notice)."""


class JobRequest(Request):
    """Celery's request of a job task, as the worker's main process sees it."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """A pool process that died mid-job (SIGKILL, out of memory): the message is requeued,
        so the job shows `queued` until its next attempt starts, not `running` meanwhile."""
        exc = exc_info.exception
        if isinstance(getattr(exc, "exc", exc), WorkerLostError):  # may come wrapped
            try:
                requeue_lost_job(self.id)
            except Exception:
                logger.exception("could not mark job %s queued again", self.id)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class JobTask(Task):
    """Base of facecast tasks: a job whose process the hard time limit killed is marked failed."""

    Request = JobRequest

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Celery calls this in the worker's main process when a task raised or was killed."""
        try:
            fail_lost_job(task_id, exc)
        except Exception:
            logger.exception("could not record the failure of job %s", task_id)


def animate(job_id: str) -> str:
    """Render the job's photo speaking its text or audio into video.mp4."""
    with running_job(job_id) as run:
        if run is None:
            return "skipped"
        request = run.manifest.request
        image = run.file(request.image)
        if image is None:
            raise ValueError("animate job without a photo")
        # Decoded once, bounded by the working size; the screen and the render share the copy.
        photo = load_photo(image, max_pixels=run.context.settings.max_image_pixels)
        if run.context.settings.nudity_screen:
            run.progress("screening", 0.0)
            screen_photo(run.context.screen, image, photo.rgb)
        # The voice sample (cloning) lives in this worker's copy of the job folder.
        options = dataclasses.replace(request.options, voice_sample=run.file(request.voice_sample))
        storage, jobs = run.context.storage, run.context.stores.jobs
        folder = storage.stream_dir(job_id)
        publish = functools.partial(storage.publish_stream, job_id)
        live = hls_target(folder, captions=bool(options.captions))
        # The live copy carries the H.264 packets as they are: a WebM job streams nothing.
        streams = [live] if options.format == "mp4" else []
        watch = StreamWatch(
            folder, lambda: jobs.update(job_id, stream_started()), publish, stream_playlist(live)
        )
        with watch:
            result = pipeline.render_talking_head(
                photo,
                run.video_path,
                text=request.text,
                audio=run.file(request.audio),
                options=options,
                progress=run.progress,
                cancel=run.canceled,
                metadata={
                    "comment": f"{pipeline.AI_NOTICE} facecast job {job_id}.",
                    AI_JOB_TAG: job_id,
                },
                streams=streams,
                transcript=request.transcript,
            )
        for warning in result.warnings:
            logger.warning("%s", warning)
        run.until_stored(watch.finish, "the stream")
        if result.captions is not None:
            run.publish(result.captions.name)
        run.publish(run.video_path.name)  # streamed up in parts, never whole in memory
        run.complete(
            JobResult(
                duration=result.duration,
                frames=result.frames,
                elapsed=result.elapsed,
                warnings=list(result.warnings),
            )
        )
    return run.status


class ScreenedPhotos:
    """Content hashes of photos this process screened and let through (the last few hundred)."""

    def __init__(self, capacity: int = SCREENED_PHOTOS) -> None:
        self.capacity = capacity
        self._passed: dict[str, None] = {}

    def seen(self, digest: str) -> bool:
        """True when the photo with this hash passed before."""
        return digest in self._passed

    def add(self, digest: str) -> None:
        """Remember that the photo with this hash passed."""
        self._passed[digest] = None
        while len(self._passed) > self.capacity:
            del self._passed[next(iter(self._passed))]


@functools.lru_cache(maxsize=1)
def screened_photos() -> ScreenedPhotos:
    """This process's screened photos."""
    return ScreenedPhotos()


def screen_photo(screen: NudityScreen, image: Path, rgb: np.ndarray) -> None:
    """Screen the photo (`rgb`, its decoded working copy), once per content of the file
    `image`: a second job with the same photo starts at once."""
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    passed = screened_photos()
    if passed.seen(digest):
        logger.info("photo screened before")
        return
    verdict = screen.check(rgb)
    logger.info("photo screened: %s %.3f", verdict.label, verdict.score)
    passed.add(digest)


def tts(job_id: str) -> str:
    """Synthesise the job's text into audio.wav."""
    with running_job(job_id) as run:
        if run is None:
            return "skipped"
        request = run.manifest.request
        run.progress("speech", 0.0)
        speech = pipeline.speak(request.text or "", request.options, run.file(request.voice_sample))
        if run.canceled():
            raise CanceledError("The job was canceled.")
        partial = run.audio_path.with_name(PARTIAL_AUDIO)
        audio.save_wav(speech.audio, partial)
        partial.replace(run.audio_path)  # downloads never see half a file
        run.publish(AUDIO)
        run.complete(JobResult(duration=speech.audio.duration))
    return run.status


def webhook(task: Task, job_id: str) -> str:
    """POST the final state of job `job_id` to its webhook URL; retried with backoff."""
    context = worker_context()
    settings = context.settings
    with job_context(job_id):
        manifest = context.storage.read_manifest(job_id)
        state = context.stores.jobs.get(job_id) or (manifest.state if manifest else None)
        if manifest is None or state is None or not manifest.request.webhook:
            return "skipped"
        body = webhooks.event(manifest, state, context.storage, settings)
        try:
            webhooks.deliver(manifest.request.webhook, body.model_dump_json().encode(), settings)
        except webhooks.WebhookRefusedError as exc:
            logger.warning("webhook refused: %s", exc)
            return "refused"
        except webhooks.WebhookError as exc:
            retries = task.request.retries
            if retries + 1 >= settings.webhook_max_attempts:
                logger.warning("webhook failed %d times, giving up: %s", retries + 1, exc)
                return "failed"
            logger.info("webhook failed (%s); retrying", exc)
            countdown = webhooks.backoff(settings, retries)
            raise task.retry(countdown=countdown, max_retries=None) from exc
        logger.info("webhook delivered")
    return "delivered"


def warm_up(settings: Settings) -> None:
    """Run the whole engine once on a short render, so that the first job starts warm and
    the render rate of this host is measured."""
    photo = Path(matplotlib.get_data_path()) / "sample_data" / WARMUP_PHOTO
    if settings.nudity_screen and photo.is_file():
        with contextlib.suppress(ExplicitImageError):  # a strict model; loading is the point
            worker_context().screen.check(photo)  # raises when the model is missing
    if not photo.is_file():  # no sample photo: load the models at least
        pipeline.synthesize(WARMUP_TEXT, settings.default_lang)
        face.face_mesh()
        return
    options = pipeline.RenderOptions(size=WARMUP_SIZE, lang=settings.default_lang)
    with tempfile.TemporaryDirectory(prefix="facecast-warmup-") as scratch:
        output = Path(scratch) / "warmup.mp4"
        pipeline.render_talking_head(photo, output, text=WARMUP_TEXT, options=options)


def _install_process_hooks(app: Celery, settings: Settings) -> None:
    """Per worker process: warm-up and heartbeat."""
    heartbeats: list[Heartbeat] = []

    def on_process_init(**_: Any) -> None:
        context = worker_context()
        queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
        heartbeat = Heartbeat(context, queues)
        heartbeats.append(heartbeat)
        heartbeat.start()
        if settings.worker_warmup:
            try:
                warm_up(settings)
            except Exception:
                logger.exception("engine warm-up failed")
                return
        heartbeat.warmed.set()
        heartbeat.beat()
        logger.info("worker process ready")

    def on_process_shutdown(**_: Any) -> None:
        for heartbeat in heartbeats:
            heartbeat.stop()

    signals.worker_process_init.connect(on_process_init, weak=False, dispatch_uid="facecast-init")
    signals.worker_process_shutdown.connect(
        on_process_shutdown, weak=False, dispatch_uid="facecast-stop"
    )


def create_celery_app(settings: Settings | None = None) -> Celery:
    """The worker's Celery app: shared configuration, explicit queues, the facecast tasks."""
    settings = settings or get_settings()
    app = make_celery(settings, open_storage(settings))
    app.task(name=TASK_ANIMATE, base=JobTask)(animate)
    app.task(name=TASK_TTS, base=JobTask)(tts)
    app.task(name=TASK_WEBHOOK, bind=True, acks_late=True)(webhook)
    _install_process_hooks(app, settings)
    return app


def run_worker(concurrency: int, queues: list[str], loglevel: str, pool: str = "prefork") -> None:
    """Run a Celery worker with `concurrency` processes (or threads) consuming `queues`
    (blocks)."""
    configure_logging(loglevel)
    signals.setup_logging.connect(lambda **_: None, weak=False, dispatch_uid="facecast-logging")
    app = create_celery_app()
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            f"--loglevel={loglevel.upper()}",
            f"--hostname=facecast-{os.getpid()}@%h",
            f"--pool={pool}",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def healthy() -> bool:
    """True when a warmed-up worker process on this host has a fresh heartbeat."""
    context = worker_context()
    hostname = socket.gethostname()
    return any(w.warmed and w.hostname == hostname for w in context.stores.heartbeats.workers())


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m facecast.worker`: what `facecast serve` runs for its workers."""
    parser = argparse.ArgumentParser(prog="python -m facecast.worker", description=main.__doc__)
    parser.add_argument("--concurrency", type=int, default=1, help="worker processes")
    parser.add_argument("--queues", default=",".join(QUEUES), help="comma-separated queue names")
    parser.add_argument("--loglevel", default="info")
    parser.add_argument(
        "--pool",
        choices=("prefork", "threads"),
        default=None,
        help="prefork for renders; threads (the default for the webhooks queue alone) for "
        "deliveries that only wait on the network",
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 if a warmed-up worker on this host is alive, 1 otherwise (for containers)",
    )
    args = parser.parse_args(argv)
    if args.healthcheck:
        sys.exit(0 if healthy() else 1)
    queues = [q for q in args.queues.split(",") if q]
    pool = args.pool or ("threads" if queues == [WEBHOOK_QUEUE] else "prefork")
    run_worker(args.concurrency, queues, args.loglevel, pool)


if __name__ == "__main__":
    main()
