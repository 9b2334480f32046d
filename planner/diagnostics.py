"""Findings: the one record every stage (load, validate, checks) produces.

A finding is raised against a JSON pointer into the spec; the source map turns the pointer into a
file position at output time (Terraform's "diagnostics against a path" habit), so checks never need
to know about YAML.
"""

from __future__ import annotations

from dataclasses import field, replace

from planner.records import record

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1}


@record(frozen=True)
class Finding:
    """One check's verdict on one place in a spec (what the formatters print, SARIF carries and fixes resolve)."""

    id: str  # stable check id, e.g. "PF201"
    check: str  # slug, e.g. "kv-cache-does-not-fit"
    severity: str
    message: str
    pointer: str = ""  # JSON pointer into the spec, "" = the document
    remediation: str = ""
    line: int | None = None
    column: int | None = None
    waived: bool = False
    waiver_reason: str = ""
    data: dict = field(default_factory=dict, compare=False)

    def located(self, line: int | None, column: int | None) -> "Finding":
        return replace(self, line=line, column=column)

    def sort_key(self) -> tuple:
        return (self.line or 0, self.column or 0, self.id, self.pointer, self.message)

    def to_json(self) -> dict:
        out = {"id": self.id, "check": self.check, "severity": self.severity, "message": self.message,
               "remediation": self.remediation,
               "location": {"path": self.pointer or "/", "line": self.line, "column": self.column}}
        if "fixes" in self.data:
            out["fixes"] = self.data["fixes"]
        if self.waived:
            out["waived"] = True
            out["waiver_reason"] = self.waiver_reason
        return out


def pointer_join(parts) -> str:
    """JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def pointer_parts(pointer: str) -> list[str]:
    if not pointer or pointer == "/":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
