"""The deployment files as an operator meets them: compose refuses to start half-configured,
and nginx accepts the shipped configuration (`nginx -t`, Debian's nginx)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FACECAST_")}
    return subprocess.run(
        [binary, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_compose_fails_fast_and_clearly_without_keys_or_public_url() -> None:
    no_keys = compose_config(FACECAST_PUBLIC_URL="https://facecast.example.com")
    assert no_keys.returncode != 0 and "Set FACECAST_API_KEYS" in no_keys.stderr
    no_url = compose_config(FACECAST_API_KEYS="k1")
    assert no_url.returncode != 0 and "Set FACECAST_PUBLIC_URL" in no_url.stderr
    empty = compose_config(FACECAST_API_KEYS="", FACECAST_PUBLIC_URL="https://x.example")
    assert empty.returncode != 0  # `:?` also refuses an empty value
    complete = compose_config(FACECAST_API_KEYS="k1", FACECAST_PUBLIC_URL="https://x.example")
    assert complete.returncode == 0, complete.stderr


def test_shipped_nginx_config_passes_nginx_t() -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed")
    done = subprocess.run([str(DEPLOY / "check-nginx")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = (DEPLOY / "nginx.conf").read_text()
    # The WebSocket location keeps Host and the forwarded headers next to its own.
    ws = config.split("location /ws/", 1)[1].split("}", 1)[0]
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "Upgrade"):
        assert f"proxy_set_header {header} " in ws, header
    assert "Strict-Transport-Security" in config and "return 301 https://" in config
