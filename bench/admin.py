"""What the bench does as Chorus's administrator: an admin account made with the CLI, as a
new installation makes its first one, and the settings Chorus's processes run with."""

from __future__ import annotations

import secrets
import subprocess
import sys
from typing import Any

from app.core.config import Settings

CHORUS = [sys.executable, "-m", "app.cli"]


def settings(env: dict[str, str], **overrides: Any) -> Settings:
    """The settings of Chorus's processes started with `env` (no .env file), then `overrides`."""
    given = {name: value for name, value in env.items() if name in Settings.model_fields}
    return Settings(_env_file=None, **{**given, **overrides})


def create_admin(env: dict[str, str], email: str) -> str:
    """`chorus create-admin` with a new random password. -> the password."""
    password = secrets.token_urlsafe(18)
    subprocess.run(
        [*CHORUS, "create-admin", "--email", email, "--password", password, "--name", "Bench"],
        env=env,
        check=True,
        capture_output=True,
    )
    return password
