"""Files a spec names, read and validated like the spec itself: `calibration:` (YAML) and `model.hf_config`
(a Hugging Face config.json).

A pull request controls these files as much as the spec, so each goes through the bounded reader
(planner.sidefile), a JSON Schema with physical ranges (schemas/calibration.schema.json,
schemas/hf-config.schema.json) and cross-field checks, and every problem names `file:line:column`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from planner import sidefile

MAX_CALIBRATION_BYTES = 256 * 1024
MAX_HF_CONFIG_BYTES = 4 * 1024 * 1024


class SideFileProblem(Exception):
    """One or more problems with a side file; `problems` are 'file:line:col: message' strings."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def _schema_problems(data, schema_name: str, where, label: str) -> list[str]:
    from planner.validate import validator_for

    out = []
    for err in sorted(validator_for(schema_name).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        parts = list(err.absolute_path)
        ptr = "/" + "/".join(map(str, parts))
        v = err.validator
        if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "greater than",
                    "exclusiveMaximum": "less than"}[v]
            msg = f"{err.instance!r} is out of range; expected {word} {err.validator_value}"
        elif v == "type":
            msg = f"expected {err.validator_value}, got {type(err.instance).__name__} {json.dumps(err.instance)[:40]}"
        elif v == "additionalProperties":
            extra = sorted(set(err.instance) - set((err.schema.get("properties") or {})))
            msg = f"unknown field {', '.join(map(repr, extra))}"
        else:
            msg = err.message
        line, col = where(parts)
        out.append(f"{label}:{line}:{col}: {ptr}: {msg}")
    return out


def load_calibration(path: Path, engine_id: str | None = None, gpu_id: str | None = None) -> dict:
    """A calibration file's factors, validated; raises SideFileProblem."""
    from planner.loader import load_text

    label = str(path)
    try:
        raw = sidefile.read_bytes(path, MAX_CALIBRATION_BYTES, "calibration file")
    except sidefile.SideFileError as exc:
        raise SideFileProblem([f"{label}: {exc}"]) from None
    loaded = load_text(raw, label, path.parent)
    errors = [f for f in loaded.findings if f.severity == "error"]
    if errors:
        raise SideFileProblem([f"{label}:{f.line or 1}:{f.column or 1}: {f.message}" for f in errors])
    data = loaded.data
    if not isinstance(data, dict):
        raise SideFileProblem([f"{label}:1:1: a calibration file is a mapping (engine:, gpu:, kernel_scale:, ...)"])

    def where(parts):
        from planner.diagnostics import pointer_join

        line, col = loaded.source.position(pointer_join(parts))
        return line or 1, col or 1

    problems = _schema_problems(data, "calibration", where, label)
    if not problems and engine_id and gpu_id and (data["engine"] != engine_id or data["gpu"] != gpu_id):
        line, col = where(["engine"])
        problems.append(f"{label}:{line}:{col}: fitted on {data['engine']} / {data['gpu']}, but the spec runs {engine_id} "
                        f"on {gpu_id}: factors do not transfer between engines or GPUs")
    if problems:
        raise SideFileProblem(problems)
    return data


def _json_position(text: str, parts: list) -> tuple[int, int]:
    """Line and column of the deepest key of a JSON path that occurs in the text (json keeps no marks)."""
    for key in reversed([p for p in parts if isinstance(p, str)]):
        m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
        if m:
            before = text[: m.start()]
            return before.count("\n") + 1, m.start() - (before.rfind("\n") + 1) + 1
    return 1, 1


def read_hf_config(path: Path) -> dict:
    """A config.json as a dict, bounded, parsed and validated against the subset planfile reads."""
    label = str(path)
    try:
        text = sidefile.read_text(path, MAX_HF_CONFIG_BYTES, "config.json")
    except sidefile.SideFileError as exc:
        raise SideFileProblem([f"{label}: {exc}"]) from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SideFileProblem([f"{label}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"]) from None
    except RecursionError:
        raise SideFileProblem([f"{label}:1:1: nested too deeply to be a config.json"]) from None
    if not isinstance(cfg, dict):
        raise SideFileProblem([f"{label}:1:1: config.json must hold a JSON object"])

    def where(parts):
        return _json_position(text, parts)

    problems = _schema_problems(cfg, "hf-config", where, label)
    if isinstance(cfg.get("text_config"), dict):
        problems += _schema_problems(cfg["text_config"], "hf-config", lambda p: where(["text_config", *p]), label)
    if problems:
        raise SideFileProblem(problems)
    return cfg
