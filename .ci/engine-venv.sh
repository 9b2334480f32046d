#!/bin/sh
# Build the engine venv tests/test_engine_parsers.py runs the rendered launches in: vLLM 0.33.0 and
# SGLang 0.5.23, whose own argument parsers judge every rendered command line and config file.
# Usage: sh .ci/engine-venv.sh DIR   (then PLANFILE_ENGINE_PYTHON=DIR/bin/python)
#
# vLLM pins a CUDA build of torch 2.14.0 (several GB) and GPU kernel packages; the parsers need none of
# them. So: torch 2.13.0 (the CPU build pip finds on this kind of machine), both engines with --no-deps,
# and the pure-Python packages their parser modules import, pinned in .ci/engine-requirements.txt.
set -eu
DIR=${1:?usage: engine-venv.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$DIR"
"$DIR/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$DIR/bin/pip" install -q --disable-pip-version-check --no-deps vllm==0.33.0 sglang==0.5.23
"$DIR/bin/pip" install -q --disable-pip-version-check --no-deps -r "$HERE/engine-requirements.txt"
"$DIR/bin/python" -c "import vllm.entrypoints.cli.serve, sglang.srt.server_args" >/dev/null 2>&1
