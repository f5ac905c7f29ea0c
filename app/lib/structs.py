"""One home for "this output struct, read off that row": ``project``.

A response struct (``AgencyOut``, ``CaseOut`` …) mostly repeats the names of the row it shows. Spelling
each field out (``name=a.name,`` forty times a file) is where copies drift; ``project`` reads every
field the struct declares from the source's attribute of the same name, and the caller names only
the fields that differ (a label, a joined name, a renamed column).

Values are converted as ``msgspec.convert`` converts them: a stored ``"active"`` becomes the field's
enum, an ``int`` is checked as an ``int``. A field the source lacks and the caller does not give
takes the struct's default, or fails loudly (``msgspec.ValidationError`` naming the field) if it has
none, so a renamed column cannot slip through as a blank.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

_MISSING = object()


def project(cls: type[S], source: object, /, **given: Any) -> S:
    """``cls`` from ``source``'s same-named attributes; ``given`` supplies or overrides fields."""
    if not given:
        return msgspec.convert(source, cls, from_attributes=True)
    values = dict(given)
    for name in cls.__struct_fields__:
        if name not in values:
            value = getattr(source, name, _MISSING)
            if value is not _MISSING:
                values[name] = value
    return msgspec.convert(values, cls)


__all__ = ["project"]
