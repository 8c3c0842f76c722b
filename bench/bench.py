"""Chorus benchmark: starts Chorus as in production and prints each figure next to its target.

    .venv/bin/python bench/bench.py [--quick]

What it does, against a fresh PostgreSQL database `chorus_bench` (DATABASE_URL's server, default
127.0.0.1:5432) on this machine only:
1. `chorus serve --workers N` (production settings) and an SMTP sink in this process;
2. signing with 16 and 64 concurrent clients (wrk, each request a new e-mail address), then a
   check that the database holds exactly one signature per accepted request;
3. petition page and JSON reads while signing goes on;
4. `chorus worker` draining the confirmation e-mails: messages per second, worst queue delay;
5. `chorus export` of 1,000,000 signatures to CSV: seconds and peak memory (max RSS).
Needs `wrk` (Debian package `wrk`). Every load is bounded in time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
CHORUS = [sys.executable, "-m", "app.cli"]
SLUG = "no-forced-return"

TARGETS = {
    "signs_per_s": 2000,
    "p99_ms": 100,
    "reads_per_s": 5000,
    "mails_per_s": 500,
    "export_s": 10,
    "export_mb": 200,
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)


class Sink:
    """An SMTP server that accepts every message and counts what arrives, by Message-ID.

    It stands for the mail relay, which in production runs on another machine; here it
    shares the two cores with what it measures, so it does as little as the protocol allows
    (a bare asyncio protocol: aiosmtpd spent about as much CPU per message as a worker).
    It speaks enough SMTP for any client: EHLO/HELO, MAIL, RCPT, DATA (with the client's
    dot-stuffing left in place: only the headers are read), RSET, NOOP, QUIT.
    """

    def __init__(self) -> None:
        self.count = 0
        self.message_ids: set[str] = set()
        self.first_at: float | None = None  # time.monotonic() of the first and last arrival
        self.last_at: float | None = None
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def received(self, content: bytes) -> None:
        self.count += 1  # (only the sink's own thread counts)
        self.last_at = time.monotonic()
        self.first_at = self.first_at or self.last_at
        match = MESSAGE_ID.search(content.split(b"\r\n\r\n", 1)[0])
        if match:
            self.message_ids.add(match.group(1).decode("ascii", "replace"))

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            self._loop.create_server(lambda: _SmtpSession(self), "127.0.0.1", self.port),
            self._loop,
        ).result(timeout=10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class _SmtpSession(asyncio.Protocol):
    EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600\r\n"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # how much of a message's data has been searched for its end
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 sink ESMTP\r\n")  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                if self.buffer.startswith(b".\r\n"):
                    end, content = 0, b""
                else:
                    end = self.buffer.find(b"\r\n.\r\n", self.scanned)
                    if end < 0:
                        self.scanned = max(0, len(self.buffer) - 4)  # the end may straddle
                        break
                    content, end = bytes(self.buffer[: end + 2]), end + 2
                del self.buffer[: end + 3]
                self.in_data, self.scanned = False, 0
                self.sink.received(content)
                replies.append(b"250 OK\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            if verb == b"EHLO":
                replies.append(self.EHLO)
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"".join(replies) + b"221 Bye\r\n")
                self.transport.close()
                return
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                replies.append(b"250 OK\r\n")
            else:
                replies.append(b"502 Command not implemented\r\n")
        if replies:
            self.transport.write(b"".join(replies))


@dataclass
class Load:
    accepted: int
    other: int
    errors: int
    p50_ms: float
    p99_ms: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def wrk(
    url: str, *, connections: int, seconds: int, script: Path | None = None, run: str = ""
) -> tuple[str, Load | None]:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "BENCH_RUN": run},
        check=False,
    ).stdout
    match = re.search(
        r"BENCH accepted=(\d+) other=(\d+) errors=(\d+) p50_us=(\d+) "
        r"p99_us=(\d+) duration_us=(\d+)",
        out,
    )
    if not match:
        return out, None
    a, o, e, p50, p99, d = (int(x) for x in match.groups())
    return out, Load(a, o, e, p50 / 1000, p99 / 1000, d / 1e6)


def requests_per_second(out: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def line(
    name: str, value: float, unit: str, target: float, *, lower_is_better: bool = False
) -> None:
    ok = value <= target if lower_is_better else value >= target
    sign = "<=" if lower_is_better else ">="
    print(
        f"  {name:<44} {value:>10.1f} {unit:<8} target {sign} {target:<7} "
        f"{'OK' if ok else 'MISSED'}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--seconds", type=int, default=15, help="length of each load phase")
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="5 s phases, 100k export rows")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.export_rows = 5, 100_000
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    server_url = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    database = f"{server_url}/chorus_bench"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS chorus_bench WITH (FORCE)")
        admin.execute("CREATE DATABASE chorus_bench")

    sink = Sink()
    sink.start()
    smtp_port = sink.port
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "ENVIRONMENT": "production",
        "SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "PUBLIC_BASE_URL": base,
        "LOG_LEVEL": "WARNING",
        "WORKER_BATCH_SIZE": "200",
        # wrk signs from one address: measure throughput, not the rate limits.
        # wrk signs from one address and one domain: allow both (as one would for a load
        # test) so the benchmark measures throughput, not the abuse controls.
        "RATE_LIMIT_DOMAIN_EXEMPT": '["example.org"]',
        "RATE_LIMIT_IP_PER_HOUR": "100000000",
        "WORKER_CONCURRENCY": "16",
        "WORKER_POLL_SECONDS": "0.2",
    }
    subprocess.run([*CHORUS, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*CHORUS, "load-demo"], env=env, check=True, capture_output=True)
    with psycopg.connect(database) as conn:
        from app.abuse.service import ip_hash
        from app.core.config import Settings

        digest = ip_hash(Settings(_env_file=None, SECRET_KEY=env["SECRET_KEY"]), "127.0.0.1")
        conn.execute(
            "INSERT INTO abuse_rule (kind, value, action, note, created_at) "
            "VALUES ('ip', %s, 'allow', 'benchmark', now())",
            (digest,),
        )
        conn.commit()

    server = subprocess.Popen(
        [*CHORUS, "serve", "--port", str(port), "--workers", str(args.workers)], env=env, cwd=ROOT
    )
    try:
        for _ in range(100):
            try:
                import urllib.request

                urllib.request.urlopen(f"{base}/healthz", timeout=1)  # noqa: S310 (loopback)
                break
            except OSError:
                time.sleep(0.1)
        print(
            f"Chorus benchmark: {os.cpu_count()} cores, {args.workers} server processes, "
            f"PostgreSQL, {args.seconds} s per phase",
            flush=True,
        )
        sign_url = f"{base}/api/v1/petitions/{SLUG}/signatures"
        script = ROOT / "bench" / "sign.lua"
        total_accepted = 0

        print("Signing", flush=True)
        for connections in (16, 64):
            out, load = wrk(
                sign_url,
                connections=connections,
                seconds=args.seconds,
                script=script,
                run=f"c{connections}",
            )
            if load is None:
                print(out)
                return 1
            total_accepted += load.accepted
            line(
                f"signatures accepted/s, {connections} clients",
                load.rate,
                "/s",
                TARGETS["signs_per_s"],
            )
            line(
                f"p50 latency, {connections} clients",
                load.p50_ms,
                "ms",
                TARGETS["p99_ms"],
                lower_is_better=True,
            )
            line(
                f"p99 latency, {connections} clients",
                load.p99_ms,
                "ms",
                TARGETS["p99_ms"],
                lower_is_better=True,
            )
            print(f"  {'errors / non-202 answers':<44} {load.errors:>10} / {load.other}")
        with psycopg.connect(database) as conn:
            stored = conn.execute("SELECT count(*) FROM signature").fetchone()[0]  # type: ignore[index]
        # wrk stops counting at the deadline while requests in flight still commit.
        print(
            f"  {'signatures stored / 202 answers counted':<44} {stored:>10} / "
            f"{total_accepted} ({'OK' if 0 <= stored - total_accepted <= 128 else 'MISMATCH'})"
        )

        print("Reads while signing", flush=True)
        signer = threading.Thread(
            target=wrk,
            args=(sign_url,),
            kwargs={"connections": 16, "seconds": args.seconds, "script": script, "run": "reads"},
        )
        signer.start()
        page_out, _ = wrk(f"{base}/petitions/{SLUG}", connections=32, seconds=args.seconds)
        signer.join()
        signer = threading.Thread(
            target=wrk,
            args=(sign_url,),
            kwargs={"connections": 16, "seconds": args.seconds, "script": script, "run": "reads2"},
        )
        signer.start()
        json_out, _ = wrk(f"{base}/api/v1/petitions/{SLUG}", connections=32, seconds=args.seconds)
        signer.join()
        line("petition page reads/s", requests_per_second(page_out), "/s", TARGETS["reads_per_s"])
        line("petition JSON reads/s", requests_per_second(json_out), "/s", TARGETS["reads_per_s"])

        print("Confirmation e-mails", flush=True)
        with psycopg.connect(database, autocommit=True) as conn:
            # Requests in flight at wrk's deadline still commit: count once the queue is still.
            queued, previous = -1, -2
            while queued != previous:
                time.sleep(0.5)
                row = conn.execute(
                    "SELECT count(*) FROM outbox_message WHERE status = 'pending'"
                ).fetchone()
                previous, queued = queued, row[0] if row else 0
            conn.execute("UPDATE outbox_message SET created_at = now()")
        started = time.monotonic()
        workers = [subprocess.Popen([*CHORUS, "worker"], env=env) for _ in range(2)]
        deadline = started + max(120, args.seconds * 8)
        while sink.count < queued and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        with psycopg.connect(database) as conn:
            worst = conn.execute(
                "SELECT coalesce(max(extract(epoch FROM sent_at - created_at)), 0)"
                " FROM outbox_message WHERE status = 'sent'"
            ).fetchone()[0]  # type: ignore[index]
        # From the first message delivered to the last: the workers' start-up (imports,
        # connections), which a running deployment does not pay per surge, is reported apart.
        first, last = sink.first_at or started, sink.last_at or started + elapsed
        line(
            f"e-mails delivered/s ({sink.count} of {queued})",
            sink.count / max(last - first, 1e-9),
            "/s",
            TARGETS["mails_per_s"],
        )
        print(f"  {'worker start-up (to the first delivery)':<44} {first - started:>10.1f} s")
        print(f"  {'worst queue delay (from the drain start)':<44} {float(worst):>10.1f} s")
        print(f"  {'messages delivered twice':<44} {sink.count - len(sink.message_ids):>10}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        sink.stop()

    print(f"Export of {args.export_rows:,} signatures", flush=True)
    with psycopg.connect(database) as conn:
        petition = conn.execute("SELECT id FROM petition WHERE slug = %s", (SLUG,)).fetchone()[0]  # type: ignore[index]
        conn.execute("DELETE FROM signature")
        conn.execute(
            "INSERT INTO signature (petition_id, name, email, email_normalised, country, "
            "consent_updates, locale, status, created_at, confirmed_at, confirmation_sends) "
            "SELECT %s, '김민준 Signer ' || g, 'signer' || g || '@example.org', "
            "'signer' || g || '@example.org', 'KR', g %% 2 = 0, 'ko', 'confirmed', now(), now(), 1 "
            "FROM generate_series(1, %s) AS g",
            (petition, args.export_rows),
        )
        conn.commit()
    # As autovacuum and the checkpointer would soon after a bulk load (an export runs on a
    # database in its steady state): without statistics PostgreSQL plans each export page as
    # a sort of every remaining row, and a checkpoint writing out the million new rows would
    # compete with the export for the disk and the two cores.
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE signature")
        conn.execute("CHECKPOINT")

    output = Path("/tmp") / "chorus-bench-export.csv"  # noqa: S108 (a scratch file)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    result = subprocess.run(
        [*CHORUS, "export", SLUG, "--format", "csv", "--output", str(output)],
        env={**env, "TERM": "dumb"},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    peak_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    if result.returncode != 0:
        print(f"  export failed: {result.stderr.strip()[:500]}")
        return 1
    rows = sum(1 for _ in output.open(encoding="utf-8")) - 1
    line(f"export seconds ({rows:,} rows)", elapsed, "s", TARGETS["export_s"], lower_is_better=True)
    line(
        "export peak memory (max RSS of chorus export)",
        peak_mb,
        "MB",
        TARGETS["export_mb"],
        lower_is_better=True,
    )
    output.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
