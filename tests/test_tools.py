"""tools/trtllm_manifest.py: the trtllm-serve manifest derived from TensorRT-LLM's click source by `ast`."""

from __future__ import annotations

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import trtllm_manifest  # noqa: E402

SOURCE = '''
@click.command("other")
@click.option("--not-this", type=int)
def other(not_this): ...

@click.command("serve")
@click.argument("model", type=str)
@click.option("--tensor_parallel_size", "--tp_size", type=int, default=1, help="")
@click.option("--config", "--extra_llm_api_options", "extra_llm_api_options", type=str, default=None)
@click.option("--backend", type=ChoiceWithAlias(["pytorch", "tensorrt"], {"trt": "tensorrt"}), default="pytorch")
@click.option("--log_level", type=click.Choice(severity_map.keys()), default="info")
@click.option("--kind", type=click.Choice(["a", "b"]))
@click.option("--max_batch_size", type=int, default=BuildConfig.model_fields["max_batch_size"].default)
@click.option("--trust_remote_code", is_flag=True, default=False)
@click.option("--dirs", type=click.Path(exists=True), multiple=True, default=None)
def serve(model, tensor_parallel_size, extra_llm_api_options, backend, log_level, kind, max_batch_size,
          trust_remote_code, dirs): ...
'''


def test_the_serve_command_options_are_read_from_the_click_source():
    got = trtllm_manifest.options_of(SOURCE)
    assert got[0] == {"positional": "model"}
    by = {e["dest"]: e for e in got[1:]}
    assert list(by) == ["tensor_parallel_size", "extra_llm_api_options", "backend", "log_level", "kind",
                        "max_batch_size", "trust_remote_code", "dirs"]  # source order; "other" is not read
    assert by["tensor_parallel_size"]["flags"] == ["--tensor_parallel_size", "--tp_size"]
    assert by["tensor_parallel_size"]["type"] == "int" and by["tensor_parallel_size"]["default"] == 1
    assert by["extra_llm_api_options"]["flags"] == ["--config", "--extra_llm_api_options"]  # explicit dest
    assert by["backend"]["choices"] == ["pytorch", "tensorrt", "trt"]  # the alias is accepted too
    # what the source computes at import time is not guessed
    assert by["log_level"]["choices"] is None and by["log_level"]["choices_expr"] == "severity_map.keys()"
    assert by["kind"]["choices"] == ["a", "b"] and by["kind"]["default"] is None
    assert by["max_batch_size"]["default"] is None
    assert by["max_batch_size"]["default_expr"] == "BuildConfig.model_fields['max_batch_size'].default"
    assert by["trust_remote_code"]["store_true"] is True and by["trust_remote_code"]["type"] is None
    assert by["dirs"]["multiple"] is True and by["dirs"]["type"] == "str"


def test_the_shipped_manifest_names_the_source_it_was_derived_from():
    doc = json.loads((ROOT / "catalog" / "engine-flags" / "trtllm-1.2.json").read_text())
    src = doc[0]["source"]
    assert src["repo"] == "NVIDIA/TensorRT-LLM" and src["path"] == "tensorrt_llm/commands/serve.py"
    assert len(src["commit"]) == 40 and "trtllm_manifest.py" in src["by"]
    flags = {f for e in doc if "flags" in e for f in e["flags"]}
    # every option planfile renders for trtllm-serve is one the source declares
    assert {"--host", "--port", "--backend", "--tp_size", "--pp_size", "--ep_size", "--max_batch_size",
            "--max_num_tokens", "--max_seq_len", "--kv_cache_free_gpu_memory_fraction",
            "--extra_llm_api_options", "--revision"} <= flags
