"""Validate a loaded spec: JSON Schema first, then semantic checks against the catalog (PF0xx, PF1xx).

Every problem is collected in one pass; each names the JSON pointer, and the source map gives the
position. jsonschema's own messages are rewritten so they say what was found, what was expected and
what to do, with YAML 1.1 traps ("no" is false, 1.10 is 1.1) called out.
"""

from __future__ import annotations

from pathlib import Path

from planner import catalog
from planner.diagnostics import Finding, pointer_join
from planner.loader import Loaded
from planner.resources import schema

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "object": "a mapping",
               "array": "a list", "boolean": "true or false", "null": "null"}
_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n", "true", "false"}


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null (empty value)"
    if isinstance(value, str):
        import json

        return f"string {json.dumps(value[:60])}"
    return f"number {value}"


def _sub_schema(root: dict, parts) -> dict:
    node = root
    for p in parts:
        if isinstance(p, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(p, {})
    return node


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ecma_pattern(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern as a Python regex: ECMA's `$` matches only at the very end, Python's
    also before a trailing newline ("inj\\n" would pass `^[a-z]+$`), so an unescaped `$` becomes `\\Z`."""
    import re

    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


def validator_for(schema_name: str):
    """A Draft 2020-12 validator for one of schemas/*.json with planfile's stricter semantics: "integer"
    means a whole number written as one (JSON Schema would take 1e308 or 1024.0, and a float token count
    reaching the physics is a bug), and patterns anchor like ECMA-262 (no match before a trailing newline)."""
    if schema_name in _VALIDATORS:
        return _VALIDATORS[schema_name]
    import re

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError
    from jsonschema.validators import extend

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _c, x: isinstance(x, int) and not isinstance(x, bool))

    def pattern(validator, patrn, instance, schema):
        if isinstance(instance, str) and not re.search(_ecma_pattern(patrn), instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    cls = extend(Draft202012Validator, validators={"pattern": pattern}, type_checker=checker)
    _VALIDATORS[schema_name] = cls(schema(schema_name))
    return _VALIDATORS[schema_name]


def _validator():
    return validator_for("deployment")


_VALIDATORS: dict = {}


def schema_findings(loaded: Loaded) -> list[Finding]:
    # the schema compiled to plain Python (tools/gen_fastvalidate.py) says "nothing to report" without
    # importing jsonschema (0.1 s); a spec it rejects gets jsonschema's errors, rewritten below
    from planner._fastvalidate import valid

    if valid(loaded.data):
        return []
    root = schema("deployment")
    out: list[Finding] = []
    reported_missing: set[str] = set()
    for err in _validator().iter_errors(loaded.data):
        parts = list(err.absolute_path)
        ptr = pointer_join(parts)
        v, val = err.validator, err.validator_value
        loc = loaded.source.locs.get(ptr)
        if v == "required":
            props = _sub_schema(root, parts).get("properties", {})
            for name in val:
                if isinstance(err.instance, dict) and name not in err.instance:
                    if pointer_join(parts + [name]) in reported_missing:
                        continue
                    reported_missing.add(pointer_join(parts + [name]))
                    desc = props.get(name, {}).get("description", "")
                    out.append(Finding("PF011", "missing-field", "error",
                                       f"missing required field '{name}'" + (f": {desc}" if desc else ""),
                                       pointer_join(parts + [name]),
                                       remediation=f"add '{name}:' under {ptr or 'the top level'}"))
        elif v == "additionalProperties":
            props = list(_sub_schema(root, parts).get("properties", {}))
            for name in err.instance:
                if name in props:
                    continue
                import difflib

                close = difflib.get_close_matches(str(name), props, n=1, cutoff=0.5)
                out.append(Finding("PF010", "unknown-field", "error",
                                   f"unknown field '{name}' in {ptr or 'the spec'}; expected one of: {', '.join(props)}",
                                   pointer_join(parts + [name]),
                                   remediation=f"did you mean '{close[0]}'?" if close else "remove it"))
        elif v == "type":
            expected = val if isinstance(val, list) else [val]
            exp = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
            hint = ""
            if loc and loc.plain and loc.raw is not None:
                if isinstance(err.instance, bool) and loc.raw.lower() in _YAML11_BOOLS and "string" in expected:
                    hint = f'YAML reads unquoted {loc.raw} as a boolean: quote it ("{loc.raw}")'
                elif isinstance(err.instance, (int, float)) and "string" in expected:
                    hint = f'YAML reads unquoted {loc.raw} as a number (1.10 becomes 1.1): quote it ("{loc.raw}")'
                elif isinstance(err.instance, str) and expected[0] in ("integer", "number"):
                    import re

                    if loc.raw[-1:].lower() in ("k", "m") and loc.raw[:-1].replace(".", "").isdigit():
                        hint = "write plain numbers (32k is ambiguous: 32000 or 32768?)"
                    elif re.fullmatch(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+", loc.raw.strip()):
                        hint = (f"YAML 1.1 reads {loc.raw} as text (its exponent form needs a dot and a sign: 1.0e+3); "
                                "write the plain number")
                    else:
                        hint = "remove the units; units are in the field name"
            elif loc and not loc.plain and isinstance(err.instance, str) and expected[0] in ("integer", "number"):
                hint = "remove the quotes: a quoted number is text" if _is_number(err.instance) else \
                    "remove the units; units are in the field name"
            if isinstance(err.instance, float) and expected == ["integer"] and float(err.instance).is_integer() is False:
                hint = hint or f"use a whole number, e.g. {round(err.instance)}"
            out.append(Finding("PF012", "wrong-type", "error", f"expected {exp}, got {_describe(err.instance)}",
                               ptr, remediation=hint))
        elif v in ("enum", "const"):
            choices = [str(c) for c in (val if v == "enum" else [val])]
            # a suggestion only for a near miss (tensorrt-llm -> trtllm, fp16 -> bf16); a value that is no typo of any
            # choice (archetype: reasoning) gets what the field means instead of an unrelated name
            import difflib

            close = difflib.get_close_matches(str(err.instance).lower(), choices, n=1, cutoff=0.6)
            desc = _sub_schema(root, parts).get("description", "")
            if desc.startswith(" | ".join(choices) + ":"):
                desc = f"{parts[-1] if parts else 'the value'} {desc.split(':', 1)[1].strip()}"
            hint = f"did you mean {close[0]}?" if close else (desc if desc.rstrip(".") != " | ".join(choices) else "")
            if isinstance(err.instance, bool) and loc and loc.plain and loc.raw and loc.raw.lower() in _YAML11_BOOLS:
                hint = f'YAML reads unquoted {loc.raw} as a boolean: quote it ("{loc.raw}")'
            out.append(Finding("PF013", "invalid-value", "error",
                               f"{_describe(err.instance)} is not allowed; expected "
                               + (f"one of: {' | '.join(choices)}" if v == "enum" else choices[0]),
                               ptr, remediation=hint))
        elif v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "greater than",
                    "exclusiveMaximum": "less than"}[v]
            bound = f"{val:.12f}".rstrip("0") if isinstance(val, float) and 0 < abs(val) < 1e-4 else val  # 0.000001, not 1e-06
            out.append(Finding("PF013", "invalid-value", "error", f"{err.instance} is out of range; expected {word} {bound}",
                               ptr, remediation=_sub_schema(root, parts).get("description", "")))
        elif v == "pattern":
            what = {"name": "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
                    "namespace": "a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters",
                    "version": 'a version string such as "0.33"', "id": "a check id such as PF301"}.get(str(parts[-1]) if parts else "", f"text matching {val}")
            hint = ""
            if parts and parts[-1] in ("name", "namespace") and isinstance(err.instance, str):
                import re

                fixed = re.sub(r"[^a-z0-9-]+", "-", err.instance.lower()).strip("-")[:63].strip("-")
                hint = f"try '{fixed}'" if fixed else ""
            out.append(Finding("PF013", "invalid-value", "error", f"{_describe(err.instance)} is not {what}", ptr,
                               remediation=hint))
        elif v in ("minLength", "maxLength", "minItems", "maxItems", "minProperties"):
            what = {"minLength": f"at least {val} characters", "maxLength": f"at most {val} characters",
                    "minItems": f"at least {val} items", "maxItems": f"at most {val} items",
                    "minProperties": "at least one entry"}[v]
            out.append(Finding("PF013", "invalid-value", "error", f"{_describe(err.instance)} is too "
                               + ("short" if v.startswith("min") else "long") + f"; expected {what}", ptr))
        else:  # pragma: no cover - every keyword the schema uses is handled above
            out.append(Finding("PF013", "invalid-value", "error", err.message, ptr))
    return out


def _get(data, *path):
    node = data
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _one_of(data: dict, section: str, keys: tuple[str, ...], required: bool, what: str) -> Finding | None:
    node = data.get(section)
    if not isinstance(node, dict):
        return None
    present = [k for k in keys if k in node and node[k] not in (None, False)]
    if len(present) == 1 or (not present and not required):
        return None
    if present:
        return Finding("PF014", "exactly-one-of", "error",
                       f"{' and '.join(present)} are both set; {what} takes exactly one of: {', '.join(keys)}",
                       pointer_join([section, present[1]]), remediation=f"keep one of {', '.join(present)}")
    return Finding("PF014", "exactly-one-of", "error", f"{what} needs exactly one of: {', '.join(keys)}",
                   "/" + section, remediation=f"add {keys[0]}:")


def semantic_findings(loaded: Loaded) -> list[Finding]:
    """Checks against the catalog and across fields; tolerant of shapes the schema already reported."""
    d = loaded.data if isinstance(loaded.data, dict) else {}
    out: list[Finding] = []

    def add(fid, slug, msg, ptr, rem=""):
        out.append(Finding(fid, slug, "error", msg, ptr, remediation=rem))

    for f in (_one_of(d, "model", ("id", "hf_config"), True, "model"),
              _one_of(d, "hardware", ("replicas", "autoscale"), False, "hardware"),
              _one_of(d, "cost", ("provider", "usd_per_gpu_hour"), False, "cost")):
        if f:
            out.append(f)
    wl = d.get("workload") if isinstance(d.get("workload"), dict) else None
    if wl is not None:
        modes = [k for k in ("arrival_rate_rps", "concurrency", "offline") if k in wl and wl[k] is not False]
        if len(modes) > 1:
            add("PF014", "exactly-one-of", f"{' and '.join(modes)} are both set; the workload takes exactly one load mode "
                "(arrival_rate_rps: open loop, concurrency: closed loop, offline: max throughput)",
                pointer_join(["workload", modes[1]]), f"keep one of {', '.join(modes)}")
        elif not modes and wl.get("archetype") not in ("batch", None) and "offline" not in wl:
            add("PF014", "exactly-one-of", "the workload needs a load: exactly one of arrival_rate_rps, concurrency, offline",
                "/workload", "add arrival_rate_rps: <requests per second at normal load>")
        peak = wl.get("peak")
        if isinstance(peak, dict) and peak:
            (pk, pv), = list(peak.items())[:1]
            mode_key = next((k for k in ("arrival_rate_rps", "concurrency") if k in wl), None)
            if "peak_factor" in wl:
                add("PF014", "exactly-one-of", "peak and peak_factor are both set; state the peak one way",
                    "/workload/peak", "keep peak (the peak load itself) or peak_factor (a multiple), not both")
            elif mode_key is None or pk != mode_key:
                add("PF013", "invalid-value", f"peak.{pk} does not match the load mode"
                    + (f" ({mode_key})" if mode_key else " (offline runs have no peak)"), f"/workload/peak/{pk}",
                    f"use peak.{mode_key}" if mode_key else "remove peak")
            elif isinstance(pv, (int, float)) and isinstance(wl.get(mode_key), (int, float)) and pv < wl[mode_key]:
                add("PF013", "invalid-value", f"peak.{pk} {pv:g} is below the normal {mode_key} {wl[mode_key]:g}",
                    f"/workload/peak/{pk}", f"a peak of at least {wl[mode_key]:g}")
        if wl.get("archetype") == "custom":
            for k in ("input_tokens", "output_tokens"):
                if k not in wl:
                    add("PF115", "custom-workload-incomplete", f"archetype custom has no defaults: {k} is required",
                        "/workload", f"add {k}:, or pick an archetype (chat, rag, agent, batch, code)")
        for k in ("input_tokens", "output_tokens"):
            dist = wl.get(k)
            if isinstance(dist, dict) and all(isinstance(dist.get(q), int) for q in ("mean",)):
                seq = [(q, dist[q]) for q in ("p50", "mean", "p95", "max") if isinstance(dist.get(q), int)]
                vals = dict(seq)
                if "max" in vals and any(v > vals["max"] for q, v in seq if q != "max"):
                    add("PF113", "token-distribution", f"{k}: max {vals['max']} is below another percentile "
                        f"({', '.join(f'{q} {v}' for q, v in seq)})", pointer_join(["workload", k, "max"]),
                        "percentiles must not exceed max")
                elif "p95" in vals and "p50" in vals and vals["p95"] < vals["p50"]:
                    add("PF113", "token-distribution", f"{k}: p95 {vals['p95']} is below p50 {vals['p50']}",
                        pointer_join(["workload", k, "p95"]))

    gpu = None
    gname = _get(d, "hardware", "gpu")
    if isinstance(gname, str):
        lk = catalog.gpus().get(gname)
        gpu = lk.entry
        if gpu is None:
            add("PF101", "unknown-gpu", f"unknown GPU '{gname}'", "/hardware/gpu", catalog.hint("gpus", gname, lk.suggestions))
    model = None
    mid = _get(d, "model", "id")
    if isinstance(mid, str):
        lk = catalog.models().get(mid)
        model = lk.entry
        if model is None:
            add("PF102", "unknown-model", f"unknown model '{mid}'", "/model/id",
                catalog.hint("models", mid, lk.suggestions) + " (or give model.hf_config: path/to/config.json)")
    hfc = _get(d, "model", "hf_config")
    if isinstance(hfc, str) and model is None and mid is None:
        from planner import hfconfig

        base = loaded.base_dir or Path.cwd()
        try:
            model = hfconfig.load(base / hfc, _get(d, "model", "params_b"))
        except hfconfig.HFConfigError as exc:
            add("PF107", "hf-config", f"cannot use {hfc}: {exc}", "/model/hf_config",
                "give the path of a Hugging Face config.json, relative to this spec")

    engine_name = _get(d, "engine", "name")
    eng = catalog.engines().get(engine_name).entry if isinstance(engine_name, str) else None
    ver = _get(d, "engine", "version")
    if eng and isinstance(ver, str):
        ver = catalog.engine_version(eng, ver)  # "0.33.0" is 0.33
    if eng and isinstance(ver, str) and ver not in eng["versions"]:
        close = [v for v in eng["versions"] if v.startswith(ver) or ver.startswith(v)]
        add("PF108", "unknown-engine-version", f"planfile does not know {eng['name']} version {ver}; it knows "
            + ", ".join(eng["versions"]), "/engine/version",
            f"use \"{close[-1] if close else eng['default_version']}\" (flags and defaults differ between versions)")
    if eng and gpu and gpu["vendor"] not in eng["vendors"]:
        add("PF109", "engine-gpu-vendor", f"{eng['name']} does not run on {gpu['vendor'].upper()} GPUs ({gpu['id']})",
            "/engine/name", "use vllm" + (" or sglang" if gpu["vendor"] == "amd" else ""))

    par = d.get("parallelism") if isinstance(d.get("parallelism"), dict) else {}
    tp, pp = par.get("tensor", 1), par.get("pipeline", 1)
    gpr = _get(d, "hardware", "gpus_per_replica")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in (tp, pp)) and isinstance(gpr, int) and not isinstance(gpr, bool) \
            and "disaggregation" not in d:
        if tp * pp != gpr:
            stated = [k for k in ("tensor", "pipeline") if k in par]
            node = (gpu or {}).get("gpus_per_node") or 8
            split = {"tensor": gpr} if gpr <= node else ({"tensor": node, "pipeline": gpr // node} if gpr % node == 0 else None)
            shown = "{" + ", ".join(f"{k}: {v}" for k, v in split.items()) + "}" if split else None
            if not stated:
                add("PF105", "parallelism-mismatch",
                    f"gpus_per_replica is {gpr}, but neither parallelism.tensor nor parallelism.pipeline is stated: both "
                    "default to 1, one GPU",
                    "/hardware/gpus_per_replica" if "gpus_per_replica" in (d.get("hardware") or {}) else "/parallelism",
                    (f"parallelism: {shown} (how the model splits over the {gpr} GPUs), or " if shown else "")
                    + "gpus_per_replica: 1")
            else:
                add("PF105", "parallelism-mismatch",
                    f"tensor {tp} x pipeline {pp} = {tp * pp} GPUs, but gpus_per_replica is {gpr}",
                    "/hardware/gpus_per_replica" if "gpus_per_replica" in (d.get("hardware") or {}) else "/parallelism",
                    f"set gpus_per_replica: {tp * pp}, or change tensor/pipeline so their product is {gpr}"
                    + (f" (e.g. parallelism: {shown})" if shown and split != {"tensor": tp, "pipeline": pp} else ""))
    _expert_and_attention_data(add, model, par, "/parallelism")

    dis = d.get("disaggregation") if isinstance(d.get("disaggregation"), dict) else None
    if dis is not None:
        hw = d.get("hardware") if isinstance(d.get("hardware"), dict) else {}
        for k in ("replicas", "gpus_per_replica", "autoscale"):
            if k in hw:
                add("PF122", "disaggregation-invalid", f"hardware.{k} is set, but a disaggregated spec sizes its fleet per pool",
                    f"/hardware/{k}", "move it to disaggregation.prefill / disaggregation.decode")
        if "parallelism" in d:
            add("PF122", "disaggregation-invalid", "top-level parallelism is set, but each pool of a disaggregated spec "
                "states its own", "/parallelism", "disaggregation.prefill.parallelism / disaggregation.decode.parallelism")
        if isinstance(wl, dict) and "concurrency" in wl:
            add("PF122", "disaggregation-invalid", "a disaggregated plan is checked at an arrival rate (or offline), not a "
                "closed-loop concurrency", "/workload/concurrency", "arrival_rate_rps: <requests per second>")
        if isinstance(engine_name, str) and engine_name not in ("vllm", "sglang"):
            add("PF122", "disaggregation-invalid", f"planfile plans and renders disaggregated serving for vLLM and SGLang, "
                f"not {engine_name}", "/engine/name", "engine.name: vllm")
        for role in ("prefill", "decode"):
            pool = dis.get(role) if isinstance(dis.get(role), dict) else {}
            ppar = pool.get("parallelism") if isinstance(pool.get("parallelism"), dict) else {}
            ptp, ppp = ppar.get("tensor", 1), ppar.get("pipeline", 1)
            _expert_and_attention_data(add, model, ppar, f"/disaggregation/{role}/parallelism")
            g = pool.get("gpus_per_replica")
            if isinstance(g, int) and isinstance(ptp, int) and isinstance(ppp, int) and g != ptp * ppp:
                add("PF122", "disaggregation-invalid", f"{role}: tensor {ptp} x pipeline {ppp} = {ptp * ppp} GPUs, but "
                    f"gpus_per_replica is {g}", f"/disaggregation/{role}/gpus_per_replica", f"gpus_per_replica: {ptp * ppp}")
        dyn = eng.get("dynamo") if eng else None
        if dyn and isinstance(ver, str) and ver != dyn["engine_version"]:
            add("PF122", "disaggregation-invalid", f"a disaggregated fleet runs in NVIDIA Dynamo {dyn['runtime']}'s {eng['name']} "
                f"runtime image, which runs {eng['name']} {dyn['engine_version']}, not {ver}: the plan and the launch flags "
                "would be for an engine the pods do not run", "/engine/version",
                f"engine.version: \"{dyn['engine_version']}\" (or remove it)")
        if gpu is not None:
            from planner.disagg import gpu_excluded

            why = gpu_excluded(gpu)
            if why:
                add("PF122", "disaggregation-invalid", why, "/hardware/gpu",
                    "an NVIDIA GPU, or an aggregated spec (remove disaggregation)")
        conn = (dis.get("transfer") or {}).get("connector", "nixl") if isinstance(dis.get("transfer"), (dict, type(None))) else "nixl"
        if engine_name == "vllm" and conn == "nixl":
            for role in ("prefill", "decode"):
                pool = dis.get(role) if isinstance(dis.get(role), dict) else {}
                ppar = pool.get("parallelism") if isinstance(pool.get("parallelism"), dict) else {}
                if isinstance(ppar.get("pipeline"), int) and ppar["pipeline"] > 1:
                    # vllm-project/vllm#40674 (open): NixlConnector does not support pipeline-parallel-size > 1
                    add("PF123", "connector-unsupported", f"{role}: vLLM's NixlConnector does not support pipeline "
                        f"parallelism (pipeline: {ppar['pipeline']})", f"/disaggregation/{role}/parallelism/pipeline",
                        "pipeline: 1 with a larger tensor split, or engine.name: sglang")
        ok = {"vllm": ("nixl", "lmcache"), "sglang": ("nixl", "mooncake")}.get(engine_name if isinstance(engine_name, str) else "", ())
        if ok and conn not in ok:
            add("PF123", "connector-unsupported", f"{eng['name'] if eng else engine_name} has no {conn} KV connector planfile can render; it has "
                + " or ".join(ok), "/disaggregation/transfer/connector", f"connector: {ok[0]}")
    _expert_communication(add, d, model, eng, engine_name, gpu)
    policy = _get(d, "engine", "scheduler_policy")
    if eng and isinstance(policy, str) and policy not in eng.get("scheduler_policies", [policy]):
        add("PF121", "scheduler-policy-unsupported", f"{eng['name']} has no {policy} scheduler; it runs "
            + " or ".join(eng["scheduler_policies"]), "/engine/scheduler_policy",
            f"remove scheduler_policy ({eng['name']} default: {eng['scheduler_policy_default']})")

    auto = _get(d, "hardware", "autoscale")
    if isinstance(auto, dict) and isinstance(auto.get("min"), int) and isinstance(auto.get("max"), int) and auto["min"] > auto["max"]:
        add("PF110", "autoscale-range", f"autoscale min {auto['min']} is above max {auto['max']}", "/hardware/autoscale/min")

    prov = _get(d, "cost", "provider")
    if isinstance(prov, str):
        lk = catalog.providers().get(prov)
        if lk.entry is None:
            add("PF103", "unknown-provider", f"unknown provider '{prov}'", "/cost/provider",
                catalog.hint("prices", prov, lk.suggestions) + " (or give usd_per_gpu_hour:)")
        elif gpu is not None and catalog.price(lk.entry["id"], gpu["id"]) is None:
            others = catalog.prices_for_gpu(gpu["id"])
            rem = ("the catalog prices it at " + ", ".join(f"{p['provider']} ${p['usd_per_gpu_hour']:.2f}" for p in others[:3])
                   if others else f"no provider in the catalog lists {gpu['id']}") + "; or give usd_per_gpu_hour:"
            add("PF104", "no-price", f"the catalog has no {lk.entry['id']} price for {gpu['id']}", "/cost/provider", rem)

    if model is not None and wl is not None:
        def tmax(k):
            v = wl.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            if isinstance(v, dict):
                vals = [x for x in (v.get("max"), v.get("p95"), v.get("mean")) if isinstance(x, int)]
                return max(vals) if vals else None
            return None

        i, o = tmax("input_tokens"), tmax("output_tokens")
        arch = catalog.archetypes().get(wl.get("archetype", "")).entry if isinstance(wl.get("archetype"), str) else None
        if arch:
            # an archetype's own lengths are capped to the model's context (resolve.workload_lengths): only what the
            # spec states can exceed it
            from planner.resolve import length_top, workload_lengths

            ai, ao, _ = workload_lengths({k: wl[k] for k in ("input_tokens", "output_tokens") if k in wl and
                                          (tmax(k) is not None)}, arch, model.get("max_position_embeddings"))
            i = i or (int(length_top(ai)) if ai is not None else None)
            o = o or (int(length_top(ao)) if ao is not None else None)
        mml = _get(d, "engine", "max_model_len")
        need = mml if isinstance(mml, int) else ((i or 0) + (o or 0))
        limit = model.get("max_position_embeddings")
        if limit and need > limit:
            where = "/engine/max_model_len" if isinstance(mml, int) else (
                "/workload/input_tokens" if "input_tokens" in wl else "/workload/archetype")
            add("PF111", "context-beyond-model",
                f"the workload needs {need:,} tokens per sequence (prompt + output), but {model['id']} supports "
                f"{limit:,} (max_position_embeddings)", where,
                f"cap input_tokens.max + output_tokens.max at {limit:,}, or choose a longer-context model")
    labels = _get(d, "metadata", "labels")
    if isinstance(labels, dict):
        from planner.render.sanity import LABEL_VALUE, label_key_ok

        from planner.render.context import RESERVED_LABELS, RESERVED_PREFIXES

        for k, v in labels.items():
            if str(k) in RESERVED_LABELS or str(k).startswith(RESERVED_PREFIXES):
                add("PF117", "invalid-label", f"label {k!r} is set by planfile (it selects the pods of this deployment); "
                    "overriding it would detach the Service, the PodDisruptionBudget and the autoscaler",
                    pointer_join(["metadata", "labels", k]), "use another label key")
            elif not label_key_ok(str(k)):
                add("PF117", "invalid-label", f"label key {k!r} is not a valid Kubernetes label name "
                    "(optional DNS prefix/, then at most 63 of [A-Za-z0-9-_.] with alphanumeric ends)",
                    pointer_join(["metadata", "labels", k]), "rename the label")
            elif isinstance(v, str) and not LABEL_VALUE.fullmatch(v):
                add("PF117", "invalid-label", f"label value {v!r} is not a valid Kubernetes label value "
                    "(at most 63 of [A-Za-z0-9-_.], alphanumeric first and last)",
                    pointer_join(["metadata", "labels", k]), "use letters, digits, '-', '_' and '.' only")
    if model is not None and eng is not None and gpu is not None and gpu["vendor"] in eng["vendors"]:
        out += checkpoint_findings(d, model, eng, gpu)
    cal = d.get("calibration")
    if isinstance(cal, str):
        from planner.sideload import SideFileProblem, load_calibration

        p = (loaded.base_dir or Path.cwd()) / cal
        try:
            load_calibration(p, eng["id"] if eng else None, gpu["id"] if gpu else None)
        except SideFileProblem as exc:
            missing = any(x.endswith(": file not found") for x in exc.problems)
            add("PF116", "calibration-file", (f"calibration file {cal} not found" if missing else
                                              f"calibration file {cal} is not usable: " + "; ".join(exc.problems[:5])),
                "/calibration", "write one with `planfile calibrate RESULTS --spec this.yaml`" if missing else
                "fix the file, or regenerate it with `planfile calibrate`")
    return out


def checkpoint_inputs(d: dict) -> dict:
    """The spec fields the checkpoint resolution reads (planner.checkpoints.resolve keyword arguments)."""
    m = d.get("model") if isinstance(d.get("model"), dict) else {}
    prec = d.get("precision") if isinstance(d.get("precision"), dict) else {}
    return {"name": m.get("name"), "variant": m.get("variant"), "quantized_checkpoint": m.get("quantized_checkpoint"),
            "group_size": prec.get("quant_group_size", 128), "alias": m.get("id")}


def checkpoint_findings(d: dict, model: dict, eng: dict, gpu: dict) -> list[Finding]:
    from planner import checkpoints

    prec = d.get("precision") if isinstance(d.get("precision"), dict) else {}
    args = checkpoint_inputs(d)
    strings = all(isinstance(args[k], str) or args[k] is None for k in ("name", "variant", "alias"))
    weights = prec.get("weights") or (checkpoints.default_weights(model, eng, gpu, name=args["name"], variant=args["variant"],
                                                                  alias=args["alias"])[0] if strings else None)
    if (weights not in ("bf16", "fp16", "fp8", "int8", "int4", "fp4") or not strings
            or args["variant"] not in (None, "base", "instruct")
            or not (args["quantized_checkpoint"] is None or isinstance(args["quantized_checkpoint"], bool))
            or not isinstance(args["group_size"], int) or isinstance(args["group_size"], bool) or not 8 <= args["group_size"] <= 8192):
        return []  # the schema reports these
    try:
        ck = checkpoints.resolve(model, weights, eng, gpu, **args)
    except checkpoints.CheckpointError as exc:
        fid, slug = ("PF119", "model-name-required") if exc.pointer == "/model" and "hf_config" in exc.message else (
            "PF118", "checkpoint-unavailable")
        return [Finding(fid, slug, "error", exc.message, exc.pointer, remediation=exc.fix)]
    return block_shard_findings(d, model, eng, ck)


def block_shard_findings(d: dict, model: dict, eng: dict, ck) -> list[Finding]:
    """PF125: a checkpoint stored in block-scaled FP8 (one scale per block_n x block_k weights: DeepSeek's and
    Qwen3's 128 x 128) loads on vLLM and SGLang only if every tensor-parallel shard of a linear layer is a whole
    number of blocks along the split dimension; both raise "... is not divisible by weight quantization block_n
    = 128" at start-up (vLLM 0.33 and SGLang 0.5.23 fp8_utils; vllm-project/vllm#17569: Qwen3-235B-A22B-FP8 at
    tensor 8, each expert's 1,536 gate/up rows in 192-row shards; sgl-project/sglang#3345: DeepSeek-R1 at
    tensor 32). Checked for each parallelism block (the spec's, or each pool's) as the engine shards it
    (planner.checkpoints.block_shards). TensorRT-LLM is not checked: its loader cannot be run here to confirm
    the rule."""
    from planner import checkpoints

    block = checkpoints.weight_block(ck.format, eng["id"])
    if not block:
        return []
    bn, bk = block
    deepep = _get(d, "engine", "moe_all_to_all") == "deepep"
    dis = d.get("disaggregation") if isinstance(d.get("disaggregation"), dict) else None
    blocks = ([(f"/disaggregation/{role}/parallelism", dis[role].get("parallelism") if isinstance(dis.get(role), dict) else None)
               for role in ("prefill", "decode")] if dis is not None else [("/parallelism", d.get("parallelism"))])
    out = []
    for at, par in blocks:
        par = par if isinstance(par, dict) else {}
        tp, ep, adp = par.get("tensor", 1), par.get("expert", 1), par.get("attention_data", 1)
        if (not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= SPLIT_MAX for x in (tp, ep, adp))
                or tp % adp or tp % ep):
            continue  # the schema, PF112 and PF120 report these (and a degree past the schema's bound is never searched)

        def misfit(t, e, a, dp=deepep and ep > 1):
            return checkpoints.misfit_shard(model, t, e, a, bn, eng["id"], dp)

        bad = misfit(tp, ep, adp)
        if bad is None:
            continue
        what, width, ways = bad
        where = at[1:].replace("/", ".")
        smaller = [t for t in range(tp - 1, 0, -1) if tp % t == 0 and t % adp == 0 and t % min(ep, t) == 0
                   and misfit(t, min(ep, t), adp) is None]
        if what.startswith("each routed expert") and misfit(tp, tp, adp) is None:
            fix = f"{where}.expert: {tp} (whole experts on each GPU, split by expert parallelism)"
        elif what.startswith("the shared experts") and eng["id"] == "sglang" and ep > 1 and misfit(tp, ep, adp, True) is None:
            fix = "engine.moe_all_to_all: deepep (SGLang then keeps the shared experts whole on each GPU)"
        elif smaller:
            fix = f"{where}.tensor: {smaller[0]} (with as many GPUs per replica, and more replicas)"
        else:
            fix = "a checkpoint that is not block-quantized (precision.weights: bf16, or an FP8 one with per-tensor scales)"
        shard = f"{width // ways:,}" if width % ways == 0 else f"{width / ways:,.1f}"
        out.append(Finding(
            "PF125", "block-quant-shard", "error",
            f"{ck.repo} stores FP8 in {bn} x {bk} blocks, but {where}.tensor: {tp} splits {what}, {width:,} wide, "
            f"into {ways} shards of {shard}: not a multiple of {bn}, so {eng['name']} refuses to load it "
            f"(\"... is not divisible by weight quantization block_n = {bn}\")",
            f"{at}/tensor", remediation=fix))
    return out


SPLIT_MAX = 1024  # the schema's maximum for each parallelism degree (parallelism.tensor, ...): checks that search
# the divisors of a degree run on specs the schema refused too, and must not on tensor: 10**12


def validate(loaded: Loaded) -> list[Finding]:
    """All PF0/PF1 findings of a loaded spec, located and sorted."""
    findings = list(loaded.findings)
    if loaded.data is not None:
        # a value the loader already rejected (and replaced by null) is not reported again as "got null"
        rejected = {f.pointer for f in loaded.findings if f.severity == "error"}
        findings += [f for f in schema_findings(loaded) + semantic_findings(loaded)
                     if f.pointer not in rejected or f.id == "PF015"]
    return locate(findings, loaded)


def locate(findings: list[Finding], loaded: Loaded) -> list[Finding]:
    out = []
    for f in findings:
        if f.line is None and loaded.data is not None:
            prefer_key = f.id in ("PF010", "PF002", "PF011")
            line, col = loaded.source.position(f.pointer, prefer_key=prefer_key)
            f = f.located(line, col)
        out.append(f)
    return sorted(out, key=Finding.sort_key)


def _expert_communication(add, d: dict, model, eng, engine_name, gpu) -> None:
    """PF124: engine.moe_all_to_all: deepep and engine.two_batch_overlap act on the expert-parallel all-to-all, so
    they need a MoE model split by expert parallelism (in every pool of a disaggregated spec), an engine
    planfile renders them for (vLLM, SGLang) and, for DeepEP (CUDA kernels), an NVIDIA GPU."""
    a2a, tbo = _get(d, "engine", "moe_all_to_all"), _get(d, "engine", "two_batch_overlap")
    asked = [(k, f"/engine/{k}", shown) for k, v, shown in (("moe_all_to_all", a2a, "moe_all_to_all: deepep"),
                                                             ("two_batch_overlap", tbo, "two_batch_overlap: true"))
             if v is True or v == "deepep"]
    if not asked:
        return
    for key, ptr, shown in asked:
        if isinstance(engine_name, str) and engine_name not in ("vllm", "sglang"):
            name = eng["name"] if eng else engine_name
            add("PF124", "expert-communication-invalid", f"engine.{shown} is rendered for vLLM and SGLang, not {name} "
                "(its wide expert parallelism is configured otherwise)", ptr, f"remove engine.{key}, or engine.name: sglang")
            continue
        if model is not None and not model.get("moe"):
            add("PF124", "expert-communication-invalid", f"engine.{shown} is set, but {model['id']} is not a mixture-of-experts "
                "model: there is no expert all-to-all", ptr, f"remove engine.{key}")
            continue
        dis = d.get("disaggregation") if isinstance(d.get("disaggregation"), dict) else None
        blocks = ([(f"/disaggregation/{role}/parallelism", ((dis.get(role) or {}) if isinstance(dis.get(role), dict) else {}).get("parallelism"))
                   for role in ("prefill", "decode")] if dis is not None else [("/parallelism", d.get("parallelism"))])
        for at, par in blocks:
            ep = par.get("expert", 1) if isinstance(par, dict) else 1
            tp = par.get("tensor", 1) if isinstance(par, dict) else 1
            where = at[1:].replace('/', '.')
            if isinstance(ep, int) and not isinstance(ep, bool) and ep <= 1:
                add("PF124", "expert-communication-invalid", f"engine.{shown} is set, but {where} has no expert "
                    "parallelism (expert: 1): the experts are split by tensor parallelism, with no all-to-all", ptr,
                    f"set {where}.expert (e.g. equal to tensor), or remove engine.{key}")
                break
            if key == "moe_all_to_all" and isinstance(ep, int) and isinstance(tp, int) and ep != tp:
                add("PF124", "expert-communication-invalid", f"DeepEP runs over every GPU of the tensor group (SGLang sets "
                    f"--ep-size to --tp-size, vLLM's expert group is TP x DP), but {where} has expert: {ep} and tensor: {tp}",
                    f"{at}/expert", f"expert: {tp}")
                break
        if key == "moe_all_to_all" and gpu and gpu.get("vendor") != "nvidia":
            add("PF124", "expert-communication-invalid", f"DeepEP is a CUDA library; {gpu['id']} is a {gpu['vendor'].upper()} GPU",
                ptr, "remove engine.moe_all_to_all (the engine's own all-to-all)")


def _expert_and_attention_data(add, model, par: dict, at: str) -> None:
    """PF112 / PF120 for one parallelism block (the spec's, or one pool's): expert parallelism needs a MoE
    model whose expert count it divides, within the replica's GPUs; attention data parallelism divides
    tensor and only pays off with expert-parallel MoE layers."""
    tp, pp, ep = par.get("tensor", 1), par.get("pipeline", 1), par.get("expert", 1)
    if isinstance(ep, int) and not isinstance(ep, bool) and ep > 1 and model is not None:
        n = tp * pp if isinstance(tp, int) and isinstance(pp, int) else None
        if not model.get("moe"):
            add("PF112", "expert-parallel-invalid", f"expert: {ep} is set, but {model['id']} is not a mixture-of-experts model",
                f"{at}/expert", f"remove {at[1:].replace('/', '.')}.expert")
        elif model["moe"]["num_experts"] % ep:
            ok = [x for x in (n, 64, 32, 16, 8, 4, 2) if x and 1 < x <= (n or x) and model["moe"]["num_experts"] % x == 0]
            add("PF112", "expert-parallel-invalid", f"expert: {ep} does not divide the {model['moe']['num_experts']} experts",
                f"{at}/expert", "use a divisor of the expert count" + (f", e.g. expert: {ok[0]}" if ok else ""))
        elif n and ep > n:
            add("PF112", "expert-parallel-invalid", f"expert: {ep} is more than the {n} GPUs of a replica",
                f"{at}/expert", f"use expert: {n} or fewer")
    adp = par.get("attention_data", 1)
    if isinstance(adp, int) and not isinstance(adp, bool) and adp > 1:
        if isinstance(tp, int) and tp % adp:
            add("PF120", "attention-data-invalid", f"attention_data: {adp} does not divide tensor: {tp} (each attention "
                "group takes tensor / attention_data GPUs)", f"{at}/attention_data",
                f"use a divisor of {tp}, e.g. attention_data: {tp}")
        elif model is not None and not model.get("moe"):
            add("PF120", "attention-data-invalid", f"attention_data: {adp} is set, but {model['id']} is not a mixture-of-"
                "experts model: data-parallel attention only pays off with expert-parallel MoE layers between the groups",
                f"{at}/attention_data", "remove attention_data and use replicas for a dense model")
