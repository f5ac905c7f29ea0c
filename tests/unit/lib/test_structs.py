"""``project``: a response struct read off a row, by field name, with the differing fields given."""

from __future__ import annotations

import datetime as dt
import enum
from types import SimpleNamespace

import msgspec
import pytest

from app.lib.structs import project


class Colour(enum.StrEnum):
    RED = "red"


class Inner(msgspec.Struct):
    x: int


class Out(msgspec.Struct, kw_only=True):
    id: int
    colour: Colour
    at: dt.datetime
    inner: Inner
    label: str = ""
    note: str | None = None


ROW = SimpleNamespace(id=7, colour="red", at=dt.datetime(2026, 1, 2, 3, 4), inner=Inner(1), extra="x")


def test_reads_same_named_attributes_and_converts_enums() -> None:
    out = project(Out, ROW)
    assert out == Out(id=7, colour=Colour.RED, at=ROW.at, inner=Inner(1))


def test_given_fields_override_and_supply() -> None:
    out = project(Out, ROW, id=8, label="红")
    assert (out.id, out.label, out.colour, out.note) == (8, "红", Colour.RED, None)


@pytest.mark.parametrize("given", [{}, {"label": "红"}])
def test_a_missing_required_field_fails_loudly(given: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError, match="inner"):
        project(Out, SimpleNamespace(id=1, colour="red", at=ROW.at), **given)


def test_a_wrong_type_fails_loudly() -> None:
    with pytest.raises(msgspec.ValidationError, match="id"):
        project(Out, ROW, id="seven")
