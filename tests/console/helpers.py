"""Signing in to the console from a TestClient, and reading its forms."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match[1]


def sign_in(client: TestClient, email: str, password: str, *, next_path: str = "") -> Any:
    """Sign in as a person would: load the form (its CSRF cookie and token), then post it."""
    form = client.get("/admin/login")
    assert form.status_code == 200, form.text
    data = {"email": email, "password": password, "csrf_token": csrf_of(form.text)}
    if next_path:
        data["next"] = next_path
    return client.post("/admin/login", data=data, follow_redirects=False)


def signed_in(client: TestClient, email: str, password: str) -> str:
    """Sign in, and return the session's CSRF token (from the dashboard's forms)."""
    response = sign_in(client, email, password)
    assert response.status_code == 303, response.text
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200, dashboard.text
    return csrf_of(dashboard.text)
