"""The judge panel (eval.panel) and the ragas engine's guard rails (eval.ragas_engine): ragas itself is an optional
extra that is not installed here, so only its 'not installed' path and the NaN -> None conversion are tested."""

from __future__ import annotations

import math

import pytest

from localrag.eval.panel import JudgePanel, agreement
from localrag.eval.scoring import MetricScore, ProxyScorer, Scores


class FakeJudge:
    """Returns fixed values; None means unscored with a reason."""

    def __init__(self, label: str, values: dict[str, float | None], fail: bool = False) -> None:
        self.judge = label
        self.values = values
        self.fail = fail
        self.calls = 0

    def score(self, question, answer, contexts, cited=None, reference=None, abstained=False, metrics=None):
        self.calls += 1
        if self.fail:
            raise RuntimeError("model not loaded")
        names = list(metrics) if metrics is not None else list(self.values)
        out = {n: MetricScore(n, self.values.get(n), self.judge, {}, None if self.values.get(n) is not None
                              else f"{self.judge} could not") for n in names}
        return Scores(out, 0.01, self.judge)


def _panel(aggregate: str, *vals: float | None, threshold: float = 0.5) -> JudgePanel:
    return JudgePanel([FakeJudge(f"j{i}", {"faithfulness": v}) for i, v in enumerate(vals)], aggregate, threshold)


@pytest.mark.parametrize(("aggregate", "expected"), [("mean", 0.5), ("max", 0.9), ("majority", 0.0)])
def test_aggregates(aggregate, expected):
    s = _panel(aggregate, 0.9, 0.4, 0.2).score("q", "a", ["c"], metrics=["faithfulness"])
    assert s.value("faithfulness") == pytest.approx(expected)
    assert s.judge == f"panel({aggregate}):j0+j1+j2"
    d = s.metrics["faithfulness"].details
    assert d["judges"] == {"j0": 0.9, "j1": 0.4, "j2": 0.2}
    assert d["agreement"]["mean_abs_diff"] == pytest.approx((0.5 + 0.7 + 0.2) / 3)
    assert d["agreement"]["binary_agreement"] == pytest.approx(1 / 3)  # only j1/j2 fall on the same side


def test_majority_share_and_tie():
    s = _panel("majority", 0.9, 0.6, 0.1).score("q", "a", ["c"], metrics=["faithfulness"])
    assert s.value("faithfulness") == 1.0
    assert s.metrics["faithfulness"].details["vote_share"] == pytest.approx(2 / 3)
    tie = _panel("majority", 0.9, 0.1).score("q", "a", ["c"], metrics=["faithfulness"])
    assert tie.value("faithfulness") == 0.0  # a tie is not a majority


def test_unscored_judges_excluded_and_counted():
    panel = JudgePanel([FakeJudge("a", {"faithfulness": 0.8}), FakeJudge("b", {"faithfulness": None}),
                        FakeJudge("c", {}, fail=True)])
    m = panel.score("q", "a", ["c"], metrics=["faithfulness"]).metrics["faithfulness"]
    assert m.value == pytest.approx(0.8)
    assert m.details["n_scored"] == 1 and m.details["n_unscored"] == 2
    assert m.details["unscored"]["b"] == "b could not"
    assert "model not loaded" in m.details["unscored"]["c"]
    assert m.details["agreement"]["mean_abs_diff"] is None  # one judge: nothing to compare


def test_all_unscored_gives_none_with_reason():
    s = _panel("mean", None, None).score("q", "a", ["c"], metrics=["faithfulness"])
    m = s.metrics["faithfulness"]
    assert m.value is None
    assert m.unscored_reason.startswith("no judge scored it") and "j0 could not" in m.unscored_reason
    assert s.to_dict()["unscored"]["faithfulness"]


def test_reuse_skips_the_judge_and_labels_stay_distinct():
    a, b = FakeJudge("proxy", {"faithfulness": 1.0}), FakeJudge("proxy", {"faithfulness": 0.0})
    panel = JudgePanel([a, b])
    given = Scores({"faithfulness": MetricScore("faithfulness", 0.5, "proxy")}, 0.0, "proxy")
    s = panel.score("q", "a", ["c"], metrics=["faithfulness"], reuse={1: given})
    assert b.calls == 0 and a.calls == 1
    assert s.judge == "panel(mean):proxy+proxy#2"
    assert s.value("faithfulness") == pytest.approx(0.75)


def test_bad_arguments():
    with pytest.raises(ValueError):
        JudgePanel([])
    with pytest.raises(ValueError):
        JudgePanel([FakeJudge("a", {})], aggregate="median")


def test_agreement_hand_computed():
    rows = [[1.0, 0.8], [0.2, 0.6], [0.9, 0.4], [0.0, 0.1], [0.7, 0.9], [0.5, None]]
    ag = agreement(rows, threshold=0.5)
    assert ag["n_compared"] == 5 and ag["n_complete"] == 5
    assert ag["mean_abs_diff"] == pytest.approx(1.4 / 5)
    assert ag["binary_agreement"] == pytest.approx(3 / 5)
    # decisions T/T, F/T, T/F, F/F, T/T: po = 0.6, both raters say yes 3/5 -> pe = 0.36 + 0.16 = 0.52
    assert ag["cohen_kappa"] == pytest.approx((0.6 - 0.52) / 0.48)
    assert ag["fleiss_kappa"] == pytest.approx((0.6 - 0.52) / 0.48)


def test_agreement_kappa_needs_items_and_variety():
    few = agreement([[1.0, 0.9], [0.0, 0.2]])
    assert few["fleiss_kappa"] is None and "at least 3" in few["kappa_reason"]
    same = agreement([[1.0, 0.9]] * 4)
    assert same["fleiss_kappa"] is None and "undefined" in same["kappa_reason"]
    assert same["binary_agreement"] == 1.0
    single = agreement([[0.3], [0.4]])
    assert single["mean_abs_diff"] is None and single["kappa_reason"] == "needs at least 2 judges"


def test_panel_of_real_proxies(embedder):
    strict = ProxyScorer(embedder, support_threshold=0.8)
    panel = JudgePanel([ProxyScorer(embedder), strict], aggregate="mean")
    ctx = ["The Harbour Bridge opened in 1932 and carries eight lanes of traffic.",
           "Ferries leave from the Circular Quay every twenty minutes."]
    s = panel.score("When did the Harbour Bridge open?", "The Harbour Bridge opened in 1932 [1].", ctx,
                    cited={1: ctx[0]}, reference="It opened in 1932.")
    assert s.judge == "panel(mean):proxy+proxy#2"
    for name, m in s.metrics.items():
        assert m.value is not None, (name, m.unscored_reason)
        assert 0.0 <= m.value <= 1.0
        assert set(m.details["judges"]) == {"proxy", "proxy#2"}


# --- ragas engine --------------------------------------------------------------------------------------------------
def test_ragas_not_installed_gives_clear_error(monkeypatch, embedder):
    import importlib.util

    from localrag.eval import ragas_engine

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ragas" else real(name, *a))
    assert ragas_engine.ragas_available() is False
    with pytest.raises(ragas_engine.RagasUnavailableError, match=r'pip install -e "\.\[ragas\]"'):
        ragas_engine.RagasEngine("http://127.0.0.1:8080/v1", embedder)


def test_cli_engine_ragas_without_extra_exits_2(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from localrag.app.cli import app
    from localrag.eval import ragas_engine

    monkeypatch.setattr(ragas_engine, "ragas_available", lambda: False)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "a", "question": "q?", "reference": "r"}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "d"), "eval", str(qa), "--engine", "ragas"])
    assert res.exit_code == 2, res.output
    assert 'pip install -e ".[ragas]"' in " ".join(res.output.split())


class FakeRagasResult:
    """Stands in for ragas' EvaluationResult: per-sample rows in `.scores`."""

    def __init__(self, rows):
        self.scores = rows


def test_ragas_nan_becomes_none_with_reason():
    from localrag.eval.ragas_engine import _result_rows, scores_from_result

    rows = _result_rows(FakeRagasResult([{"user_input": "q", "faithfulness": math.nan, "answer_relevancy": 0.7,
                                          "llm_context_precision_with_reference": float("nan")}]))
    s = scores_from_result(rows[0], "ragas:test", ["faithfulness", "answer_relevancy", "context_precision",
                                                    "context_recall"], skipped={"context_recall": "needs a reference"})
    assert s.value("answer_relevancy") == pytest.approx(0.7)
    for name in ("faithfulness", "context_precision"):
        assert s.value(name) is None and s.metrics[name].unscored_reason == "ragas returned NaN"
    assert s.metrics["context_recall"].unscored_reason == "needs a reference"
    assert s.judge == "ragas:test"
