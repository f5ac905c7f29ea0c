"""app.settings.load_settings: safe by default in production, zero-configuration in development."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app import settings as settings_module
from app.settings import MIN_SECRET_LEN, SettingsError, load_settings

# Random-looking: production also refuses a long secret made of a few repeated characters.
GOOD_SECRET = "Zq7-Lm2_Rv9xKc4WpT8nHb3YjF6sDg1A"
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": GOOD_SECRET,
    "PUBLIC_BASE_URL": "https://zf.example.gov.cn",
}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the development secret at tmp_path and keep the real environment out of the way."""
    var_dir = tmp_path / "var"
    monkeypatch.setattr(settings_module, "VAR_DIR", var_dir)
    monkeypatch.setattr(settings_module, "_DEV_SECRET_FILE", var_dir / "secret_key")
    for name in ("SECURE_COOKIES", "DB_ECHO"):
        monkeypatch.delenv(name, raising=False)
    return var_dir


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"SECRET_KEY": None}, "SECRET_KEY", id="secret-missing"),
        pytest.param({"SECRET_KEY": ""}, "SECRET_KEY", id="secret-empty"),
        pytest.param({"SECRET_KEY": "x" * (MIN_SECRET_LEN - 1)}, "SECRET_KEY", id="secret-short"),
        pytest.param({"SECRET_KEY": "change-me"}, "SECRET_KEY", id="secret-default-change-me"),
        pytest.param({"SECRET_KEY": "secret"}, "SECRET_KEY", id="secret-default-secret"),
        pytest.param({"SECRET_KEY": "dev"}, "SECRET_KEY", id="secret-default-dev"),
        pytest.param({"SECRET_KEY": "x" * 64}, "SECRET_KEY", id="secret-one-character-repeated"),
        pytest.param({"SECRET_KEY": "change-me" * 5}, "SECRET_KEY", id="secret-placeholder-repeated"),
        pytest.param({"SECURE_COOKIES": "false"}, "SECURE_COOKIES", id="secure-cookies-off"),
        pytest.param({"DB_ECHO": "true"}, "DB_ECHO", id="db-echo-logs-personal-data"),
        pytest.param({"PUBLIC_BASE_URL": None}, "PUBLIC_BASE_URL", id="url-missing"),
        pytest.param({"PUBLIC_BASE_URL": "http://zf.example.gov.cn"}, "PUBLIC_BASE_URL", id="url-http"),
        pytest.param({"PUBLIC_BASE_URL": "zf.example.gov.cn"}, "PUBLIC_BASE_URL", id="url-no-scheme"),
        pytest.param({"APP_ENV": "prod"}, "APP_ENV", id="env-unknown"),
    ],
)
def test_production_refuses_unsafe_configuration(
    changes: dict[str, str | None], message: str, isolated: Path
) -> None:
    environ = {k: v for k, v in {**PRODUCTION, **changes}.items() if v is not None}

    with pytest.raises(SettingsError, match=message):
        load_settings(environ)
    assert not isolated.exists(), "production must never fall back to a generated secret"


def test_production_accepts_a_safe_configuration(isolated: Path) -> None:
    s = load_settings(PRODUCTION)

    assert s.is_production
    assert s.secret_key == GOOD_SECRET
    assert s.public_base_url == "https://zf.example.gov.cn"
    assert s.secure_cookies is True
    assert not isolated.exists()


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_without_secret_a_generated_one_is_kept_under_var_dir(app_env: str, isolated: Path) -> None:
    first = load_settings({"APP_ENV": app_env})

    secret_file = isolated / "secret_key"
    assert len(first.secret_key) >= MIN_SECRET_LEN
    assert secret_file.read_text().strip() == first.secret_key
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert load_settings({"APP_ENV": app_env}).secret_key == first.secret_key


def test_processes_starting_together_agree_on_one_generated_secret(tmp_path: Path) -> None:
    """The workers of ``app serve`` (or a console command beside them) may start at once with no
    secret yet: each must end up signing with the same one, never a half-written file."""
    import subprocess
    import sys

    var_dir = tmp_path / "together"
    code = (
        "from app.settings import load_settings; print(load_settings({'APP_ENV': 'development'}).secret_key)"
    )
    env = {**os.environ, "APP_VAR_DIR": str(var_dir)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603 - this interpreter, our code
        for _ in range(6)
    ]
    secrets_seen = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(secrets_seen) == 1 and len(next(iter(secrets_seen))) >= MIN_SECRET_LEN
    assert (var_dir / "secret_key").read_text().strip() in secrets_seen
    assert sorted(f.name for f in var_dir.iterdir()) == ["secret_key"]  # no file of a process left


def test_development_is_the_default_and_needs_no_configuration(isolated: Path) -> None:
    s = load_settings({})

    assert s.env == "development"
    assert not s.is_production
    assert s.database_url == f"sqlite+aiosqlite:///{isolated / 'app.db'}"
    assert s.is_sqlite
    assert s.public_base_url == "http://127.0.0.1:8000"
    assert s.secure_cookies is False


def test_development_uses_a_given_secret_and_writes_nothing(isolated: Path) -> None:
    s = load_settings({"SECRET_KEY": "short-is-fine-in-development"})

    assert s.secret_key == "short-is-fine-in-development"
    assert not (isolated / "secret_key").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/zf", "postgresql+asyncpg://u:p@db:5432/zf"),
        ("postgresql://u:p@db:5432/zf", "postgresql+asyncpg://u:p@db:5432/zf"),
        ("postgresql+asyncpg://u:p@db/zf", "postgresql+asyncpg://u:p@db/zf"),
        ("sqlite:///var/app.db", "sqlite+aiosqlite:///var/app.db"),
        ("sqlite:////srv/zf/app.db", "sqlite+aiosqlite:////srv/zf/app.db"),
        ("sqlite+aiosqlite:////srv/zf/app.db", "sqlite+aiosqlite:////srv/zf/app.db"),
    ],
)
def test_database_url_is_normalised_to_the_async_driver(given: str, expected: str) -> None:
    s = load_settings({**PRODUCTION, "DATABASE_URL": given})

    assert s.database_url == expected
    assert s.is_sqlite == expected.startswith("sqlite")
    # The replica's URL the same way; unset, the public pages read the primary.
    assert s.database_read_url == "" and s.read_url == expected
    r = load_settings({**PRODUCTION, "DATABASE_URL": given, "DATABASE_READ_URL": given.replace("zf", "zf2")})
    assert r.database_read_url == expected.replace("zf", "zf2") == r.read_url


@pytest.mark.parametrize(
    ("primary", "replica"),
    [
        ("postgresql://u@db/zf", "sqlite:///var/copy.db"),
        ("sqlite:///var/app.db", "postgresql://u@replica/zf"),
    ],
)
def test_read_url_of_another_kind_of_database_is_refused(primary: str, replica: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_READ_URL"):
        load_settings({**PRODUCTION, "DATABASE_URL": primary, "DATABASE_READ_URL": replica})


@pytest.mark.parametrize(
    ("public_base_url", "secure_cookies"),
    [
        ("https://zf.example.gov.cn", True),
        ("https://zf.example.gov.cn/", True),
        ("http://127.0.0.1:8000", False),
        ("http://intranet.local", False),
    ],
)
def test_secure_cookies_default_follows_the_scheme(public_base_url: str, secure_cookies: bool) -> None:
    s = load_settings({"APP_ENV": "development", "SECRET_KEY": "dev-key", "PUBLIC_BASE_URL": public_base_url})

    assert s.secure_cookies is secure_cookies
    assert not s.public_base_url.endswith("/")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {
                "SECRET_KEY": "dev-key",
                "PUBLIC_BASE_URL": "https://zf.example.gov.cn",
                "SECURE_COOKIES": "false",
            },
            False,
            id="https-off-outside-production",
        ),
        pytest.param({"SECRET_KEY": "dev-key", "SECURE_COOKIES": "1"}, True, id="http-on"),
    ],
)
def test_secure_cookies_can_be_set_explicitly(environ: dict[str, str], expected: bool) -> None:
    assert load_settings(environ).secure_cookies is expected


def test_hex_and_urlsafe_random_secrets_are_accepted() -> None:
    import secrets

    for secret in (secrets.token_hex(32), secrets.token_urlsafe(48)):
        assert load_settings({**PRODUCTION, "SECRET_KEY": secret}).secret_key == secret


def test_repr_hides_the_secret_and_the_database_password() -> None:
    s = load_settings(
        {
            **PRODUCTION,
            "DATABASE_URL": "postgresql://zf:db-Passw0rd@db/zf",
            "DATABASE_READ_URL": "postgresql://zf:replica-Passw0rd@replica/zf",
        }
    )

    text = repr(s) + str(s)
    assert GOOD_SECRET not in text and "db-Passw0rd" not in text and "replica-Passw0rd" not in text
    assert "production" in text  # the harmless fields are still there to help debugging


def test_session_and_csrf_keys_differ_from_the_secret_and_each_other() -> None:
    s = load_settings(PRODUCTION)

    assert s.csrf_secret != s.secret_key and s.session_key.hex() != s.csrf_secret
    assert GOOD_SECRET not in s.csrf_secret


@pytest.mark.parametrize(
    ("url", "name"), [("https://zf.example.gov.cn", "__Host-zf_session"), ("http://x", "zf_session")]
)
def test_cookie_names_take_the_host_prefix_on_https(url: str, name: str) -> None:
    s = load_settings({"SECRET_KEY": "dev-key", "PUBLIC_BASE_URL": url})

    assert s.cookie_name("zf_session") == name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", ""),  # the default: each process counts its own rate limits
        ("  ", ""),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://:pw@cache.internal:6380/2", "rediss://:pw@cache.internal:6380/2"),
        ("unix:///run/redis/redis.sock?db=1", "unix:///run/redis/redis.sock?db=1"),
        ("127.0.0.1:6379", None),
        ("http://cache:6379", None),
    ],
)
def test_redis_url(given: str, expected: str | None) -> None:
    environ = {"SECRET_KEY": "dev-key", "REDIS_URL": given}
    if expected is None:
        with pytest.raises(SettingsError, match="REDIS_URL") as exc:
            load_settings(environ)
        assert given not in str(exc.value)  # a URL may carry a password: never echoed
        return
    s = load_settings(environ)
    assert s.redis_url == expected
    assert "pw@" not in repr(s)
