"""How the bench starts what it measures: each server, worker and load in a session of its own
(`start_new_session=True`), as a service manager starts services and as clients come from
elsewhere.

On Linux with autogroup scheduling (`kernel.sched_autogroup_enabled = 1`, the default of most
distributions) the CPU is shared between sessions first, then between the processes of each.
The bench used to start Chorus's servers in its own session, with its load generator (wrk):
one group that, while 32 clients read pages and 16 signed, left PostgreSQL's backends (each in
a session of its own) waiting on the run queue for 7 of every 8 seconds, and the kernel's
network threads (ksoftirqd) as long; a signing statement then took up to 12 s, and signers timed
out. No deployment looks like that: systemd and containers start each service in a group of its
own, and the clients are other machines.

Nice values only order the processes of one session. A mail worker lowers its own priority
(WORKER_NICENESS) for when it shares a session with the servers; in a session of its own, its
group's priority is what counts: the bench sets that group's nice to the same value, as a
deployment gives a worker a lower CPU weight (README, "Scaling out").
"""

from __future__ import annotations

import time
from pathlib import Path

AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def autogroups() -> bool:
    """Whether this kernel shares the CPU between sessions first."""
    try:
        return AUTOGROUP.read_text().strip() == "1"
    except OSError:
        return False


def lower_group(pid: int, niceness: int) -> str:
    """Lower the priority of the scheduling group of `pid`'s session (its own) to `niceness`;
    -> the group as the kernel then shows it ("" where it has no such groups). Without
    CAP_SYS_ADMIN the kernel takes one such change per 100 ms (EAGAIN before): it is retried."""
    group = Path(f"/proc/{pid}/autogroup")
    for _ in range(20):
        try:
            group.write_text(str(niceness))
            break
        except BlockingIOError:  # EAGAIN: another group was changed less than 100 ms ago
            time.sleep(0.11)
        except OSError:
            return ""
    try:
        return group.read_text().strip()
    except OSError:
        return ""
