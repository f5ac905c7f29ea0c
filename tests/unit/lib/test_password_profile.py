"""The cheap argon2 profile is the test suite's alone: production and development hash at full strength."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from passlib.hash import argon2

from app.lib import security

STRONG = f"$argon2id$v=19$m={argon2.memory_cost},t={argon2.default_rounds},p={argon2.parallelism}$"
CHEAP = "$argon2id$v=19$m=8,t=1,p=1$"


def test_argon2_defaults_are_the_strong_profile() -> None:
    # The strong profile is argon2-cffi's default (RFC 9106 low-memory): 64 MiB, 3 passes, 4 lanes.
    assert (argon2.memory_cost, argon2.default_rounds, argon2.parallelism) == (65536, 3, 4)


@pytest.mark.parametrize("env", ["production", "development", "PRODUCTION ", ""])
def test_every_environment_but_test_hashes_at_full_strength(env: str) -> None:
    h = security.password_context(env).hash("Zhifa2026ok")
    assert h.startswith(STRONG), h


def test_the_test_profile_is_cheap_and_verifies_strong_hashes() -> None:
    cheap = security.password_context("test")
    h = cheap.hash("Zhifa2026ok")
    assert h.startswith(CHEAP), h
    assert cheap.verify("Zhifa2026ok", security.password_context("production").hash("Zhifa2026ok"))


def test_the_suite_runs_with_the_test_profile() -> None:
    """scripts/test.sh exports APP_ENV=test, so the module-level context is the cheap one."""
    assert os.environ.get("APP_ENV") == "test"
    assert security.pwd_context.hash("Zhifa2026ok").startswith(CHEAP)


def test_a_production_process_hashes_with_the_strong_profile() -> None:
    """What a server started with APP_ENV=production gets: the module's context, read at import."""
    code = "from app.lib.security import pwd_context; print(pwd_context.hash('Zhifa2026ok'))"
    env = {**os.environ, "APP_ENV": "production"}
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith(STRONG), out
