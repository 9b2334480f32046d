"""Load a spec: YAML text -> (plain data, source map, load findings).

PyYAML's composer keeps a mark on every node; one walk over the node graph builds the data and a map
from JSON pointer to the key's and the value's positions, so every later error can name
`file:line:column`. The walk also catches what PyYAML lets through silently: duplicate keys (it keeps
the last), alias bombs (aliases share nodes, so composing is cheap and walking explodes), excessive
nesting, NaN/inf, and non-string keys. Nothing here raises on bad input: problems come back as findings.
"""

from __future__ import annotations

import math
import re
from dataclasses import field
from pathlib import Path

import yaml

from planner.diagnostics import Finding, pointer_join
from planner.records import record

MAX_BYTES = 1 << 20  # 1 MiB: a real spec is ~2 KB; larger input is rejected before parsing
MAX_NODES = 20_000  # nodes visited, counting every alias expansion
MAX_DEPTH = 64
MAX_ALIASES = 200

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()


@record
class Loc:
    """Where a spec value sits in its file: the key's and the value's line and column, and the scalar as written."""

    key: tuple[int, int] | None  # (line, column), 1-based, of the mapping key
    value: tuple[int, int]  # of the value node
    raw: str | None = None  # scalar source text (for YAML 1.1 hints)
    plain: bool = False  # unquoted scalar


@record(eq=False)
class SourceMap:
    """Every JSON pointer of a loaded spec mapped to its place in the file."""

    file: str
    locs: dict[str, Loc] = field(default_factory=dict)

    def position(self, pointer: str, prefer_key: bool = False) -> tuple[int | None, int | None]:
        """Position of the value at pointer (or its key), else of the nearest ancestor that exists."""
        p = pointer
        while True:
            loc = self.locs.get(p)
            if loc is not None:
                if prefer_key and loc.key is not None:
                    return loc.key
                return loc.value
            if not p:
                return (None, None)
            p = p.rsplit("/", 1)[0]


@record(eq=False)
class Loaded:
    """A spec as read: its data, its source map, the findings loading produced, and the folder it resolves against."""

    path: str  # as given by the user
    data: object  # plain Python data, or None when loading failed
    source: SourceMap
    findings: list[Finding]
    base_dir: Path | None = None  # folder relative paths in the spec resolve against

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DECIMAL_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?")


def _yaml11_number_trap(raw: str, value) -> str | None:
    """A plain scalar YAML 1.1 reads as a number in a way nobody means in a spec: octal 017 (= 15), hex
    0x10, sexagesimal 1:30 (= 90), underscores 1_0 (= 10). None for ordinary decimals."""
    text = raw.strip()
    if isinstance(value, int) and _DECIMAL_INT.fullmatch(text):
        return None
    if isinstance(value, float) and _DECIMAL_FLOAT.fullmatch(text):
        return None
    kind = ("sexagesimal (base 60)" if ":" in text else "hexadecimal" if text.lower().lstrip("+-").startswith("0x")
            else "binary" if text.lower().lstrip("+-").startswith("0b") else "with _ digit separators" if "_" in text
            else "octal" if text.lstrip("+-").startswith("0") else "a non-decimal number")
    return f"YAML 1.1 reads {raw!r} as {kind}: {value!r}"


class _Abort(Exception):
    def __init__(self, finding: Finding):
        self.finding = finding


def _pos(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _err(fid: str, slug: str, msg: str, pos=None, pointer: str = "", remediation: str = "") -> Finding:
    line, col = pos if pos else (None, None)
    return Finding(fid, slug, "error", msg, pointer=pointer, remediation=remediation, line=line, column=col)


class _Walker:
    def __init__(self, source: SourceMap):
        self.source = source
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()
        self.findings: list[Finding] = []

    def walk(self, node, parts: list, depth: int, key_pos=None):
        self.nodes += 1
        if id(node) in self.seen:
            self.aliases += 1
        self.seen.add(id(node))
        pointer = pointer_join(parts)
        pos = _pos(node.start_mark)
        if self.nodes > MAX_NODES or self.aliases > MAX_ALIASES:
            raise _Abort(_err("PF003", "input-too-large",
                              f"the document expands to more than {MAX_NODES:,} nodes or uses more than {MAX_ALIASES} aliases "
                              "(an alias bomb?); a spec has a few hundred", pos, pointer,
                              "write the values out instead of using YAML anchors and aliases"))
        if depth > MAX_DEPTH:
            raise _Abort(_err("PF003", "input-too-large", f"nesting deeper than {MAX_DEPTH} levels", pos, pointer))
        if isinstance(node, yaml.MappingNode):
            self.source.locs[pointer] = Loc(key_pos, pos)
            out: dict = {}
            for k_node, v_node in node.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    self.findings.append(_err("PF004", "not-a-spec", "a mapping key must be a plain string, not a "
                                              + ("list" if isinstance(k_node, yaml.SequenceNode) else "mapping"),
                                              _pos(k_node.start_mark), pointer))
                    continue
                key = k_node.value
                kpos = _pos(k_node.start_mark)
                if k_node.tag == "tag:yaml.org,2002:merge":
                    self.findings.append(_err("PF004", "not-a-spec", "YAML merge keys (<<) are not supported in a spec",
                                              kpos, pointer, "write the keys out"))
                    continue
                if key in out:
                    first = self.source.locs.get(pointer_join(parts + [key]))
                    where = f" (first at line {first.key[0]})" if first and first.key else ""
                    self.findings.append(_err("PF002", "duplicate-key",
                                              f"duplicate key '{key}'{where}: YAML keeps only the last one",
                                              kpos, pointer_join(parts + [key]), "remove one of the two"))
                    continue
                out[key] = self.walk(v_node, parts + [key], depth + 1, kpos)
            return out
        if isinstance(node, yaml.SequenceNode):
            self.source.locs[pointer] = Loc(key_pos, pos)
            return [self.walk(item, parts + [i], depth + 1, None) for i, item in enumerate(node.value)]
        # scalar
        plain = not node.style
        self.source.locs[pointer] = Loc(key_pos, pos, raw=node.value, plain=plain)
        try:
            value = _constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.findings.append(_err("PF001", "yaml-syntax", f"cannot read value: {getattr(exc, 'problem', exc)}",
                                      pos, pointer))
            return None
        except (ValueError, OverflowError):  # e.g. an integer of thousands of digits (int() refuses > 4300)
            self.findings.append(_err("PF012", "wrong-type", f"{node.value[:40]!r}{'...' if len(node.value) > 40 else ''} "
                                      "is not a number planfile can use", pos, pointer, "use a plain number"))
            return None
        if plain and isinstance(value, (int, float)) and not isinstance(value, bool):
            trap = _yaml11_number_trap(node.value, value)
            if trap:
                self.findings.append(_err("PF015", "yaml11-number", trap, pos, pointer,
                                          f'write {value!r} in plain decimal, or quote it ("{node.value}") if it is text'))
        if isinstance(value, float) and not math.isfinite(value):
            self.findings.append(_err("PF012", "wrong-type", f"{node.value!r} is not a finite number", pos, pointer,
                                      "use a finite number"))
            return None
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = node.value  # timestamps, binary: keep the text; the schema says what was expected
        return value


def load_text(raw: bytes, path: str, base_dir: Path | None = None) -> Loaded:
    source = SourceMap(path)

    def fail(f: Finding) -> Loaded:
        return Loaded(path, None, source, [f], base_dir)

    if len(raw) > MAX_BYTES:
        return fail(_err("PF003", "input-too-large",
                         f"the file is {len(raw) / 1e6:.1f} MB; a spec may be at most {MAX_BYTES // 1024} KiB",
                         remediation="a deployment spec is a few KB: is this the right file?"))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        return fail(_err("PF004", "not-a-spec", f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                         (line, col), remediation="save the file as UTF-8"))
    if "\x00" in text:
        return fail(_err("PF004", "not-a-spec", "the file contains NUL bytes: is it binary?", (1, 1)))
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        return fail(_err("PF004", "not-a-spec", "the file is empty",
                         (1, 1), remediation="start from an example: planfile catalog list archetypes, specs/*.yaml"))
    try:
        docs = []
        for node in yaml.compose_all(text, Loader=_Loader):
            docs.append(node)
            if len(docs) > 1:
                return fail(_err("PF004", "not-a-spec",
                                 "the file holds more than one YAML document ('---'); a spec is one document",
                                 _pos(node.start_mark), remediation="put each deployment in its own file"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return fail(_err("PF001", "yaml-syntax", f"YAML syntax error: {problem}", _pos(mark) if mark else None,
                         remediation="check indentation (spaces, not tabs) and quoting around this line"))
    except yaml.YAMLError as exc:
        return fail(_err("PF001", "yaml-syntax", f"YAML syntax error: {exc}"))
    except RecursionError:
        return fail(_err("PF003", "input-too-large", f"nesting is too deep to read (more than {MAX_DEPTH} levels)"))
    node = docs[0] if docs else None
    if node is None:
        return fail(_err("PF004", "not-a-spec", "the file is empty", (1, 1)))
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"a single value ({node.value!r:.40})"
        return fail(_err("PF004", "not-a-spec", f"a spec is a mapping (apiVersion:, kind:, ...), but this file holds {kind}",
                         _pos(node.start_mark), remediation="start from an example in specs/"))
    walker = _Walker(source)
    try:
        data = walker.walk(node, [], 0)
    except _Abort as abort:
        return fail(abort.finding)
    except RecursionError:
        return fail(_err("PF003", "input-too-large", f"nesting is too deep to read (more than {MAX_DEPTH} levels)"))
    return Loaded(path, data, source, walker.findings, base_dir)


def load_path(path: str) -> Loaded:
    """Load a spec file; `-` reads standard input."""
    import sys

    if path == "-":
        raw = sys.stdin.buffer.read(MAX_BYTES + 1)
        return load_text(raw, "<stdin>", Path.cwd())
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
            if len(raw) > MAX_BYTES:
                size = p.stat().st_size
                return Loaded(path, None, SourceMap(path), [_err(
                    "PF003", "input-too-large",
                    f"the file is {size / 1e6:.1f} MB; a spec may be at most {MAX_BYTES // 1024} KiB",
                    remediation="a deployment spec is a few KB: is this the right file?")], p.parent)
    except IsADirectoryError:
        return Loaded(path, None, SourceMap(path), [_err("PF004", "not-a-spec", "is a directory, not a spec file")])
    except FileNotFoundError:
        return Loaded(path, None, SourceMap(path), [_err("PF004", "not-a-spec", "no such file")])
    except OSError as exc:
        return Loaded(path, None, SourceMap(path), [_err("PF004", "not-a-spec", f"cannot read: {exc.strerror}")])
    return load_text(raw, path, p.parent)
