"""Fuzzing the API from its own OpenAPI schema (schemathesis): no 5xx, no response that breaks
its own schema, status codes or content type. Bounded: a few dozen examples per operation.

schemathesis's pytest fixture integration does not run under pytest 9.2 (it reads a private
`_nodeid`), so the test drives its Hypothesis strategies directly, one operation at a time.
"""

from __future__ import annotations

from typing import Any, cast

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Account

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]
EXAMPLES = 25


def test_api_never_fails_or_breaks_its_schema(app: FastAPI, demo: Any, admin: Account) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    # Revoking tokens would revoke the fuzzer's own credentials half-way; it has its own tests.
    operations = [
        op
        for op in operations
        if (op.method.upper(), op.path) != ("DELETE", "/api/v1/admin/tokens/{token_id}")
    ]
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # Signed in as an admin so the admin API is exercised beyond its 401s.
            case.call_and_validate(headers=admin.headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert failures == [], "\n\n".join(failures)
