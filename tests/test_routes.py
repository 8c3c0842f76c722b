"""Guards on how routes are written."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.responses import Response


def api_routes(router: Any) -> Iterator[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI 0.165 nests them)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router)


def test_route_walk_sees_every_router(app: FastAPI) -> None:
    names = {route.endpoint.__name__ for route in api_routes(app.router)}
    # One endpoint from each router; if FastAPI changes how it nests routers, this fails loudly
    # instead of letting the check below pass on nothing.
    assert {
        "sign_petition",
        "petition_page",
        "confirm_page",
        "stripe_webhook",
        "login",
        "me",
        "donate_page",
        "mailbox_index",
    } <= names


def test_sync_endpoints_return_ready_responses(app: FastAPI) -> None:
    # See app/core/http.py: a sync endpoint returning a model deadlocks under load.
    offenders = []
    for route in api_routes(app.router):
        if inspect.iscoroutinefunction(route.endpoint):
            continue
        returned = typing.get_type_hints(route.endpoint).get("return")
        if not (inspect.isclass(returned) and issubclass(returned, Response)):
            offenders.append(f"{route.path} ({route.endpoint.__qualname__} -> {returned})")
    assert offenders == []
