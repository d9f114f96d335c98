"""The files of an eval: report.json (the whole result), report.md (settings, notes, a summary table, one row and
one answer per item), scores.png (score distributions per metric and judge) and latency.png (per-stage latency).
`summary_rows` is the summary table that the CLI prints too, so both show the same numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from localrag.app.evaluate.aggregate import STAGES, finite

__all__ = ["format_markdown", "summary_rows", "write_report"]


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.3f}"


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows for a summary table: the CLI and report.md print the same numbers."""
    rows: list[tuple[str, str, str]] = []
    a = result["abstention"]
    rows.append(("items", "run / failed", f"{result['n_items'] - result['n_failed']} / {result['n_failed']}"))
    rows.append(("abstention", "accuracy", f"{_f(a['accuracy'], True)} ({a['correct']} of {a['n']})"))
    rows.append(("abstention", "answered answerable",
                 f"{_f(a['answerable']['rate'], True)} ({a['answerable']['answered']} of {a['answerable']['n']})"))
    rows.append(("abstention", "abstained on unanswerable",
                 f"{_f(a['unanswerable']['rate'], True)} "
                 f"({a['unanswerable']['abstained']} of {a['unanswerable']['n']})"))
    r = result.get("retrieval")
    if r:
        for m in r["metrics"]:
            rows.append(("retrieval", m, f"{_f(r['overall'][m])} (n={r['n']})"))
    for judge, metrics in result["scores"].items():
        for name, m in metrics.items():
            rows.append((f"scores [{judge}]", name, f"{_f(m['mean'])} (scored {m['n']}, unscored {m['n_unscored']})"))
    for stage, s in result["latency"].items():
        rows.append(("latency", stage, f"p50 {s['p50'] * 1000:.0f} ms · p95 {s['p95'] * 1000:.0f} ms"))
    for name, ag in ((result.get("panel") or {}).get("agreement") or {}).items():
        kappa = ag.get("fleiss_kappa")
        rows.append(("panel agreement", name,
                     f"mean |diff| {_f(ag.get('mean_abs_diff'))} · pairs agreeing "
                     f"{_f(ag.get('binary_agreement'), True)} · kappa {_f(kappa)} (n={ag.get('n_compared', 0)})"))
    rob = result.get("robustness")
    if rob:
        rows.append(("robustness", "mean cosine deviation",
                     f"{_f(rob['mean_deviation'])} (n={rob['n_items']}, {rob['perturbations_per_item']} variants, "
                     f"{rob['abstain_flips']} abstain flips)"))
    return rows


def _md(text: Any, limit: int | None = None) -> str:
    s = " ".join(str(text if text is not None else "").split())
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("|", "\\|")


def format_markdown(result: dict[str, Any]) -> str:
    """report.md: settings, caveats, the summary table, then one row and one answer per item."""
    st = result["settings"]
    lines = [
        "# localrag eval report", "",
        f"- created: {result['created']} · {result['seconds']} s",
        f"- QA file: {result.get('qa_file', '-')}" + (f" (first {result['limit']})" if result.get("limit") else ""),
        f"- collection: `{st['collection']}` · answer k {st['k']} · retrieval depth {st['retrieval_depth']} · "
        f"judge `{st['judge']}` · robustness {st['robustness']}",
        f"- answering model: `{result.get('model_id') or '-'}`"
        + (f" · judging model: `{st['judge_model']}`" if st.get("judge_model") else ""), "",
    ]
    for note in result.get("notes", []):
        lines += [f"> **Note.** {note}", ""]
    lines += ["## Summary", "", "| section | measure | value |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {_md(c)} |" for a, b, c in summary_rows(result)]
    if result.get("errors"):
        lines += ["", "## Failed items", ""]
        lines += [f"- `{e['id']}`: {_md(e['error'], 300)}" for e in result["errors"]]
    judges = result.get("judges", [])
    metrics = list(dict.fromkeys(m for j in judges for m in result["scores"].get(j, {})))
    ret = (result.get("retrieval") or {}).get("metrics", [])
    head = ["id", "answerable", "abstained", "correct"] + ret[:1] + [f"{m} [{j}]" for j in judges for m in metrics]
    lines += ["", "## Items", "", "`correct` means the answer/abstain decision was right (answered an answerable "
              "question, abstained on an unanswerable one); it does not check what the answer says: read the "
              "scores and the answers below for that.", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["items"]:
        if r["error"]:
            lines.append(f"| {r['id']} | {r['answerable']} | error | - |" + " - |" * (len(head) - 4))
            continue
        cells = [r["id"], str(r["answerable"]), str(r["abstained"]), "yes" if r["correct"] else "**no**"]
        cells += [_f((r.get("retrieval") or {}).get(m)) for m in ret[:1]]
        cells += [_f(((r.get("scores") or {}).get(j) or {}).get("values", {}).get(m)) for j in judges for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Answers", ""]
    for r in result["items"]:
        lines.append(f"**{r['id']}** {_md(r['question'])}  ")
        if r.get("reference"):
            lines.append(f"reference: {_md(r['reference'], 300)}  ")
        if r["error"]:
            lines += [f"error: {_md(r['error'], 300)}", ""]
            continue
        a = r["answer"]
        why = f" (abstained: {_md(a['abstain_reason'], 120)})" if a["abstained"] and a["abstain_reason"] else ""
        lines += [f"answer: {_md(a['text'], 600)}{why}", ""]
    lines += ["", "Charts: `scores.png` (score distributions per metric and judge), `latency.png` (per-stage "
              "latency).", ""]
    return "\n".join(lines)


def _plot_scores(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    judges = result.get("judges", [])
    metrics = list(dict.fromkeys(m for j in judges for m in result["scores"].get(j, {}))) or ["(no scores)"]
    cols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(5.5 * cols, 3.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    bins = np.linspace(0.0, 1.0, 11).tolist()
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(nrows, cols, i + 1)
        plotted = False
        for j in judges:
            vals = [float(v) for r in result["items"] if not r["error"]
                    for v in [((r.get("scores") or {}).get(j) or {}).get("values", {}).get(name)] if v is not None]
            unscored = (result["scores"].get(j, {}).get(name) or {}).get("n_unscored", 0)
            if vals:
                ax.hist(vals, bins=bins, alpha=0.55, label=f"{j} (n={len(vals)}, unscored {unscored})")
                plotted = True
        if not plotted:
            ax.text(0.5, 0.5, "no scored values", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=7)
        ax.set_title(name.replace("_", " "))
        ax.set_xlim(0, 1)
        ax.set_xlabel("score")
        ax.set_ylabel("answers")
    fig.suptitle(f"Score distributions ({result['n_items']} items)")
    fig.savefig(path, format="png", dpi=100)


def _plot_latency(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    stages = [s for s in STAGES if s in result["latency"]]
    data = [[max(r["timings"][s], 1e-4) for r in result["items"] if not r["error"] and s in r.get("timings", {})]
            for s in stages]
    if stages:
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(stages) + 1), stages)
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no timings", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(f"Per-stage latency ({result.get('model_id') or 'no model'})")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png", dpi=100)


def write_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md, scores.png and latency.png into out_dir (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "scores.png", out / "latency.png"]
    clean = finite(result)
    paths[0].write_text(json.dumps(clean, ensure_ascii=False, indent=1, allow_nan=False, default=str) + "\n",
                        encoding="utf-8")
    paths[1].write_text(format_markdown(clean), encoding="utf-8")
    _plot_scores(clean, paths[2])
    _plot_latency(clean, paths[3])
    return paths
