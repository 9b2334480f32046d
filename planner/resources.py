"""Where the data folders (schemas/, catalog/, templates/) live.

In a wheel they are installed inside the package as `planner/_data/<name>` (pyproject force-include);
in a source checkout or an editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PKG.parent / name


@lru_cache(maxsize=None)
def schema(name: str) -> dict:
    """A JSON Schema from schemas/, by file stem (e.g. "deployment")."""
    path = data_dir("schemas") / f"{name}.schema.json"
    import json

    return json.loads(path.read_text(encoding="utf-8"))
