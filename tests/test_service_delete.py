"""Issue 21, a user's data and secrets: DELETE of a finished job removes everything it left
(disk, reuse cache), signed links expire, /metrics and /backends details are for admins, and a
percent-encoded `access%5Ftoken` neither authenticates differently nor reaches the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from conftest_service import LiveService, serve_single_command, service_env
from test_service_hardening import error_of

KEY_A = "delete-tenant-a"
KEY_B = "delete-tenant-b"
ADMIN = "delete-admin"
URL_TTL_S = 4
"""Short, so that a link expires within the test."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def as_key(service: LiveService, key: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    headers = {**kwargs.pop("headers", {}), **bearer(key)}
    return service.client.request(method, url, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """`facecast serve` with two tenant keys, an admin key and links valid for URL_TTL_S."""
    root = tmp_path_factory.mktemp("delete")
    env = service_env(
        root / "data",
        None,
        FACECAST_API_KEYS=f"{KEY_A},{KEY_B}",
        FACECAST_ADMIN_KEYS=ADMIN,
        FACECAST_WORKER_WARMUP="false",
        FACECAST_RATE_LIMIT_PER_MINUTE="0",
        FACECAST_URL_TTL=str(URL_TTL_S),
    )
    service = serve_single_command(root, env)
    service.client.headers.update(bearer(KEY_A))
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def cache_entries_for(data: Path, job_id: str) -> list[str]:
    folder = data / "_cache"
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.read_text().strip() == job_id]


def test_delete_of_a_finished_job_removes_every_file_and_its_reuse_entry(
    keyed: LiveService, portrait: Path, silence_wav: Path
) -> None:
    data = keyed.data_dir
    with portrait.open("rb") as photo, silence_wav.open("rb") as recording:
        answer = keyed.client.post(
            "/animate",
            data={"consent": "true", "size": "128"},
            files={"source_image": ("p.jpg", photo), "audio": ("mine.wav", recording)},
        )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    done = keyed.wait_job(job_id)
    assert done["status"] == "done", done
    before = files_of(data / job_id)
    assert "video.mp4" in before and any(n.startswith("source.") for n in before), before
    assert cache_entries_for(data, job_id), "the job made no reuse entry"

    # Another tenant cannot delete it: 404 as for a job that never existed, nothing removed.
    other = as_key(keyed, KEY_B, "DELETE", f"/jobs/{job_id}")
    assert error_of(other, 404)["code"] == "not_found"
    assert files_of(data / job_id) == before

    erased = keyed.client.delete(f"/jobs/{job_id}")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["deleted"] is True and body["job_id"] == job_id and body["status"] == "done"
    assert body["removed_cache_entries"] >= 1
    uploaded = [n for n in before if n.endswith(".wav")]
    assert uploaded, before  # the recording the face spoke
    for name in ("video.mp4", *uploaded):
        assert name in body["removed_files"], body
    # Every file the job had is named (bookkeeping aside), the HLS stream included.
    assert set(body["removed_files"]) == set(before) - {"job.json", ".used"}, (body, before)
    assert any(name.startswith("stream/") for name in before), before
    # Nothing left: no directory, no cache entry, no job, no download.
    assert not (data / job_id).exists()
    assert cache_entries_for(data, job_id) == []
    assert error_of(keyed.client.get(f"/jobs/{job_id}"), 404)["code"] == "not_found"
    for url in (f"/files/{job_id}/video.mp4", done["video_url"]):
        assert error_of(keyed.client.get(url), 404)["code"] == "not_found", url
    assert error_of(keyed.client.delete(f"/jobs/{job_id}"), 404)["code"] == "not_found"
    assert job_id not in "".join(p.name for p in data.iterdir())


def test_delete_of_speech_and_of_a_canceled_job(keyed: LiveService, portrait: Path) -> None:
    speech = keyed.client.post("/tts", json={"text": "Bitte vergessen."})
    assert speech.status_code == 200, speech.text
    speech_id = speech.json()["job_id"]
    assert (keyed.data_dir / speech_id / "audio.wav").is_file()
    erased = keyed.client.delete(f"/jobs/{speech_id}")
    assert erased.status_code == 200 and "audio.wav" in erased.json()["removed_files"]
    assert not (keyed.data_dir / speech_id).exists()
    # The same speech again is made afresh (the deleted job's reuse entry is gone).
    again = keyed.client.post("/tts", json={"text": "Bitte vergessen."})
    assert again.status_code == 200 and again.json()["reused"] is False, again.text

    # A retry with the Idempotency-Key of a deleted job starts a new job, not the deleted one.
    keyed_body = {"text": "Einmal und wieder."}
    headers = {"Idempotency-Key": "delete-retry-1"}
    first_try = keyed.client.post("/tts", json=keyed_body, headers=headers)
    assert first_try.status_code == 200, first_try.text
    assert keyed.client.delete(f"/jobs/{first_try.json()['job_id']}").status_code == 200
    retry = keyed.client.post("/tts", json=keyed_body, headers=headers)
    assert retry.status_code == 200 and retry.json()["job_id"] != first_try.json()["job_id"]
    assert keyed.job(retry.json()["job_id"])["status"] == "done"
    same = keyed.client.post("/tts", json=keyed_body, headers=headers)  # bound again
    assert same.json()["job_id"] == retry.json()["job_id"], same.text

    # A running job: the first DELETE cancels it (as before), the second deletes it.
    job_id = keyed.submit_text(portrait, "Lang genug, um abzubrechen. " * 6, size=128)
    first = keyed.client.delete(f"/jobs/{job_id}")
    assert first.status_code == 200 and "deleted" not in first.json(), first.text
    assert keyed.wait_job(job_id)["status"] == "canceled"
    second = keyed.client.delete(f"/jobs/{job_id}")
    assert second.status_code == 200 and second.json()["status"] == "canceled", second.text
    assert not (keyed.data_dir / job_id).exists()


def test_signed_links_expire_and_cannot_be_stretched(keyed: LiveService, portrait: Path) -> None:
    job_id = keyed.submit_text(portrait, "Nur kurz gültig.", size=128)
    keyed.wait_job(job_id)
    view = keyed.job(job_id)  # fresh links
    link = view["video_url"]
    assert "sig=" in link and "&exp=" in link, link
    expires = int(link.rsplit("&exp=", 1)[1])
    assert abs(expires - (time.time() + URL_TTL_S)) < 3
    assert httpx.get(link).status_code == 200
    # Moving `exp` or changing `sig` breaks the signature: 404 as for a missing file.
    stretched = link.replace(f"exp={expires}", f"exp={expires + 86400}")
    assert error_of(httpx.get(stretched), 404)["code"] == "not_found"
    signature = link.split("sig=", 1)[1].split("&", 1)[0]
    tampered = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert error_of(httpx.get(tampered), 404)["code"] == "not_found"
    unsigned = link.split("?", 1)[0] + f"?sig={signature}"
    assert error_of(httpx.get(unsigned), 404)["code"] == "not_found"
    time.sleep(max(0.0, expires - time.time()) + 0.5)
    expired = httpx.get(link)
    assert error_of(expired, 403)["code"] == "link_expired", expired.text
    # The owner still downloads with its key, and a fresh view gives a fresh link.
    assert keyed.client.get(link.split("?", 1)[0]).status_code == 200
    assert httpx.get(keyed.job(job_id)["video_url"]).status_code == 200


def test_link_signature_covers_the_expiry() -> None:
    from facecast.config import Settings
    from facecast.service.access import link_is_valid, link_query
    from facecast.service.errors import LinkExpiredError

    settings = Settings(api_keys=["k"], url_ttl=60)
    job_id = "a" * 32
    query = link_query(settings, job_id, "video.mp4", now=1000.0)
    sig = query.split("sig=", 1)[1].split("&", 1)[0]
    assert query.endswith("&exp=1060")
    assert link_is_valid(settings, job_id, "video.mp4", sig, 1060, now=1059.0)
    assert not link_is_valid(settings, job_id, "video.mp4", sig, 1061, now=1000.0)
    assert not link_is_valid(settings, job_id, "audio.wav", sig, 1060, now=1000.0)
    assert not link_is_valid(settings, job_id, "video.mp4", sig, None, now=1000.0)
    with pytest.raises(LinkExpiredError):
        link_is_valid(settings, job_id, "video.mp4", sig, 1060, now=1060.0)


def test_metrics_and_backend_details_are_for_admin_keys(keyed: LiveService) -> None:
    anonymous = httpx.get(f"{keyed.base_url}/metrics")
    assert error_of(anonymous, 401)["code"] == "unauthorized"
    assert error_of(as_key(keyed, KEY_A, "GET", "/metrics"), 403)["code"] == "admin_only"
    admin = as_key(keyed, ADMIN, "GET", "/metrics")
    assert admin.status_code == 200 and "facecast_" in admin.text
    assert httpx.get(f"{keyed.base_url}/health").status_code == 200  # public, no key

    full = as_key(keyed, ADMIN, "GET", "/backends").json()["backends"]
    tenant = as_key(keyed, KEY_A, "GET", "/backends").json()["backends"]
    assert [(b["kind"], b["name"], b["available"]) for b in tenant] == [
        (b["kind"], b["name"], b["available"]) for b in full
    ]
    assert all(b["missing"] == [] and not b["how_to_get"] and not b["source"] for b in tenant)
    assert any(b["missing"] or b["how_to_get"] for b in full), "no operator detail to hide"


def test_percent_encoded_access_token_is_the_plain_one_and_stays_out_of_the_log(
    keyed: LiveService, portrait: Path
) -> None:
    job_id = keyed.submit_text(portrait, "Verschlüsselt.", size=128)
    keyed.wait_job(job_id)
    for name in ("access_token", "access%5Ftoken", "%61ccess%5Ftoken"):
        url = f"{keyed.ws_url}/ws/jobs/{job_id}?{name}="
        with connect(url + KEY_A, open_timeout=10) as socket_a:
            assert '"job_id"' in str(socket_a.recv(timeout=30)), name
        with connect(url + KEY_B, open_timeout=10) as socket_b:  # not B's job
            assert "not_found" in str(socket_b.recv(timeout=30)), name
        with connect(url + "not-a-key", open_timeout=10) as socket_x:
            assert "unauthorized" in str(socket_x.recv(timeout=30)), name
    # Plain HTTP never takes a key from the query, however it is spelled.
    for name in ("access_token", "access%5Ftoken"):
        answer = httpx.get(f"{keyed.base_url}/jobs/{job_id}?{name}={KEY_A}")
        assert error_of(answer, 401)["code"] == "unauthorized", name
    time.sleep(0.5)
    log = keyed.logs["serve"].read_text()
    assert KEY_A not in log and KEY_B not in log
    assert "access%5Ftoken=***" in log
