"""PoLL: a panel of LLM (or proxy) judges whose verdicts are pooled, after Verga et al. 2024 ("Replacing Judges with
Juries"). One judge's quirks (a small model saying "yes" to everything, a proxy threshold set too low) weigh less
when several judges vote, and how much they disagree is itself worth reporting: low agreement means the scores
should not be trusted as they stand.

A judge is anything with ``score(question, answer, contexts, cited=None, reference=None, *, abstained=False,
metrics=None) -> Scores`` and a ``judge`` label (eval.scoring.ProxyScorer, eval.scoring.LLMJudge, ...).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

from localrag.eval.scoring import METRICS, MetricScore, Scores

__all__ = ["AGGREGATES", "JudgePanel", "agreement", "item_agreement", "per_item_values"]

AGGREGATES = ("mean", "max", "majority")


def _label(judge: Any) -> str:
    return str(getattr(judge, "judge", None) or getattr(judge, "label", None) or type(judge).__name__)


def _pairs(values: Sequence[float]) -> list[tuple[float, float]]:
    return list(itertools.combinations(values, 2))


def item_agreement(values: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Agreement of the judges that scored one item: mean absolute pairwise difference, and the share of judge
    pairs that take the same side of `threshold`. None for both with fewer than two judges (nothing to compare)."""
    pairs = _pairs([float(v) for v in values])
    if not pairs:
        return {"n_judges": len(values), "mean_abs_diff": None, "binary_agreement": None}
    return {
        "n_judges": len(values),
        "mean_abs_diff": statistics.fmean(abs(a - b) for a, b in pairs),
        "binary_agreement": sum((a >= threshold) == (b >= threshold) for a, b in pairs) / len(pairs),
    }


def _fleiss(rows: list[list[bool]]) -> float | None:
    """Fleiss' kappa for binary decisions, every row rated by the same number (>= 2) of raters."""
    n = len(rows[0])
    total = len(rows) * n
    p_yes = sum(sum(r) for r in rows) / total
    pe = p_yes ** 2 + (1 - p_yes) ** 2
    if pe >= 1.0:
        return None  # every decision fell on one side: chance agreement is total, kappa is undefined
    p_items = [(sum(r) ** 2 + (n - sum(r)) ** 2 - n) / (n * (n - 1)) for r in rows]
    return (statistics.fmean(p_items) - pe) / (1 - pe)


def _cohen(rows: list[list[bool]]) -> float | None:
    """Cohen's kappa for two raters' binary decisions."""
    po = sum(a == b for a, b in rows) / len(rows)
    pa, pb = sum(a for a, _ in rows) / len(rows), sum(b for _, b in rows) / len(rows)
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def agreement(
    per_item_values: list[list[float | None]], threshold: float = 0.5, min_items: int = 3,
) -> dict[str, Any]:
    """Inter-judge agreement over a whole run: one row per item, one column per judge (None = that judge did not
    score the item). Pairwise figures use every item with >= 2 scores; kappa (binary decisions at `threshold`:
    Fleiss for any number of judges, Cohen as well for exactly two) needs items scored by all judges, at least
    `min_items` of them, and is None with `kappa_reason` otherwise or when all decisions fall on one side."""
    n_judges = max((len(r) for r in per_item_values), default=0)
    diffs: list[float] = []
    agree: list[bool] = []
    complete: list[list[bool]] = []
    n_compared = 0
    for row in per_item_values:
        scored = [float(v) for v in row if v is not None and math.isfinite(float(v))]
        pairs = _pairs(scored)
        if pairs:
            n_compared += 1
            diffs += [abs(a - b) for a, b in pairs]
            agree += [(a >= threshold) == (b >= threshold) for a, b in pairs]
        if n_judges >= 2 and len(scored) == n_judges == len(row):
            complete.append([v >= threshold for v in scored])
    out: dict[str, Any] = {
        "n_judges": n_judges, "n_items": len(per_item_values), "n_compared": n_compared, "threshold": threshold,
        "mean_abs_diff": statistics.fmean(diffs) if diffs else None,
        "binary_agreement": sum(agree) / len(agree) if agree else None,
        "n_complete": len(complete), "fleiss_kappa": None, "cohen_kappa": None, "kappa_reason": None,
    }
    if n_judges < 2:
        out["kappa_reason"] = "needs at least 2 judges"
    elif len(complete) < min_items:
        out["kappa_reason"] = f"needs at least {min_items} items scored by every judge, got {len(complete)}"
    else:
        out["fleiss_kappa"] = _fleiss(complete)
        if n_judges == 2:
            out["cohen_kappa"] = _cohen(complete)
        if out["fleiss_kappa"] is None:
            out["kappa_reason"] = "all decisions fell on one side of the threshold: kappa is undefined"
    return out


class JudgePanel:
    """Several judges scoring the same answer, pooled per metric.

    Per metric, only the judges that scored it count (an unscored judge is listed in the details with its
    reason); when none scored it the pooled value is None with a reason. Aggregates:

    - ``mean``: the mean of the judges' values;
    - ``max``: the highest value (lenient: one judge's approval is enough);
    - ``majority``: the share of judges whose value is >= `threshold`; the pooled value is 1.0 when that share is
      > 0.5 and 0.0 otherwise (a tie is 0.0). The share itself is in the details as ``vote_share``.

    The details also carry each judge's value and the agreement of the judges on this item (`item_agreement`).
    """

    def __init__(self, judges: Sequence[Any], aggregate: str = "mean", threshold: float = 0.5) -> None:
        if not judges:
            raise ValueError("a panel needs at least one judge")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.judges = list(judges)
        self.aggregate = aggregate
        self.threshold = float(threshold)
        labels: list[str] = []
        for j in self.judges:  # two judges of one kind (two proxies with other thresholds) stay distinguishable
            base = _label(j)
            lab, n = base, 1
            while lab in labels:
                n += 1
                lab = f"{base}#{n}"
            labels.append(lab)
        self.labels = labels
        self.judge = f"panel({aggregate}):" + "+".join(labels)

    def score(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None = None,
        reference: str | None = None, abstained: bool = False, metrics: Iterable[str] | None = None,
        reuse: dict[int, Scores] | None = None,
    ) -> Scores:
        """Ask every judge, then pool their scores. A judge that raises counts as unscored on every metric (with
        the error as reason): one broken judge does not sink the panel. `reuse` maps a judge's position to the
        Scores it already gave this answer (an LLM judge is slow: it is not asked twice)."""
        t0 = time.perf_counter()
        wanted = list(metrics) if metrics is not None else None
        results: list[Scores | str] = []
        for i, j in enumerate(self.judges):
            if reuse and i in reuse:
                results.append(reuse[i])
                continue
            try:
                results.append(j.score(question, answer, contexts, cited=cited, reference=reference,
                                       abstained=abstained, metrics=wanted))
            except Exception as exc:  # noqa: BLE001 - reported as this judge's unscored reason
                results.append(f"judge failed: {type(exc).__name__}: {exc}")
        return self.combine(results, wanted, seconds=time.perf_counter() - t0)

    def combine(
        self, results: Sequence[Scores | str], metrics: Iterable[str] | None = None, seconds: float | None = None,
    ) -> Scores:
        """Pool scores the judges already gave (in the order of `judges`; a string stands for a judge that failed,
        its text the reason): lets a caller that has run a judge anyway reuse its scores."""
        if len(results) != len(self.judges):
            raise ValueError(f"expected {len(self.judges)} results, got {len(results)}")
        if metrics is None:
            names = [m for m in METRICS if any(isinstance(r, Scores) and m in r.metrics for r in results)]
        else:
            names = list(dict.fromkeys(metrics))
        out: dict[str, MetricScore] = {}
        for name in names:
            values: dict[str, float] = {}
            unscored: dict[str, str | None] = {}
            for lab, r in zip(self.labels, results, strict=True):
                m = r.metrics.get(name) if isinstance(r, Scores) else None
                if m is not None and m.value is not None:
                    values[lab] = float(m.value)
                else:
                    unscored[lab] = (r if isinstance(r, str) else
                                     (m.unscored_reason if m is not None else "not computed by this judge"))
            details: dict[str, Any] = {
                "aggregate": self.aggregate, "judges": {lab: values.get(lab) for lab in self.labels},
                "unscored": unscored, "n_scored": len(values), "n_unscored": len(unscored),
                "agreement": item_agreement(list(values.values()), self.threshold),
            }
            if not values:
                reasons = "; ".join(f"{lab}: {why}" for lab, why in unscored.items())
                out[name] = MetricScore(name, None, self.judge, details, f"no judge scored it ({reasons})")
                continue
            vals = list(values.values())
            if self.aggregate == "mean":
                value = statistics.fmean(vals)
            elif self.aggregate == "max":
                value = max(vals)
            else:
                share = sum(v >= self.threshold for v in vals) / len(vals)
                details["vote_share"] = share
                details["threshold"] = self.threshold
                value = 1.0 if share > 0.5 else 0.0
            out[name] = MetricScore(name, value, self.judge, details)
        if seconds is None:
            seconds = sum(r.seconds for r in results if isinstance(r, Scores))
        return Scores(out, seconds, self.judge)


def per_item_values(items_details: Iterable[dict[str, Any]], labels: Sequence[str]) -> list[list[float | None]]:
    """Rows for `agreement` from panel metric details (``details["judges"]``), in the order of `labels`."""
    return [[(d.get("judges") or {}).get(lab) for lab in labels] for d in items_details]
