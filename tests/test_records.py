"""planner.records.record: a dataclass whose shared __repr__ prints what dataclass's generated one would."""

from __future__ import annotations

import dataclasses

import pytest

from planner.records import record


def twins(**options):
    """The same class body under dataclass and under record."""

    def body():
        class Point:
            x: int
            y: float = 0.5
            label: str = dataclasses.field(default="a'b", repr=False)
            tags: list = dataclasses.field(default_factory=list)

        return Point

    return dataclasses.dataclass(body(), **options), record(**options)(body())


@pytest.mark.parametrize("options", [{}, {"frozen": True}, {"eq": False}, {"frozen": True, "eq": False}])
def test_repr_is_dataclass_repr(options):
    plain, rec = twins(**options)
    a, b = plain(3, tags=[1, "x"]), rec(3, tags=[1, "x"])
    assert repr(b) == repr(a)  # the qualified name, then the fields but label (repr=False)
    assert repr(b).endswith(".<locals>.Point(x=3, y=0.5, tags=[1, 'x'])")
    assert dataclasses.is_dataclass(b) and [f.name for f in dataclasses.fields(b)] == ["x", "y", "label", "tags"]
    assert dataclasses.asdict(b) == dataclasses.asdict(a)
    assert dataclasses.replace(b, x=4).x == 4
    assert (b == rec(3, tags=[1, "x"])) is options.get("eq", True)
    if options.get("frozen"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            b.x = 5


def test_recursive_and_nested_and_own_repr():
    @record(eq=False)
    class Node:
        name: str
        child: object = None

    n = Node("a")
    n.child = n
    q = Node.__qualname__
    assert repr(n) == f"{q}(name='a', child=...)"  # as dataclass's recursion guard prints it
    assert repr(Node("b", Node("c"))) == f"{q}(name='b', child={q}(name='c', child=None))"

    @record
    class Own:
        v: int

        def __repr__(self) -> str:
            return "mine"

    assert repr(Own(1)) == "mine"


def test_no_repr_is_refused():
    with pytest.raises(TypeError, match="repr"):
        record(repr=False)


def test_planner_records_use_it():
    """The check path's records are records (their repr is the shared function, not one compiled each)."""
    from planner.diagnostics import Finding
    from planner.physics.serving import Lengths
    from planner.records import _repr
    from planner.resolve import Resolved

    for cls in (Finding, Lengths, Resolved):
        assert cls.__repr__ is _repr
    assert repr(Lengths(1.0, 1.0, 2.0, 4)) == "Lengths(mean=1.0, p50=1.0, p95=2.0, max=4)"
