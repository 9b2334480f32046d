"""The checkpoint a plan loads, resolved once: repository, variant, stored format, download size, and
whether (and with which flag) the engine quantizes it at load time.

`check`, `explain`, the JSON, `render` and the report all read the one `Checkpoint` this module returns,
so the weights planned in memory are the weights the rendered engine command downloads and loads. A
spec whose precision no known checkpoint (nor an online quantization path of the engine on that GPU)
delivers is refused here, with a fix that names a real repository or the flag. Pure: catalog in, record
out, no I/O.
"""

from __future__ import annotations


from planner import catalog
from planner.physics import arch
from planner.records import record

QUANTIZED = ("fp8", "int8", "int4", "fp4")
PTR_W = "/precision/weights"
GENERIC_FORMAT = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8-w8a8", "int4": "awq", "fp4": "nvfp4"}


@record(frozen=True, eq=False)
class Checkpoint:
    """The weights an engine loads for a spec: repository, stored and resident precision, size and source."""

    repo: str  # what the engine loads (a Hub repository or a path)
    variant: str | None  # base | instruct | None (unknown repository)
    stored: str  # precision of the files: bf16 fp16 fp8 int8 int4 fp4
    format: str  # storage format (catalog/checkpoints.yaml formats)
    runtime_format: str  # format resident in GPU memory (the online target when the engine quantizes)
    online_quant: str | None  # engine flag value (--quantization X) when the engine quantizes at load time
    download_gb: float  # bytes fetched and read at start-up (GB = 1e9)
    resident_gb: float  # weights in GPU memory over the whole replica, before TP/PP split
    body_bytes_per_param: float  # resident bytes per non-expert transformer parameter
    expert_bytes_per_param: float  # resident bytes per routed-expert parameter
    known: bool  # the repository is in the catalog (its format is known, not assumed)
    source: str
    why: str  # how it was chosen, in one sentence

    def to_json(self) -> dict:
        return {"repo": self.repo, "variant": self.variant, "stored_precision": self.stored, "format": self.format,
                "runtime_format": self.runtime_format, "online_quantization": self.online_quant,
                "download_gb": round(self.download_gb, 2), "resident_gb": round(self.resident_gb, 2),
                "known": self.known, "why": self.why}


class CheckpointError(Exception):
    def __init__(self, message: str, pointer: str, fix: str = ""):
        super().__init__(message)
        self.message, self.pointer, self.fix = message, pointer, fix


def formats() -> dict:
    return catalog.raw("checkpoints")["formats"]


def entries(model_id: str) -> list[dict]:
    return [c for c in catalog.raw("checkpoints")["checkpoints"] if c["model"] == model_id]


_REPOS: tuple = (None, {})  # (the catalog's checkpoint list, its repo and alias names lowercased -> entry)


def find_repo(repo: str) -> dict | None:
    """The catalog entry whose repo or alias is `repo` (case-insensitive; the first in catalog order). The
    index is built once per catalog: check asks for every candidate plan search and fix trial resolves."""
    global _REPOS
    table = catalog.raw("checkpoints")["checkpoints"]
    if _REPOS[0] is not table:
        index: dict[str, dict] = {}
        for c in table:
            for name in (c["repo"], *c.get("aliases", [])):
                index.setdefault(name.lower(), c)
        _REPOS = (table, index)
    return _REPOS[1].get(repo.strip().lower())


def supports(engine: dict, gpu: dict, fmt: str) -> bool:
    rule = (engine.get("formats") or {}).get(fmt)
    if rule is None:
        return False
    if "vendors" in rule and gpu["vendor"] not in rule["vendors"]:
        return False
    return "generations" not in rule or gpu["generation"] in rule["generations"]


def _unsupported(engine: dict, gpu: dict, fmt: str) -> str:
    rule = (engine.get("formats") or {}).get(fmt)
    if rule is None:
        return f"{engine['name']} does not load {fmt} checkpoints"
    where = ", ".join(rule.get("generations") or rule.get("vendors") or [])
    return f"{engine['name']} loads {fmt} checkpoints only on {where}, not on {gpu['id']} ({gpu['generation']})"


def online(engine: dict, gpu: dict, weights: str) -> dict | None:
    rule = (engine.get("online_quantization") or {}).get(weights)
    if rule and gpu["generation"] in rule["generations"]:
        return rule
    return None


def sizes(model: dict, body_b: float, expert_b: float) -> float:
    """Bytes of the weights over the whole model: experts and the rest of the body at their format's
    width, embeddings and LM head in 16-bit (every format here leaves them unquantized)."""
    p = arch.params(model)
    body = p.total - p.embed - p.lm_head - p.expert_total
    return body * body_b + p.expert_total * expert_b + (p.embed + p.lm_head) * 2.0


def _bytes(fmt: str, group_size: int) -> tuple[float, float]:
    f = formats()[fmt]
    b, e = float(f["body_bytes_per_param"]), float(f["expert_bytes_per_param"])
    if fmt in ("awq", "gptq") and group_size != 128:
        b = e = 0.5 + 2.5 / group_size  # a 16-bit scale and a 4-bit zero point per group
    return b, e


def _describe(c: dict) -> str:
    return f"{c['repo']} ({c['variant']}, {c['format']})"


def _fixes_for(model: dict, variant: str, weights: str, engine: dict, gpu: dict) -> str:
    """Real repositories (or the engine flag) that would deliver `weights` for this model and variant."""
    loadable = [c for c in entries(model["id"]) if c["variant"] == variant
                and formats()[c["format"]]["precision"] == weights and engine["id"] in c.get("engines", [engine["id"]])
                and supports(engine, gpu, c["format"])]
    if loadable:
        return "model.name: " + loadable[0]["repo"]
    other = [c for c in entries(model["id"]) if c["variant"] == variant and supports(engine, gpu, c["format"])
             and engine["id"] in c.get("engines", [engine["id"]])]
    precs = sorted({formats()[c["format"]]["precision"] for c in other})
    hint = []
    if precs:
        hint.append("precision.weights: " + " or ".join(precs) + f" ({', '.join(c['repo'] for c in other[:2])})")
    elsewhere = [c for c in entries(model["id"]) if c["variant"] == variant and formats()[c["format"]]["precision"] == weights
                 and engine["id"] in c.get("engines", [engine["id"]]) and c["format"] in (engine.get("formats") or {})]
    if elsewhere:
        rule = engine["formats"][elsewhere[0]["format"]]
        hint.append(f"or a GPU of {', '.join(rule.get('generations') or rule.get('vendors'))} for {elsewhere[0]['repo']}")
    hint.append(f"or model.name: <an {weights} checkpoint of {model['id']}> with model.quantized_checkpoint: true")
    return "; ".join(hint)


def default_weights(model: dict, engine: dict, gpu: dict, *, name: str | None = None, variant: str | None = None,
                    alias: str | None = None) -> tuple[str, str]:
    """precision.weights when the spec leaves it out, and why: what the checkpoint the spec names stores; else
    bf16 when the model has a 16-bit release; else what its own release stores (DeepSeek-V3: fp8, gpt-oss: fp4
    — there is no unquantized checkpoint to load)."""
    if name:
        c = find_repo(name)
        if c is not None:
            return formats()[c["format"]]["precision"], f"what model.name {name} stores"
        return "bf16", "unquantized checkpoint"
    mine = entries(model["id"])
    if variant is None:
        a = find_repo(alias) if alias else None
        variant = a["variant"] if a is not None and a["model"] == model["id"] else (
            "instruct" if any(c["variant"] == "instruct" for c in mine) else "base")
    cands = [c for c in mine if c["variant"] == variant]
    if not cands or any(c["format"] in ("bf16", "fp16") for c in cands):
        return "bf16", "unquantized checkpoint"
    here = [c for c in cands if supports(engine, gpu, c["format"]) and engine["id"] in c.get("engines", [engine["id"]])]
    c = (here or cands)[0]
    return formats()[c["format"]]["precision"], f"{model['id']} has no 16-bit release: {c['repo']} stores {c['format']}"


def resolve(model: dict, weights: str, engine: dict, gpu: dict, *, name: str | None = None, variant: str | None = None,
            quantized_checkpoint: bool | None = None, group_size: int = 128, alias: str | None = None) -> Checkpoint:
    """The checkpoint for a model at a weight precision on an engine and GPU. Raises CheckpointError."""
    eng_name = engine["name"]
    ptr_w = PTR_W
    # the variant: stated, else what the model id alias names, else instruct when it exists
    alias_entry = find_repo(alias) if alias else None
    stated = variant is not None
    if variant is None and alias_entry is not None and alias_entry["model"] == model["id"]:
        variant = alias_entry["variant"]
    known_variants = {c["variant"] for c in entries(model["id"])}
    if variant is None:
        variant = "instruct" if "instruct" in known_variants or not known_variants else "base"
    if name:
        c = find_repo(name)
        if c is not None and c["model"] != model["id"] and model.get("source") != "Hugging Face config.json":
            raise CheckpointError(f"model.name {name} is a checkpoint of {c['model']}, but the spec plans {model['id']}",
                                  "/model/name", f"model.id: {c['model']}, or a model.name of {model['id']}")
        if c is not None:
            from dataclasses import replace

            ck = _from_known(c, model, weights, engine, gpu, quantized_checkpoint, group_size, explicit_variant=variant,
                             variant_stated=stated, why="model.name names it")
            return replace(ck, repo=name)  # the spelling the spec uses (an alias may be a renamed organisation)
        return _unknown(name, model, weights, engine, gpu, quantized_checkpoint, group_size)
    if model.get("source") == "Hugging Face config.json":
        raise CheckpointError("the model comes from model.hf_config, so planfile cannot tell which repository the engine "
                              "loads", "/model", "add model.name: <the Hub repository or local path of these weights>")
    cands = [c for c in entries(model["id"]) if c["variant"] == variant]
    if not cands:
        other = sorted(known_variants)
        raise CheckpointError(f"the catalog knows no {variant} checkpoint of {model['id']}"
                              + (f" (only {', '.join(other)})" if other else ""), "/model",
                              (f"model.variant: {other[0]}" if other else "") + " or model.name: <repository>")
    ok = [c for c in cands if formats()[c["format"]]["precision"] == weights and engine["id"] in c.get("engines", [engine["id"]])
          and supports(engine, gpu, c["format"])]
    if ok and quantized_checkpoint is not False:
        return _from_known(ok[0], model, weights, engine, gpu, quantized_checkpoint, group_size, explicit_variant=variant,
                           variant_stated=False, why=f"the preferred {weights} {variant} checkpoint {eng_name} loads on {gpu['id']}")
    if weights in QUANTIZED:
        base = [c for c in cands if c["format"] in ("bf16", "fp16") and supports(engine, gpu, c["format"])]
        rule = online(engine, gpu, weights)
        if base and rule and quantized_checkpoint is not True:
            return _online(base[0], rule, model, engine, gpu, group_size,
                           why=f"no pre-quantized {weights} {variant} checkpoint {eng_name} loads on {gpu['id']}"
                           if not ok else "model.quantized_checkpoint: false asks for online quantization")
        msg = f"no {weights} checkpoint of {model['id']} ({variant}) that {eng_name} loads on {gpu['id']}"
        if not rule:
            msg += f", and {eng_name} cannot quantize to {weights} at load time on {gpu['id']}"
        elif quantized_checkpoint is True:
            msg += " (model.quantized_checkpoint: true rules out quantizing at load time)"
        raise CheckpointError(msg, ptr_w, _fixes_for(model, variant, weights, engine, gpu))
    # bf16/fp16 requested
    ok16 = [c for c in cands if c["format"] in ("bf16", "fp16") and supports(engine, gpu, c["format"])]
    if ok16:
        return _from_known(ok16[0], model, weights, engine, gpu, quantized_checkpoint, group_size, explicit_variant=variant, variant_stated=False,
                           why=f"the {variant} release in {ok16[0]['format']}")
    stored = sorted({formats()[c["format"]]["precision"] for c in cands})
    here = [c for c in cands if supports(engine, gpu, c["format"]) and engine["id"] in c.get("engines", [engine["id"]])]
    fix = (f"precision.weights: {formats()[here[0]['format']]['precision']} ({here[0]['repo']})" if here else
           f"precision.weights: {stored[0]} on a GPU that loads {cands[0]['format']}")
    raise CheckpointError(f"{model['id']} ({variant}) has no {weights} release: its published checkpoints store "
                          + ", ".join(stored) + f" ({', '.join(c['repo'] for c in cands[:2])})", ptr_w, fix)


def _check_loadable(c: dict, engine: dict, gpu: dict) -> None:
    if engine["id"] not in c.get("engines", [engine["id"]]):
        raise CheckpointError(f"{c['repo']} is a {c['format']} checkpoint {engine['name']} does not load (its loaders: "
                              f"{', '.join(c['engines'])})", "/model/name",
                              "engine.name: " + " or ".join(c["engines"]) + ", or another checkpoint")
    if not supports(engine, gpu, c["format"]):
        raise CheckpointError(f"{c['repo']}: {_unsupported(engine, gpu, c['format'])}", "/hardware/gpu",
                              "a GPU that runs this format, or a checkpoint in another format")


def _from_known(c: dict, model: dict, weights: str, engine: dict, gpu: dict, quantized_checkpoint: bool | None,
                group_size: int, *, explicit_variant: str | None, variant_stated: bool, why: str) -> Checkpoint:
    stored = formats()[c["format"]]["precision"]
    if explicit_variant and explicit_variant != c["variant"] and variant_stated:
        raise CheckpointError(f"model.name {c['repo']} is the {c['variant']} model, but model.variant says {explicit_variant}",
                              "/model/variant", f"model.variant: {c['variant']}, or the {explicit_variant} repository")
    _check_loadable(c, engine, gpu)
    same = stored == weights or {stored, weights} <= {"bf16", "fp16"}
    if same:
        if quantized_checkpoint is False and stored in QUANTIZED:
            raise CheckpointError(f"{c['repo']} is already quantized ({c['format']}); model.quantized_checkpoint: false "
                                  "says it is not", "/model/quantized_checkpoint", "remove model.quantized_checkpoint")
        b, e = _bytes(c["format"], group_size)
        size = sizes(model, b, e)
        return Checkpoint(c["repo"], c["variant"], stored, c["format"], c["format"], None, size / 1e9, size / 1e9, b, e, True,
                          f"catalog checkpoints: huggingface.co/{c['repo']}", why)
    if stored in ("bf16", "fp16") and weights in QUANTIZED:
        rule = online(engine, gpu, weights)
        if rule is None or quantized_checkpoint is True:
            fixes = []
            if rule is not None:
                fixes.append(f"remove model.quantized_checkpoint ({engine['name']} then quantizes at load time: "
                             f"--quantization {rule['flag']})")
            pre = [x for x in entries(model["id"]) if x["variant"] == c["variant"] and formats()[x["format"]]["precision"] == weights
                   and engine["id"] in x.get("engines", [engine["id"]]) and supports(engine, gpu, x["format"])]
            if pre:
                fixes.append(f"model.name: {pre[0]['repo']}")
            fixes.append(f"precision.weights: {stored}")
            raise CheckpointError(f"{c['repo']} stores {stored} weights; precision.weights is {weights}, and "
                                  + (f"{engine['name']} cannot quantize to {weights} at load time on {gpu['id']}" if rule is None
                                     else "model.quantized_checkpoint: true rules out quantizing at load time"),
                                  PTR_W, "; or ".join(fixes))
        return _online(c, rule, model, engine, gpu, group_size, why=why + f", quantized to {weights} at load time")
    raise CheckpointError(f"{c['repo']} stores {stored} weights ({c['format']}); precision.weights is {weights}", PTR_W,
                          f"precision.weights: {stored}, or " + _fixes_for(model, c["variant"], weights, engine, gpu))


def _online(c: dict, rule: dict, model: dict, engine: dict, gpu: dict, group_size: int, why: str) -> Checkpoint:
    _check_loadable(c, engine, gpu)
    sb, se = _bytes(c["format"], group_size)
    rb, re_ = _bytes(rule["format"], group_size)
    return Checkpoint(c["repo"], c["variant"], formats()[c["format"]]["precision"], c["format"], rule["format"], rule["flag"],
                      sizes(model, sb, se) / 1e9, sizes(model, rb, re_) / 1e9, rb, re_, True,
                      f"catalog checkpoints: huggingface.co/{c['repo']}; {engine['name']} --quantization {rule['flag']}", why)


def _unknown(name: str, model: dict, weights: str, engine: dict, gpu: dict, quantized_checkpoint: bool | None,
             group_size: int) -> Checkpoint:
    """A repository or path planfile has no record of: the spec says what it stores."""
    if weights in QUANTIZED and quantized_checkpoint is False:
        rule = online(engine, gpu, weights)
        if rule is None:
            raise CheckpointError(f"{engine['name']} cannot quantize {name} to {weights} at load time on {gpu['id']}",
                                  "/model/quantized_checkpoint", f"a pre-quantized {weights} checkpoint with "
                                  "model.quantized_checkpoint: true")
        sb, se = _bytes("bf16", group_size)
        rb, re_ = _bytes(rule["format"], group_size)
        return Checkpoint(name, None, "bf16", "bf16", rule["format"], rule["flag"], sizes(model, sb, se) / 1e9,
                          sizes(model, rb, re_) / 1e9, rb, re_, False, "model.name (not in the catalog)",
                          f"model.quantized_checkpoint: false: BF16 weights quantized to {weights} at load time")
    fmt = GENERIC_FORMAT[weights]
    if fmt == "nvfp4" and gpu["vendor"] == "amd":
        fmt = "mxfp4"
    if not supports(engine, gpu, fmt):
        raise CheckpointError(f"{name}: {_unsupported(engine, gpu, fmt)}", "/hardware/gpu",
                              "a GPU that runs this format, or another precision")
    b, e = _bytes(fmt, group_size)
    if fmt == "mxfp4" and not model.get("moe"):
        b = e
    size = sizes(model, b, e) / 1e9
    return Checkpoint(name, None, weights, fmt, fmt, None, size, size, b, e, False, "model.name (not in the catalog)",
                      f"model.name is not in the catalog: assumed to store {weights} weights ({fmt})")


def block_shards(model: dict, tp: int, ep: int, adp: int, engine_id: str = "vllm", deepep: bool = False) -> list[tuple[str, int, int]]:
    """(what, full width, GPUs it is split over) of each tensor-parallel split of a linear layer's sharded dimension
    (column-parallel outputs, row-parallel inputs), as the engines shard them. vLLM runs each attention data-
    parallel rank as its own tensor group (tp / adp): attention, the dense layers' MLP and the shared experts are
    split over it. SGLang splits attention over tp / adp and the dense MLP and shared experts as
    planner.physics.arch.mlp_groups says (the one rule the memory plan and the step model read too). Routed
    experts: over tp / ep (whole experts under expert parallelism)."""
    atp = tp // adp
    att = model.get("attention") or {}
    heads, kvh = model["num_attention_heads"], model.get("num_kv_heads") or model["num_attention_heads"]
    hd = model.get("head_dim") or model["hidden_size"] // heads
    out = []
    if att.get("type") == "mla":
        nope, rope, vd = att["qk_nope_head_dim"], att["qk_rope_head_dim"], att["v_head_dim"]
        out += [("the attention query up-projection", heads * (nope + rope), atp),
                ("the attention key/value up-projection", heads * (nope + vd), atp),
                ("the attention output projection", heads * vd, atp)]
    else:
        out += [("the attention query projection", heads * hd, atp), ("the attention output projection", heads * hd, atp)]
        if kvh >= atp:  # fewer KV heads than GPUs: each GPU holds whole replicated heads
            out.append(("the key/value projection", kvh * hd, atp))
    from planner.physics.arch import mlp_groups

    dense_copies, shared_copies = mlp_groups(engine_id, tp, adp, deepep)
    moe = model.get("moe")
    if not moe or moe.get("first_k_dense_layers", 0) > 0 or moe.get("moe_layer_step", 1) > 1:
        out.append(("the dense layers' MLP (gate/up and down)", model["intermediate_size"], max(tp // dense_copies, 1)))
    if moe:
        if moe.get("shared_experts"):
            out.append(("the shared experts (gate/up and down)", moe["expert_intermediate_size"] * moe["shared_experts"],
                        max(tp // shared_copies, 1)))
        out.append(("each routed expert (gate/up and down)", moe["expert_intermediate_size"], max(1, tp // max(ep, 1))))
    return out


def misfit_shard(model: dict, tp: int, ep: int, adp: int, bn: int, engine_id: str = "vllm",
                 deepep: bool = False) -> tuple[str, int, int] | None:
    """The first linear-layer split (what, width, shards) whose shards are not whole blocks of bn, or None."""
    for what, width, ways in block_shards(model, tp, ep, adp, engine_id, deepep):
        if ways > 1 and (width % ways or (width // ways) % bn):
            return what, width, ways
    return None


BLOCK_ENGINES = ("vllm", "sglang")  # engines whose loaders refuse a shard of partial blocks (PF125)


def weight_block(fmt: str, engine_id: str) -> tuple[int, int] | None:
    """(block_n, block_k) of a block-scaled checkpoint format on an engine that needs whole blocks per
    tensor-parallel shard, else None."""
    block = (formats().get(fmt) or {}).get("weight_block")
    return tuple(block) if block and engine_id in BLOCK_ENGINES else None


def shard_misfit(r) -> tuple[str, int, int] | None:
    """misfit_shard of a resolved record (its checkpoint, engine and parallelism), or None."""
    ck = getattr(r, "checkpoint", None)
    block = weight_block(ck.format, r.engine["id"]) if ck is not None else None
    if not block or r.tp % max(r.attention_dp, 1) or r.tp % max(r.ep, 1):
        return None
    from planner.resolve import deepep_on

    return misfit_shard(r.model, r.tp, max(r.ep, 1), max(r.attention_dp, 1), block[0], r.engine["id"], deepep_on(r))
