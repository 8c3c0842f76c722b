"""Settings, read once from the environment (and an optional `.env` file).

Every variable is documented in README.md ("Configuration"); keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_SECRETS = {"", "changethis", "change-me", "dev-secret-key-not-for-production"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    ENVIRONMENT: Literal["development", "test", "production"] = "development"
    DATABASE_URL: str = f"sqlite:///{ROOT / 'var' / 'chorus.db'}"
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    SECRET_KEY: SecretStr = SecretStr("dev-secret-key-not-for-production")
    # Former SECRET_KEYs, comma-separated: links signed with them still verify and IP hashes
    # made with them still match, so a key can be rotated without breaking links already sent.
    SECRET_KEY_FALLBACKS: SecretStr = SecretStr("")
    LOG_LEVEL: str = "INFO"
    # "text" (one line per record) or "json" (one JSON object per line, for log collectors).
    LOG_FORMAT: Literal["text", "json"] = "text"
    MAX_BODY_BYTES: int = Field(default=256 * 1024, ge=1024)
    # How long a server process may reuse public petition data, public read responses and the
    # abuse lists before reading them again (0: never).
    CACHE_SECONDS: float = Field(default=1.0, ge=0, le=60)
    # /docs and /redoc (the OpenAPI schema stays either way; see app/core/docs.py). Unset: on,
    # except in production.
    DOCS_ENABLED: bool | None = None
    DATABASE_POOL_SIZE: int = Field(default=10, ge=1, le=200)
    # Seconds a request waits for a free database connection (or a new one to open) before it
    # is answered 503 with Retry-After.
    DATABASE_POOL_TIMEOUT: float = Field(default=10.0, gt=0, le=120)
    # The admin API's own lane (app/core/lanes.py): admin requests running at once per process
    # (and connections in its own pool), and how long the others wait for a turn before a 503.
    ADMIN_MAX_CONCURRENT_REQUESTS: int = Field(default=4, ge=1, le=100)
    ADMIN_QUEUE_SECONDS: float = Field(default=10.0, gt=0, le=120)
    # A read replica for public reads (petition pages, petition JSON, the list); empty: none.
    DATABASE_READ_URL: str = ""
    # /metrics needs this bearer token; without one it exists only in development.
    METRICS_TOKEN: SecretStr = SecretStr("")

    # fastapi-mail's own names. Without MAIL_SERVER (development only) the worker delivers to a
    # local dev mailbox (an SMTP sink writing to DEV_MAILBOX_DIR) that /dev/mailbox lists.
    MAIL_SERVER: str | None = None
    MAIL_PORT: int = 587
    MAIL_FROM: str = "chorus@example.org"
    MAIL_FROM_NAME: str = "Chorus"
    MAIL_USERNAME: str = ""
    MAIL_PASSWORD: SecretStr = SecretStr("")
    MAIL_STARTTLS: bool = False
    MAIL_SSL_TLS: bool = False
    MAIL_TIMEOUT: int = 30
    DEV_MAILBOX_DIR: Path = ROOT / "var" / "mailbox"

    # Outbox worker.
    WORKER_BATCH_SIZE: int = Field(default=50, ge=1, le=1000)
    WORKER_POLL_SECONDS: float = Field(default=1.0, gt=0)
    WORKER_CONCURRENCY: int = Field(default=8, ge=1, le=200)
    # The worker's CPU priority below the web servers' (Unix nice), where they share cores.
    WORKER_NICENESS: int = Field(default=10, ge=0, le=19)
    OUTBOX_MAX_ATTEMPTS: int = Field(default=30, ge=1)
    OUTBOX_RETRY_BASE_SECONDS: float = Field(default=30.0, gt=0)
    OUTBOX_LEASE_SECONDS: int = Field(default=300, ge=5)
    # `chorus worker --health-port`: unhealthy after this long without progress.
    WORKER_HEALTH_MAX_SECONDS: float = Field(default=120.0, gt=0)

    # Signing.
    CONFIRMATION_TOKEN_TTL_HOURS: int = Field(default=24 * 7, ge=1)
    MAX_CONFIRMATION_SENDS: int = Field(default=3, ge=1)
    TALLY_SHARDS: int = Field(default=16, ge=1, le=256)

    # A petition delivery's signatory list larger than this (gzip-compressed bytes) is not
    # attached to the e-mail (mail servers refuse big messages) but linked, for a year.
    ANNEX_ATTACH_MAX_BYTES: int = Field(default=10_000_000, ge=0)

    # Sign-in: failed attempts allowed in LOGIN_WINDOW_MINUTES for an account address from one
    # IP, for an account address from all IPs together, and from one IP for all accounts.
    LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP: int = Field(default=10, ge=1)
    LOGIN_MAX_FAILURES_PER_EMAIL: int = Field(default=100, ge=1)
    LOGIN_MAX_FAILURES_PER_IP: int = Field(default=50, ge=1)
    LOGIN_WINDOW_MINUTES: int = Field(default=15, ge=1)
    # The console signs a person out after this many minutes without a request.
    CONSOLE_SESSION_IDLE_MINUTES: int = Field(default=60, ge=1, le=12 * 60)

    # Abuse controls. A signature over a limit is accepted with the usual answer but held
    # (never confirmed) until an organiser releases it, so bots learn nothing.
    RATE_LIMIT_IP_PER_MINUTE: int = Field(default=10, ge=1)
    RATE_LIMIT_IP_PER_HOUR: int = Field(default=50, ge=1)
    RATE_LIMIT_DOMAIN_PER_MINUTE: int = Field(default=300, ge=1)
    RATE_LIMIT_DOMAIN_PER_HOUR: int = Field(default=5000, ge=1)
    # Large mail providers whose users sign in great numbers: no per-domain limit for them.
    RATE_LIMIT_DOMAIN_EXEMPT: list[str] = [
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "proton.me",
        "protonmail.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "kakao.com",
        "ukr.net",
        "i.ua",
        "meta.ua",
        "gmx.de",
        "web.de",
        "yandex.ru",
    ]
    # Optional CAPTCHA on signing, checked on the server: "", "turnstile" or "hcaptcha".
    CAPTCHA_PROVIDER: Literal["", "turnstile", "hcaptcha"] = ""
    CAPTCHA_SITE_KEY: str = ""
    CAPTCHA_SECRET: SecretStr = SecretStr("")
    CAPTCHA_VERIFY_URL: str = ""  # default: the provider's siteverify address

    # Supporters' data: signatures of petitions closed longer than this are anonymised by
    # `chorus anonymise`.
    DATA_RETENTION_DAYS: int = Field(default=183, ge=1)
    # Campaign updates are spread out at this many e-mails a minute.
    UPDATE_SEND_RATE_PER_MINUTE: int = Field(default=600, ge=1)

    # Letters to officials. At most LETTER_DAILY_CAP_PER_TARGET supporter letters a day go to
    # one official (the rest wait for a later day); a letter nearly identical to at least
    # LETTER_DUPLICATE_LIMIT others of the last LETTER_DUPLICATE_WINDOW_DAYS is held for review.
    LETTER_DAILY_CAP_PER_TARGET: int = Field(default=100, ge=1)
    LETTER_DUPLICATE_LIMIT: int = Field(default=5, ge=1)
    LETTER_DUPLICATE_WINDOW_DAYS: int = Field(default=7, ge=1)
    # Fonts for printable (postal) letters, first choice first; "file#n" is font n of a .ttc.
    PDF_FONTS: list[str] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc#1",
    ]

    # Donations (Stripe). Without STRIPE_SECRET_KEY the donate page says donations are off.
    STRIPE_SECRET_KEY: SecretStr = SecretStr("")
    STRIPE_WEBHOOK_SECRET: SecretStr = SecretStr("")
    STRIPE_API_BASE: str = "https://api.stripe.com"

    # Outgoing webhooks. Endpoint addresses must be public: private, link-local and other
    # special ranges are refused at registration and again at every delivery (SSRF), and
    # loopback too unless WEBHOOK_ALLOW_LOOPBACK (development and tests).
    WEBHOOK_ALLOW_LOOPBACK: bool = False
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    # An endpoint that has failed every attempt for this long is switched off.
    WEBHOOK_DISABLE_AFTER_HOURS: float = Field(default=24.0, gt=0)

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Settings:
        if self.ENVIRONMENT == "production":
            if self.SECRET_KEY.get_secret_value() in PLACEHOLDER_SECRETS:
                raise ValueError("SECRET_KEY must be set to a real secret in production")
            if len(self.SECRET_KEY.get_secret_value()) < 32:
                raise ValueError("SECRET_KEY must be at least 32 characters in production")
            for old in self.secret_key_fallbacks:
                # A fallback verifies links as well as SECRET_KEY does: the same rules.
                if old in PLACEHOLDER_SECRETS or len(old) < 32:
                    raise ValueError(
                        "SECRET_KEY_FALLBACKS may hold only real secrets of at least 32 "
                        "characters in production"
                    )
            if not self.MAIL_SERVER:
                raise ValueError("MAIL_SERVER must be set in production")
        return self

    @property
    def secret_key_fallbacks(self) -> list[str]:
        """The former keys of SECRET_KEY_FALLBACKS, in the order given."""
        raw = self.SECRET_KEY_FALLBACKS.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def signing_secrets(self) -> list[str]:
        """SECRET_KEY first (it signs), then the fallbacks (they only verify)."""
        current = self.SECRET_KEY.get_secret_value()
        return [current, *(key for key in self.secret_key_fallbacks if key != current)]

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def docs_enabled(self) -> bool:
        if self.DOCS_ENABLED is None:
            return self.ENVIRONMENT != "production"
        return self.DOCS_ENABLED

    @property
    def dev_mailbox_enabled(self) -> bool:
        return self.ENVIRONMENT == "development"

    def public_url(self, path: str) -> str:
        return self.PUBLIC_BASE_URL.rstrip("/") + path


@lru_cache
def get_settings() -> Settings:
    return Settings()
