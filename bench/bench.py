"""Chorus benchmark: a surge as it really comes, reported as ratios to a bare server (the floor).

    .venv/bin/python bench/bench.py [--quick] [--mix] [--seconds S] [--clients 16,32,64]

Against a fresh PostgreSQL database `chorus_bench` (BENCH_PG's server, default 127.0.0.1:5432;
BENCH_DB names another database, for two benches on one server),
on this machine only (every request goes to 127.0.0.1), every load bounded in time:
1. Chorus as in production: `chorus serve --workers N`, `chorus worker` x M running all along,
   and an SMTP sink in this process that costs as little as it can (bench/sink.py);
2. the floor: a bare ASGI app on the same server stack (bench/floor.py) answering the same
   requests, signing at each client count and page reads, each of its phases right before
   the Chorus phase it is the reference of (both servers run all along, idle in between);
3. signing at each client count (wrk, bench/sign.lua): every request a new signer at a
   real-world domain from their own client address (X-Forwarded-For, trusted from loopback as
   from a proxy), abuse checks at their default limits, nothing on an allow list; `--mix`: some
   shared addresses and a few bots that must be held. After each phase: 0 errors, signatures
   stored == 202 answers, nobody but the bots held, and every confirmation e-mail of the phase
   at the sink within 120 s of its end, none twice;
4. petition page and JSON reads while 16 clients sign, asked for as a browser asks (accepting
   gzip); the floor answers its reads with as many bytes as Chorus's page takes then;
5. webhooks on and off (bench/webhooks.py); 6. `chorus export` of 1,000,000 signatures to
   CSV: seconds and peak memory (the export process's own max RSS); 7. the console over them
   (bench/console.py).
Chorus's figures are printed beside the floor's and as ratios to them, with the targets of
issues #14, #15 (webhooks) and #13 (console). Needs `wrk` (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psycopg
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.db import make_engine  # noqa: E402
from app.email.devmailbox import free_port  # noqa: E402
from app.signatures import bulk  # noqa: E402
from bench import admin, console, cpu, webhooks  # noqa: E402
from bench.lock import one_run_at_a_time  # noqa: E402
from bench.scheduling import autogroups, lower_group  # noqa: E402
from bench.sink import Sink  # noqa: E402

CHORUS = [sys.executable, "-m", "app.cli"]
SLUG = "no-forced-return"
SIGN_SCRIPT = ROOT / "bench" / "sign.lua"
MAIL_DEADLINE_S = 120  # every confirmation e-mail of a surge delivered within this of its end
BOT_ADDRESSES = 4  # sign.lua's bots
# What a browser sends with every request (and every HTTP library used to read an API): the
# petition page and its JSON go compressed to them, as to the bench's readers.
BROWSER = ("Accept-Encoding: gzip, deflate, br, zstd",)


@dataclass
class Load:
    """What wrk measured of one load."""

    sent: int = 0
    accepted: int = 0  # 202 answers (signing) or 2xx (reads)
    other: int = 0  # any other answer
    errors: int = 0  # connect, read, write errors and timeouts
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    script: Path | None = None,
    headers: tuple[str, ...] = (),
    **env: str,
) -> Load:
    """Run wrk against url (loopback only) and parse what it measured."""
    assert url.startswith("http://127.0.0.1:"), url
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, **env},
        check=False,
        start_new_session=True,  # the clients: not in the servers' group (bench/scheduling.py)
    ).stdout
    match = re.search(
        r"BENCH sent=(\d+) accepted=(\d+) other=(\d+) errors=(\d+) p50_us=(\d+) "
        r"p99_us=(\d+) duration_us=(\d+)",
        out,
    )
    if match:
        s, a, o, e, p50, p99, d = (int(x) for x in match.groups())
        return Load(s, a, o, e, p50 / 1000, p99 / 1000, d / 1e6)
    # A plain GET load: wrk's own summary.
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not total:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    count, unit = int(total.group(1)), total.group(3)
    duration = float(total.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}.get(unit, 1.0)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    other = int(non_2xx.group(1)) if non_2xx else 0
    return Load(
        sent=count,
        accepted=count - other,
        other=other,
        errors=sum(int(x) for x in socket.groups()) if socket else 0,
        p50_ms=_latency(out, "50%"),
        p99_ms=_latency(out, "99%"),
        seconds=duration,
    )


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return 0.0
    return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[match.group(2)]


@dataclass
class SigningPhase:
    """One surge at Chorus and what came of it."""

    name: str
    clients: int
    load: Load = field(default_factory=Load)
    stored: int = 0
    held_people: int = 0  # held signers that are not bots: false alarms
    bots: int = 0
    bots_not_held: int = 0
    distinct_addresses: int = 0
    mails_expected: int = 0
    mails_in_time: int = 0
    mails_during: int = 0  # delivered before the surge ended
    last_mail_after_s: float | None = None  # last confirmation's delivery, after the surge's end
    # CPU per signature stored, by kind of process (bench/cpu.py), from the surge's start to
    # its last e-mail's delivery (phases the bench times alone).
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def stored_ok(self) -> bool:
        unanswered = self.load.sent - self.load.accepted - self.load.other
        return self.load.accepted <= self.stored <= self.load.accepted + unanswered

    @property
    def mails_ok(self) -> bool:
        return self.mails_in_time == self.mails_expected


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        server_url = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
        self.admin_url = f"{server_url}/postgres"
        self.database_name = os.environ.get("BENCH_DB", "chorus_bench")
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", self.database_name), self.database_name
        self.database = f"{server_url}/{self.database_name}"
        self.sink = Sink()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.phase_number = 0
        self.phases: list[SigningPhase] = []
        # Connections per server process midway through each signing load, by its tag.
        self.split: dict[str, list[int]] = {}
        self.last_split: list[int] = []
        self.worker_groups: list[str] = []  # the workers' scheduling groups, as the kernel says
        env = {
            key: value
            for key, value in os.environ.items()
            # The server's defaults: proxy headers trusted from loopback only, abuse controls
            # at their default limits.
            if key != "FORWARDED_ALLOW_IPS" and not key.startswith("RATE_LIMIT_")
        }
        self.env = {
            **env,
            "DATABASE_URL": self.database,
            "ENVIRONMENT": "production",
            "SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.sink.port),
            "PUBLIC_BASE_URL": self.base,
            "LOG_LEVEL": "WARNING",
            "WORKER_BATCH_SIZE": "200",
            "WORKER_CONCURRENCY": "32",  # (lanes: a backlog drains faster with more, README)
            "WORKER_POLL_SECONDS": "0.2",
            "WEBHOOK_ALLOW_LOOPBACK": "1",  # bench/webhooks.py's receiver
        }

    # --- processes -------------------------------------------------------------------------

    @contextmanager
    def chorus(self) -> Iterator[None]:
        """Chorus's servers and mail workers, running for the whole block."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            name = self.database_name  # (checked to be a plain identifier above)
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
        subprocess.run([*CHORUS, "migrate"], env=self.env, check=True, capture_output=True)
        subprocess.run([*CHORUS, "load-demo"], env=self.env, check=True, capture_output=True)
        processes = [
            subprocess.Popen(
                [*CHORUS, "serve", "--port", str(self.port), "--workers", str(self.args.workers)],
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )
        ]
        workers = [
            subprocess.Popen([*CHORUS, "worker"], env=self.env, cwd=ROOT, start_new_session=True)
            for _ in range(self.args.mail_workers)
        ]
        processes += workers
        try:
            # As a deployment gives workers a lower CPU weight (bench/scheduling.py).
            niceness = int(self.env.get("WORKER_NICENESS", "10"))
            self.worker_groups = [lower_group(worker.pid, niceness) for worker in workers]
            wait_until_up(f"{self.base}/healthz")
            yield
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)

    @contextmanager
    def floor(self, page_bytes: int) -> Iterator[str]:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.floor",
                "--port",
                str(port),
                "--workers",
                str(self.args.workers),
                "--page-bytes",
                str(page_bytes),
            ],
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)

    # --- signing ---------------------------------------------------------------------------

    def sign(self, url: str, clients: int, seconds: int) -> tuple[str, Load, float]:
        """Sign for `seconds`; -> (the phase's e-mail tag, what wrk measured, when it ended)."""
        self.phase_number += 1
        tag = f"p{self.phase_number}"
        # Midway: how the clients' connections fell on the server processes (cpu.connections).
        port = urllib.parse.urlsplit(url).port or 80
        kind = cpu.SERVERS if port == self.port else cpu.FLOOR
        look = threading.Timer(
            seconds / 2, lambda: self.split.update({tag: cpu.connections(port, kind)})
        )
        look.start()
        load = wrk(
            url,
            connections=clients,
            seconds=seconds,
            script=SIGN_SCRIPT,
            BENCH_RUN=tag,
            BENCH_PHASE=str(self.phase_number),
            BENCH_MIX="1" if self.args.mix else "0",
        )
        look.cancel()
        self.last_split = self.split.get(tag, [])
        return tag, load, time.monotonic()

    def signing_phase(
        self, name: str, clients: int, ran: tuple[str, Load, float] | None = None
    ) -> SigningPhase:
        """Sign at Chorus for a phase (unless the caller `ran` it), then check what was stored
        and that every confirmation e-mail of the phase reached the sink, once, in time."""
        phase = SigningPhase(name, clients)
        before = None
        if ran is None:
            self.settle()
            before = self.cpu_ticks()
        tag, phase.load, ended = ran or self.sign(self.sign_url, clients, self.args.seconds)
        like = f"%s-{tag}-%"
        with psycopg.connect(self.database, autocommit=True) as conn:
            # Requests in flight at wrk's deadline still commit: count once the count is still.
            previous = -1
            while True:
                row = conn.execute(
                    "SELECT count(*), count(DISTINCT ip_hash),"
                    " count(*) FILTER (WHERE status = 'suspect' AND email NOT LIKE 'bot-%%'),"
                    " count(*) FILTER (WHERE email LIKE 'bot-%%'),"
                    " count(*) FILTER (WHERE email LIKE 'bot-%%' AND status <> 'suspect')"
                    " FROM signature WHERE email LIKE %s",
                    (like,),
                ).fetchone()
                assert row is not None
                if row[0] == previous:
                    break
                previous = row[0]
                time.sleep(0.3)
            (
                phase.stored,
                phase.distinct_addresses,
                phase.held_people,
                phase.bots,
                phase.bots_not_held,
            ) = row
            # Each signature not held queues its confirmation with the signature itself.
            expected = {
                outbox_id
                for (outbox_id,) in conn.execute(
                    "SELECT id FROM outbox_message"
                    " WHERE kind = 'signature_confirmation' AND recipient LIKE %s",
                    (like,),
                )
            }
        phase.mails_expected = len(expected)
        deadline = ended + MAIL_DEADLINE_S
        while time.monotonic() < deadline:
            if expected.issubset(self.sink.arrived.keys()):
                break
            time.sleep(0.2)
        arrivals = [self.sink.arrived[i] for i in expected if i in self.sink.arrived]
        phase.mails_in_time = sum(1 for at in arrivals if at <= deadline)
        phase.mails_during = sum(1 for at in arrivals if at <= ended)
        if arrivals:
            phase.last_mail_after_s = max(0.0, max(arrivals) - ended)
        if before is not None and phase.stored:
            spent = cpu.seconds(before, self.cpu_ticks(), cpu.SURGE)
            phase.cpu_ms = {kind: 1000 * s / phase.stored for kind, s in spent.items()}
        self.phases.append(phase)
        mails = (
            f"last e-mail {phase.last_mail_after_s:.1f} s after the end"
            if phase.last_mail_after_s is not None
            else "no e-mail"
        )
        print(
            f"  {name:<28} {phase.load.rate:>8.0f} /s  p50 {phase.load.p50_ms:6.1f} ms  "
            f"p99 {phase.load.p99_ms:6.1f} ms  errors {phase.load.errors + phase.load.other}  "
            f"stored {phase.stored}/{phase.load.accepted}  "
            f"e-mails {phase.mails_in_time}/{phase.mails_expected} ({mails}, "
            f"{phase.mails_during} during the surge)  "
            f"connections per server process {_split(self.split.get(tag, []))}",
            flush=True,
        )
        if phase.cpu_ms:
            split = ", ".join(f"{kind} {ms:.3f}" for kind, ms in phase.cpu_ms.items())
            print(f"{'':<4}CPU ms per signature, until its e-mail was in: {split}", flush=True)
        return phase

    def settle(self) -> None:
        """Before each load: what autovacuum would have done by then, when this PostgreSQL
        server runs without it (a CI configuration may turn it off; production keeps it on).
        A surge leaves a dead row for every e-mail sent (its outbox row marked sent); without
        vacuuming, every later claim and mark steps over all of them and the planner works
        from statistics of an empty table, so each phase would be slower than the one before
        for a reason no production server has."""
        if self.autovacuum:
            return
        with psycopg.connect(self.database, autocommit=True) as conn:
            conn.execute(
                "VACUUM (ANALYZE) signature, outbox_message, signature_tally,"
                " signature_hourly_tally, webhook_delivery"
            )

    @cached_property
    def autovacuum(self) -> bool:
        """Whether the server runs autovacuum (a server setting: read once)."""
        with psycopg.connect(self.database, autocommit=True) as conn:
            found = conn.execute("SHOW autovacuum").fetchone()
        return found is not None and found[0] == "on"

    def cpu_ticks(self) -> cpu.Ticks:
        with psycopg.connect(self.database, autocommit=True) as conn:
            return cpu.ticks(conn)

    @property
    def sign_url(self) -> str:
        return f"{self.base}/api/v1/petitions/{SLUG}/signatures"

    def reads_while_signing(self, path: str, name: str) -> Load:
        """GETs at 32 clients while 16 clients sign; the signing is checked as a phase."""
        self.settle()
        result: list[tuple[str, Load, float]] = []
        signer = threading.Thread(  # (a daemon: an interrupted bench does not wait for it)
            target=lambda: result.append(self.sign(self.sign_url, 16, self.args.seconds)),
            daemon=True,
        )
        signer.start()
        reads = wrk(
            f"{self.base}{path}", connections=32, seconds=self.args.seconds, headers=BROWSER
        )
        signer.join()
        self.signing_phase(name, 16, ran=result[0])
        return reads


def _split(counts: list[int]) -> str:
    return "/".join(str(n) for n in counts) or "?"


def wait_until_up(url: str) -> None:
    for _ in range(1200):  # (a busy machine may take a minute to start the servers)
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 (loopback)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def body_size(url: str) -> int:
    """The bytes of the body a browser gets from `url` (compressed, when the server does)."""
    name, _, value = BROWSER[0].partition(": ")
    request = urllib.request.Request(url, headers={name: value})  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return len(response.read())


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def row(name: str, chorus: str, floor: str = "", ratio: str = "", target: str = "") -> None:
    print(f"  {name:<46} {chorus:>14} {floor:>12} {ratio:>7}  {target}", flush=True)


# Runs a command in a child of its own and prints that child's peak RSS (KiB) on stderr's last
# line. Linux keeps the largest RSS a process has had, and counts the image it replaced by exec
# (signal->maxrss): a command forked by the bench, hundreds of MB by then, would inherit the
# bench's size as its own peak. Forked from this small launcher instead, it starts from the
# launcher's few MB, below any Python command's own.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(f"BENCH_MAXRSS_KB={usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run `command`: its seconds, its own peak RSS in KiB, its exit code and its stderr.

    The peak is the command's own: its rusage from wait4 in a launcher that forked it (see
    _MEASURE), not getrusage(RUSAGE_CHILDREN) here (the largest child the bench has waited
    for: a server process of an earlier phase), nor wait4 here (the bench's own size).
    """
    with tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        returncode = subprocess.run(
            [sys.executable, "-c", _MEASURE, *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
        ).returncode
        elapsed = time.monotonic() - started
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    found = re.findall(r"^BENCH_MAXRSS_KB=(\d+)$", text, re.MULTILINE)
    return elapsed, int(found[-1]) if found else 0, returncode, text


def export_phase(bench: Bench, rows: int) -> tuple[float, float] | None:
    """Fill the petition with `rows` confirmed signatures and time `chorus export` to CSV."""
    with psycopg.connect(bench.database) as conn:
        found = conn.execute("SELECT id FROM petition WHERE slug = %s", (SLUG,)).fetchone()
        assert found is not None
    # By their owner (app/signatures/bulk.py), spread over 30 days and five countries; the
    # signing phases' signatures are replaced, and the tallies rebuilt to count them.
    engine = make_engine(bench.database)
    try:
        with Session(engine) as session:
            bulk.load_confirmed(
                session, petition_id=found[0], count=rows, settings=admin.settings(bench.env)
            )
            session.commit()
    finally:
        engine.dispose()
    # As autovacuum and the checkpointer would soon after a bulk load (an export runs on a
    # database in its steady state): without statistics PostgreSQL plans each export page as
    # a sort of every remaining row, and a checkpoint writing out the million new rows would
    # compete with the export for the disk and the two cores.
    with psycopg.connect(bench.database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE signature")
        conn.execute("CHECKPOINT")
    output = Path("/tmp") / "chorus-bench-export.csv"  # noqa: S108 (a scratch file)
    elapsed, peak_kb, returncode, stderr = run_measured(
        [*CHORUS, "export", SLUG, "--format", "csv", "--output", str(output)],
        env={**bench.env, "TERM": "dumb"},
    )
    peak_mb = peak_kb / 1024
    if returncode != 0:
        print(f"  export failed: {stderr.strip()[:500]}")
        return None
    exported = sum(1 for _ in output.open(encoding="utf-8")) - 1
    output.unlink()
    if exported != rows:
        print(f"  export wrote {exported} rows of {rows}")
        return None
    return elapsed, peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="server processes (both servers)")
    parser.add_argument("--mail-workers", type=int, default=2, help="`chorus worker` processes")
    parser.add_argument("--seconds", type=int, default=60, help="length of each Chorus phase")
    parser.add_argument("--floor-seconds", type=int, default=15, help="each floor phase")
    parser.add_argument("--clients", default="16,32,64", help="signing client counts")
    parser.add_argument("--mix", action="store_true", help="shared addresses and a few bots")
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="5 s phases, 100k export rows")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.floor_seconds, args.export_rows = 5, 5, 100_000
    clients = [int(c) for c in args.clients.split(",")]
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    # A bench stopped by a signal stops what it started (the servers and workers run in
    # sessions of their own: the terminal's signals do not reach them).
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda *_, n=int(number): sys.exit(128 + n))
    bench = Bench(args)
    bench.sink.start()
    load_average = os.getloadavg()[0]
    print(
        f"Chorus benchmark: {os.cpu_count()} cores (load average {load_average:.1f} at the "
        f"start), {args.workers} server processes, {args.mail_workers} mail workers, "
        f"PostgreSQL; {args.seconds:g} s per phase ({args.floor_seconds:g} s for the floor), "
        f"{'a realistic mix of signers' if args.mix else 'every signer from their own address'}",
        flush=True,
    )
    floor_sign: dict[int, Load] = {}
    floor_cpu_ms: dict[int, float] = {}  # the floor's CPU per request
    floor_reads: dict[str, Load] = {}  # the floor's reads before each of Chorus's read phases
    try:
        with bench.chorus():
            if autogroups():
                groups = ", ".join(group for group in bench.worker_groups if group)
                print(
                    "  (each server, worker and wrk in a session of its own, as services and "
                    "clients are; the workers' scheduling groups: "
                    f"{groups or 'unchanged'}; bench/scheduling.py)",
                    flush=True,
                )
            if not bench.autovacuum:
                print(
                    "  (this PostgreSQL server runs without autovacuum: the bench vacuums and "
                    "analyzes the tables a surge churns before each load, as it would have)",
                    flush=True,
                )
            page_bytes = body_size(f"{bench.base}/petitions/{SLUG}")
            # The floor runs beside Chorus (idle but for its own phases), each of its phases
            # right before the Chorus phase it is the reference of: on a shared machine what
            # else runs changes from minute to minute, and a reference taken minutes earlier
            # can be off by half.
            with bench.floor(page_bytes) as floor_url:
                print(
                    "Signing: the floor (a bare ASGI app on the same server stack), then "
                    "Chorus (mail workers running)",
                    flush=True,
                )
                signing = {}
                for count in clients:
                    before = bench.cpu_ticks()
                    _, floor_sign[count], _ = bench.sign(
                        f"{floor_url}/sign", count, args.floor_seconds
                    )
                    load = floor_sign[count]
                    spent = cpu.seconds(before, bench.cpu_ticks(), (cpu.FLOOR,))[cpu.FLOOR]
                    floor_cpu_ms[count] = 1000 * spent / max(1, load.accepted)
                    print(
                        f"  floor: signing, {count} clients{'':<5} {load.rate:>8.0f} /s  "
                        f"p99 {load.p99_ms:6.1f} ms  errors {load.errors + load.other}  "
                        f"CPU {floor_cpu_ms[count]:.3f} ms per request  "
                        f"connections per server process {_split(bench.last_split)}",
                        flush=True,
                    )
                    signing[count] = bench.signing_phase(f"signing, {count} clients", count)
                print(
                    "Reads while 16 clients sign: the floor's reads alone (a page of "
                    f"{page_bytes:,} bytes: Chorus's petition page as a browser gets it), "
                    "then Chorus's",
                    flush=True,
                )
                reads = {}
                for name, path in (
                    ("page", f"/petitions/{SLUG}"),
                    ("JSON", f"/api/v1/petitions/{SLUG}"),
                ):
                    floor_reads[name] = wrk(
                        f"{floor_url}/page",
                        connections=32,
                        seconds=args.floor_seconds,
                        headers=BROWSER,
                    )
                    print(
                        f"  floor: reads, 32 clients{'':<10} {floor_reads[name].rate:>8.0f} /s",
                        flush=True,
                    )
                    reads[name] = bench.reads_while_signing(path, f"signing during {name} reads")
                    print(
                        f"  petition {name} reads, 32 clients {reads[name].rate:>8.0f} /s  "
                        f"errors {reads[name].errors + reads[name].other}",
                        flush=True,
                    )
            cost = webhooks.measure(bench, wrk)
            # Anything still arriving late would show as a message delivered twice.
            time.sleep(2)
        print(f"Export of {args.export_rows:,} signatures", flush=True)
        export = export_phase(bench, args.export_rows)
        console_figures = console.measure(bench)
    finally:
        bench.sink.stop()

    print("\nResults (ratios: Chorus / the floor, measured in this run)", flush=True)
    row("Figure", "Chorus", "floor", "ratio", "target (issue #14)")
    for count, phase in signing.items():
        floor = floor_sign[count].rate
        ratio = phase.load.rate / floor if floor else 0.0
        target = f">= 0.15  {verdict(ratio >= 0.15)}" if count == 32 else ""
        row(
            f"signing /s, {count} clients",
            f"{phase.load.rate:,.0f}",
            f"{floor:,.0f}",
            f"{ratio:.3f}",
            target,
        )
    for count, phase in signing.items():
        # What a signature costs the machine (until its e-mail is sent), beside what the
        # floor's server spends on a request: steadier than a rate on a shared machine.
        chorus_ms = sum(phase.cpu_ms.get(kind, 0.0) for kind in cpu.CHORUS)
        row(
            f"CPU per signature, {count} clients",
            f"{chorus_ms:.3f} ms",
            f"{floor_cpu_ms[count]:.3f} ms",
            f"{floor_cpu_ms[count] / chorus_ms:.3f}" if chorus_ms else "",
        )
        if chorus_ms and args.seconds >= MAIL_DEADLINE_S / 4:
            # Computed, not measured: an upper bound on what this machine's cores could sign in
            # a surge of this length with every e-mail within the deadline, at that cost, were
            # they Chorus's alone (no wrk, no sink) and the work of each signature free to wait
            # until the deadline (only the e-mail's can). A target above it needs a lower cost.
            cores = len(os.sched_getaffinity(0))
            ceiling = cores * (args.seconds + MAIL_DEADLINE_S) / (args.seconds * chorus_ms / 1000)
            row(
                f"  upper bound at that cost, {count} clients",
                f"{ceiling:,.0f}",
                f"{floor_sign[count].rate:,.0f}",
                f"{ceiling / floor_sign[count].rate:.3f}" if floor_sign[count].rate else "",
            )
    for count, phase in signing.items():
        row(
            f"signing p99, {count} clients",
            f"{phase.load.p99_ms:.1f} ms",
            f"{floor_sign[count].p99_ms:.1f} ms",
            "",
            f"< 100 ms  {verdict(phase.load.p99_ms < 100)}",
        )
    for name, load in reads.items():
        floor = floor_reads[name].rate
        ratio = load.rate / floor if floor else 0.0
        row(
            f"petition {name} reads/s while 16 clients sign",
            f"{load.rate:,.0f}",
            f"{floor:,.0f}",
            f"{ratio:.3f}",
            f">= 0.5  {verdict(ratio >= 0.5 and load.errors + load.other == 0)}",
        )
    all_phases = bench.phases
    errors = sum(p.load.errors + p.load.other for p in all_phases)
    row(
        "errors and non-202 answers (all phases)", f"{errors}", "", "", f"0  {verdict(errors == 0)}"
    )
    stored = sum(p.stored for p in all_phases)
    accepted = sum(p.load.accepted for p in all_phases)
    stored_ok = all(p.stored_ok for p in all_phases)
    row(
        "signatures stored / 202 answers",
        f"{stored} / {accepted}",
        "",
        "",
        f"equal (+ requests unanswered at wrk's deadline)  {verdict(stored_ok)}",
    )
    people_held = sum(p.held_people for p in all_phases)
    row(
        "signers held who are not bots", f"{people_held}", "", "", f"0  {verdict(people_held == 0)}"
    )
    if not args.mix:
        addresses_ok = all(p.distinct_addresses == p.stored for p in all_phases)
        row(
            "client addresses seen / signatures",
            f"{sum(p.distinct_addresses for p in all_phases)} / {stored}",
            "",
            "",
            f"equal  {verdict(addresses_ok)}",
        )
    else:
        bots = sum(p.bots for p in all_phases)
        bots_not_held = sum(p.bots_not_held for p in all_phases)
        limit = BOT_ADDRESSES * 50  # RATE_LIMIT_IP_PER_HOUR's default, per bot address
        row(
            "bot signatures held",
            f"{bots - bots_not_held} / {bots}",
            "",
            "",
            f"all but <= {limit}  {verdict(bots_not_held <= limit)}",
        )
    expected = sum(p.mails_expected for p in all_phases)
    in_time = sum(p.mails_in_time for p in all_phases)
    late = max((p.last_mail_after_s or 0.0) for p in all_phases)
    row(
        "confirmation e-mails delivered in time",
        f"{in_time} / {expected}",
        "",
        "",
        f"all  {verdict(in_time == expected)}",
    )
    row(
        "last e-mail of a surge, after its end",
        f"{late:.1f} s",
        "",
        "",
        f"<= {MAIL_DEADLINE_S} s  {verdict(in_time == expected and late <= MAIL_DEADLINE_S)}",
    )
    for phase in signing.values():
        share = phase.mails_during / phase.mails_expected if phase.mails_expected else 0.0
        row(f"e-mails sent during the surge, {phase.clients} clients", f"{share:.0%}", "", "", "")
    twice = bench.sink.delivered_twice()
    row("e-mails delivered twice", f"{twice}", "", "", f"0  {verdict(twice == 0)}")
    if export is None:
        row(f"CSV export of {args.export_rows:,} signatures", "failed", "", "", "MISSED")
    else:
        seconds, megabytes = export
        row(
            f"CSV export of {args.export_rows:,} signatures",
            f"{seconds:.1f} s",
            "",
            "",
            f"< 10 s  {verdict(seconds < 10)}",
        )
        row(
            "CSV export peak memory",
            f"{megabytes:.0f} MB",
            "",
            "",
            f"< 200 MB  {verdict(megabytes < 200)}",
        )
    for line in [*webhooks.rows(cost), *console.rows(console_figures)]:
        row(*line)
    return 0


if __name__ == "__main__":
    with one_run_at_a_time():
        sys.exit(main())
