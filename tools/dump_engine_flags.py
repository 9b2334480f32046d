"""Dump an engine's option manifest from its own argument parser (catalog/engine-flags/*.json).

Runs under a Python that has the engine installed (the parsers need no GPU: .ci/engine-venv.sh builds one
with a CPU torch), never under planfile's:

    DIR/bin/python tools/dump_engine_flags.py vllm   > catalog/engine-flags/vllm-0.33.0.json
    DIR/bin/python tools/dump_engine_flags.py sglang > catalog/engine-flags/sglang-0.5.23.json

vLLM: the `vllm serve` sub-command's parser exactly as vllm.entrypoints.cli.main builds it. SGLang: the
parser `python -m sglang.launch_server` builds (ServerArgs.add_cli_args). One entry per argparse action, in
parser order: flags, dest, type (the converter's name), choices, default, bool_optional (BooleanOptional
action: --X / --no-X), store_true; a positional as {"positional": dest}. planner/render/flags.py reads
exactly these fields. The engine and version dumped are printed on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")


def _scalar(v):
    """A default as JSON: numbers, strings, booleans and null as they are, anything else (a dict, a list, an
    enum member) as its repr(); choices as their str(): the form of ../shared/reference/engine-flags/."""
    return v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)


def _choice(c):
    return str(c)


def entries(parser: argparse.ArgumentParser) -> list[dict]:
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            continue
        if not a.option_strings:
            out.append({"positional": a.dest})
            continue
        t = a.type
        out.append({"flags": list(a.option_strings), "dest": a.dest,
                    "type": None if t is None else getattr(t, "__name__", type(t).__name__),
                    "choices": [_choice(c) for c in a.choices] if a.choices is not None else None,
                    "default": _scalar(a.default),
                    "bool_optional": isinstance(a, argparse.BooleanOptionalAction),
                    "store_true": isinstance(a, argparse._StoreTrueAction)})
    return out


def vllm_parser() -> argparse.ArgumentParser:
    import vllm.entrypoints.cli.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vLLM CLI")
    sub = parser.add_subparsers(required=False, dest="subparser")
    (cmd,) = [c for c in serve.cmd_init() if c.name == "serve"]
    return cmd.subparser_init(sub)


def sglang_parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine", choices=("vllm", "sglang"))
    a = ap.parse_args(argv)
    from importlib.metadata import version

    parser = vllm_parser() if a.engine == "vllm" else sglang_parser()
    print(f"{a.engine} {version(a.engine)}", file=sys.stderr)
    json.dump(entries(parser), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
