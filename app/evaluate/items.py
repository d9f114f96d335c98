"""QA items for `localrag eval`: read a QA file (JSON lines) and check every item before the slow part starts.

A QA file has one JSON object per line (blank lines and lines starting with ``#`` are skipped):

    {"id": "a01", "question": "...", "reference": "short answer", "relevant": [{"source": "f.md", "contains": "..."}]}
    {"id": "u01", "question": "...", "reference": "", "answerable": false}

`reference` (optional) is the reference answer: it enables context recall. `relevant` (optional) lists the evidence
as in data/eval/retrieval.jsonl (localrag.eval.retrieval_metrics). An item whose reference is "" (or null with
`"answerable": false`) is unanswerable from the corpus.

ragas-style datasets are read too: `user_input` for `question`, `ground_truth` for `reference`. An item that
brings its own answer (`response` or `answer`) and the contexts it was written from (`retrieved_contexts` or
`contexts`, a list of strings) is scored as given instead of being asked again:

    {"user_input": "...", "response": "... [1]", "retrieved_contexts": ["...", "..."], "reference": "..."}

Its `[n]` markers, if any, cite the n-th context; an answer without markers is judged against all its contexts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localrag.index.jsonl import JsonlError, read_jsonl

__all__ = ["ITEM_KEYS", "SPEC_KEYS", "EvalInputError", "load_items", "normalize_item", "prepare_items"]

SPEC_KEYS = {"source", "contains", "page", "uri"}
ITEM_KEYS = {"id", "question", "reference", "relevant", "answerable", "type", "split", "answer", "contexts"}
# ragas names (and the older ragas 0.1 names) for our keys: the same item may use either, not both with different values
ALIASES = {"user_input": "question", "ground_truth": "reference", "response": "answer",
           "retrieved_contexts": "contexts"}
SPLITS = ("dev", "test")  # `split`: dev = tune here, test = report only (data/eval/README.md)


class EvalInputError(ValueError):
    """A QA file or item that cannot be evaluated (the CLI's exit code 2); the message names the line."""


def _check_specs(specs: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(specs, list):
        raise EvalInputError(f"{where}: 'relevant' must be a list of evidence specs")
    for n, spec in enumerate(specs, start=1):
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str) or not spec["source"].strip():
            raise EvalInputError(f"{where}: relevant[{n}] needs a 'source' (a file name)")
        bad = set(spec) - SPEC_KEYS
        if bad:
            raise EvalInputError(f"{where}: relevant[{n}] has unknown key(s) {', '.join(sorted(bad))}")
        if "contains" in spec and (not isinstance(spec["contains"], str) or not spec["contains"].strip()):
            raise EvalInputError(f"{where}: relevant[{n}].contains must be a non-empty string")
        if "page" in spec and (not isinstance(spec["page"], int) or isinstance(spec["page"], bool)):
            raise EvalInputError(f"{where}: relevant[{n}].page must be an integer")
        if "uri" in spec and not isinstance(spec["uri"], str):
            raise EvalInputError(f"{where}: relevant[{n}].uri must be a string")
    return specs


def normalize_item(obj: Any, where: str = "item") -> dict[str, Any]:
    """One QA item checked and completed (answerable decided, specs validated), so that a bad label is caught
    before the slow part starts rather than turning into a misleading score."""
    if not isinstance(obj, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    obj = _canonical_keys(obj, where)
    unknown = set(obj) - ITEM_KEYS
    if unknown:
        raise EvalInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "split" in obj and obj["split"] not in SPLITS:
        raise EvalInputError(f"{where}: 'split' must be one of {', '.join(SPLITS)}")
    q = obj.get("question")
    if not isinstance(q, str) or not q.strip():
        raise EvalInputError(f"{where}: 'question' must be a non-empty string")
    ref = obj.get("reference")
    if ref is not None and not isinstance(ref, str):
        raise EvalInputError(f"{where}: 'reference' must be a string or null")
    flag = obj.get("answerable")
    if flag is not None and not isinstance(flag, bool):
        raise EvalInputError(f"{where}: 'answerable' must be true or false")
    specs = _check_specs(obj.get("relevant") or [], where)
    empty_ref = isinstance(ref, str) and not ref.strip()
    unanswerable = flag is False or (empty_ref and flag is None)
    if flag is True and empty_ref:
        raise EvalInputError(f"{where}: 'answerable' is true but the reference is empty")
    if unanswerable and ref and ref.strip():
        raise EvalInputError(f"{where}: an unanswerable item cannot have a reference answer")
    if unanswerable and specs:
        raise EvalInputError(f"{where}: an unanswerable item cannot list relevant evidence")
    item_id = obj.get("id")
    if item_id is not None and not isinstance(item_id, str | int):
        raise EvalInputError(f"{where}: 'id' must be a string or a number")
    answer, contexts = _given_answer(obj, where)
    return {
        "id": None if item_id is None else str(item_id), "question": q.strip(),
        "reference": ref.strip() if ref and ref.strip() else None, "answerable": not unanswerable,
        "relevant": [dict(s) for s in specs], "type": str(obj.get("type") or ""),
        "answer": answer, "contexts": contexts,
    }


def _canonical_keys(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """ragas key names mapped to ours; an item giving both names with different values is refused."""
    out = {k: v for k, v in obj.items() if k not in ALIASES}
    for alias, key in ALIASES.items():
        if alias not in obj:
            continue
        if key in obj and obj[key] != obj[alias]:
            raise EvalInputError(f"{where}: '{alias}' and '{key}' are the same field with different values; keep one")
        out[key] = obj[alias]
    return out


def _given_answer(obj: dict[str, Any], where: str) -> tuple[str | None, list[str] | None]:
    """The answer an item brings to be scored (with its contexts), or (None, None) when localrag should answer."""
    answer, contexts = obj.get("answer"), obj.get("contexts")
    if answer is None and contexts is None:
        return None, None
    if answer is None:
        raise EvalInputError(f"{where}: 'retrieved_contexts' without a 'response': give the answer to score it, or "
                             "drop the contexts to let localrag retrieve and answer")
    if not isinstance(answer, str):
        raise EvalInputError(f"{where}: 'response' (the answer to score) must be a string")
    if contexts is None:
        raise EvalInputError(f"{where}: a 'response' needs the 'retrieved_contexts' it was written from (a list of "
                             "strings) to be scored; drop the response to let localrag answer instead")
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise EvalInputError(f"{where}: 'retrieved_contexts' must be a list of strings")
    return answer.strip(), list(contexts)


def load_items(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Read a QA file (JSON lines; blank lines and lines starting with '#' are skipped). Raises EvalInputError
    naming the file and line for a missing file, bad JSON or a bad item."""
    path = Path(path)
    try:
        rows = read_jsonl(path, comments=True, what="QA file")
    except JsonlError as exc:
        raise EvalInputError(str(exc)) from None
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, obj in rows:
        item = normalize_item(obj, f"{path}:{n}")
        item["id"] = item["id"] or f"line{n}"
        if item["id"] in seen:
            raise EvalInputError(f"{path}:{n}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
        seen[item["id"]] = n
        items.append(item)
    if not items:
        raise EvalInputError(f"{path}: no QA items")
    return items[:limit] if limit else items


def prepare_items(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw items or items from load_items, normalized (idempotent), each with an id (`item<i>` when it has none);
    EvalInputError for a bad item or duplicate ids."""
    norm: list[dict[str, Any]] = []
    for i, raw in enumerate(items, start=1):
        item = normalize_item(raw, f"item {i}")
        norm.append({**item, "id": item.get("id") or f"item{i}"})
    if len({it["id"] for it in norm}) != len(norm):
        raise EvalInputError("duplicate item ids")
    return norm
