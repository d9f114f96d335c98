"""RAGAS-style scoring (eval/scoring.py) and the judge check (bench/judge_accuracy.py), with the real packaged MiniLM
and, for a few LLM-judge tests, the real SmolLM2 GGUF. Fake LLMs (named FakeLLM...) only drive the retry/unscored
control flow, which a real model cannot be made to fail on cue."""

from __future__ import annotations

import json
import math

import pytest

from bench.judge_accuracy import STATEMENTS, evaluate_judges, format_report, load_statements
from localrag.app.llm import ContextOverflow, LlamaCppLLM, LLMError
from localrag.eval.scoring import (
    METRICS,
    LLMJudge,
    MetricScore,
    ProxyScorer,
    Scores,
    is_abstention,
    split_sentences,
    strip_citations,
)

TOWER = ("The finished tower is 31 metres tall from its base to the weathervane, and the focal plane of the light sits "
         "52 metres above mean high water springs (MHWS). A staircase of 112 steps spirals up to the lantern gallery. "
         "The light was first exhibited on the evening of 14 October 1867.")
OPTIC = ("The lantern houses a rotating second-order catadioptric Fresnel lens with a focal length of 700 mm. The "
         "complete optic weighs about 2.4 tonnes. The mercury bath was drained and replaced by a modern roller-bearing "
         "pedestal in 1997, partly because of the health risk to maintenance staff.")
BAKERY = ("The Wren Loaf Cooperative Bakery is a worker-and-community cooperative on Fore Street, Port Wren, opposite "
          "the old fish market. Community shares cost £50 each, with a minimum holding of one share and a maximum of "
          "100.")
QUESTION = "How tall is the Gannet Head lighthouse tower and when was it first lit?"
FAITHFUL = ("The finished tower is 31 metres tall from its base to the weathervane [1]. "
            "The light was first exhibited on the evening of 14 October 1867 [1].")
INVENTED = "The tower is painted with red and white stripes and has a gift shop selling postcards [1]."


def _check_scores(s: Scores) -> None:
    """Every value is None (with a reason) or a finite float in [0, 1]; the dict form is strict JSON."""
    assert isinstance(s, Scores) and s.seconds >= 0
    for name, m in s.metrics.items():
        assert name in METRICS and m.name == name
        if m.value is None:
            assert m.unscored_reason, name
        else:
            assert isinstance(m.value, float) and math.isfinite(m.value) and 0.0 <= m.value <= 1.0, (name, m.value)
    json.dumps(s.to_dict(), allow_nan=False)


@pytest.fixture(scope="module")
def proxy(embedder) -> ProxyScorer:
    return ProxyScorer(embedder)


# --- text helpers ---------------------------------------------------------------------------------------------------
def test_sentences_and_citation_markers():
    text = "The tower is 31 m tall [1]. It was lit in 1867. [2] Dr. Marsh founded PWMRS [1, 3].\n- A bullet point"
    assert split_sentences(text) == ["The tower is 31 m tall.", "It was lit in 1867.", "Dr. Marsh founded PWMRS.",
                                     "A bullet point"]
    assert strip_citations("Yes [2,3], it is [1].") == "Yes, it is."
    assert is_abstention("I don't know: the sources do not say.") and not is_abstention("The answer is 4.")


# --- the proxy ------------------------------------------------------------------------------------------------------
def test_proxy_faithful_answer_scores_high(proxy):
    s = proxy.score(QUESTION, FAITHFUL, [TOWER, OPTIC], cited={1: TOWER})
    _check_scores(s)
    f = s.metrics["faithfulness"]
    assert f.value == 1.0 and f.judge == "proxy"
    rows = f.details["sentences"]
    assert len(rows) == 2 and all(r["supported"] and r["source"] == 1 and r["cites"] == [1] for r in rows)
    assert f.details["unsupported"] == []


def test_proxy_flags_an_invented_sentence(proxy):
    faithful = proxy.score(QUESTION, FAITHFUL, [TOWER, OPTIC], cited={1: TOWER}).value("faithfulness")
    s = proxy.score(QUESTION, f"{FAITHFUL} {INVENTED}", [TOWER, OPTIC], cited={1: TOWER})
    _check_scores(s)
    f = s.metrics["faithfulness"]
    assert f.value is not None and f.value < faithful
    assert f.value == pytest.approx(2 / 3)
    flagged = [r for r in f.details["sentences"] if not r["supported"]]
    assert [r["text"] for r in flagged] == [strip_citations(INVENTED)]
    assert flagged[0]["reason"] and flagged[0]["match"]  # says why, and which source sentence came closest


def test_proxy_flags_a_number_the_sources_do_not_hold(proxy):
    s = proxy.score(QUESTION, "The light was first exhibited on the evening of 14 October 1877 [1].", [TOWER],
                    cited={1: TOWER})
    row = s.metrics["faithfulness"].details["sentences"][0]
    assert not row["supported"] and "1877" in row["reason"]


def test_proxy_names_from_the_question_are_not_new(proxy):
    answer = "The light of Gannet Head Lighthouse was first exhibited on the evening of 14 October 1867 [1]."
    asked = proxy.score("When was Gannet Head Lighthouse first lit?", answer, [TOWER], cited={1: TOWER})
    row = asked.metrics["faithfulness"].details["sentences"][0]
    assert "names" not in (row["reason"] or "")
    unasked = proxy.score("When was it first lit?", answer, [TOWER], cited={1: TOWER})
    row = unasked.metrics["faithfulness"].details["sentences"][0]
    assert not row["supported"] and "names not in the sources" in row["reason"]


def test_proxy_support_is_against_cited_sources_only(proxy):
    answer = "The complete optic weighs about 2.4 tonnes [2]."
    assert proxy.score(QUESTION, answer, [TOWER, OPTIC], cited={2: OPTIC}).value("faithfulness") == 1.0
    assert proxy.score(QUESTION, answer, [TOWER, OPTIC], cited={1: TOWER}).value("faithfulness") == 0.0
    assert proxy.score(QUESTION, answer, [TOWER, OPTIC], cited=None).value("faithfulness") == 1.0
    none_cited = proxy.score(QUESTION, answer, [TOWER, OPTIC], cited={})
    assert none_cited.value("faithfulness") == 0.0


def test_proxy_relevancy_on_topic_beats_off_topic(proxy):
    on = proxy.score(QUESTION, FAITHFUL, [TOWER]).value("answer_relevancy")
    off = proxy.score(QUESTION, "Community shares in the bakery cost £50 each [1].", [TOWER]).value("answer_relevancy")
    assert on is not None and off is not None and on > off + 0.2


def test_proxy_context_metrics(proxy):
    s = proxy.score(QUESTION, FAITHFUL, [TOWER, BAKERY], cited={1: TOWER})
    assert s.value("context_recall") is None
    assert s.metrics["context_recall"].unscored_reason == "needs a reference answer"
    assert s.metrics["context_precision"].details["target"] == "question"
    # precision@k rewards the relevant context at rank 1 over the same context at rank 2
    first = proxy.score(QUESTION, FAITHFUL, [TOWER, BAKERY]).value("context_precision")
    second = proxy.score(QUESTION, FAITHFUL, [BAKERY, TOWER]).value("context_precision")
    assert first == 1.0 and second == 0.5
    reference = "The tower is 31 metres tall. It was first lit on 14 October 1867. It has a gift shop."
    with_ref = proxy.score(QUESTION, FAITHFUL, [TOWER, BAKERY], reference=reference)
    _check_scores(with_ref)
    recall = with_ref.metrics["context_recall"]
    assert recall.value == pytest.approx(2 / 3)
    assert recall.details["not_attributed"] == ["It has a gift shop."]
    assert with_ref.metrics["context_precision"].details["target"] == "reference"


def test_proxy_abstention_and_edge_cases_never_nan(proxy):
    cases = [
        dict(question=QUESTION, answer="I don't know: the sources do not say.", contexts=[TOWER]),
        dict(question=QUESTION, answer="", contexts=[TOWER]),
        dict(question=QUESTION, answer=FAITHFUL, contexts=[]),
        dict(question="", answer=FAITHFUL, contexts=[TOWER], reference=""),
        dict(question=QUESTION, answer="[1] [2]", contexts=["", "   "], cited={1: ""}),
        dict(question=QUESTION, answer="Yes.", contexts=[TOWER], cited={}, reference="Yes."),
    ]
    for c in cases:
        _check_scores(proxy.score(**c))
    s = proxy.score(QUESTION, "I don't know: the sources do not say.", [TOWER])
    assert s.metrics["faithfulness"].unscored_reason == "abstained"
    assert s.metrics["answer_relevancy"].unscored_reason == "abstained"
    assert s.value("context_precision") is not None  # retrieval is still measured
    forced = proxy.score(QUESTION, FAITHFUL, [TOWER], abstained=True)
    assert forced.value("faithfulness") is None and forced.metrics["faithfulness"].unscored_reason == "abstained"
    assert set(proxy.score(QUESTION, FAITHFUL, [TOWER], metrics=["faithfulness"]).metrics) == {"faithfulness"}
    with pytest.raises(ValueError):
        proxy.score(QUESTION, FAITHFUL, [TOWER], metrics=["bleu"])


class CountingEmbedder:
    """The real embedder, counting encode() calls."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def encode(self, texts, batch_size=None):
        self.calls += 1
        return self.inner.encode(texts, batch_size)


def test_proxy_embeds_once_per_score_and_caches_sources(embedder):
    counting = CountingEmbedder(embedder)
    p = ProxyScorer(counting)
    p.score(QUESTION, FAITHFUL, [TOWER, OPTIC, BAKERY], cited={1: TOWER}, reference="The tower is 31 metres tall.")
    assert counting.calls == 1
    p.score(QUESTION, FAITHFUL, [TOWER, OPTIC, BAKERY], cited={1: TOWER}, reference="The tower is 31 metres tall.")
    assert counting.calls == 1  # everything cached
    p.score("When was the light first lit?", FAITHFUL + " Extra.", [TOWER, OPTIC, BAKERY])
    assert counting.calls == 2


def test_metric_score_refuses_nan():
    m = MetricScore("faithfulness", float("nan"), "proxy", {})
    assert m.value is None and "non-finite" in m.unscored_reason
    assert MetricScore("faithfulness", None, "proxy", {}).unscored_reason
    s = Scores({"faithfulness": m}, 0.1, "proxy")
    assert s.value("faithfulness") is None and s.value("context_recall") is None
    assert s.to_dict()["unscored"] == {"faithfulness": m.unscored_reason}
    with pytest.raises(KeyError):
        s.value("bleu")


# --- the LLM judge with fakes (control flow only) -------------------------------------------------------------------
class FakeLLMScripted:
    """Answers each schema with canned JSON; raises LLMError for the first `fail_first` calls."""

    model_id = "fake-scripted"

    def __init__(self, fail_first: int = 0, verdicts: list[str] | None = None) -> None:
        self.fail_first, self.calls = fail_first, 0
        self.verdicts = list(verdicts or [])
        self.temperatures: list[float | None] = []

    def generate_json(self, messages, schema, *, temperature=None, max_tokens=None):
        self.calls += 1
        self.temperatures.append(temperature)
        if self.calls <= self.fail_first:
            raise LLMError("the model did not return valid JSON: '{\"verd'")
        props = schema["properties"]
        if "claims" in props:
            return {"claims": ["The tower is 31 metres tall.", "The tower has a gift shop."]}
        if "questions" in props:
            return {"questions": [QUESTION, QUESTION, QUESTION], "noncommittal": False}
        return {"verdict": self.verdicts.pop(0) if self.verdicts else "yes"}


class FakeLLMAlwaysFails:
    model_id = "fake-fails"

    def __init__(self, exc: Exception | None = None) -> None:
        self.exc, self.calls = exc or LLMError("the model did not return valid JSON: 'yes'"), 0

    def generate_json(self, messages, schema, *, temperature=None, max_tokens=None):
        self.calls += 1
        raise self.exc


class FakeLLMOutOfSchema:
    model_id = "fake-out-of-schema"

    def generate_json(self, messages, schema, *, temperature=None, max_tokens=None):
        return {"verdict": "maybe", "claims": "not a list", "questions": [], "noncommittal": "no"}


def test_llm_judge_retries_then_scores(embedder):
    fake = FakeLLMScripted(fail_first=2)
    judge = LLMJudge(fake, embedder)  # retries=2 by default: 3 attempts
    assert judge.verdict("The tower is 31 metres tall.", TOWER) is True
    assert fake.calls == 3 and judge.stats["failed_attempts"] == 2 and judge.stats["unscored_calls"] == 0
    assert fake.temperatures[0] == 0.0 and fake.temperatures[1] > 0  # a retry may differ from the greedy try


def test_llm_judge_ragas_formulas_with_fake(embedder):
    # claims: 2 -> verdicts yes, no; precision contexts: no, yes; recall sentences: yes, no
    fake = FakeLLMScripted(verdicts=["yes", "no", "no", "yes", "yes", "no"])
    judge = LLMJudge(fake, embedder)
    s = judge.score(QUESTION, FAITHFUL, [BAKERY, TOWER], cited={2: TOWER},
                    reference="The tower is 31 metres tall. It has a gift shop.")
    _check_scores(s)
    assert s.judge == "llm:fake-scripted"
    assert s.value("faithfulness") == 0.5
    assert s.metrics["faithfulness"].details["unsupported"] == ["The tower has a gift shop."]
    assert s.value("context_precision") == 0.5  # relevant only at rank 2: precision@2 = 1/2
    assert s.value("context_recall") == 0.5
    rel = s.metrics["answer_relevancy"]
    assert rel.value == pytest.approx(1.0, abs=1e-4) and len(rel.details["generated_questions"]) == 3


def test_llm_judge_always_failing_is_unscored_and_counted(embedder):
    fake = FakeLLMAlwaysFails()
    judge = LLMJudge(fake, embedder, retries=2)
    assert judge.verdict("The tower is 31 metres tall.", TOWER) is None
    assert fake.calls == 3 and "valid JSON" in judge.last_error
    s = judge.score(QUESTION, FAITHFUL, [TOWER], reference="The tower is 31 metres tall.")
    _check_scores(s)
    for name in METRICS:
        m = s.metrics[name]
        assert m.value is None and "valid JSON" in m.unscored_reason, (name, m.unscored_reason)
    assert judge.stats["unscored_calls"] == 1 + len(METRICS)  # one per call that gave up
    assert judge.stats["failed_attempts"] == 3 * judge.stats["unscored_calls"]
    assert json.loads(json.dumps(s.to_dict()))["unscored"].keys() == set(METRICS)


def test_llm_judge_does_not_retry_what_cannot_succeed(embedder):
    fake = FakeLLMAlwaysFails(ContextOverflow("the prompt has 3000 tokens, more than the context window of 2048"))
    judge = LLMJudge(fake, embedder, retries=2)
    assert judge.verdict("x", TOWER) is None and fake.calls == 1


def test_llm_judge_out_of_schema_is_unscored_not_nan(embedder):
    judge = LLMJudge(FakeLLMOutOfSchema(), embedder, retries=1)
    assert judge.verdict("The tower is 31 metres tall.", TOWER) is None
    assert "schema" in judge.last_error
    s = judge.score(QUESTION, FAITHFUL, [TOWER], reference="The tower is 31 metres tall.")
    _check_scores(s)
    assert all(s.value(n) is None for n in METRICS)
    abst = judge.score(QUESTION, "I don't know.", [TOWER], metrics=["faithfulness", "answer_relevancy"])
    assert {m.unscored_reason for m in abst.metrics.values()} == {"abstained"}


# --- the LLM judge with the real SmolLM2 (few calls: each costs about a second) -----------------------------------
@pytest.fixture(scope="module")
def smol():
    m = LlamaCppLLM(n_ctx=2048, n_threads=2)
    yield m
    m.close()


def test_llm_judge_with_real_smollm2(smol, embedder):
    judge = LLMJudge(smol, embedder, max_claims=2, max_tokens=256)
    assert judge.judge.startswith("llm:") and "gguf" in judge.judge.lower()
    v = judge.verdict("The tower is 31 metres tall.", TOWER)
    assert v is None or isinstance(v, bool)
    s = judge.score(QUESTION, FAITHFUL, [TOWER], cited={1: TOWER}, metrics=["faithfulness", "answer_relevancy"])
    _check_scores(s)
    for m in s.metrics.values():
        assert m.judge == judge.judge and m.details["llm_calls"] >= 1
    assert judge.stats["calls"] >= 3 and judge.stats["attempts"] >= judge.stats["calls"]


# --- the judge check ------------------------------------------------------------------------------------------------
def test_statement_file_is_well_formed():
    st = load_statements(STATEMENTS)
    assert len(st) >= 40
    assert {s["label"] for s in st} == {"supported", "unsupported"}
    assert len({s["id"] for s in st}) == len(st)
    n_unsupported = sum(s["label"] == "unsupported" for s in st)
    assert 0.35 <= n_unsupported / len(st) <= 0.65
    assert all(s["context"].strip() and s["statement"].strip() and s["source"] for s in st)


def test_judge_eval_measures_the_proxy_and_a_yes_judge(proxy, embedder):
    st = load_statements(STATEMENTS)
    yes_judge = LLMJudge(FakeLLMScripted(), embedder)  # says "yes" to everything, like the bundled 135M model
    report = evaluate_judges(st, proxy, yes_judge)
    p = report["judges"]["proxy"]
    assert isinstance(p["accuracy"], float) and 0.0 <= p["accuracy"] <= 1.0
    assert p["unscored"] == 0 and p["n"] == len(st)
    y = report["judges"]["llm:fake-scripted"]
    assert y["said_supported"] == 1.0 and y["recall_unsupported"] == 0.0 and y["kappa"] == 0.0
    assert y["accuracy"] == pytest.approx(report["labels"]["supported"] / len(st))
    assert "proxy vs llm:fake-scripted" in report["agreement"]
    text = format_report(report)
    assert "proxy" in text and "kappa" in text
    json.dumps(report, allow_nan=False)
