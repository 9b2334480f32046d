#!/bin/sh
# Build the engine venv tests/test_engine_parsers.py runs the rendered launches in: vLLM 0.33.0 and
# SGLang 0.5.23 (and, for disaggregated fleets, 0.31.0 and 0.5.21: what NVIDIA Dynamo 1.6.1 runs), whose
# own argument parsers judge every rendered command line and config file.
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
# the engine versions NVIDIA Dynamo 1.6.1's runtime images run (catalog/engines.yaml `dynamo`), for the
# disaggregated launches: beside the others, picked with PYTHONPATH=DIR/dynamo-engines
# with Dynamo 1.6.1 itself (ai-dynamo, ai-dynamo-runtime), whose dynamo.vllm parser reads the graph's worker args
"$DIR/bin/pip" install -q --disable-pip-version-check --no-deps --target "$DIR/dynamo-engines" \
  vllm==0.31.0 sglang==0.5.21 ai-dynamo==1.6.1 ai-dynamo-runtime==1.6.1
"$DIR/bin/python" -c "import vllm.entrypoints.cli.serve, sglang.srt.server_args" >/dev/null 2>&1
# vLLM 0.32, the older release planfile renders for
"$DIR/bin/pip" install -q --disable-pip-version-check --no-deps --target "$DIR/vllm-0.32" vllm==0.32.0
(cd / && PYTHONPATH="$DIR/dynamo-engines" "$DIR/bin/python" -c "import vllm.entrypoints.cli.serve, sglang.srt.server_args, dynamo.vllm.args") >/dev/null 2>&1
(cd / && PYTHONPATH="$DIR/vllm-0.32" "$DIR/bin/python" -c "import vllm.entrypoints.cli.serve") >/dev/null 2>&1
