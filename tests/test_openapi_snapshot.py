"""The API's contract, pinned: a refactor must leave the OpenAPI document exactly as it was.

A change to the API on purpose updates the committed copy in the same commit:
    UPDATE_OPENAPI=1 pytest tests/test_openapi_snapshot.py
and the diff of docs/openapi.json shows reviewers what clients will see change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def test_the_openapi_document_is_the_committed_one(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_OPENAPI"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.exists(), "no committed copy: run with UPDATE_OPENAPI=1 once"
    committed = SNAPSHOT.read_text(encoding="utf-8")
    assert text == committed, (
        "the OpenAPI document changed; if on purpose, run with UPDATE_OPENAPI=1 and commit "
        "docs/openapi.json"
    )
