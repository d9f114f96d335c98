"""How far to trust a judge: its supported/unsupported verdicts against hand-labelled statements.

data/eval/judge_statements.jsonl holds statements about passages copied from the sample corpus (PDF passages as
extracted text, knowledge-graph passages as the ingested node text), about half of them unsupported, many subtly:
a wrong or swapped number, a negation, a swapped entity, a claim the passage does not make. Each judge gives one
verdict per statement; we report accuracy, precision/recall/F1 for "unsupported" (the class a faithfulness judge
exists to catch), the share it called supported, Cohen's kappa against the labels (0 = no better than chance, as for
a judge that says "yes" to everything), accuracy per kind of statement, and agreement between judges.

Pure functions of (labelled statements, judge objects): any object with ``judge_statement`` or ``verdict`` is a
judge. The entry point that builds the judges, the LLM one included, is bench.judges:

    python -m bench.judges [--llm] [--json] [--threads N]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localrag.index.jsonl import read_jsonl

__all__ = ["LABELS", "STATEMENTS", "evaluate_judges", "format_report", "load_statements"]

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = ROOT / "data" / "eval" / "judge_statements.jsonl"
LABELS = ("supported", "unsupported")


def load_statements(path: Path = STATEMENTS) -> list[dict[str, Any]]:
    """The labelled statements; a malformed line is a ValueError naming the file and line."""
    items = []
    for n, obj in read_jsonl(path):
        for key in ("id", "context", "statement", "label", "source"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise ValueError(f"{path}:{n}: not a labelled statement (missing or empty {key!r})")
        if obj["label"] not in LABELS:
            raise ValueError(f"{path}:{n}: not a labelled statement (label must be one of {LABELS}, "
                             f"got {obj['label']!r})")
        items.append(obj)
    return items


def _kappa(pred: list[bool], gold: list[bool]) -> float | None:
    """Cohen's kappa of two binary raters (None when undefined: no items, or chance agreement is 1)."""
    n = len(pred)
    if n == 0:
        return None
    po = sum(p == g for p, g in zip(pred, gold, strict=True)) / n
    p1, g1 = sum(pred) / n, sum(gold) / n
    pe = p1 * g1 + (1 - p1) * (1 - g1)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def _judge_metrics(preds: list[bool | None], statements: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Verdicts vs labels; True means "supported". Unscored verdicts count as wrong in `accuracy`."""
    gold = [s["label"] == "supported" for s in statements]
    scored = [(p, g) for p, g in zip(preds, gold, strict=True) if p is not None]
    n = len(preds)
    correct = sum(p == g for p, g in scored)
    tp = sum((not p) and (not g) for p, g in scored)  # positive class: "unsupported"
    fp = sum((not p) and g for p, g in scored)
    fn = sum(p and (not g) for p, g in scored) + sum(p is None and not g for p, g in zip(preds, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_kind: dict[str, dict[str, Any]] = {}
    for p, s in zip(preds, statements, strict=True):
        k = by_kind.setdefault(s.get("kind", "?"), {"n": 0, "correct": 0, "label": s["label"]})
        k["n"] += 1
        k["correct"] += int(p is not None and p == (s["label"] == "supported"))
    for k in by_kind.values():
        k["accuracy"] = k["correct"] / k["n"]
    return {
        "n": n, "scored": len(scored), "unscored": n - len(scored),
        "accuracy": correct / n if n else 0.0,
        "accuracy_scored": correct / len(scored) if scored else None,
        "precision_unsupported": precision, "recall_unsupported": recall, "f1_unsupported": f1,
        "said_supported": sum(p for p, _ in scored) / len(scored) if scored else None,
        "kappa": _kappa([p for p, _ in scored], [g for _, g in scored]),
        "ms_per_statement": 1000 * seconds / n if n else 0.0,
        "by_kind": by_kind,
    }


def evaluate_judges(statements: list[dict[str, Any]], proxy: Any, llm_judge: Any = None) -> dict[str, Any]:
    """Each judge's verdicts on the statements, measured against the labels and against each other.

    `proxy` needs ``judge_statement(statement, context) -> bool`` (eval.scoring.ProxyScorer); `llm_judge` needs
    ``verdict(statement, context) -> bool | None`` (eval.scoring.LLMJudge)."""
    judges: dict[str, Callable[[str, str], bool | None]] = {"proxy": proxy.judge_statement}
    if llm_judge is not None:
        judges[getattr(llm_judge, "judge", "llm")] = llm_judge.verdict
    preds: dict[str, list[bool | None]] = {}
    report: dict[str, Any] = {
        "n": len(statements),
        "labels": {lab: sum(s["label"] == lab for s in statements) for lab in LABELS},
        "judges": {},
    }
    for name, fn in judges.items():
        t0 = time.perf_counter()
        preds[name] = [fn(s["statement"], s["context"]) for s in statements]
        report["judges"][name] = _judge_metrics(preds[name], statements, time.perf_counter() - t0)
    names = list(judges)
    report["agreement"] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = [(x, y) for x, y in zip(preds[a], preds[b], strict=True) if x is not None and y is not None]
            report["agreement"][f"{a} vs {b}"] = {
                "n": len(both), "agree": sum(x == y for x, y in both) / len(both) if both else None,
                "kappa": _kappa([x for x, _ in both], [y for _, y in both]),
            }
    report["statements"] = [
        {"id": s["id"], "label": s["label"], "kind": s.get("kind"),
         **{n: (None if preds[n][i] is None else ("supported" if preds[n][i] else "unsupported")) for n in names}}
        for i, s in enumerate(statements)
    ]
    return report


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{100 * x:.0f}%" if pct else f"{x:.2f}"
    return str(x)


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table: one row per judge, then accuracy by kind of statement."""
    labs = report["labels"]
    lines = [f"{report['n']} statements ({labs['supported']} supported, {labs['unsupported']} unsupported)", ""]
    head = f"{'judge':<44} {'acc':>5} {'P(uns)':>7} {'R(uns)':>7} {'F1':>5} {'said yes':>8} {'kappa':>6} " \
           f"{'unscored':>8} {'ms/stmt':>8}"
    lines += [head, "-" * len(head)]
    for name, m in report["judges"].items():
        lines.append(
            f"{name:<44} {_fmt(m['accuracy'], True):>5} {_fmt(m['precision_unsupported']):>7} "
            f"{_fmt(m['recall_unsupported']):>7} {_fmt(m['f1_unsupported']):>5} {_fmt(m['said_supported'], True):>8} "
            f"{_fmt(m['kappa']):>6} {m['unscored']:>8} {m['ms_per_statement']:>8.1f}"
        )
    kinds = sorted({k for m in report["judges"].values() for k in m["by_kind"]})
    lines += ["", "accuracy by kind: " + "  ".join(
        f"{k} (n={next(iter(report['judges'].values()))['by_kind'][k]['n']})" for k in kinds)]
    for name, m in report["judges"].items():
        lines.append(f"  {name:<42} " + "  ".join(f"{k}={_fmt(m['by_kind'][k]['accuracy'], True)}" for k in kinds))
    for pair, a in report.get("agreement", {}).items():
        lines.append(f"\nagreement {pair}: {_fmt(a['agree'], True)} of {a['n']} (kappa {_fmt(a['kappa'])})")
    return "\n".join(lines)
