"""planner's record classes: standard dataclasses, with one shared __repr__ instead of one compiled per class.

The dataclass decorator writes each method it generates as source text and compiles it when the class is
defined, on every import (Python 3.11 compiles each method separately). For the 28 records a cold `planfile
check` defines, the generated __repr__s are ~5 ms of ~18 ms of class creation (medians of 20 interleaved runs),
and nothing on the check path calls them. record() is dataclass(..., repr=False) plus the function below, which
prints exactly what the generated __repr__ would: `Name(field=value!r, ...)` over the fields with repr=True, `...` for a recursion.
Every other option, and the class itself, is dataclasses' own (dataclasses.fields, replace and asdict work).
"""

from __future__ import annotations

import dataclasses
import reprlib
import sys


@reprlib.recursive_repr()
def _repr(self) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _record(cls=None, /, **options):
    """@record or @record(frozen=True, eq=False, ...): dataclasses.dataclass with these options and the shared
    __repr__ (a class that writes its own __repr__ keeps it, as with dataclass)."""
    if options.get("repr", True) is False:
        raise TypeError("record() always gives a repr; use dataclasses.dataclass(repr=False) for none")
    options.pop("repr", None)

    def wrap(c):
        own = "__repr__" in c.__dict__
        c = dataclasses.dataclass(c, repr=False, **options)
        if not own:
            c.__repr__ = _repr
        return c

    return wrap if cls is None else wrap(cls)


if sys.version_info >= (3, 11):  # type checkers read record as a dataclass decorator (3.10: a plain function)
    from typing import dataclass_transform

    record = dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))(_record)
else:  # pragma: no cover
    record = _record
