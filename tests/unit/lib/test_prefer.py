"""``Prefer: return=minimal`` (RFC 7240) as the submit reads it."""

from __future__ import annotations

import pytest

from app.lib.headers import prefers_minimal


@pytest.mark.parametrize(
    "values,minimal",
    [
        ([], False),
        ([""], False),
        (["return=minimal"], True),
        (["Return=Minimal"], True),  # names case-insensitive; the value read so too
        (['return="minimal"'], True),  # a quoted value
        (["  return = minimal  "], True),
        (["return=minimal; foo=bar"], True),  # with parameters
        (["handling=lenient, return=minimal"], True),
        (["handling=lenient", "return=minimal"], True),  # over two header lines
        (["return=representation"], False),
        (["return=representation, return=minimal"], False),  # the first one counts
        (["return=minimal", "return=representation"], True),
        (["respond-async, wait=10"], False),
        (["returns=minimal"], False),
        (["return"], False),
        (["minimal"], False),
    ],
)
def test_prefer_header(values: list[str], minimal: bool) -> None:
    assert prefers_minimal(values) is minimal
