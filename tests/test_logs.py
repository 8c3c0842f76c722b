"""The server's logs keep no token, raw IP address or e-mail address, as `chorus serve` runs it.

A real `chorus serve` (uvicorn, its proxy-header handling, Chorus's logging) is started as its
own process on the test database; a supporter signs, confirms, manages and unsubscribes through
it; then everything it wrote is read back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from app.core.clientip import ip_hash
from app.core.config import Settings
from app.core.tokens import make_token
from app.email.devmailbox import free_port
from app.letters.petition_delivery import ANNEX_PURPOSE
from app.rights.service import manage_token
from app.signatures.models import Signature
from app.signatures.service import confirmation_token
from app.updates.service import unsubscribe_token
from tests.conftest import ROOT, TEST_SECRET

IPV4 = "203.0.113.77"
IPV6 = "2001:db8:abcd:12::77"
EMAIL_RE = re.compile(r"[\w.+-]+(@|%40)[\w-]+\.[\w.-]+", re.IGNORECASE)


@dataclass
class Served:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        return self.log.read_text(encoding="utf-8")


@pytest.fixture
def serve(migrated_url: str, engine: Any, tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(log_format: str) -> Served:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "DATABASE_"))},
            "PYTHONPATH": str(ROOT),
            "ENVIRONMENT": "test",
            "DATABASE_URL": migrated_url,
            "SECRET_KEY": TEST_SECRET,
            "PUBLIC_BASE_URL": url,
            "LOG_FORMAT": log_format,
            "LOG_LEVEL": "INFO",
            "CACHE_SECONDS": "0",
        }
        log = tmp_path / f"server-{log_format}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 (our own command)
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=env,
                cwd=tmp_path,  # (no .env file there)
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = Served(url=url, log=log, process=process)
        started.append(served)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return served
            except httpx.HTTPError:
                time.sleep(0.1)
        served.stop()
        raise AssertionError(f"chorus serve did not start:\n{log.read_text()}")

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_supporters_whole_journey_leaves_no_token_ip_or_address_in_the_log(
    serve: Any, demo: Any, session: Session, settings: Settings, log_format: str
) -> None:
    server = serve(log_format)
    slug = demo.slug
    secrets_seen: list[str] = [IPV4, IPV6, "2001:db8:abcd:12:"]
    ids: list[str] = []
    with httpx.Client(base_url=server.url, timeout=10) as web:

        def call(method: str, path: str, ip: str = IPV4, **kwargs: Any) -> httpx.Response:
            headers = {"X-Forwarded-For": ip, **kwargs.pop("headers", {})}
            response = web.request(method, path, headers=headers, **kwargs)
            assert response.status_code < 500, (path, response.text)
            ids.append(response.headers["x-request-id"])
            return response

        page = call(
            "GET",
            f"/petitions/{slug}?ref=mina.kim%40example.org&fbclid=abc",
            headers={"X-Request-ID": "trace-0001"},
        )
        assert page.headers["x-request-id"] == "trace-0001"
        insane = call("GET", f"/petitions/{slug}", headers={"X-Request-ID": "mina@example.org"})
        assert re.fullmatch(r"[0-9a-f]{16}", insane.headers["x-request-id"])
        form = {"name": "Mina Kim", "email": "mina.kim@example.org", "country": "KR"}
        call("POST", f"/petitions/{slug}/sign", data=form)
        call("POST", f"/petitions/{slug}/sign", data=form)  # again: the same answer
        api = {"name": "Taras Shevchuk", "email": "taras+x@example.org", "country": "UA"}
        assert (
            call("POST", f"/api/v1/petitions/{slug}/signatures", ip=IPV6, json=api).status_code
            == 202
        )
        mina = session.exec(
            select(Signature).where(Signature.email == "mina.kim@example.org")
        ).one()
        assert mina.id is not None
        confirm = confirmation_token(settings, signature_id=mina.id)
        manage = manage_token(settings, signature_id=mina.id)
        unsubscribe = unsubscribe_token(settings, signature_id=mina.id)
        annex = make_token(settings, purpose=ANNEX_PURPOSE, subject=1, ttl_seconds=3600)
        secrets_seen += [confirm, manage, unsubscribe, annex]
        secrets_seen += [part for t in (confirm, manage, unsubscribe) for part in t.split(".")]

        call("GET", f"/signatures/confirm/{confirm}?lang=ko")
        call("POST", f"/signatures/confirm/{confirm}")
        call("GET", f"/signatures/manage/{manage}?lang=en")
        call("POST", f"/signatures/manage/{manage}/export")
        call("GET", f"/signatures/manage/{manage}==")  # misspelt: refused, and still not logged
        call("GET", f"/unsubscribe/{unsubscribe}")
        call("POST", f"/unsubscribe/{unsubscribe}")
        call("GET", f"/api/v1/annexes/{annex}")
        call("GET", f"/nowhere?token={manage}&email=mina.kim@example.org")
    log = server.stop()

    for secret in secrets_seen:
        assert secret not in log, secret
    assert EMAIL_RE.search(log) is None, EMAIL_RE.search(log)
    assert "example.org" not in log
    lines = [line for line in log.splitlines() if line.strip()]
    if log_format == "json":
        entries = [json.loads(line) for line in lines]  # every line is JSON
        access = [e for e in entries if e["logger"] == "chorus.access" and e["path"] != "/healthz"]
        assert {e["request_id"] for e in access} == set(ids)
        by_id = {e["request_id"]: e for e in access}
        assert by_id["trace-0001"]["client"] == ip_hash(settings, IPV4)
        assert by_id["trace-0001"]["status"] == 200
        assert by_id[ids[-1]]["status"] == 404
        paths = [e["path"] for e in access]
    else:
        access = [line for line in lines if " chorus.access " in line and "/healthz" not in line]
        for rid in ids:
            assert sum(f"[{rid}]" in line for line in access) == 1, rid
        assert ip_hash(settings, IPV4) in log and ip_hash(settings, IPV6) in log
        paths = [line.split('"')[1].split(" ", 1)[1] for line in access]
    assert len(access) == len(ids)
    assert "/signatures/confirm/:token?lang=ko" in paths
    assert "/signatures/manage/:token/export" in paths
    assert "/unsubscribe/:token" in paths
    assert "/api/v1/annexes/:token" in paths
    assert f"/petitions/{slug}?ref=[email]&fbclid=abc" in paths
    assert "/nowhere?token=[token]&email=[email]" in paths
