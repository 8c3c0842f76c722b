"""A small, faithful fake of the parts of Stripe's HTTP API that Chorus uses.

It runs a real HTTP server on 127.0.0.1 so the official ``stripe`` client is exercised end to
end (encoding, headers, error parsing)::

    fake = FakeStripe().start()
    client = stripe.StripeClient(
        "sk_test_chorus", base_addresses={"api": fake.url}, max_network_retries=0
    )

Create the client with ``max_network_retries=0``. ``StripeClient`` already defaults to no
retries, but the module-level API (``stripe.api_key = ...``) defaults to
``stripe.max_network_retries = 2``, and with retries enabled the client silently repeats
requests answered 409 or >= 500 (reusing the same Idempotency-Key), so ``fail_next(500)``
would be swallowed by a retry and the test would also sleep for the back-off.

Endpoints:

- ``POST /v1/checkout/sessions`` creates a Checkout Session (stored in ``sessions``).
- ``GET /v1/checkout/sessions/{id}`` retrieves one.
- ``POST /v1/billing_portal/sessions`` creates a customer portal session (stored in
  ``portal_sessions``) for a ``customer`` (``cus_...``; any other id is "No such customer").
- Anything else answers 404 like Stripe does for an unrecognised URL.

Requests are form-encoded by stripe-python (``line_items[0][price_data][unit_amount]=1000``);
they are decoded into nested dicts and lists with string values, as Stripe receives them, and
recorded in ``requests``. Header names in ``RecordedRequest.headers`` keep the case the client
sent (stripe-python sends ``Authorization``, ``Idempotency-Key``, ``Stripe-Version``...).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeStripe", "RecordedRequest"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


class StripeHTTPError(Exception):
    """An error answered with Stripe's error envelope: ``{"error": {...}}``."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def invalid_request(
    message: str, param: str | None = None, code: str | None = None, *, status: int = 400
) -> StripeHTTPError:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
    return StripeHTTPError(status, error)


def missing_param(param: str) -> StripeHTTPError:
    return invalid_request(
        f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


# --- form decoding ---------------------------------------------------------------------------

_KEY_TOKEN = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    """``line_items[0][price_data][currency]`` -> ``["line_items", "0", "price_data", ...]``."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    tokens = [head]
    rest = "[" + rest
    pos = 0
    for match in _KEY_TOKEN.finditer(rest):
        if match.start() != pos:  # malformed; keep the whole key as a flat name
            return [key]
        tokens.append(match.group(1))
        pos = match.end()
    if pos != len(rest):
        return [key]
    return tokens


def _listify(value: Any, parent_key: str | None = None) -> Any:
    """Turn dicts whose keys are exactly 0..n-1 into lists, recursively.

    Metadata is always a dict: its keys are free-form and may well be numeric.
    """
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v, k) for k, v in value.items()}
    keys = list(converted)
    if (
        parent_key != "metadata"
        and keys
        and all(k.isdigit() for k in keys)
        and sorted(int(k) for k in keys) == list(range(len(keys)))
    ):
        return [converted[str(i)] for i in range(len(keys))]
    return converted


def decode_form(body: str) -> dict[str, Any]:
    """Decode a form/query string the way Stripe does, into nested dicts and lists of strings."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        tokens = _split_key(key)
        node = root
        for token in tokens[:-1]:
            token = token or str(len(node))  # "expand[]=a&expand[]=b" appends
            child = node.get(token)
            if not isinstance(child, dict):
                child = node[token] = {}
            node = child
        node[tokens[-1] or str(len(node))] = value
    result = _listify(root)
    assert isinstance(result, dict)
    return result


# --- the fake --------------------------------------------------------------------------------

_MODES = ("payment", "subscription", "setup")
_LOCALES = frozenset(
    "auto bg cs da de el en en-GB es es-419 et fi fil fr fr-CA hr hu id it ja ko lt lv ms mt "
    "nb nl pl pt pt-BR ro ru sk sl sv th tr vi zh zh-HK zh-TW".split()
)
# The account's default version, answered when a request names none (Chorus always names one).
DEFAULT_API_VERSION = "2026-10-28.endive"
_SESSION_PATH = re.compile(r"^/v1/checkout/sessions/(?P<id>[^/]+)$")


def _random_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _as_int(value: Any, param: str, *, minimum: int = 0) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise invalid_request(f"Invalid integer: {value}", param=param)
    number = int(value)
    if number < minimum:
        raise invalid_request(
            f"This value must be greater than or equal to {minimum}.", param=param
        )
    return number


class FakeStripe:
    """A fake Stripe API server for tests. See the module docstring."""

    def __init__(self, api_key: str = "sk_test_chorus") -> None:
        self.api_key = api_key
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._idempotency: dict[str, tuple[str, str, dict[str, Any], int, dict[str, Any]]] = {}
        self._failures: list[int] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeStripe:
        if self._server is not None:
            return self
        handler = type("FakeStripeHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: the OS picks a free one
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-stripe", kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls --

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` and a Stripe ``api_error`` body."""
        with self._lock:
            self._failures.extend([status] * count)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sessions.clear()
            self.portal_sessions.clear()
            self._idempotency.clear()
            self._failures.clear()

    # -- request handling (called from server threads) --

    def handle(
        self, method: str, raw_path: str, body: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        split = urlsplit(raw_path)
        path = split.path
        params = decode_form(split.query if method in ("GET", "DELETE") else body)
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, params, dict(headers)))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure, {"error": {"type": "api_error", "message": "fake failure"}}, {}
        try:
            self._authenticate(lowered.get("authorization"))
            return self._route(method, path, params, lowered.get("idempotency-key"))
        except StripeHTTPError as exc:
            return exc.status, {"error": exc.error}, {}

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise StripeHTTPError(
                401,
                {
                    "type": "invalid_request_error",
                    "message": "You did not provide an API key. You need to provide your API "
                    "key in the Authorization header, using Bearer auth (e.g. "
                    "'Authorization: Bearer YOUR_SECRET_KEY').",
                },
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            key.strip().encode(), self.api_key.encode()
        ):
            shown = key.strip()
            masked = shown[:8] + "*" * max(len(shown) - 12, 0) + shown[-4:]
            raise StripeHTTPError(
                401,
                {
                    "type": "invalid_request_error",
                    "message": f"Invalid API Key provided: {masked}",
                },
            )

    def _route(
        self, method: str, path: str, params: dict[str, Any], idempotency_key: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._idempotent(
                method, path, params, idempotency_key, self._create_checkout_session
            )
        if method == "POST" and path == "/v1/billing_portal/sessions":
            return self._idempotent(
                method, path, params, idempotency_key, self._create_portal_session
            )
        match = _SESSION_PATH.match(path)
        if method == "GET" and match:
            session_id = match.group("id")
            with self._lock:
                session = self.sessions.get(session_id)
                found = copy.deepcopy(session) if session is not None else None
            if found is None:
                raise invalid_request(
                    f"No such checkout.session: '{session_id}'",
                    param="session",
                    code="resource_missing",
                    status=404,
                )
            return 200, found, {}
        raise StripeHTTPError(
            404,
            {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            },
        )

    def _idempotent(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        key: str | None,
        create: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]],
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Stripe's idempotency: replay the saved result for a reused key with the same request.

        Like Stripe, only results of requests that passed validation are saved, and a key reused
        with other parameters or on another endpoint is an ``idempotency_error`` (400).
        """
        if key is None:
            with self._lock:
                status, body = create(params)
            return status, body, {}
        if len(key) > 255:
            raise invalid_request("Idempotency-Key must be at most 255 characters long.")
        with self._lock:
            saved = self._idempotency.get(key)
            if saved is None:
                status, body = create(params)
                self._idempotency[key] = (method, path, params, status, copy.deepcopy(body))
                return status, body, {"Idempotency-Key": key}
        saved_method, saved_path, saved_params, status, body = saved
        if (saved_method, saved_path) != (method, path):
            raise StripeHTTPError(
                400,
                {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used for the same "
                    f"endpoint they were first used for ('{saved_method} {saved_path}' vs "
                    f"'{method} {path}'). Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                },
            )
        if saved_params != params:
            raise StripeHTTPError(
                400,
                {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                    f"parameters they were first used with. Try using a key other than '{key}' "
                    "if you meant to execute a different request.",
                },
            )
        return status, copy.deepcopy(body), {"Idempotency-Key": key, "Idempotent-Replayed": "true"}

    # Called with self._lock held.
    def _create_checkout_session(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mode = params.get("mode")
        if mode is None:
            raise missing_param("mode")
        if mode not in _MODES:
            raise invalid_request(f"Invalid mode: must be one of {', '.join(_MODES)}", param="mode")
        if not params.get("success_url"):
            raise missing_param("success_url")
        locale = params.get("locale")
        if locale is not None and locale not in _LOCALES:
            raise invalid_request(
                f"Invalid locale: must be one of {', '.join(sorted(_LOCALES))}", param="locale"
            )
        if mode != "payment" and "payment_intent_data" in params:
            raise invalid_request(
                f"You can not pass `payment_intent_data` in `{mode}` mode.",
                param="payment_intent_data",
            )
        if mode != "subscription" and "subscription_data" in params:
            raise invalid_request(
                f"You can not pass `subscription_data` in `{mode}` mode.",
                param="subscription_data",
            )
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            raise invalid_request("Invalid object", param="metadata")
        self._check_metadata(metadata, "metadata")
        for nested in ("payment_intent_data", "subscription_data"):
            section = params.get(nested)
            if isinstance(section, dict) and isinstance(section.get("metadata"), dict):
                self._check_metadata(section["metadata"], f"{nested}[metadata]")

        currency, subtotal = self._price_line_items(mode, params)
        now = int(time.time())
        session_id = "cs_test_" + secrets.token_hex(24)
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "mode": mode,
            "status": "open",
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "currency": currency,
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "metadata": copy.deepcopy(metadata),
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "customer_details": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "locale": locale,
            "created": now,
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "payment_intent": None,
            "subscription": None,
            "setup_intent": None,
            "customer": params.get("customer"),
            "invoice": None,
            "ui_mode": params.get("ui_mode", "hosted"),
            "submit_type": params.get("submit_type"),
            "payment_method_types": params.get("payment_method_types", ["card"]),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}
            if subtotal is not None
            else None,
            "_request": copy.deepcopy(params),
        }
        self.sessions[session_id] = session
        return 200, copy.deepcopy(session)

    # Called with self._lock held.
    def _create_portal_session(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        customer = params.get("customer")
        if not customer:
            raise missing_param("customer")
        if not isinstance(customer, str) or not customer.startswith("cus_"):
            raise invalid_request(
                f"No such customer: '{customer}'", param="customer", code="resource_missing"
            )
        return_url = params.get("return_url")
        if return_url is not None and (
            not isinstance(return_url, str) or not re.match(r"^https?://[^/\s]+", return_url)
        ):
            raise invalid_request("Not a valid URL", param="return_url", code="url_invalid")
        locale = params.get("locale")
        if locale is not None and locale not in _LOCALES:
            raise invalid_request(
                f"Invalid locale: must be one of {', '.join(sorted(_LOCALES))}", param="locale"
            )
        session_id = "bps_" + secrets.token_hex(12)
        portal: dict[str, Any] = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": "bpc_test_default",
            "created": int(time.time()),
            "customer": customer,
            "flow": None,
            "livemode": False,
            "locale": locale,
            "on_behalf_of": None,
            "return_url": return_url,
            "url": f"https://billing.stripe.test/p/session/{session_id}",
        }
        self.portal_sessions[session_id] = portal
        return 200, copy.deepcopy(portal)

    @staticmethod
    def _check_metadata(metadata: dict[str, Any], param: str) -> None:
        if len(metadata) > 50:
            raise invalid_request(
                "Invalid metadata: metadata can have up to 50 keys, but you passed in "
                f"{len(metadata)} keys.",
                param=param,
            )
        for key, value in metadata.items():
            if len(key) > 40:
                raise invalid_request(
                    "Invalid metadata: metadata keys can have up to 40 characters, but you "
                    f"passed in a key that is {len(key)} characters.",
                    param=param,
                )
            if not isinstance(value, str):
                raise invalid_request("Invalid metadata: values must be strings", param=param)
            if len(value) > 500:
                raise invalid_request(
                    "Invalid metadata: metadata values can have up to 500 characters, but you "
                    f"passed in a value that is {len(value)} characters.",
                    param=f"{param}[{key}]",
                )

    @staticmethod
    def _price_line_items(mode: str, params: dict[str, Any]) -> tuple[str | None, int | None]:
        """Validate line_items and return (currency, amount_subtotal)."""
        items = params.get("line_items")
        if mode == "setup":
            if items:
                raise invalid_request(
                    "You cannot pass `line_items` in `setup` mode.", param="line_items"
                )
            currency = params.get("currency")
            return (currency.lower() if isinstance(currency, str) else None), None
        if not items:
            raise missing_param("line_items")
        if not isinstance(items, list):
            raise invalid_request("Invalid array", param="line_items")
        currencies: set[str] = set()
        total = 0
        recurring = 0
        for i, item in enumerate(items):
            prefix = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise invalid_request("Invalid object", param=prefix)
            if "price" in item:
                raise invalid_request(
                    f"No such price: '{item['price']}'",
                    param=f"{prefix}[price]",
                    code="resource_missing",
                )
            price_data = item.get("price_data")
            if not isinstance(price_data, dict):
                raise invalid_request(
                    "You must specify either `price` or `price_data` for each line item.",
                    param=prefix,
                )
            currency = price_data.get("currency")
            if not currency:
                raise missing_param(f"{prefix}[price_data][currency]")
            if "product" not in price_data and "product_data" not in price_data:
                raise missing_param(f"{prefix}[price_data][product_data]")
            product_data = price_data.get("product_data")
            if isinstance(product_data, dict) and not product_data.get("name"):
                raise missing_param(f"{prefix}[price_data][product_data][name]")
            if "unit_amount" not in price_data:
                raise missing_param(f"{prefix}[price_data][unit_amount]")
            unit_amount = _as_int(
                price_data["unit_amount"], f"{prefix}[price_data][unit_amount]", minimum=0
            )
            if "quantity" not in item:
                raise missing_param(f"{prefix}[quantity]")
            quantity = _as_int(item["quantity"], f"{prefix}[quantity]", minimum=1)
            if "recurring" in price_data:
                interval = price_data["recurring"]
                if not isinstance(interval, dict) or interval.get("interval") not in (
                    "day",
                    "week",
                    "month",
                    "year",
                ):
                    raise missing_param(f"{prefix}[price_data][recurring][interval]")
                recurring += 1
            currencies.add(str(currency).lower())
            total += unit_amount * quantity
        if len(currencies) > 1:
            raise invalid_request("All line items must use the same currency.", param="line_items")
        if mode == "payment" and recurring:
            raise invalid_request(
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                param="line_items",
            )
        if mode == "subscription" and not recurring:
            raise invalid_request(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                param="line_items",
            )
        return currencies.pop(), total


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe
    server_version = "stripe"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        headers = {k: v for k, v in self.headers.items()}
        status, payload, extra_headers = self.fake.handle(self.command, self.path, body, headers)
        data = json.dumps(payload, indent=2).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        self.send_header("Stripe-Version", headers.get("Stripe-Version", DEFAULT_API_VERSION))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
