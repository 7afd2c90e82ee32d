"""Hardening round two (issue 11), each test written as the attack and the bound it must keep.

Real parts only: `facecast serve` (uvicorn + Celery) on the server-less queue, a real tmpfs for
the full disk, real sockets for webhooks and slow clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from conftest_service import LiveService, serve_single_command, service_env, spawn, tmpfs
from test_service_hardening import WORKER, children_of, error_of, fill, start_api_alone

KEY_A = "tenant-a-key"
KEY_B = "tenant-b-key"
ADMIN = "admin-key"
SECRET = "attack-webhook-secret"
LONG_TEXT = "Dieser Satz wird gesprochen, bis die Platte voll ist und nichts mehr passt. " * 8


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`facecast serve` with two tenant keys and an admin key, no Redis, one worker."""
    root = tmp_path_factory.mktemp("tenants")
    env = service_env(
        root / "data",
        None,
        FACECAST_API_KEYS=f"{KEY_A},{KEY_B}",
        FACECAST_ADMIN_KEYS=ADMIN,
        FACECAST_WORKER_WARMUP="false",
        FACECAST_WEBHOOK_SECRET=SECRET,
        FACECAST_RATE_LIMIT_PER_MINUTE="0",
    )
    service = serve_single_command(root, env)
    service.client.headers.update(bearer(KEY_A))
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


def as_key(service: LiveService, key: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    headers = {**kwargs.pop("headers", {}), **bearer(key)}
    return service.client.request(method, url, headers=headers, **kwargs)


def test_another_key_sees_nothing_of_a_job(tenants: LiveService, portrait: Path) -> None:
    """Key B tries every way to read, follow, cancel or download key A's job: 404 each time."""
    job_a = tenants.submit_text(portrait, "Nur für A.", size=128, client_ref="secret-ref-a")
    done = tenants.wait_job(job_a)
    assert done["status"] == "done" and done["client_ref"] == "secret-ref-a", done
    video_url = done["video_url"]
    assert "?sig=" in video_url
    file_path = f"/files/{job_a}/video.mp4"
    nobody = "0123456789abcdef" * 2
    for method, url in (
        ("GET", f"/jobs/{job_a}"),
        ("DELETE", f"/jobs/{job_a}"),
        ("GET", f"/jobs/{job_a}/events"),
        ("GET", file_path),
        ("GET", f"{file_path}?sig={'0' * 32}"),
    ):
        answer = as_key(tenants, KEY_B, method, url)
        assert error_of(answer, 404)["code"] == "not_found", (method, url)
        # Exactly what a job that never existed answers: no existence oracle.
        unknown = as_key(tenants, KEY_B, method, url.replace(job_a, nobody))
        assert answer.text == unknown.text.replace(nobody, job_a), (answer.text, unknown.text)
    unsigned = httpx.get(tenants.base_url + file_path)
    assert error_of(unsigned, 404)["code"] == "not_found"
    with connect(
        f"{tenants.ws_url}/ws/jobs/{job_a}?access_token={KEY_B}", open_timeout=10
    ) as socket_b:
        assert json.loads(socket_b.recv(timeout=30))["error"]["code"] == "not_found"
    # The owner and an admin see it; the signed link works without a key (players send none).
    assert tenants.client.get(f"/jobs/{job_a}").status_code == 200
    assert as_key(tenants, ADMIN, "GET", f"/jobs/{job_a}").json()["client_ref"] == "secret-ref-a"
    assert httpx.get(video_url).content[4:8] == b"ftyp"
    assert tenants.client.get(file_path).status_code == 200  # the owner, by Authorization
    # B's DELETE above removed nothing; an admin may delete the job for good.
    erased = as_key(tenants, ADMIN, "DELETE", f"/jobs/{job_a}")
    assert erased.status_code == 200 and "video.mp4" in erased.json()["removed_files"]
    assert error_of(tenants.client.get(f"/jobs/{job_a}"), 404)["code"] == "not_found"


def test_reuse_stays_within_one_tenant(tenants: LiveService, portrait: Path) -> None:
    """Key B submits exactly what key A did: it is rendered afresh (no instant `done`, which
    would tell B that this face was filmed saying this), and names nothing of A's job."""
    job_a = tenants.submit_text(portrait, "Geteiltes Ergebnis.", size=128, client_ref="ref-a")
    made = tenants.wait_job(job_a)
    assert made["status"] == "done", made
    with portrait.open("rb") as photo:
        answer_b = as_key(
            tenants,
            KEY_B,
            "POST",
            "/animate",
            data={"consent": "true", "size": "128", "text": "Geteiltes Ergebnis."},
            files={"source_image": ("p.jpg", photo)},
        )
    assert answer_b.status_code == 202 and answer_b.json()["status"] == "queued", answer_b.text
    job_b = answer_b.json()["job_id"]
    deadline = time.monotonic() + 120
    while (view_b := as_key(tenants, KEY_B, "GET", f"/jobs/{job_b}")).json()["status"] != "done":
        assert time.monotonic() < deadline, view_b.text
        time.sleep(0.2)
    for text in (answer_b.text, view_b.text):
        assert job_a not in text and "ref-a" not in text, text
    assert job_b != job_a and view_b.json()["reused_from"] is None
    assert view_b.json()["started_at"] is not None  # rendered by a worker, not reused
    # The same key reusing its own result is told which job it reused.
    own = tenants.animate(portrait, text="Geteiltes Ergebnis.", size=128)
    assert tenants.job(own.json()["job_id"])["reused_from"] == job_a

    speech_a = tenants.client.post("/tts", json={"text": "Gleiche Worte.", "client_ref": "t-a"})
    assert speech_a.status_code == 200, speech_a.text
    audio_a = speech_a.json()["audio_id"]
    speech_b = as_key(tenants, KEY_B, "POST", "/tts", json={"text": "Gleiche Worte."})
    assert speech_b.status_code == 200 and speech_b.json()["reused"] is False, speech_b.text
    assert audio_a not in speech_b.text and speech_b.json()["audio_id"] != audio_a
    tts_view = as_key(tenants, KEY_B, "GET", f"/jobs/{speech_b.json()['job_id']}").json()
    assert tts_view["client_ref"] is None and tts_view["reused_from"] is None, tts_view
    assert httpx.get(speech_b.json()["audio_url"]).content[:4] == b"RIFF"
    # A's audio_id is not B's to animate.
    with portrait.open("rb") as photo:
        borrowed = as_key(
            tenants,
            KEY_B,
            "POST",
            "/animate",
            data={"consent": "true", "audio_id": audio_a},
            files={"source_image": ("p.jpg", photo)},
        )
    assert error_of(borrowed, 422)["code"] == "invalid_request"


def test_another_key_cannot_cancel_a_running_job(tenants: LiveService, portrait: Path) -> None:
    job_a = tenants.submit_text(portrait, LONG_TEXT, size=128)
    assert error_of(as_key(tenants, KEY_B, "DELETE", f"/jobs/{job_a}"), 404)["code"] == (
        "not_found"
    )
    assert tenants.job(job_a)["status"] in {"queued", "running"}
    assert tenants.client.delete(f"/jobs/{job_a}").status_code == 200  # the owner may
    assert tenants.wait_job(job_a)["status"] == "canceled"


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root and CAP_SYS_ADMIN; skipped otherwise)."""
    with tmpfs(tmp_path, 16) as mount:
        yield mount


def leftovers(data: Path) -> list[str]:
    """Temporary, partial and reserve files anywhere in the data directory."""
    suspicious = ("*.tmp", "*.partial", "audio_partial.wav", "space_reserve")
    return sorted(str(p.relative_to(data)) for pattern in suspicious for p in data.rglob(pattern))


def test_full_disk_during_tts_and_cancel_ends_cleanly(
    tiny_disk: Path, portrait: Path, tmp_path: Path
) -> None:
    """The disk fills while speech is queued: cancel still works, new jobs get 507, the speech
    job ends `storage_full`, and no partial WAV, temp or reserve file is left."""
    data = tiny_disk / "data"
    env = service_env(data, None, FACECAST_WORKER_WARMUP="false", FACECAST_TTS_WAIT_SECONDS="0")
    service = start_api_alone(data, env, tmp_path)
    try:
        speech = service.client.post("/tts", json={"text": LONG_TEXT})
        assert speech.status_code == 202, speech.text
        speech_job = speech.json()["job_id"]
        queued_job = service.submit_text(portrait, "Warte.", size=128)
        slack = tiny_disk / "slack"
        slack.write_bytes(b"\0" * 256 * 1024)  # freed later: room to start, not to finish
        fill(tiny_disk)
        assert error_of(service.animate(portrait, text="Voll."), 507)["code"] == "storage_full"
        assert error_of(service.client.post("/tts", json={"text": "Voll."}), 507)["code"] == (
            "storage_full"
        )
        canceled = service.client.delete(f"/jobs/{queued_job}")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        slack.unlink()
        service.logs["worker"] = tmp_path / "worker.log"
        service.processes["worker"] = spawn(WORKER, env, service.logs["worker"])
        job = service.wait_job(speech_job, timeout=120)
        assert job["status"] == "error" and job["error"]["code"] == "storage_full", (
            job,
            service.dump_logs(),
        )
        assert job["audio_url"] is None and not (data / speech_job / "audio.wav").exists()
        assert leftovers(data) == []
        assert service.job(queued_job)["status"] == "canceled"
    finally:
        service.close()


def test_state_writes_give_up_their_reserve_only_for_an_ending(tiny_disk: Path) -> None:
    from facecast.service.schemas import JobKind, JobState, JobStatus
    from facecast.service.state import FileJobStore
    from facecast.service.storage import Storage
    from facecast.service.transitions import advance, finish, start_attempt

    storage = Storage(tiny_disk / "data")
    store = FileJobStore(storage)
    job_id = storage.new_job()
    store.create(JobState(job_id=job_id, kind=JobKind.TTS, created_at=time.time()))
    assert store.update(job_id, start_attempt(time.time(), 2)) is not None
    fill(tiny_disk)
    with pytest.raises(OSError):
        store.update(job_id, advance("speech", 50))  # progress may not eat the reserve
    final = store.update(job_id, finish(JobStatus.ERROR, time.time()))
    assert final is not None and store.get(job_id) == final
    assert leftovers(storage.root) == []  # the reserve paid for the ending
    (tiny_disk / "more").mkdir()
    fill(tiny_disk / "more")  # what the reserve freed is taken again
    with pytest.raises(OSError):
        storage.new_job()  # no room for a reserve: no new job
    assert [p.name for p in storage.root.iterdir()] == [job_id]


# --------------------------------------------------------------------------- no keys, loopback


RATE = 40
ALLOWED_ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`facecast serve` on loopback without keys, as a newcomer runs it; short deadlines."""
    root = tmp_path_factory.mktemp("open")
    env = service_env(
        root / "data",
        None,
        FACECAST_WORKER_WARMUP="false",
        FACECAST_RATE_LIMIT_PER_MINUTE=str(RATE),
        FACECAST_CORS_ORIGINS=ALLOWED_ORIGIN,
        FACECAST_WEBHOOK_SECRET=SECRET,
        FACECAST_HEADER_TIMEOUT_SECONDS="1",
        FACECAST_READ_TIMEOUT_SECONDS="1",
        FACECAST_TEST_MARKER=uuid.uuid4().hex,
    )
    service = serve_single_command(root, env)
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    seen: list[tuple[str, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"][0], scope["scheme"]))

    from facecast.service.guards import ForwardedMiddleware, parse_networks

    guard = ForwardedMiddleware(app, parse_networks(["10.0.0.0/8"]))
    headers = [(b"x-forwarded-for", b"198.51.100.7, 10.1.1.1"), (b"x-forwarded-proto", b"https")]
    for client in ("10.2.2.2", "192.0.2.9"):
        scope = {"type": "http", "client": (client, 1), "scheme": "http", "headers": headers}
        anyio.run(guard, scope, None, None)  # type: ignore[arg-type]
    # From the proxy: the nearest untrusted hop; from anyone else: the peer itself.
    assert seen == [("198.51.100.7", "https"), ("192.0.2.9", "http")]


def test_cross_site_requests_are_refused_without_keys(
    open_service: LiveService, portrait: Path
) -> None:
    client = open_service.client
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        form = client.post(
            "/tts", data={"text": "Hallo"}, headers={"Origin": origin}
        )  # what a hostile page's <form> sends
        assert error_of(form, 403)["code"] == "forbidden_origin"
        with portrait.open("rb") as photo:
            upload = client.post(
                "/animate",
                data={"consent": "true", "text": "Hallo"},
                files={"source_image": ("p.jpg", photo)},
                headers={"Origin": origin},
            )
        assert error_of(upload, 403)["code"] == "forbidden_origin"
        gone = client.delete("/jobs/" + "0" * 32, headers={"Origin": origin})
        assert error_of(gone, 403)["code"] == "forbidden_origin"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"{open_service.ws_url}/ws/jobs/{'0' * 32}",
            origin=Origin("https://evil.example"),
            open_timeout=10,
        )
    assert refused.value.response.status_code == 403
    # The page the API serves itself, and configured origins, may post; so may non-browsers.
    own = open_service.base_url
    for headers in ({"Origin": own}, {"Origin": ALLOWED_ORIGIN}, {}):
        assert client.post("/tts", json={"text": ""}, headers=headers).status_code == 422


def test_foreign_host_is_refused(open_service: LiveService) -> None:
    """DNS rebinding: a page under another name reaches the API; its Host gives it away."""
    port = open_service.base_url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "[::2]"):
        answer = open_service.client.post("/tts", json={"text": "x"}, headers={"Host": host})
        assert error_of(answer, 400)["code"] == "invalid_host", host
        assert "evil" not in answer.text
    assert open_service.client.get("/health", headers={"Host": f"localhost:{port}"}).is_success


def test_public_url_names_the_links_and_the_allowed_host() -> None:
    from facecast.config import Settings
    from facecast.service.guards import allowed_hosts, allowed_origins

    settings = Settings(public_url="https://Facecast.Example.com/", allowed_hosts=["localhost"])
    assert allowed_hosts(settings) == {"localhost", "facecast.example.com"}
    assert "https://facecast.example.com" in allowed_origins(settings)


def test_links_come_from_the_public_url_not_the_request(tmp_path: Path) -> None:
    from facecast.config import Settings
    from facecast.service.access import link_is_valid
    from facecast.service.app import build_service
    from facecast.service.schemas import JobKind, JobState, JobStatus

    settings = Settings(
        public_url="https://facecast.example.com", api_keys=["k"], data_dir=tmp_path / "data"
    )
    service = build_service(settings)
    job_id = service.storage.new_job()
    service.storage.path(job_id, "video.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    state = JobState(job_id=job_id, kind=JobKind.ANIMATE, status=JobStatus.DONE, created_at=0)
    view = service.view(state, "http://evil.example:8000")
    prefix = f"https://facecast.example.com/files/{job_id}/video.mp4?sig="
    assert view.video_url is not None and view.video_url.startswith(prefix), view.video_url
    sig, _, exp = view.video_url.removeprefix(prefix).partition("&exp=")
    assert link_is_valid(settings, job_id, "video.mp4", sig, int(exp))
    assert not link_is_valid(settings, job_id, "audio.wav", sig, int(exp))
    service.close()


def raw_exchange(service: LiveService, payload: bytes, wait: float) -> tuple[bytes, float]:
    """Send `payload`, then nothing; what the server answered and how long until it closed."""
    host, port = service.base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(payload)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received, time.monotonic() - started


def test_slow_clients_are_cut_off(open_service: LiveService) -> None:
    """Headers or a body that never finish: 408 in the error shape, connection closed."""
    slow_headers = b"POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/js"
    slow_body = (
        b"POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 400\r\n\r\n{"text": "Hal'
    )
    for payload in (slow_headers, slow_body, b""):
        answer, took = raw_exchange(open_service, payload, wait=15)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
        assert took < 10


def test_options_range_and_preflight_errors_use_the_error_shape(
    open_service: LiveService,
) -> None:
    client = open_service.client
    job = open_service.wait_job(client.post("/tts", json={"text": "Kurz."}).json()["job_id"])
    options = client.options(f"/jobs/{job['job_id']}")
    assert options.status_code == 204
    assert {"GET", "DELETE", "OPTIONS"} <= set(options.headers["allow"].split(", "))
    wrong = client.put(f"/jobs/{job['job_id']}")
    assert error_of(wrong, 405)["code"] == "method_not_allowed"
    assert {"GET", "DELETE"} <= set(wrong.headers["allow"].split(", "))
    beyond = client.get(job["audio_url"], headers={"Range": "bytes=99999999-"})
    assert error_of(beyond, 416)["code"] == "range_not_satisfiable"
    garbled = client.get(job["audio_url"], headers={"Range": "bytes=5-2"})
    assert garbled.status_code in (200, 400, 416)
    if garbled.status_code != 200:
        error_of(garbled, garbled.status_code)
    preflight = client.options(
        "/animate",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert error_of(preflight, 400)["code"] == "bad_request"


def test_private_webhooks_are_refused_at_submit(open_service: LiveService) -> None:
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://[::5efe:c0a8:101]/hook",  # ISATAP of 192.168.1.1
        "http://[fe80::1]/hook",
        "http://no-such-host.invalid/hook",
    ):
        answer = open_service.client.post("/tts", json={"text": "Hallo", "webhook": url})
        assert error_of(answer, 422)["code"] == "invalid_request", url


def test_webhook_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers a checked address once, then another; the POST goes to
    the checked one, with the name in Host, after one lookup."""
    from facecast.config import Settings
    from facecast.service import webhooks

    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.255.255.1", "10.255.255.1"])
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        lookups.append(host)
        return real(next(answers), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings = Settings(webhook_secret=SECRET, webhook_allow_private=True)
    try:
        webhooks.deliver(f"http://rebind.test:{port}/hook", b"{}", settings)
    finally:
        server.shutdown()
        server.server_close()
    assert lookups == ["rebind.test"] and received[0]["host"] == f"rebind.test:{port}"
    refused = Settings(webhook_secret=SECRET)
    answers = iter(["127.0.0.1"])
    with pytest.raises(webhooks.WebhookRefusedError):
        webhooks.deliver(f"http://rebind.test:{port}/hook", b"{}", refused)


def test_keys_in_urls_stay_out_of_the_access_log(tenants: LiveService, portrait: Path) -> None:
    job_id = tenants.submit_text(portrait, "Geheim.", size=128)
    with connect(f"{tenants.ws_url}/ws/jobs/{job_id}?access_token={KEY_A}", open_timeout=10) as ws:
        ws.recv(timeout=30)
    done = tenants.wait_job(job_id)
    signature = done["video_url"].split("sig=", 1)[1].split("&", 1)[0]
    assert httpx.get(done["video_url"]).status_code == 200
    time.sleep(0.5)
    log = tenants.logs["serve"].read_text()
    assert "access_token=***" in log and "sig=***" in log
    assert KEY_A not in log and signature not in log


def test_failed_job_shows_a_stable_error_not_worker_logs(
    tenants: LiveService, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), (200, 180, 160)).save(blank)
    job = tenants.wait_job(tenants.submit_text(blank, "Hallo", size=128))
    assert job["status"] == "error" and job["error"]["code"] == "no_face", job
    assert set(job["error"]) == {"code", "message"} and "log_tail" not in job
    assert "Traceback" not in json.dumps(job) and "facecast." not in job["error"]["message"]


def test_killed_job_waits_as_queued_with_its_attempt(
    open_service: LiveService, portrait: Path
) -> None:
    """Server-less queue: SIGKILL the process that renders; the job says `queued`, attempt 1,
    until its next delivery runs it to the end as attempt 2."""
    job_id = open_service.submit_text(portrait, LONG_TEXT, size=128)
    deadline = time.monotonic() + 60
    while open_service.job(job_id)["stage"] != "render" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_service.job(job_id)["status"] == "running"
    pool = [
        pid
        for worker in children_of(open_service.processes["serve"].pid)
        for pid in children_of(worker)
    ]
    assert pool
    for pid in pool:
        os.kill(pid, signal.SIGKILL)
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # no sleep: the job may wait only a few ms
        view = open_service.job(job_id)
        seen.append((view["status"], view["attempt"]))
        if view["status"] in {"done", "error", "canceled"}:
            break
    assert seen[-1] == ("done", 2), seen[-20:]
    requeued = [
        json.loads(line)
        for line in open_service.logs["serve"].read_text().splitlines()
        if "back in the queue" in line
    ]
    assert [entry.get("job_id") for entry in requeued] == [job_id]
    # Whatever the poll caught in between, attempt 1 never followed attempt 2.
    attempts = [attempt for _, attempt in seen]
    assert attempts == sorted(attempts), seen[-20:]


def self_signed(folder: Path, name: str) -> Path:
    """A certificate (and key, in the same PEM file) for DNS name `name`."""
    pem = folder / f"{name}.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(pem), "-out", str(folder / f"{name}.crt"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    pem.write_bytes(pem.read_bytes() + (folder / f"{name}.crt").read_bytes())
    return pem


def test_https_webhook_checks_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned to an IP, TLS still sends the URL's name (SNI) and verifies the certificate
    against it: a receiver whose certificate names another host is refused."""
    import ssl

    from facecast.config import Settings
    from facecast.service import webhooks

    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.skip("openssl is not installed")
    names_seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    real = socket.getaddrinfo

    def pinned(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host in ("hook.test", "other.test") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", pinned)
    settings = Settings(webhook_secret=SECRET, webhook_allow_private=True)
    for served, asked, works in (
        ("hook.test", "hook.test", True),
        ("other.test", "hook.test", False),
    ):
        pem = self_signed(tmp_path, served)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / f"{served}.crt"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        context.sni_callback = lambda _sock, name, _ctx: names_seen.append(name)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://{asked}:{server.server_address[1]}/hook"
        try:
            if works:
                webhooks.deliver(url, b"{}", settings)
            else:
                with pytest.raises(webhooks.WebhookError, match=r"(?i)certificate"):
                    webhooks.deliver(url, b"{}", settings)
        finally:
            server.shutdown()
            server.server_close()
    assert names_seen[:1] == ["hook.test"] and "hook.test" in names_seen[1:]


def test_readiness_keeps_broker_details_to_the_operator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from facecast.config import Settings
    from facecast.service.app import build_service

    secret_url = "redis://:hunter2@127.0.0.1:1/0"
    service = build_service(Settings(redis_url=secret_url, data_dir=tmp_path / "data"))
    try:
        report = service.readiness()
    finally:
        service.close()
    assert not report.ready and report.checks["broker"].detail == "unreachable"
    assert "127.0.0.1" not in report.model_dump_json() and "hunter2" not in report.model_dump_json()
    assert any("unreachable" in record.getMessage() for record in caplog.records)


def test_spoofed_forwarded_for_does_not_escape_the_rate_limit(open_service: LiveService) -> None:
    """Runs last in this module: it empties the loopback client's bucket. A new
    X-Forwarded-For on every request must not buy a new bucket."""
    started = time.monotonic()
    answers = [
        open_service.client.post("/tts", json={}, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        for n in range(RATE + 10)
    ]
    refilled = (time.monotonic() - started) * RATE / 60 + 1  # the bucket refills meanwhile
    codes = [a.status_code for a in answers]
    assert set(codes) == {422, 429} and codes.count(422) <= RATE + refilled, codes
    assert codes[-1] == 429, codes
    assert error_of(answers[-1], 429)["code"] == "rate_limited"
