"""The deployment files as an operator meets them: compose refuses to start half-configured,
and nginx accepts the shipped configuration (`nginx -t`, Debian's nginx)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def compose_config(
    *files: str, quiet: bool = True, env: dict[str, str] | None = None, **more: str
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FACECAST_", "AWS_"))}
    names = files or ("docker-compose.yml",)
    return subprocess.run(
        [binary, *(a for f in names for a in ("-f", str(DEPLOY / f))), "config"]
        + (["-q"] if quiet else []),
        env={**clean, **(env or {}), **more},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


COMPLETE = {
    "FACECAST_API_KEYS": "k1",
    "FACECAST_PUBLIC_URL": "https://x.example",
    "AWS_SECRET_ACCESS_KEY": "s",
}


def services(*files: str) -> dict[str, Any]:
    done = compose_config(*files, quiet=False, env=COMPLETE)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return parsed


def test_compose_fails_fast_and_clearly_without_keys_or_public_url() -> None:
    no_keys = compose_config(FACECAST_PUBLIC_URL="https://facecast.example.com")
    assert no_keys.returncode != 0 and "Set FACECAST_API_KEYS" in no_keys.stderr
    no_url = compose_config(FACECAST_API_KEYS="k1")
    assert no_url.returncode != 0 and "Set FACECAST_PUBLIC_URL" in no_url.stderr
    empty = compose_config(FACECAST_API_KEYS="", FACECAST_PUBLIC_URL="https://x.example")
    assert empty.returncode != 0  # `:?` also refuses an empty value
    complete = compose_config(FACECAST_API_KEYS="k1", FACECAST_PUBLIC_URL="https://x.example")
    assert complete.returncode == 0, complete.stderr


def test_s3_compose_fails_fast_like_the_main_one() -> None:
    for missing in ("FACECAST_API_KEYS", "FACECAST_PUBLIC_URL"):
        env = {k: v for k, v in COMPLETE.items() if k != missing}
        done = compose_config("docker-compose.s3.yml", env=env)
        assert done.returncode != 0 and f"Set {missing}" in done.stderr
    assert compose_config("docker-compose.s3.yml", env=COMPLETE).returncode == 0


def test_workers_use_the_cpu_unless_the_gpu_file_is_added() -> None:
    for name in ("docker-compose.yml", "docker-compose.s3.yml"):
        worker = services(name)["worker"]
        assert "deploy" not in worker, f"{name} reserves a GPU"
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
        assert worker["command"][-1] == "default"
    gpu = services("docker-compose.yml", "docker-compose.gpu.yml")["worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.cuda"
    assert gpu["command"][-1] == "default,gpu"
    assert "nvidia/cuda" in (DEPLOY / "Dockerfile.cuda").read_text()
    assert "nvidia/cuda" not in (DEPLOY / "Dockerfile").read_text()


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.s3.yml"])
def test_the_api_trusts_forwarded_headers_from_its_nginx_alone(name: str) -> None:
    """Every client behind nginx keeps its own rate-limit bucket: the API believes
    X-Forwarded-For from nginx's fixed address only, and uvicorn's own setting is unused."""
    found = services(name)
    api_env = found["api"]["environment"]
    assert "FORWARDED_ALLOW_IPS" not in api_env
    nginx_address = found["nginx"]["networks"]["default"]["ipv4_address"]
    assert api_env["FACECAST_TRUSTED_PROXIES"] == nginx_address
    assert {str(p["target"]) for p in found["nginx"]["ports"]} == {"80", "443"}


def test_shipped_nginx_config_passes_nginx_t() -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed")
    done = subprocess.run([str(DEPLOY / "check-nginx")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "nginx.conf is valid" in done.stdout and "nginx.s3.conf is valid" in done.stdout
    for name in ("nginx.conf", "nginx.s3.conf"):
        config = (DEPLOY / name).read_text()
        # The WebSocket location keeps Host and the forwarded headers next to its own.
        ws = config.split("location /ws/", 1)[1].split("}", 1)[0]
        for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "Upgrade"):
            assert f"proxy_set_header {header} " in ws, (name, header)
        assert "Strict-Transport-Security" in config and "return 301 https://" in config
        assert "listen 443 ssl" in config and "$proxy_add_x_forwarded_for" not in config
