"""The official ragas library (0.4.3, the optional extra ``pip install -e ".[ragas]"``) as a second scoring engine,
so that our own metrics (eval.scoring) can be checked against the reference implementation on the same answers.

ragas is driven through LangChain: our embedder behind a LangChain ``Embeddings`` adapter, and the LLM as
``langchain_openai.ChatOpenAI`` on an OpenAI-compatible server. That means the LLM must be served over HTTP:
``llm_backend=openai`` with ``llm_base_url``, or ``localrag llm serve`` running (the in-process llama.cpp model cannot
be handed to ragas). Nothing from ragas or LangChain is imported until a `RagasEngine` is built.

ragas reports a metric it could not compute as NaN (with SmolLM2 as the LLM: every metric, see
../shared/OFFLINE.md). Here a NaN becomes None with the reason "ragas returned NaN", never a silent number.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from localrag.eval.scoring import METRICS, MetricScore, Scores

__all__ = ["INSTALL_HINT", "RagasEngine", "RagasUnavailableError", "ragas_available", "scores_from_result"]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[ragas]"'
NAN_REASON = "ragas returned NaN"
_MODULES = ("ragas", "langchain_core", "langchain_openai")
# ragas' legacy metric names -> ours (context precision is named after its variant)
_NAMES = {
    "faithfulness": "faithfulness", "answer_relevancy": "answer_relevancy", "response_relevancy": "answer_relevancy",
    "context_precision": "context_precision", "llm_context_precision_with_reference": "context_precision",
    "llm_context_precision_without_reference": "context_precision", "context_recall": "context_recall",
}


class RagasUnavailableError(RuntimeError):
    """ragas cannot run here: the extra is not installed, or no OpenAI-compatible LLM server is configured."""


def ragas_available() -> bool:
    """True when ragas and its LangChain pieces are importable (checked without importing them: ragas is slow to
    import and phones home unless told not to)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in _MODULES)
    except (ImportError, ValueError):
        return False


def require_ragas() -> None:
    """Raise RagasUnavailableError with the install command when the extra is missing."""
    if not ragas_available():
        missing = [m for m in _MODULES if _find(m) is None]
        raise RagasUnavailableError(
            f"the ragas engine needs the optional extra (missing: {', '.join(missing) or 'ragas'}): "
            f"run `{INSTALL_HINT}` (ragas 0.4.3 with langchain<1)")


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _value(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def scores_from_result(
    row: dict[str, Any], judge: str, wanted: Sequence[str], seconds: float = 0.0,
    skipped: dict[str, str] | None = None,
) -> Scores:
    """Our `Scores` from one ragas result row (metric name -> value). NaN, None, a non-number or a missing metric
    becomes None with its reason; metrics in `skipped` were not sent to ragas and carry the reason given there."""
    skipped = skipped or {}
    by_ours: dict[str, Any] = {}
    for key, val in row.items():
        ours = _NAMES.get(str(key))
        if ours is not None:
            by_ours[ours] = val
    out: dict[str, MetricScore] = {}
    for name in wanted:
        if name in skipped:
            out[name] = MetricScore(name, None, judge, {"engine": "ragas"}, skipped[name])
            continue
        if name not in by_ours:
            out[name] = MetricScore(name, None, judge, {"engine": "ragas"}, "ragas returned no value")
            continue
        raw = by_ours[name]
        v = _value(raw)
        if v is None:
            isnan = raw is None or (isinstance(raw, float) and math.isnan(raw)) or _is_nan_like(raw)
            reason = NAN_REASON if isnan else f"ragas returned a non-number ({raw!r})"
            log.warning("ragas metric %s: %s", name, reason)
            out[name] = MetricScore(name, None, judge, {"engine": "ragas", "raw": repr(raw)}, reason)
        else:
            out[name] = MetricScore(name, v, judge, {"engine": "ragas"})
    return Scores(out, seconds, judge)


def _is_nan_like(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _result_rows(result: Any) -> list[dict[str, Any]]:
    """Per-sample rows of a ragas EvaluationResult (``.scores``, else ``to_pandas()``)."""
    rows = getattr(result, "scores", None)
    if rows is None and hasattr(result, "to_pandas"):
        rows = result.to_pandas().to_dict("records")
    if not isinstance(rows, list):
        raise RuntimeError(f"unexpected ragas result {type(result).__name__}: no per-sample scores")
    return [dict(r) for r in rows]


def _embeddings_adapter(embedder: Any) -> Any:
    """A LangChain Embeddings over our Embedder's ``encode`` (defined here: langchain_core is optional)."""
    from langchain_core.embeddings import Embeddings

    class EmbedderEmbeddings(Embeddings):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if not texts:
                return []
            return [[float(x) for x in v] for v in self.inner.encode(list(texts))]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return EmbedderEmbeddings(embedder)


class RagasEngine:
    """faithfulness, answer_relevancy, context_precision and context_recall computed by ragas on our LLM and
    embeddings; returns the same `Scores` as our judges (label ``ragas:<model>``), one ragas call per answer.

    `llm` is the OpenAI-compatible base URL (``http://127.0.0.1:8080/v1``), an object with a ``base_url`` (the app's
    OpenAICompatLLM), or a ready LangChain chat model / ragas LLM. Context precision uses the reference answer when
    there is one (ragas' LLMContextPrecisionWithReference), else the answer (…WithoutReference); context recall
    needs a reference and is unscored without one.
    """

    def __init__(
        self, llm: Any, embedder: Any, *, model: str | None = None, api_key: str | None = None,
        timeout_s: float = 180.0,
    ) -> None:
        require_ragas()
        os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # no telemetry: this runs offline
        os.environ.setdefault("OPENAI_API_KEY", "dummy")  # ragas/langchain insist on a key even for a local server
        from ragas.embeddings import LangchainEmbeddingsWrapper
        from ragas.llms import LangchainLLMWrapper

        self.timeout_s = float(timeout_s)
        self.base_url: str | None  # the OpenAI-compatible server the judge asks, when it was given one
        self.model = model or getattr(llm, "model_id", None) or getattr(llm, "model", None)
        if isinstance(llm, str) or (hasattr(llm, "base_url") and not hasattr(llm, "invoke")):
            base_url = llm if isinstance(llm, str) else str(llm.base_url)
            if not base_url:
                raise RagasUnavailableError(_NEEDS_SERVER)
            from langchain_openai import ChatOpenAI

            chat = ChatOpenAI(base_url=base_url, api_key=api_key or os.environ.get("LOCALRAG_LLM_API_KEY") or "dummy",
                              model=str(self.model or "local"), temperature=0, timeout=self.timeout_s)
            self.llm = LangchainLLMWrapper(chat)
            self.base_url = base_url
        elif hasattr(llm, "generate_text") or hasattr(llm, "agenerate_text"):  # already a ragas LLM
            self.llm, self.base_url = llm, None
        elif hasattr(llm, "invoke"):  # a LangChain chat model
            self.llm, self.base_url = LangchainLLMWrapper(llm), None
        else:
            raise RagasUnavailableError(_NEEDS_SERVER + f" (got {type(llm).__name__})")
        self.embeddings = LangchainEmbeddingsWrapper(_embeddings_adapter(embedder))
        self.judge = f"ragas:{self.model or 'llm'}"

    def _metrics(self, names: Sequence[str], with_reference: bool) -> list[Any]:
        from ragas import metrics as rm

        out = []
        for name in names:
            if name == "faithfulness":
                out.append(rm.Faithfulness())
            elif name == "answer_relevancy":
                cls = getattr(rm, "ResponseRelevancy", None) or rm.AnswerRelevancy
                out.append(cls())
            elif name == "context_precision":
                out.append(rm.LLMContextPrecisionWithReference() if with_reference
                           else rm.LLMContextPrecisionWithoutReference())
            elif name == "context_recall":
                out.append(rm.LLMContextRecall())
        return out

    def score(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None = None,
        reference: str | None = None, abstained: bool = False, metrics: Iterable[str] | None = None,
    ) -> Scores:
        """One answer scored by ragas. An abstention leaves faithfulness and relevancy unscored (as our judges
        do); a ragas failure or NaN leaves the metric unscored with the reason."""
        from ragas import EvaluationDataset, evaluate
        from ragas.dataset_schema import SingleTurnSample
        from ragas.run_config import RunConfig

        from localrag.eval.answer_format import is_abstention

        t0 = time.perf_counter()
        wanted = list(dict.fromkeys(metrics)) if metrics is not None else list(METRICS)
        skipped: dict[str, str] = {}
        if abstained or is_abstention(answer):
            skipped.update({m: "abstained" for m in ("faithfulness", "answer_relevancy") if m in wanted})
        if not reference:
            skipped.update({m: "needs a reference answer" for m in ("context_recall",) if m in wanted})
        ctx = [c for c in contexts if c and c.strip()]
        if not ctx:
            skipped.update({m: "no contexts" for m in wanted if m != "answer_relevancy"})
        send = [m for m in wanted if m not in skipped]
        if not send:
            return scores_from_result({}, self.judge, wanted, time.perf_counter() - t0, skipped)
        sample = SingleTurnSample(user_input=question, response=answer, retrieved_contexts=ctx,
                                  reference=reference or None)
        try:
            result = evaluate(
                EvaluationDataset(samples=[sample]), metrics=self._metrics(send, bool(reference)), llm=self.llm,
                embeddings=self.embeddings, raise_exceptions=False, show_progress=False,
                run_config=RunConfig(timeout=int(self.timeout_s), max_retries=2, max_workers=1),
            )
            rows = _result_rows(result)
        except Exception as exc:  # noqa: BLE001 - reported on each metric, the run goes on
            reason = f"ragas failed: {type(exc).__name__}: {exc}"
            if self.base_url:
                reason += f" (is the LLM server at {self.base_url} running? `localrag llm serve`)"
            return scores_from_result({}, self.judge, wanted, time.perf_counter() - t0,
                                      {**{m: reason for m in send}, **skipped})
        return scores_from_result(rows[0] if rows else {}, self.judge, wanted, time.perf_counter() - t0, skipped)


_NEEDS_SERVER = (
    "the ragas engine needs the LLM on an OpenAI-compatible server: set llm_backend=openai and llm_base_url "
    "(LOCALRAG_LLM_BACKEND=openai LOCALRAG_LLM_BASE_URL=http://127.0.0.1:8080/v1), e.g. with `localrag llm serve` "
    "running; the in-process llama.cpp model cannot be used by ragas"
)
