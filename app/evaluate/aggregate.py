"""Run-level numbers of an eval from its per-item records: abstention accuracy, score statistics per judge and
metric (unscored values counted with their reasons), per-stage latency, robustness. Pure functions of the records,
so each can be checked against a hand-made list of records."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from localrag.app.evaluate.robustness import PERTURBATIONS

__all__ = [
    "STAGES", "abstention", "finite", "judge_labels", "latency", "robustness_summary", "score_summary", "stats",
]

STAGES = ("retrieve", "ttft", "generate", "guardrails", "score", "judge", "panel", "ragas", "total")


def judge_labels(records: list[dict[str, Any]]) -> list[str]:
    """The judges that scored some item, in the order they first appear."""
    return list(dict.fromkeys(j for r in records for j in (r.get("scores") or {})))


def abstention(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Abstention accuracy over the items that ran: an answerable item is correct when the system answered, an
    unanswerable one when it abstained. Failed items are left out."""
    done = [r for r in records if not r["error"]]
    ans = [r for r in done if r["answerable"]]
    una = [r for r in done if not r["answerable"]]
    answered = sum(not r["abstained"] for r in ans)
    abstained = sum(r["abstained"] for r in una)
    return {
        "n": len(done), "correct": answered + abstained,
        "accuracy": (answered + abstained) / len(done) if done else None,
        "answerable": {"n": len(ans), "answered": answered, "rate": answered / len(ans) if ans else None},
        "unanswerable": {"n": len(una), "abstained": abstained, "rate": abstained / len(una) if una else None},
    }


def stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
            "min": min(values), "max": max(values)}


def score_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judge and metric: statistics of the scored values, how many were unscored and why."""
    out: dict[str, Any] = {}
    for judge in judge_labels(records):
        metrics: dict[str, Any] = {}
        for r in records:
            s = (r.get("scores") or {}).get(judge)
            if not s:
                continue
            for name, value in s.get("values", {}).items():
                m = metrics.setdefault(name, {"values": [], "unscored": Counter()})
                if value is None:
                    m["unscored"][(s.get("unscored") or {}).get(name) or "unscored"] += 1
                else:
                    m["values"].append(float(value))
        out[judge] = {name: {**stats(m["values"]), "n_unscored": sum(m["unscored"].values()),
                             "unscored_reasons": dict(m["unscored"].most_common())}
                      for name, m in metrics.items()}
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def latency(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage (of STAGES) over the items that ran: n, mean, p50, p95 and max in seconds."""
    out = {}
    for stage in STAGES:
        vals = [r["timings"][stage] for r in records if not r["error"] and stage in r.get("timings", {})]
        if vals:
            out[stage] = {"n": len(vals), "mean": statistics.fmean(vals), "p50": _percentile(vals, 50),
                          "p95": _percentile(vals, 95), "max": max(vals)}
    return out


def robustness_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and max answer deviation under perturbation, and how often the abstain decision flipped."""
    rows = [r["robustness"] for r in records if r.get("robustness")]
    devs = [x["deviation"] for x in rows]
    return {"n_items": len(rows), "perturbations_per_item": rows[0]["n"] if rows else 0,
            "mean_deviation": statistics.fmean(devs) if devs else None,
            "max_deviation": max(devs) if devs else None,
            "abstain_flips": sum(x["abstain_flips"] for x in rows), "kinds": list(PERTURBATIONS)}


def finite(x: Any) -> Any:
    """The report with any non-finite float replaced by None: JSON stays strict and nothing reads as NaN."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    if isinstance(x, np.generic):
        return finite(x.item())
    return x
