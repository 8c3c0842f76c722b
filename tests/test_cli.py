"""The `chorus` command line, run as a newcomer runs it, in separate processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.email.devmailbox import free_port
from tests.conftest import Mailbox, confirm_link
from tests.console.helpers import csrf_of

CHORUS = [sys.executable, "-m", "app.cli"]


def run_chorus(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHORUS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh checkout: no Chorus settings but the ones given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "MAIL_", "PUBLIC_", "SECRET_", "ENVIRONMENT"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'chorus.db'}",
            "DEV_MAILBOX_DIR": str(tmp_path / "mailbox"),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def test_migrate_and_load_demo_are_idempotent(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    for _ in range(2):
        migrated = run_chorus("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
    first = run_chorus("load-demo", env=env)
    second = run_chorus("load-demo", env=env)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "demo campaign loaded" in first.stdout
    assert "already present" in second.stdout


def test_worker_once_sends_queued_mail(tmp_path: Path, smtp: Mailbox) -> None:
    env = clean_env(
        tmp_path,
        MAIL_SERVER=smtp.host,
        MAIL_PORT=str(smtp.port),
        PUBLIC_BASE_URL="https://petitions.example.org",
    )
    assert run_chorus("migrate", env=env).returncode == 0
    assert run_chorus("load-demo", env=env).returncode == 0
    # Sign through a server process, then let a worker process send.
    port = free_port()
    server = subprocess.Popen([*CHORUS, "serve", "--port", str(port)], env=env)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}")
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/petitions/no-forced-return/signatures",
            json={"name": "Kim Min-jun", "email": "kim@example.org", "country": "KR"},
        )
        assert response.status_code == 202
        time.sleep(0.5)
        assert smtp.messages == []  # the server does not send mail itself
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    sent = run_chorus("worker", "--once", env=env)
    assert sent.returncode == 0, sent.stderr
    [message] = smtp.wait_for(1)
    assert confirm_link(message).startswith("https://petitions.example.org/signatures/confirm/")


def _wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_dev_command_serves_the_demo_and_delivers_to_the_dev_mailbox(tmp_path: Path) -> None:
    """The README's first command: demo petition, worker, and a clickable dev mailbox."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(tmp_path)
    dev = subprocess.Popen(
        [*CHORUS, "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert dev.stdout is not None
        console_line = ""
        for _ in range(500):  # what it prints before the server starts
            line = dev.stdout.readline()
            if not line or "Console:" in line:
                console_line = line
                break
        found = re.search(r"(http://\S+/admin/)\s+\((\S+) / (\S+)\)", console_line)
        assert found, f"no console sign-in shown: {console_line!r}"
        _wait_until_up(base)
        page = httpx.get(f"{base}/petitions/no-forced-return")
        assert page.status_code == 200
        assert "President of Ukraine" in page.text

        # The console account it printed signs in.
        with httpx.Client(base_url=base) as browser:
            csrf = csrf_of(browser.get("/admin/login").text)
            answer = browser.post(
                "/admin/login",
                data={"email": found[2], "password": found[3], "csrf_token": csrf},
            )
            assert answer.status_code == 303
            dashboard = browser.get("/admin/")
            assert dashboard.status_code == 200 and "no-forced-return" in dashboard.text
        form = {
            "name": "Olena Kovalenko",
            "email": "olena@example.org",
            "country": "UA",
            "locale": "en",
        }
        signed = httpx.post(f"{base}/petitions/no-forced-return/sign", data=form)
        assert signed.status_code == 303

        deadline = time.monotonic() + 20
        keys: list[str] = []
        while time.monotonic() < deadline and not keys:
            keys = re.findall(r'href="(/dev/mailbox/[^"]+)"', httpx.get(f"{base}/dev/mailbox").text)
            time.sleep(0.2)
        assert keys, "the confirmation e-mail never reached the dev mailbox"
        message = httpx.get(base + keys[0]).text
        [link] = set(
            re.findall(r'<a href="(http://127\.0\.0\.1:\d+/signatures/confirm/[^"]+)"', message)
        )
        assert link.startswith(base)
        link = link.replace("&amp;", "&")
        assert httpx.post(link).status_code == 200
        api = httpx.get(f"{base}/api/v1/petitions/no-forced-return").json()
        assert api["signature_count"] == 1
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    assert (tmp_path / "mailbox" / "new").exists() or (tmp_path / "mailbox" / "cur").exists()


def test_the_dev_mailbox_is_not_served_outside_development(client) -> None:
    # The test app runs with ENVIRONMENT=test.
    assert client.get("/dev/mailbox").status_code == 404


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, ENVIRONMENT="production", MAIL_SERVER="smtp.example.org")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(
            _env_file=None,
            ENVIRONMENT="production",
            SECRET_KEY="short",
            MAIL_SERVER="smtp.example.org",
        )
    with pytest.raises(ValidationError, match="MAIL_SERVER"):
        Settings(_env_file=None, ENVIRONMENT="production", SECRET_KEY="x" * 40)
    ok = Settings(
        _env_file=None,
        ENVIRONMENT="production",
        SECRET_KEY="x" * 40,
        MAIL_SERVER="smtp.example.org",
    )
    assert ok.MAIL_SERVER == "smtp.example.org"


def test_worker_refuses_to_start_without_smtp_outside_development(tmp_path: Path) -> None:
    env = clean_env(tmp_path, ENVIRONMENT="test")
    result = run_chorus("worker", "--once", env=env)
    assert result.returncode == 2
    assert "MAIL_SERVER" in result.stderr


def test_serve_refuses_a_public_address_with_the_development_secret(tmp_path: Path) -> None:
    result = run_chorus("serve", "--host", "0.0.0.0", env=clean_env(tmp_path))  # noqa: S104
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr
