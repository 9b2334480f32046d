"""Engine option manifests: the options the real engine parsers accept, per version.

The manifests in catalog/engine-flags/ are dumped from the real argparse parsers of vLLM 0.31/0.32/0.33
and SGLang 0.5.21/0.5.23 by tools/dump_engine_flags.py (vLLM 0.32/0.33 equal ../shared/reference/
engine-flags/, dumped the same way); TensorRT-LLM's (it cannot be installed without NVIDIA's
CUDA package index) is derived from its serve.py by tools/trtllm_manifest.py, which reads the click
command with `ast` and records the commit it read. A rendered command line, and the `extra_args` a user
passes through, are checked here: the option exists, its value parses as the parser's type, and it is
among the parser's choices.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from planner.records import record
from planner.resources import data_dir

INT_RE = re.compile(r"^-?\d+$")



@record(frozen=True, eq=False)
class Option:
    """One option of an engine's real argument parser (from its option manifest)."""

    flags: tuple[str, ...]
    dest: str
    type: str | None
    choices: tuple | None
    takes_value: bool
    negatable: bool  # argparse BooleanOptionalAction: --X / --no-X (vLLM 0.33 keeps --no-enable-* as hidden aliases)


class Manifest:
    def __init__(self, name: str, entries: list[dict]):
        self.name = name
        self.options: dict[str, Option] = {}
        self.positionals = [e["positional"] for e in entries if "positional" in e]
        for e in entries:
            if "flags" not in e:
                continue
            is_flag = e.get("store_true") or e.get("bool_optional") or (e.get("type") is None and isinstance(e.get("default"), bool))
            opt = Option(tuple(e["flags"]), e["dest"], e.get("type"), tuple(e["choices"]) if e.get("choices") else None,
                         not is_flag, bool(e.get("bool_optional")))
            for f in e["flags"]:
                self.options[f] = opt
            if opt.negatable:
                for f in e["flags"]:
                    if f.startswith("--enable-"):
                        self.options["--no-" + f[2:]] = opt

    def check_value(self, opt: Option, flag: str, value: str, env_refs=()) -> str | None:
        if value in env_refs or any(value == ref or value.startswith(ref + ":") for ref in env_refs):
            return None  # $(VAR) that planfile writes on purpose: expanded by Kubernetes from the pod's environment
        t = opt.type or "str"
        if t in ("int", "human_readable_int") and not INT_RE.fullmatch(value):
            return f"{flag} expects an integer, got {value!r}"
        if t == "human_readable_int_or_auto" and not (INT_RE.fullmatch(value) or value in ("auto", "-1")):
            return f"{flag} expects an integer or auto, got {value!r}"
        if t == "float":
            try:
                float(value)
            except ValueError:
                return f"{flag} expects a number, got {value!r}"
        if opt.choices and value not in [str(c) for c in opt.choices]:
            return f"{flag} {value!r} is not one of {', '.join(map(str, opt.choices))}"
        return None

    def check_argv(self, argv: list[str], env_refs=()) -> list[str]:
        """Errors for an argument list (without the program name and positionals handled by the caller)."""
        errors = []
        i = 0
        while i < len(argv):
            a = argv[i]
            if not a.startswith("-"):
                errors.append(f"unexpected positional argument {a!r}")
                i += 1
                continue
            flag, eq, inline = a.partition("=")
            opt = self.options.get(flag)
            if opt is None:
                errors.append(f"no option {flag}")
                i += 2 if (not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-")) else 1
                continue
            if not opt.takes_value:
                if eq:
                    errors.append(f"{flag} takes no value")
                i += 1
                continue
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                errors.append(f"{flag} needs a value")
                break
            err = self.check_value(opt, flag, value, env_refs)
            if err:
                errors.append(err)
        return errors

    def split(self, argv: list[str]) -> list[tuple[str, str | None, str | None, int]]:
        """(flag as written, value or None, dest or None, words consumed) per option of an argument list, by
        the parser's own knowledge of which options take a value; `--flag=value` is split at the first '='."""
        out = []
        i = 0
        while i < len(argv):
            a = argv[i]
            flag, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
            opt = self.options.get(flag)
            if eq:
                out.append((flag, inline, opt.dest if opt else None, 1))
                i += 1
            elif opt is not None and opt.takes_value and i + 1 < len(argv):
                out.append((flag, argv[i + 1], opt.dest, 2))
                i += 2
            elif opt is None and a.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                out.append((flag, argv[i + 1], None, 2))
                i += 2
            else:
                out.append((flag, None, opt.dest if opt else None, 1))
                i += 1
        return out

    def dest(self, flag: str) -> str | None:
        opt = self.options.get(flag.partition("=")[0])
        return opt.dest if opt else None

    def check_config(self, config: dict) -> list[str]:
        """vLLM/SGLang --config YAML: keys are long option names without the dashes."""
        errors = []
        for k, v in config.items():
            flag = "--" + str(k).replace("_", "-")
            opt = self.options.get(flag)
            if opt is None:
                errors.append(f"{self.name} has no option {flag} (config key {k!r})")
                continue
            if v is False:
                errors.append(f"config key {k!r}: false is dropped silently by `vllm serve --config`; write no-{k}: true")
            elif not opt.takes_value:
                if v is not True:
                    errors.append(f"config key {k!r} is a switch: write true")
            else:
                err = self.check_value(opt, flag, str(v) if not isinstance(v, (dict, list)) else json.dumps(v))
                if err:
                    errors.append(err)
        return errors


@lru_cache(maxsize=None)
def manifest(engine_id: str, version: str) -> Manifest:
    from planner import catalog

    engine = catalog.engines().get(engine_id).entry
    files = engine.get("flag_manifests") or {}
    fname = files.get(version) or files[sorted(files)[-1]]
    entries = json.loads((data_dir("catalog") / "engine-flags" / fname).read_text(encoding="utf-8"))
    return Manifest(f"{engine['name']} {version}", entries)
