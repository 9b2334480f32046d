"""Derive the trtllm-serve option manifest from TensorRT-LLM's own source, without installing it.

TensorRT-LLM installs only from NVIDIA's package index with CUDA (PyPI's `tensorrt-llm` is a stub that
downloads from pypi.nvidia.com), so its parser cannot be run here the way vLLM's and SGLang's are. Its
`trtllm-serve` command is a click command in tensorrt_llm/commands/serve.py; this script reads that file
with `ast` (nothing is imported or executed) and writes every option of the `serve` command the way
planner/render/flags.py reads manifests: flags, dest (click's parameter name), type, choices, default,
store_true (is_flag). A value the source computes at import time (a default from BuildConfig, choices from
a registry's keys) cannot be read statically: it is written as null with the expression beside it
(`default_expr`, `choices_expr`), so the manifest never claims what the source does not say.

    python tools/trtllm_manifest.py TensorRT-LLM/tensorrt_llm/commands/serve.py \\
        --commit <sha of the checkout> --out catalog/engine-flags/trtllm-1.2.json

The first entry records where the manifest came from (repository, path, commit).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

TYPES = {"int": "int", "str": "str", "float": "float", "bool": None}


def _literal(node):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False, None


def _is_click(call: ast.AST, name: str) -> bool:
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == name
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "click")


def _type(node) -> tuple[str | None, list | None, str | None]:
    """(type, choices, choices expression) of a click option's `type=`."""
    if node is None:
        return "str", None, None
    if isinstance(node, ast.Name):
        return TYPES.get(node.id, "str"), None, None
    if isinstance(node, ast.Call):
        fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if fn in ("Choice", "ChoiceWithAlias") and node.args:
            ok, choices = _literal(node.args[0])
            if not ok:
                return "str", None, ast.unparse(node.args[0])
            choices = list(choices)
            if fn == "ChoiceWithAlias" and len(node.args) > 1:
                ok, aliases = _literal(node.args[1])
                if ok:
                    choices += [a for a in aliases if a not in choices]  # the alias is accepted on the command line
            return "str", choices, None
        if fn == "Path":
            return "str", None, None
        if fn in ("IntRange",):
            return "int", None, None
        if fn in ("FloatRange",):
            return "float", None, None
    return "str", None, None


def _dest(names: list[str]) -> str:
    """click's parameter name: an identifier among the names, else the first long option, else the first."""
    for n in names:
        if n.isidentifier():
            return n
    longs = [n for n in names if n.startswith("--")]
    return (longs[0] if longs else names[0]).lstrip("-").replace("-", "_").lower()


def options_of(source: str, command: str = "serve") -> list[dict]:
    tree = ast.parse(source)
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        names = [d for d in fn.decorator_list if _is_click(d, "command")]
        if not names or not names[0].args or _literal(names[0].args[0])[1] != command:
            continue
        entries: list[dict] = []
        # decorators apply bottom-up, but click lists parameters in source order: keep the source order
        for d in fn.decorator_list:
            if _is_click(d, "argument"):
                entries.append({"positional": ast.literal_eval(d.args[0])})
            elif _is_click(d, "option"):
                names = [ast.literal_eval(a) for a in d.args]
                kw = {k.arg: k.value for k in d.keywords}
                is_flag = bool(_literal(kw["is_flag"])[1]) if "is_flag" in kw else False
                typ, choices, choices_expr = _type(kw.get("type"))
                entry = {"flags": sorted((n for n in names if n.startswith("-")), key=lambda n: (not n.startswith("--"), n)),
                         "dest": _dest(names), "type": None if is_flag else typ, "choices": choices}
                if "default" in kw:
                    ok, default = _literal(kw["default"])
                    entry["default"] = default if ok else None
                    if not ok:
                        entry["default_expr"] = ast.unparse(kw["default"])
                else:
                    entry["default"] = False if is_flag else None
                entry.update(bool_optional=False, store_true=is_flag)
                if "multiple" in kw and _literal(kw["multiple"])[1]:
                    entry["multiple"] = True
                if choices_expr:
                    entry["choices_expr"] = choices_expr
                entries.append(entry)
        return entries
    raise SystemExit(f"no @click.command({command!r}) in the source")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("serve_py", type=Path, help="tensorrt_llm/commands/serve.py of a TensorRT-LLM checkout")
    ap.add_argument("--commit", required=True, help="the commit the file was read at (recorded in the manifest)")
    ap.add_argument("--repo", default="NVIDIA/TensorRT-LLM")
    ap.add_argument("--out", type=Path, help="write here (default: stdout)")
    a = ap.parse_args(argv)
    entries = options_of(a.serve_py.read_text(encoding="utf-8"))
    doc = [{"source": {"repo": a.repo, "path": "tensorrt_llm/commands/serve.py", "commit": a.commit,
                       "by": "tools/trtllm_manifest.py (ast of the `serve` click command)"}}] + entries
    text = json.dumps(doc, indent=1) + "\n"
    if a.out:
        a.out.write_text(text, encoding="utf-8")
        print(f"wrote {a.out}: {sum('flags' in e for e in entries)} options", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
