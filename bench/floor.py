"""The benchmark's floor: a bare ASGI app on the same server stack as Chorus.

    python -m bench.floor --port P --workers N [--page-bytes B]

Served by uvicorn with exactly the options `chorus serve` uses (app.cli.server_options: the same
event loop and HTTP parser, proxy headers, log level, process count), it does the least a
server can do for the benchmark's requests: a POST reads the whole body, parses its JSON and
answers 202 with Chorus's answer; a GET answers a page of `--page-bytes` bytes (the size of
Chorus's petition page as it goes to a browser, compressed: the bench's readers accept gzip as
browsers do, and the floor sends as many bytes without compressing anything, as Chorus answers
from a copy compressed once). Chorus's figures are reported as ratios to this one's, measured
in the same run on the same machine: absolute figures swing 2-3x from run to run and machine to
machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

ACCEPTED = b'{"status":"pending_confirmation"}'
POST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ACCEPTED)).encode()),
]
PAGE = b"x" * int(os.environ.get("BENCH_FLOOR_PAGE_BYTES", "20000"))
GET_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(PAGE)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        json.loads(body)
        await send({"type": "http.response.start", "status": 202, "headers": POST_HEADERS})
        await send({"type": "http.response.body", "body": ACCEPTED})
        return
    await send({"type": "http.response.start", "status": 200, "headers": GET_HEADERS})
    await send({"type": "http.response.body", "body": PAGE})


def main() -> None:
    # (Here, not at the top: the server processes import this module for `app` alone.)
    from app.cli import server_options
    from app.core import serving

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-bytes", type=int, default=20000)
    args = parser.parse_args()
    # Read by each server process when it imports this module.
    os.environ["BENCH_FLOOR_PAGE_BYTES"] = str(args.page_bytes)
    serving.run(
        "bench.floor:app", **server_options(host="127.0.0.1", port=args.port, workers=args.workers)
    )


if __name__ == "__main__":
    main()
