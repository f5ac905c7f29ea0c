"""`app serve`: X-Forwarded-For is trusted only from the proxies named in FORWARDED_ALLOW_IPS."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("allow", "proxy_headers", "forwarded"),
    [("", False, None), ("10.0.0.5", True, "10.0.0.5"), ("10.0.0.5,10.0.0.6", True, "10.0.0.5,10.0.0.6")],
)
def test_proxy_headers_follow_the_trusted_proxy_list(
    monkeypatch: pytest.MonkeyPatch, allow: str, proxy_headers: bool, forwarded: str | None
) -> None:
    seen: dict[str, Any] = {}
    settings = load_settings({"SECRET_KEY": "dev-key", "FORWARDED_ALLOW_IPS": allow})
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))

    result = CliRunner().invoke(cli, ["serve"])

    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is proxy_headers and seen["forwarded_allow_ips"] == forwarded


@pytest.mark.parametrize(("given", "expected"), [(None, 75), ("120", 120), ("5", 5)])
def test_idle_connections_outlive_the_autosave_interval(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: int
) -> None:
    """An exam page saves every 30 s: by default its connection stays open between saves."""
    seen: dict[str, Any] = {}
    environ = {"SECRET_KEY": "dev-key"} | ({} if given is None else {"KEEP_ALIVE_SECONDS": given})
    settings = load_settings(environ)
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))

    result = CliRunner().invoke(cli, ["serve"])

    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] == expected


@pytest.mark.parametrize("given", ["0", "-5", "ten", "7.5"])
def test_a_keep_alive_that_is_not_a_positive_number_is_refused(given: str) -> None:
    with pytest.raises(SettingsError, match="KEEP_ALIVE_SECONDS must be a positive whole number"):
        load_settings({"SECRET_KEY": "dev-key", "KEEP_ALIVE_SECONDS": given})


def test_a_server_process_collects_cycles_rarely_and_skips_its_startup_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``app_factory`` (what each uvicorn worker runs) freezes what startup built and raises the
    collector's thresholds: a full collection of a busy worker's heap stopped it for 250+ ms."""
    import gc

    from app import asgi

    built: list[int] = []
    monkeypatch.setattr(asgi, "create_app", lambda: built.append(1) or "app")
    before = gc.get_threshold()
    try:
        assert asgi.app_factory() == "app" and built == [1]
        assert gc.get_threshold() == asgi.GC_THRESHOLDS == (20_000, 20, 20)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
