"""Formatters for `planfile plan`: text table, JSON, markdown; and the spec written by --write."""

from __future__ import annotations

import copy

from planner import __version__


def _money(x):
    return "n/a" if x is None else f"${x:,.0f}"


def _ms(x, d=0):
    return "n/a" if x is None else f"{x:,.{d}f} ms"


def rows(res) -> list[list[str]]:
    out = []
    for i, o in enumerate(res.options, 1):
        r = o.r
        fleet, split = f"{r.replicas} x {r.gpus_per_replica}", f"{r.tp}x{r.pp}" + expert_text(r)
        if r.disagg:
            p, d = r.disagg["prefill"], r.disagg["decode"]
            fleet = f"{p['replicas']}P x {p['gpus_per_replica']} + {d['replicas']}D x {d['gpus_per_replica']}"
            split = f"P {p['tp']}x{p['pp']} D {d['tp']}x{d['pp']}"
        out.append([f"{i}{'*' if o.frontier else ''}", r.gpu["id"], fleet, split,
                    f"{r.weights}/{r.kv_cache}", _provider(r), _money(o.usd_per_month), _ms(o.ttft_p95_ms), _ms(o.itl_p95_ms, 1),
                    f"{o.saturation_tps:,.0f}", f"{o.risk:g}"])
    return out


def expert_text(r) -> str:
    """How a MoE replica splits its experts, for the plan table: " EP8", " EP32 DPA DeepEP+TBO" ("" without EP)."""
    if r.ep <= 1:
        return ""
    return (f" EP{r.ep}" + (" DPA" if r.attention_dp > 1 else "") + (" DeepEP" if r.moe_all_to_all == "deepep" else "")
            + ("+TBO" if r.two_batch_overlap and r.moe_all_to_all == "deepep" else " TBO" if r.two_batch_overlap else ""))


def _provider(r) -> str:
    """Who the price is from and of what kind (on-demand, capacity block...): prices compare only on one basis."""
    from planner import catalog

    if not r.price_provider:
        return "spec price"
    p = catalog.price(r.price_provider, r.gpu["id"]) or {}
    return f"{r.price_provider} {p.get('kind', 'on-demand')}"


HEAD = ["#", "GPU", "replicas x GPUs", "TPxPP", "weights/KV", "price", "$/month", "p95 TTFT", "p95 ITL", "max tok/s", "risk"]


def to_text(spec: str, res, objective: str) -> str:
    lines = []
    if res.options:
        lines.append(f"{spec}: {len(res.options)} option(s) meet every SLO, ranked by {objective} "
                     f"({res.considered} configurations considered; * = on the cost/TTFT/precision-risk/redundancy Pareto frontier)")
        table = [HEAD] + rows(res)
        widths = [max(len(row[i]) for row in table) for i in range(len(HEAD))]
        for row in table:
            lines.append("  " + "  ".join(c.rjust(w) if j >= 6 else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        lines.append("")
        lines.append("why option 1:")
        lines += [f"  - {w}" for w in res.options[0].why]
    else:
        lines.append(f"{spec}: no option meets every SLO{' within the budget' if res.closest and res.closest.meets_slo else ''} "
                     f"({res.considered} configurations considered)")
        c = res.closest
        if c is not None:
            r = c.r
            lines.append(f"  closest: {r.replicas} x {r.gpus_per_replica} {r.gpu['id']} (TP {r.tp}, {r.weights}/{r.kv_cache}): "
                         f"p95 TTFT {_ms(c.ttft_p95_ms)}, p95 ITL {_ms(c.itl_p95_ms, 1)}, {_money(c.usd_per_month)}/month"
                         + (f", {c.miss:.2f}x the tightest SLO" if c.miss != float("inf") and not c.meets_slo else ""))
    if res.disaggregation:
        lines.append(res.disaggregation)
    rej = {k: v for k, v in res.rejected.items() if v}
    if rej:
        lines.append("rejected: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(rej.items())))
    return "\n".join(lines) + "\n"


def to_markdown(spec: str, res, objective: str) -> str:
    out = [f"### planfile plan: `{spec}`", ""]
    if not res.options:
        out.append("**No option meets every SLO.**")
        if res.closest:
            out.append("")
            out.append("Closest: " + "; ".join(res.closest.why))
        return "\n".join(out) + "\n"
    out.append(f"{len(res.options)} option(s) meet every SLO, ranked by {objective}. * = Pareto frontier (cost, p95 TTFT, precision risk, more than one replica).")
    out.append("")
    out.append("| " + " | ".join(HEAD) + " |")
    out.append("|" + "|".join("---" for _ in HEAD) + "|")
    for row in rows(res):
        out.append("| " + " | ".join(c.replace("*", "\\*") for c in row) + " |")
    out.append("")
    out.append("**Why option 1**")
    out.append("")
    out += [f"- {w}" for w in res.options[0].why]
    if res.disaggregation:
        out += ["", res.disaggregation]
    return "\n".join(out) + "\n"


def to_json(spec: str, res, objective: str) -> str:
    import json

    return json.dumps({"planfile_version": __version__, "spec": spec, "objective": objective,
                       "considered": res.considered, "rejected": res.rejected, "disaggregation": res.disaggregation,
                       "options": [o.to_json() for o in res.options],
                       "closest_miss": res.closest.to_json() if res.closest else None}, indent=2) + "\n"


def spec_for(data: dict, o, filled: list[str]) -> str:
    """A complete deployment.yaml for an option: the user's spec with hardware, parallelism, precision and
    engine set to the option."""
    import yaml

    d = copy.deepcopy(data)
    r = o.r
    hw = {k: v for k, v in (d.get("hardware") or {}).items() if "hardware" not in filled and k in ("storage", "gpus_per_node")}
    hw = {"gpu": r.gpu["id"], "gpus_per_replica": r.gpus_per_replica, **({"autoscale": d["hardware"]["autoscale"]}
          if "hardware" not in filled and "autoscale" in d.get("hardware", {}) else {"replicas": r.replicas}), **hw}
    if "autoscale" in hw:
        hw["autoscale"] = dict(hw["autoscale"], max=max(hw["autoscale"].get("max", 1), r.replicas))
    if r.disagg:
        hw = {k: v for k, v in hw.items() if k not in ("replicas", "gpus_per_replica", "autoscale")}
        def pool(role):
            p = r.disagg[role]
            out = {"replicas": p["replicas"], "gpus_per_replica": p["gpus_per_replica"],
                   "parallelism": {"tensor": p["tp"], "pipeline": p["pp"], **({"expert": p["ep"]} if p.get("ep", 1) > 1 else {}),
                                   **({"attention_data": p["adp"]} if p.get("adp", 1) > 1 else {})}}
            if p.get("max_num_seqs") and p["max_num_seqs"] != r.max_num_seqs:
                out["max_num_seqs"] = p["max_num_seqs"]
            if role == "prefill" and p.get("max_num_batched_tokens"):
                out["max_num_batched_tokens"] = p["max_num_batched_tokens"]
            return out

        d["disaggregation"] = {role: pool(role) for role in ("prefill", "decode")}
        d["disaggregation"].update(transfer={"link": r.disagg["transfer"]["link"], "connector": r.disagg["transfer"]["connector"]},
                                   router=r.disagg["router"])
        d.pop("parallelism", None)
    d["hardware"] = hw
    if not r.disagg:
        d.pop("disaggregation", None)  # an aggregated option of a disaggregated spec: one pool
        d["parallelism"] = {"tensor": r.tp, "pipeline": r.pp, **({"expert": r.ep} if r.ep > 1 else {}),
                            **({"attention_data": r.attention_dp} if r.attention_dp > 1 else {})}
    d["precision"] = dict(d.get("precision") or {}, weights=r.weights, kv_cache=r.kv_cache)
    model = dict(d["model"])
    model.pop("quantized_checkpoint", None)
    # the checkpoint the plan was evaluated with, so the spec in git does not depend on catalog defaults
    ck = r.checkpoint
    if "id" in model:
        model["name"] = ck.repo
        if ck.online_quant is None and ck.stored != "bf16" and ck.stored != "fp16":
            model["quantized_checkpoint"] = True
    d["model"] = model
    eng = dict(d.get("engine") or {"name": r.engine["id"]})
    for k in ("max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization"):
        if "engine" in filled:
            eng.pop(k, None)
    eng["version"] = r.engine_version  # flags and defaults differ between versions
    # how the option's experts talk (plan searches it): stated when not the default, dropped otherwise
    eng.pop("moe_all_to_all", None)
    eng.pop("two_batch_overlap", None)
    experts = r.ep > 1 if not r.disagg else all(r.disagg[role].get("ep", 1) > 1 for role in ("prefill", "decode"))
    if experts and r.moe_all_to_all != "default":
        eng["moe_all_to_all"] = r.moe_all_to_all
    if experts and r.two_batch_overlap:
        eng["two_batch_overlap"] = True
    d["engine"] = eng
    cost = {k: v for k, v in (d.get("cost") or {}).items() if k not in ("provider", "usd_per_gpu_hour")}
    if r.price_source and not r.price_source.startswith("spec"):
        cost["provider"] = r.price_source
    elif r.price_usd_per_gpu_hour is not None:
        cost["usd_per_gpu_hour"] = r.price_usd_per_gpu_hour
    if cost:
        d["cost"] = cost
    order = ["apiVersion", "kind", "metadata", "model", "precision", "hardware", "parallelism", "disaggregation", "engine", "workload",
             "slo", "cost", "checks", "calibration"]
    d = {k: d[k] for k in order if k in d}
    head = ("# yaml-language-server: $schema=https://planfile.dev/schemas/deployment.schema.json\n"
            f"# Written by planfile plan {__version__}: "
            + (f"{r.disagg['prefill']['replicas']} prefill x TP{r.disagg['prefill']['tp']} + {r.disagg['decode']['replicas']} decode "
               f"x TP{r.disagg['decode']['tp']} {r.gpu['id']}" if r.disagg else
               f"{r.replicas} x {r.gpus_per_replica} {r.gpu['id']}, TP {r.tp} x PP {r.pp}")
            + f", {r.weights} weights, {r.kv_cache} KV.\n")
    for w in o.why:
        head += f"#   {w}\n"
    return head + yaml.safe_dump(d, sort_keys=False, allow_unicode=True, default_flow_style=False)
