from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.auth import security

ROOT = Path(__file__).resolve().parents[2]


def test_the_dummy_hash_costs_what_a_real_one_does() -> None:
    # An unknown e-mail is verified against it: with other parameters than the real hashes'
    # the time a login takes would tell whether the address has an account.
    assert not security._hasher.check_needs_rehash(security._DUMMY_HASH)  # noqa: SLF001
    assert security._hasher.verify(security._DUMMY_HASH, "chorus-no-such-user")  # noqa: SLF001
    assert not security.verify_password("chorus-no-such-user", None)


def test_importing_it_does_not_hash() -> None:
    # A hash at import takes argon2's 64 MiB: the peak memory of every process, `chorus export`
    # of a million rows included, started there.
    script = (
        "import argon2\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(status.split('VmHWM:')[1].split()[0])\n"
        "before = peak()\n"
        "import app.auth.security\n"
        "print(peak() - before)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) < 16 * 1024  # KiB
