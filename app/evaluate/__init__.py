"""`localrag eval`: drive a `Rag` over a QA set and report on it.

- items: reading and checking a QA file (`load_items`, `EvalInputError`)
- runner: `run_eval`, the run as named stages (load -> generate -> score -> aggregate)
- aggregate: run-level numbers from the per-item records (abstention accuracy, score statistics, latency)
- robustness: non-semantic perturbations of a question and the spread of the answers
- report: report.json, report.md and the PNG charts (`write_report`, `summary_rows`)

The per-answer metrics and judges themselves live below, in localrag.eval (they import nothing from the app).
"""

from __future__ import annotations

from localrag.app.evaluate.items import EvalInputError, load_items, normalize_item
from localrag.app.evaluate.report import format_markdown, summary_rows, write_report
from localrag.app.evaluate.robustness import PERTURBATIONS, perturb
from localrag.app.evaluate.runner import JUDGE_CAVEAT, run_eval

__all__ = [
    "JUDGE_CAVEAT", "PERTURBATIONS", "EvalInputError", "format_markdown", "load_items", "normalize_item", "perturb",
    "run_eval", "summary_rows", "write_report",
]
