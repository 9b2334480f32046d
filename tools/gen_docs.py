"""Regenerate docs/checks.md from the check registry (a test fails when it is stale)."""

from pathlib import Path

from planner.checks import reference_markdown

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "checks.md"
    out.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {out}")
