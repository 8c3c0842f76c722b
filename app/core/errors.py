"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://chorus.example.org/problems/"


class FieldError(BaseModel):
    field: str
    type: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with `errors` for field-level messages."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raised by services for an error a client can act on."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors


def field_problem(
    field: str, type_: str, message: str, *, detail: str | None = None
) -> ProblemError:
    """A 422 problem about one field, shaped like request validation errors.

    Its detail is `field: message` unless one is given.
    """
    return ProblemError(
        422,
        "validation",
        "Your request has invalid fields",
        f"{field}: {message}" if detail is None else detail,
        errors=[FieldError(field=field, type=type_, message=message)],
    )


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    type_: str = "about:blank",
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=type_,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    ).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors_from_pydantic(errors: Any) -> list[FieldError]:
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # where the field came from; a field may itself be called "body"
        message = str(error.get("msg", "Invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append(FieldError(field=".".join(loc) or "body", type=error["type"], message=message))
    return out


# Standard reason phrases for statuses that reach the generic handler.
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI schema say what the API does: every error is a problem detail.

    FastAPI documents 422 as `application/json` (its own shape); Chorus answers every error,
    422 included, with `application/problem+json`. Each operation gets that for 422 and as its
    `default` response, which covers 401, 404, 413 and the rest.
    """
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem_schema.pop("$defs", {}))
        components["Problem"] = problem_schema
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        problem = {
            "description": "Problem details (RFC 9457)",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for code, response in list(responses.items()):
                    if code.startswith(("4", "5")):
                        responses[code] = {
                            **problem,
                            "description": response.get("description", problem["description"]),
                        }
                responses["default"] = problem
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status,
            title=exc.title,
            type_=PROBLEM_BASE + exc.slug,
            detail=exc.detail,
            errors=exc.errors,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors_from_pydantic(exc.errors())
        return problem_response(
            request,
            status=422,
            title="Your request has invalid fields",
            type_=PROBLEM_BASE + "validation",
            detail="; ".join(f"{e.field}: {e.message}" for e in errors),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        detail = exc.detail if isinstance(exc.detail, str) else None
        title = TITLES.get(exc.status_code, detail or "Error")
        return problem_response(
            request,
            status=exc.status_code,
            title=title,
            detail=detail if detail != title else None,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(UnicodeEncodeError)
    async def _not_unicode(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        # JSON may carry lone surrogates (\ud800) that no database or mail server can store.
        return problem_response(
            request,
            status=422,
            title="Your request has invalid text",
            type_=PROBLEM_BASE + "invalid-text",
            detail="Text must be valid Unicode (no lone surrogates).",
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        return database_problem(request, exc)

    @app.exception_handler(PoolTimeoutError)
    async def _pool_exhausted(request: Request, exc: PoolTimeoutError) -> JSONResponse:
        return database_problem(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError | PoolTimeoutError):
            # Raised outside the router (a middleware's own database work): the same answer.
            return database_problem(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            status=500,
            title="Internal server error",
            detail="Something went wrong on our side. Please try again.",
        )


def busy_problem(request: Request, *, retry_after: int, detail: str) -> JSONResponse:
    """503 for a server too busy to take the request now: nothing was done, try again."""
    return problem_response(
        request,
        status=503,
        title="Service temporarily unavailable",
        type_=PROBLEM_BASE + "busy",
        detail=detail,
        headers={"Retry-After": str(retry_after)},
    )


def database_problem(request: Request, exc: DBAPIError | PoolTimeoutError) -> JSONResponse:
    """The answer for a database error: 422 for input it cannot store, 503 (with Retry-After)
    for a database that is down, restarting or out of free connections, else 500."""
    if isinstance(exc, PoolTimeoutError):
        # Every connection of this process's pool stayed busy for DATABASE_POOL_TIMEOUT.
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return busy_problem(
            request, retry_after=2, detail="Nothing was saved. Please try again in a moment."
        )
    if isinstance(exc, DataError):
        # Input the database cannot hold, such as a NUL character in text.
        return problem_response(
            request,
            status=422,
            title="Your request has invalid text",
            type_=PROBLEM_BASE + "invalid-text",
            detail="The request contains characters or values that cannot be stored (such as NUL).",
        )
    # A lost connection or a database that is restarting: nothing was committed, and the
    # request can simply be repeated.
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            request,
            status=503,
            title="Service temporarily unavailable",
            type_=PROBLEM_BASE + "database-unavailable",
            detail="Nothing was saved. Please try again in a moment.",
            headers={"Retry-After": "1"},
        )
    log.exception("database error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        detail="Something went wrong on our side. Please try again.",
    )
