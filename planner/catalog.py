"""The catalog: GPUs, models, prices, archetypes, engines and efficiency factors, read from catalog/*.yaml.

Lookups accept ids and aliases case-insensitively and answer "did you mean" for near misses.
"""

from __future__ import annotations

from functools import lru_cache

import yaml

from planner.records import record
from planner.resources import data_dir

KINDS = ("gpus", "models", "checkpoints", "prices", "archetypes", "engines", "efficiency", "kernels")


def _norm(s: str) -> str:
    return s.strip().lower().replace("_", "-").replace(" ", "-")


@lru_cache(maxsize=None)
def raw(kind: str) -> dict:
    """The parsed YAML file catalog/<kind>.yaml.

    Parsing the catalog is a third of a cold check, so the parsed data is kept in the user cache folder,
    keyed by a hash of the file's bytes (never stale: an edited file is a new key). A missing,
    corrupt or unwritable cache only means parsing again."""
    import marshal
    import os

    from planner.cache import cache_dir, hasher

    path = data_dir("catalog") / f"{kind}.yaml"
    data = path.read_bytes()
    key = os.path.join(cache_dir(), "catalog", f"{kind}-{hasher(data).hexdigest()[:32]}.marshal")
    try:
        with open(key, "rb") as fh:
            # read whole, then decoded: marshal.load on the file object reads piecemeal, ~8x slower (~9 ms of a
            # cold check for the eight catalogs it reads)
            return marshal.loads(fh.read())
    except (OSError, EOFError, ValueError, TypeError):
        pass
    doc = yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        os.makedirs(os.path.dirname(key), exist_ok=True)
        tmp = f"{key}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            marshal.dump(doc, fh)
        os.replace(tmp, key)
    except (OSError, ValueError):
        pass
    return doc


@record(frozen=True, eq=False)
class Lookup:
    """A catalog lookup: the entry, or the ids a mistyped one is closest to."""

    entry: dict | None
    suggestions: tuple[str, ...] = ()


class Index:
    """Id/alias index over one list of catalog entries."""

    def __init__(self, entries: list[dict]):
        self.entries = entries
        self.by_id = {e["id"]: e for e in entries}
        self._keys: dict[str, dict] = {}
        for e in entries:
            for k in [e["id"], *e.get("aliases", [])]:
                self._keys.setdefault(_norm(k), e)

    def get(self, name: str) -> Lookup:
        e = self._keys.get(_norm(name))
        if e is not None:
            return Lookup(e)
        import difflib  # a miss only (~1 ms of import a check that finds every name does not pay)

        close = difflib.get_close_matches(_norm(name), list(self._keys), n=5, cutoff=0.6)
        ids: list[str] = []
        for k in close:
            i = self._keys[k]["id"]
            if i not in ids:
                ids.append(i)
        return Lookup(None, tuple(ids[:3]))

    def ids(self) -> list[str]:
        return [e["id"] for e in self.entries]


@lru_cache(maxsize=None)
def gpus() -> Index:
    return Index(raw("gpus")["gpus"])


@lru_cache(maxsize=None)
def models() -> Index:
    return Index(raw("models")["models"])


@lru_cache(maxsize=None)
def engines() -> Index:
    return Index(raw("engines")["engines"])


@lru_cache(maxsize=None)
def archetypes() -> Index:
    return Index(raw("archetypes")["archetypes"])


@lru_cache(maxsize=None)
def providers() -> Index:
    return Index(raw("prices")["providers"])


def price(provider: str, gpu_id: str) -> dict | None:
    for p in raw("prices")["prices"]:
        if p["provider"] == provider and p["gpu"] == gpu_id:
            return p
    return None


def prices_for_gpu(gpu_id: str) -> list[dict]:
    return sorted((p for p in raw("prices")["prices"] if p["gpu"] == gpu_id), key=lambda p: p["usd_per_gpu_hour"])


def efficiency(engine: str, vendor: str = "nvidia") -> dict:
    """The engine's host costs and kernel scale (catalog/efficiency.yaml), with the vendor factor applied
    for vendors whose kernel curves are borrowed."""
    eff = raw("efficiency")
    entry = dict(eff["engines"][engine])
    v = eff["vendors"].get(vendor)
    entry["vendor_scale"] = float(v["kernel_scale"]) if v else 1.0
    entry["vendor_source"] = v["source"] if v else ""
    entry["vendor_fitted"] = bool(v.get("fitted")) if v else False
    entry["key"] = f"{engine}" + (f" on {vendor}" if v else "")
    return entry


def hint(kind: str, name: str, suggestions) -> str:
    if suggestions:
        return "did you mean " + " or ".join(suggestions) + "?"
    return f"`planfile catalog list {kind}` lists the known ids"


def engine_version(eng: dict, ver: str) -> str:
    """The catalog's name of an engine version as a spec may write it: "0.33" or the release "0.33.0" (what the
    image tag and `pip show` say) are the same vLLM 0.33; an unknown version is returned as written."""
    if ver in eng["versions"]:
        return ver
    if ver.endswith(".0") and ver[:-2] in eng["versions"]:
        return ver[:-2]
    return ver
