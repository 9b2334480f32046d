"""Run rendered engine launches through the engines' own argument parsers (not planfile's manifests).

Runs under the engine venv's Python (.ci/engine-venv.sh: vLLM 0.33.0 and SGLang 0.5.23 with a CPU build of
torch), never under planfile's: it imports nothing of planner. Reads a JSON list of launches on stdin,
each {"id", "engine": "vllm" | "sglang" | "dynamo.vllm" | "dynamo.frontend", "argv": [...], "cwd": dir}, and prints one JSON list of
{"id", "ok", "error"}.

- vLLM: the `vllm serve` sub-command exactly as vllm.entrypoints.cli.main builds it (FlexibleArgumentParser,
  ServeSubcommand.subparser_init, which reads `--config FILE` relative to the working directory), then the
  sub-command's own validate() and AsyncEngineArgs.from_cli_args, which runs the engine arguments'
  __post_init__ checks, and the SchedulerConfig create_engine_config() would build from them (its cross-option
  checks: the token budget against max_num_seqs and max_model_len). create_engine_config() itself is not run:
  it needs the checkpoint's config.json from the Hub (offline here) and a GPU platform.
- NVIDIA Dynamo's vLLM worker args (`python3 -m dynamo.vllm`, the DynamoGraphDeployment's workers): Dynamo
  1.6.1's own parse_args (Dynamo's flags split from vLLM 0.31's engine arguments, AsyncEngineArgs built, its
  cross-checks run). Dynamo's SGLang worker parser imports torchvision (not installable beside this torch),
  so the SGLang workers' args go through SGLang 0.5.21's prepare_server_args instead.
- NVIDIA Dynamo's frontend (`python3 -m dynamo.frontend`): Dynamo 1.6.1's own parse_args and
  FrontendConfig.validate().
- SGLang: sglang.srt.server_args.prepare_server_args, what `python -m sglang.launch_server` calls (argparse
  with its types and choices, --config merging). ServerArgs.resolve_once() is not run: it loads the model
  config and imports torchvision, neither available here; the cross-option rules planfile knows are
  checked by `planfile check` itself (planner/render/engines.py, conflicts).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
# HF_HUB_OFFLINE stays unset: with it, EngineArgs.__post_init__ resolves the repo id to a local snapshot
# (get_model_path), a Hub look-up the parser itself does not make.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def _vllm_parser():
    import vllm.entrypoints.cli.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vLLM CLI")
    sub = parser.add_subparsers(required=False, dest="subparser")
    cmds = {}
    for cmd in serve.cmd_init():
        cmd.subparser_init(sub).set_defaults(dispatch_function=cmd.cmd)
        cmds[cmd.name] = cmd
    return parser, cmds


def check_vllm(argv: list[str]) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    parser, cmds = _vllm_parser()  # a fresh parser per launch: FlexibleArgumentParser keeps state
    args = parser.parse_args(argv)
    cmds[args.subparser].validate(args)
    if getattr(args, "model_tag", None):
        args.model = args.model_tag
    _vllm_scheduler(AsyncEngineArgs.from_cli_args(args))


def _vllm_scheduler(a) -> None:
    """vLLM's SchedulerConfig as create_engine_config() builds it (vllm/engine/arg_utils.py), from the parsed
    engine arguments and the rendered --max-model-len (the model's own length needs its config.json): its
    cross-option checks run, e.g. max_num_batched_tokens >= max_num_seqs (config/scheduler.py)."""
    from vllm.config import SchedulerConfig

    if None in (a.max_num_batched_tokens, a.max_num_seqs, a.max_model_len):
        return  # left to the engine's defaults, which it reconciles itself
    SchedulerConfig(runner_type="generate", max_num_batched_tokens=a.max_num_batched_tokens, max_num_seqs=a.max_num_seqs,
                    max_model_len=a.max_model_len, enable_chunked_prefill=a.enable_chunked_prefill is not False,
                    is_encoder_decoder=False)


def check_sglang(argv: list[str]) -> None:
    from sglang.srt.server_args import prepare_server_args

    prepare_server_args(argv)


def check_dynamo_vllm(argv: list[str]) -> None:
    """NVIDIA Dynamo's vLLM worker (`python3 -m dynamo.vllm`): its own parser, which splits Dynamo's flags
    from vLLM's engine arguments and builds the engine config (dynamo/vllm/args.py parse_args, 1.6.1)."""
    from dynamo.vllm.args import parse_args

    parse_args(argv)


def check_dynamo_frontend(argv: list[str]) -> None:
    """NVIDIA Dynamo's frontend (`python3 -m dynamo.frontend`, the graph's HTTP server and router): its own
    parse_args (dynamo/frontend/main.py, 1.6.1), which reads sys.argv, builds FrontendConfig, validates it and
    exits on an unknown argument."""
    from dynamo.frontend.main import parse_args

    saved = sys.argv
    sys.argv = ["dynamo.frontend", *argv]
    try:
        parse_args()
    finally:
        sys.argv = saved


CHECKS = {"vllm": check_vllm, "sglang": check_sglang, "dynamo.vllm": check_dynamo_vllm,
          "dynamo.frontend": check_dynamo_frontend}


def main() -> int:
    launches = json.load(sys.stdin)
    results = []
    here = os.getcwd()
    for launch in launches:
        err = io.StringIO()
        try:
            os.chdir(launch.get("cwd") or here)
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                CHECKS[launch["engine"]](launch["argv"])
            results.append({"id": launch["id"], "ok": True, "error": ""})
        except SystemExit as e:  # argparse: usage error, message on stderr
            msg = " | ".join(line.strip() for line in err.getvalue().splitlines() if "error" in line.lower())
            results.append({"id": launch["id"], "ok": False, "error": msg[:800] or f"exit {e.code}"})
        except Exception as e:  # noqa: BLE001 - every refusal is a result
            results.append({"id": launch["id"], "ok": False, "error": f"{type(e).__name__}: {e}"})
        finally:
            os.chdir(here)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
