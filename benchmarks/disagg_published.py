"""Published disaggregated-serving measurements (benchmarks/disagg_published.yaml) predicted by planfile.

Each row becomes a disaggregated spec whose measured pool has the row's GPUs and parallelism (the other
pool is sized alike so it is not the bottleneck), goes through check's own path (load -> validate ->
resolve), and the measured pool's saturation throughput is read from planner.disagg.capacity — the number
`planfile check` and `plan` use. Nothing is fitted to these rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).with_name("disagg_published.yaml")


def spec_of(row: dict) -> dict:
    """The row as a spec: the measured pool's GPUs, parallelism and stated settings (the other pool alike, at the
    engine's own batch limits)."""

    def pool(role):
        return {"replicas": 1, "gpus_per_replica": 8 * row["nodes"], "parallelism": dict(row["parallelism"]),
                **((row.get("pool_settings") or {}) if role == row["pool"] else {})}

    return {"apiVersion": "planfile/v1", "kind": "Deployment", "metadata": {"name": "published"},
            "model": {"id": row["model"]}, "precision": {"weights": "fp8", "kv_cache": "bf16"},
            "hardware": {"gpu": row["gpu"]},
            "disaggregation": {"prefill": pool("prefill"), "decode": pool("decode"), "transfer": {"link": "rdma"}},
            "engine": {"name": row["engine"], **(row.get("engine_settings") or {})},
            "workload": {"archetype": "custom", "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
                         "arrival_rate_rps": 1},
            "cost": {"usd_per_gpu_hour": 2.0}}


def predict(row: dict) -> float:
    from planner import disagg
    from planner.run import check_spec

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "spec.yaml"
        p.write_text(yaml.safe_dump(spec_of(row)))
        res = check_spec(str(p), breach=False)
    if res.status == "invalid":
        raise ValueError(f"{row['id']}: " + "; ".join(f.message for f in res.findings if f.severity == "error"))
    cap = disagg.capacity(res.resolved)[row["pool"]]  # requests/s over the pool
    tokens = row["input_tokens"] if row["pool"] == "prefill" else row["output_tokens"]
    return cap * tokens / row["nodes"]


def rows() -> list[dict]:
    return yaml.safe_load(DATA.read_text())["rows"]


def report() -> list[tuple[dict, float, float]]:
    """(row, predicted, signed error) per published row; error = predicted / measured - 1."""
    out = []
    for row in rows():
        got = predict(row)
        out.append((row, got, got / row["measured"] - 1))
    return out


def main() -> int:
    print("published disaggregated measurements (never fitted; benchmarks/disagg_published.yaml):")
    for row, got, err in report():
        print(f"  {row['id']:<40} {row['pool']:<7} measured {row['measured']:>8,.0f}  planfile {got:>8,.0f} "
              f"{row['metric']}  error {err:+.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
