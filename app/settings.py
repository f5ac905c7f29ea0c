"""One typed Settings object, read from the environment.

Development works with no configuration at all: a SQLite file and a generated secret under the
git-ignored ``var/``. Production (``APP_ENV=production``) refuses to start with a missing or
development secret, or with a public URL that is not HTTPS.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from app.lib.crypto import KeyPurpose, derive_key

ROOT = Path(__file__).resolve().parent.parent
"""The checkout (``pyproject.toml`` beside ``app/``), or site-packages for an installed package."""
CHECKOUT = (ROOT / "pyproject.toml").is_file()


def _default_var_dir() -> Path:
    """A checkout keeps its state in its own git-ignored ``var/``. An installed package must not
    write into site-packages (read-only, or wiped by the next upgrade): it uses
    ``<prefix>/var/zhifa-instance``, the virtualenv's (or the system's) prefix, as Flask's instance
    folder does. ``APP_VAR_DIR`` overrides both."""
    return ROOT / "var" if CHECKOUT else Path(sys.prefix) / "var" / "zhifa-instance"


VAR_DIR = Path(os.environ.get("APP_VAR_DIR") or _default_var_dir())
WORKERS_LIMITS_ENV = "APP_WORKERS_LIMITS"
"""How ``app serve`` names its workers' shared rate-limit file (``Settings.workers_limits_file``)."""
CARDS_DIR = ROOT / "certificates" / "out" if CHECKOUT else VAR_DIR / "certificates"
"""Rendered cards (PNG/PDF): the checkout's top-level ``certificates/out``, else under ``VAR_DIR``."""
_DEV_SECRET_FILE = VAR_DIR / "secret_key"
MIN_SECRET_LEN = 32
# A real random secret of 32+ characters uses many symbols (even hex has 16); 'aaaa…' or
# 'changemechangeme…' does not.
MIN_SECRET_DISTINCT = 12


class SettingsError(RuntimeError):
    """The environment describes a configuration that must not run."""


def _dev_secret() -> str:
    """The development secret kept in ``VAR_DIR/secret_key``, made at the first start.

    Several processes may start at once (the workers of ``app serve``, a console command): the
    secret is written whole to a file of this process's own and linked into place, which fails
    if another process was first; then that one's is read. Every process ends up with one secret.
    """
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if _DEV_SECRET_FILE.exists():
        return _DEV_SECRET_FILE.read_text().strip()
    mine = _DEV_SECRET_FILE.with_name(f"{_DEV_SECRET_FILE.name}.{os.getpid()}")
    mine.write_text(secrets.token_urlsafe(48))
    mine.chmod(0o600)
    try:
        with contextlib.suppress(FileExistsError):  # another process was first: its secret is the one
            os.link(mine, _DEV_SECRET_FILE)
    finally:
        mine.unlink()
    return _DEV_SECRET_FILE.read_text().strip()


def _async_url(url: str) -> str:
    """A database URL with the async driver the app uses (asyncpg, aiosqlite) spelled out."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a positive whole number of seconds, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    env: str
    # repr=False: a Settings printed in a log line or a traceback must not carry the database password
    # or the secret from which the session and CSRF keys derive.
    database_url: str = field(repr=False)
    secret_key: str = field(repr=False)
    database_read_url: str = field(default="", repr=False)
    """A PostgreSQL streaming replica for the public reads (verification, JWKS, register); empty:
    they read from ``database_url``."""
    public_base_url: str = "http://127.0.0.1:8000"
    secure_cookies: bool = False
    db_pool_size: int = 10
    db_echo: bool = False
    max_upload_bytes: int = 10 * 1024 * 1024
    login_max_failures: int = 5
    login_lock_minutes: int = 15
    session_max_age: int = 8 * 3600
    """Idle timeout: the session cookie expires this long after the last request."""
    session_absolute_seconds: int = 12 * 3600
    """Absolute timeout: a login is worth this long at most, however busy the session."""
    trusted_hosts: tuple[str, ...] = field(default_factory=tuple)
    verify_rate_per_minute: int = 60
    """Public certificate lookups per client and minute (per process, or in all together with REDIS_URL):
    the bound on enumeration."""
    exam_fast_lane: bool = True
    """PostgreSQL: the candidate's ordinary autosave and submit are answered by ``app.exams.fastlane``."""
    keep_alive_seconds: int = 75
    """How long an idle HTTP connection stays open (uvicorn's timeout_keep_alive; nginx's default).
    Longer than the exam page's 30-second autosave, so a candidate's saves reuse one connection
    instead of opening a new one each time (uvicorn's own default is 5 s)."""
    forwarded_allow_ips: str = ""
    """Reverse proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips)."""
    redis_url: str = field(default="", repr=False)
    """The Redis that counts the rate limits of every worker and instance together (it may carry a
    password, hence repr=False). Empty: the workers of one server count together in a file on this
    machine (``workers_limits_file``, or beside a SQLite file), else each process alone
    (``app.lib.ratelimit``)."""
    workers_limits_file: str = ""
    """Set by ``app serve`` for its workers on PostgreSQL without Redis (``APP_WORKERS_LIMITS``):
    the file in which they count the rate limits together."""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def read_url(self) -> str:
        """Where the public pages read: the replica when one is configured, else the primary."""
        return self.database_read_url or self.database_url

    @property
    def session_key(self) -> bytes:
        """32 bytes for the AES-GCM session cookie, derived so the raw secret never serves two purposes."""
        return derive_key(self.secret_key, KeyPurpose.SESSION)

    @property
    def csrf_secret(self) -> str:
        """The CSRF token key (hex), derived like the session key (never the raw secret)."""
        return derive_key(self.secret_key, KeyPurpose.CSRF).hex()

    def cookie_name(self, base: str) -> str:
        """``__Host-`` on HTTPS: the browser then refuses the cookie from a sibling subdomain or over
        plain HTTP, which stops an attacker planting a session or CSRF cookie ("cookie tossing")."""
        return f"__Host-{base}" if self.secure_cookies else base


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    app_env = env.get("APP_ENV", "development").strip().lower()
    if app_env not in {"development", "production", "test"}:
        raise SettingsError(f"APP_ENV must be development, production or test, not {app_env!r}")
    production = app_env == "production"

    database_url = _async_url(env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{VAR_DIR / 'app.db'}")
    database_read_url = _async_url(env.get("DATABASE_READ_URL", "").strip())
    if database_read_url and database_read_url.split(":", 1)[0] != database_url.split(":", 1)[0]:
        raise SettingsError("DATABASE_READ_URL must name the same kind of database as DATABASE_URL")

    secret = env.get("SECRET_KEY", "")
    if production:
        if len(secret) < MIN_SECRET_LEN or len(set(secret)) < MIN_SECRET_DISTINCT:
            raise SettingsError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LEN} characters in production"
                " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
    elif not secret:
        secret = _dev_secret()

    public_base_url = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    if production and not public_base_url.startswith("https://"):
        raise SettingsError("PUBLIC_BASE_URL must be an https:// URL in production")

    secure_cookies = _bool(env, "SECURE_COOKIES", public_base_url.startswith("https://"))
    db_echo = _bool(env, "DB_ECHO", False)
    if production and not secure_cookies:
        raise SettingsError(
            "SECURE_COOKIES cannot be turned off in production (cookies would travel over HTTP)"
        )
    if production and db_echo:
        # The engine would log every statement with its parameters: ID numbers and password hashes.
        raise SettingsError("DB_ECHO cannot be turned on in production (it logs personal data)")

    return Settings(
        env=app_env,
        database_url=database_url,
        database_read_url=database_read_url,
        secret_key=secret,
        public_base_url=public_base_url,
        secure_cookies=secure_cookies,
        db_pool_size=int(env.get("DB_POOL_SIZE", "10")),
        db_echo=db_echo,
        max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", str(10 * 1024 * 1024))),
        verify_rate_per_minute=int(env.get("VERIFY_RATE_PER_MINUTE", "60")),
        exam_fast_lane=_bool(env, "EXAM_FAST_LANE", True),
        keep_alive_seconds=_positive_int(env, "KEEP_ALIVE_SECONDS", 75),
        forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip(),
        redis_url=_redis_url(env),
        workers_limits_file=env.get(WORKERS_LIMITS_ENV, ""),
    )


def _redis_url(env: dict[str, str]) -> str:
    url = env.get("REDIS_URL", "").strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        # Not echoed: the URL may carry a password.
        raise SettingsError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
