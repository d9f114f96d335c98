"""`localrag eval` / localrag.app.evaluate: the QA set's labels, the run-level numbers on hand-made records, a small
real run (packaged LLM) whose summary is recomputed here from its own per-item rows, the report files, exit codes."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from localrag.app.cli import app
from localrag.app.evaluate import aggregate, load_items, normalize_item, run_eval, runner, summary_rows, write_report
from localrag.app.evaluate.items import EvalInputError
from localrag.app.evaluate.robustness import PERTURBATIONS, ZWJ, perturb, spread
from localrag.eval.retrieval_metrics import chunk_rows, evidence_units

ROOT = Path(__file__).resolve().parent.parent
QA = ROOT / "data" / "eval" / "qa.jsonl"
PNG = b"\x89PNG\r\n\x1a\n"
cli = CliRunner()


def _write(path: Path, items: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in items) + "\n", encoding="utf-8")
    return path


# --- labels and input -------------------------------------------------------------------------------------------
def test_qa_set_labels_match_the_sample_store(sample_rag):
    items = load_items(QA)
    assert len(items) >= 40
    unanswerable = [it for it in items if not it["answerable"]]
    assert len(unanswerable) >= 5
    assert all(it["reference"] is None and not it["relevant"] for it in unanswerable)
    rows = chunk_rows(sample_rag.store, sample_rag.store.collection("default").id)
    for it in items:
        if it["answerable"]:
            assert it["reference"] and it["relevant"], it["id"]
            units = evidence_units(it["id"], it["relevant"], rows)  # raises when a spec matches no chunk
            assert {u for us in units.values() for u in us} == {f"{it['id']}/{n}" for n in range(len(it["relevant"]))}


def test_input_validation():
    assert normalize_item({"question": "Q?", "reference": ""})["answerable"] is False
    assert normalize_item({"question": "Q?", "reference": None, "answerable": False})["answerable"] is False
    assert normalize_item({"question": "Q?"})["answerable"] is True  # no reference: answerable, no recall
    for bad in ({"question": " "}, {"question": "Q?", "reference": "x", "answerable": False},
                {"question": "Q?", "reference": "", "relevant": [{"source": "a.md"}]},
                {"question": "Q?", "relevant": [{"contains": "x"}]}, {"question": "Q?", "colour": "red"}, ["Q?"]):
        with pytest.raises(EvalInputError):
            normalize_item(bad)


def test_load_items_skips_comments_and_names_the_bad_line(tmp_path):
    qa = _write(tmp_path / "qa.jsonl", ["# a comment", "", {"question": "A?"}, {"id": "b", "question": "B?"},
                                        {"question": "C?"}])
    items = load_items(qa)
    assert [it["id"] for it in items] == ["line3", "b", "line5"]  # ids default to the file line
    assert [it["id"] for it in load_items(qa, limit=2)] == ["line3", "b"]
    dup = _write(tmp_path / "dup.jsonl", [{"id": "x", "question": "A?"}, {"id": "x", "question": "B?"}])
    with pytest.raises(EvalInputError, match=r"dup\.jsonl:2: duplicate id 'x' \(first on line 1\)"):
        load_items(dup)
    arr = _write(tmp_path / "arr.jsonl", [{"question": "A?"}, '["B?"]'])
    with pytest.raises(EvalInputError, match=r"arr\.jsonl:2: expected a JSON object, got list"):
        load_items(arr)
    with pytest.raises(EvalInputError, match="is a folder, not a QA file"):
        load_items(tmp_path)
    with pytest.raises(EvalInputError, match="no QA items"):
        load_items(_write(tmp_path / "empty.jsonl", ["# nothing", ""]))


def test_perturbations_keep_the_meaning_and_spread():
    q = "How many steps lead up to the lantern gallery?"
    variants = [perturb(q, i, "x") for i in range(len(PERTURBATIONS))]
    assert variants == [perturb(q, i, "x") for i in range(len(PERTURBATIONS))]  # deterministic
    for v in variants:
        assert v != q
        core = " ".join(v.replace(ZWJ, "").split()).casefold().rstrip("?!. ")
        assert core == q.casefold().rstrip("?")
    assert any(ZWJ in v for v in variants)
    same = np.tile(np.array([[0.6, 0.8]]), (3, 1))
    assert spread(same) == pytest.approx(0.0, abs=1e-9)
    assert spread(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 - np.sqrt(0.5))


# --- run-level numbers on hand-made records -----------------------------------------------------------------------
def _rec(answerable: bool, abstained: bool | None, error: str | None = None, **extra) -> dict:
    return {"answerable": answerable, "abstained": abstained, "error": error, **extra}


def test_abstention_accuracy_counts_the_right_decisions():
    records = [
        _rec(True, False), _rec(True, False), _rec(True, True),  # answerable: 2 answered (right), 1 abstained
        _rec(False, True), _rec(False, False),  # unanswerable: 1 abstained (right), 1 answered
        _rec(True, None, "RuntimeError: boom"), _rec(False, None, "RuntimeError: boom"),  # failed: not counted
    ]
    ab = aggregate.abstention(records)
    assert ab["n"] == 5 and ab["correct"] == 3 and ab["accuracy"] == pytest.approx(3 / 5)
    assert ab["answerable"] == {"n": 3, "answered": 2, "rate": pytest.approx(2 / 3)}
    assert ab["unanswerable"] == {"n": 2, "abstained": 1, "rate": pytest.approx(1 / 2)}
    none = aggregate.abstention([_rec(True, None, "x")])
    assert none["n"] == 0 and none["accuracy"] is None and none["answerable"]["rate"] is None


def test_score_and_latency_summaries_on_hand_made_records():
    records = [
        _rec(True, False, scores={"proxy": {"values": {"faithfulness": 0.5, "context_recall": None},
                                            "unscored": {"context_recall": "no reference"}}},
             timings={"total": 1.0}),
        _rec(True, False, scores={"proxy": {"values": {"faithfulness": 1.0, "context_recall": 0.25}},
                                  "llm:x": {"values": {"faithfulness": None},
                                            "unscored": {"faithfulness": "LLM error"}}},
             timings={"total": 3.0, "judge": 0.5}),
        _rec(True, False, scores={"proxy": {"values": {"faithfulness": 0.0}}}, timings={"total": 2.0}),
        _rec(True, None, "RuntimeError: boom", timings={"total": 100.0}),  # a failed item's timings are left out
    ]
    assert aggregate.judge_labels(records) == ["proxy", "llm:x"]
    s = aggregate.score_summary(records)
    f = s["proxy"]["faithfulness"]
    assert (f["n"], f["n_unscored"], f["min"], f["max"]) == (3, 0, 0.0, 1.0)
    assert f["mean"] == pytest.approx(0.5) and f["median"] == pytest.approx(0.5)
    cr = s["proxy"]["context_recall"]
    assert cr["n"] == 1 and cr["mean"] == pytest.approx(0.25)
    assert cr["n_unscored"] == 1 and cr["unscored_reasons"] == {"no reference": 1}
    lf = s["llm:x"]["faithfulness"]
    assert lf["n"] == 0 and lf["mean"] is None and lf["unscored_reasons"] == {"LLM error": 1}
    lat = aggregate.latency(records)
    assert set(lat) == {"total", "judge"}
    assert lat["total"]["n"] == 3 and lat["total"]["max"] == 3.0
    assert lat["total"]["mean"] == pytest.approx(2.0) and lat["total"]["p50"] == pytest.approx(2.0)
    assert lat["total"]["p95"] == pytest.approx(2.9)  # linear interpolation between 2.0 and 3.0
    assert aggregate.finite({"a": [float("nan"), 1.0, np.float32("inf")]}) == {"a": [None, 1.0, None]}


def _deviation(vectors: np.ndarray) -> float:
    """Mean of 1 - cos(answer, centroid of the answers), written out here rather than taken from the code."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    c = v.mean(axis=0)
    c = c / np.linalg.norm(c)
    return float(np.mean([1.0 - float(np.dot(x, c)) for x in v]))


def test_robustness_stage_measures_the_spread_and_the_flips(embedder):
    """The stage on scripted answers (a FakeAsker, named as a fake: a real model cannot be made to answer each
    variant differently on cue) and the real MiniLM: deviation and flips recomputed here from the answers."""
    scripted = [("The tower is 31 metres tall.", False), ("I don't know.", True), ("It has 112 steps.", False)]
    asked: list[tuple[str, dict]] = []

    class FakeAsker:
        def __init__(self) -> None:
            self.embedder = embedder

        def ask(self, question: str, **kw):
            asked.append((question, kw))
            text, abstained = scripted[len(asked) - 1]
            return SimpleNamespace(text=text, abstained=abstained)

    ctx = runner.EvalContext(rag=FakeAsker(), collection="c", judge="proxy", k=3, answer_k=3, depth=10,
                             robustness=3)
    item = {"id": "q1", "question": "How tall is the Gannet Head lighthouse tower?"}
    first = SimpleNamespace(text="The finished tower is 31 metres tall [1].", abstained=False)
    rob = runner.robustness_stage(ctx, item, first)
    assert [q for q, _ in asked] == [perturb(item["question"], j, "q1") for j in range(3)]
    assert all(kw == {"collection": "c", "k": 3, "cache": False, "temperature": 0} for _, kw in asked)
    assert rob["n"] == 3 and rob["abstain_flips"] == 1
    assert [v["kind"] for v in rob["variants"]] == list(PERTURBATIONS[:3])
    assert [(v["text"], v["abstained"]) for v in rob["variants"]] == scripted
    texts = [first.text] + [t for t, _ in scripted]
    assert rob["deviation"] == pytest.approx(_deviation(embedder.encode(texts)), abs=1e-5)
    assert rob["deviation"] > 0.05  # different answers spread


# --- a small real run, its summary recomputed from its own rows ---------------------------------------------------
@pytest.fixture(scope="module")
def small_run(sample_rag, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    qa = _write(tmp / "qa.jsonl", [
        {"id": "ans", "question": "Who is the head baker at the Wren Loaf Cooperative Bakery?",
         "reference": "Dilys Penrose."},
        {"id": "none", "question": "What is the name of the Wren Loaf bakery's delivery van driver?",
         "reference": "", "answerable": False},
        {"id": "spec", "question": "How many steps lead up to the lantern gallery of Gannet Head Lighthouse?",
         "reference": "112 steps.", "relevant": [{"source": "gannet-head-lighthouse.md", "contains": "112 steps"}]},
        {"id": "cut", "question": "Not run: --limit 3 stops before this one."},
    ])
    calls: list[tuple] = []
    result = run_eval(sample_rag, load_items(qa, limit=3), progress=lambda *a: calls.append(a))
    return result, calls, tmp


def test_run_eval_runs_every_item_and_reports_progress(small_run):
    result, calls, _ = small_run
    assert calls == [(0, 3, "ans"), (1, 3, "none"), (2, 3, "spec"), (3, 3, "")]
    assert result["n_items"] == 3 and result["n_failed"] == 0 and result["exit_code"] == 0, result["errors"]
    assert [r["id"] for r in result["items"]] == ["ans", "none", "spec"]
    json.dumps(result, allow_nan=False)
    assert {"retrieve", "total", "score"} <= set(result["latency"])


def test_run_eval_abstention_matches_its_rows(small_run):
    result, _, _ = small_run
    rows = result["items"]
    by = {r["id"]: r for r in rows}
    assert [by[i]["answerable"] for i in ("ans", "none", "spec")] == [True, False, True]
    for r in rows:  # the decision was right: answered an answerable question, abstained on an unanswerable one
        assert r["correct"] is ((not r["abstained"]) if r["answerable"] else r["abstained"]), r["id"]
        assert r["abstained"] is r["answer"]["abstained"]
    answered = sum(1 for r in rows if r["answerable"] and not r["abstained"])
    abstained = sum(1 for r in rows if not r["answerable"] and r["abstained"])
    ab = result["abstention"]
    assert ab["answerable"] == {"n": 2, "answered": answered, "rate": pytest.approx(answered / 2)}
    assert ab["unanswerable"] == {"n": 1, "abstained": abstained, "rate": pytest.approx(abstained / 1)}
    assert ab["correct"] == answered + abstained and ab["accuracy"] == pytest.approx((answered + abstained) / 3)


def _expected_retrieval(retrieved: list[dict], n_specs: int, answer_k: int) -> dict[str, float]:
    """Recall@k, RR@10 and nDCG@10 from the retrieved rows of one item (each row lists the evidence units its chunk
    holds): the first chunk that holds a unit stands for it, a chunk holding only units already seen drops out."""
    ranking: list[str | None] = []
    seen: set[str] = set()
    for row in retrieved:
        new = [u for u in row["evidence"] if u not in seen]
        if not row["evidence"]:
            ranking.append(None)
        seen.update(new)
        ranking.extend(new)
    hits = [i for i, u in enumerate(ranking) if u is not None]

    def recall(k: int) -> float:
        return sum(1 for i in hits if i < k) / n_specs

    ideal = sum(1 / math.log2(i + 2) for i in range(min(n_specs, 10)))
    return {f"R@{answer_k}": recall(answer_k), "R@5": recall(5), "R@10": recall(10),
            "RR@10": 1 / (hits[0] + 1) if hits and hits[0] < 10 else 0.0,
            "nDCG@10": sum(1 / math.log2(i + 2) for i in hits if i < 10) / ideal}


def test_run_eval_retrieval_metrics_match_the_retrieved_rows(small_run):
    result, _, _ = small_run
    by = {r["id"]: r for r in result["items"]}
    ret = result["retrieval"]
    assert ret["n"] == 1 and ret["metrics"] == ["R@4", "R@5", "R@10", "RR@10", "nDCG@10"]
    assert "retrieval" in by["spec"] and "retrieval" not in by["ans"] and "retrieved" not in by["ans"]
    spec = by["spec"]
    assert len(spec["retrieved"]) == ret["depth"] == 10
    assert any(row["evidence"] == ["spec/0"] for row in spec["retrieved"])  # "112 steps" is in the top 10
    expected = _expected_retrieval(spec["retrieved"], len(spec["relevant"]), result["settings"]["k"])
    assert spec["retrieval"] == pytest.approx(expected)
    assert ret["overall"] == pytest.approx(expected)  # one item: the mean is its own value


def test_run_eval_scores_and_latency_match_the_rows(small_run):
    result, _, _ = small_run
    rows = result["items"]
    assert result["judges"] == ["proxy"]
    by = {r["id"]: r for r in rows}
    assert "context_recall" not in by["none"]["scores"]["proxy"]["values"]  # no reference, no recall
    assert "context_recall" in by["spec"]["scores"]["proxy"]["values"]
    summary = result["scores"]["proxy"]
    names = {m for r in rows for m in r["scores"]["proxy"]["values"]}
    assert set(summary) == names
    for name, s in summary.items():
        vals = [r["scores"]["proxy"]["values"][name] for r in rows if name in r["scores"]["proxy"]["values"]]
        scored = [v for v in vals if v is not None]
        assert s["n"] == len(scored) and s["n_unscored"] == len(vals) - len(scored), name
        if scored:
            assert s["mean"] == pytest.approx(statistics.fmean(scored)) and s["max"] == max(scored), name
    totals = sorted(r["timings"]["total"] for r in rows)
    lat = result["latency"]["total"]
    assert lat["n"] == 3 and lat["max"] == totals[-1] and lat["p50"] == pytest.approx(totals[1])


def test_write_report_files(small_run):
    result, _, tmp = small_run
    paths = write_report(result, tmp / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "scores.png", "latency.png"]
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(result))
    md = paths[1].read_text()
    ab = result["abstention"]
    assert f"| abstention | accuracy | {100 * ab['accuracy']:.0f}% ({ab['correct']} of 3) |" in md
    for section, measure, value in summary_rows(result):  # the CLI's table and report.md show the same numbers
        assert f"| {section} | {measure} | {value.replace('|', chr(92) + '|')} |" in md
    for r in result["items"]:
        assert f"| {r['id']} | {r['answerable']} | {r['abstained']} | {'yes' if r['correct'] else '**no**'} |" in md
    for png in paths[2:]:
        assert png.read_bytes()[:8] == PNG


# --- the CLI -----------------------------------------------------------------------------------------------------
def test_cli_bad_input_exits_2_naming_the_line(sample_rag, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    base = ["--data-dir", str(sample_rag.data_dir), "eval"]
    bad = _write(tmp_path / "bad.jsonl", [{"question": "Who designed the lighthouse?"}, '{"question": "oops",'])
    res = cli.invoke(app, base + [str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output and "not valid JSON" in res.output
    assert not (tmp_path / "o").exists()
    res = cli.invoke(app, base + [str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "no such file" in res.output
    noq = _write(tmp_path / "noq.jsonl", ["", {"reference": "x"}])
    res = cli.invoke(app, base + [str(noq)])
    assert res.exit_code == 2 and "noq.jsonl:2" in res.output
    good = _write(tmp_path / "good.jsonl", [{"question": "Who designed the lighthouse?"}])
    assert cli.invoke(app, base + [str(good), "--judge", "oracle"]).exit_code == 2
    assert cli.invoke(app, base + [str(good), "--collection", "nope", "--out", str(tmp_path / "o")]).exit_code == 2


def test_cli_eval_json_robustness_and_limit(sample_rag, tmp_path, monkeypatch):
    """Off-topic questions: retrieval finds nothing relevant, so `ask` abstains without calling the LLM (fast)."""
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    qa = _write(tmp_path / "qa.jsonl", [
        {"id": "off", "question": "Who won the 1998 football world cup?", "answerable": False},
        {"id": "later", "question": "Who won the 1998 football world cup?", "reference": "France."},
    ])
    out = tmp_path / "out"
    res = cli.invoke(app, ["--data-dir", str(sample_rag.data_dir), "eval", str(qa), "--limit", "1", "--json",
                              "--robustness", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [r["id"] for r in report["items"]] == ["off"] and report["limit"] == 1
    item = report["items"][0]
    assert item["abstained"] is True and item["correct"] is True  # the off-topic question is declined
    assert report["abstention"]["accuracy"] == 1.0
    rob = item["robustness"]
    q = "Who won the 1998 football world cup?"
    assert [v["question"] for v in rob["variants"]] == [perturb(q, j, "off") for j in range(2)]
    assert [v["kind"] for v in rob["variants"]] == list(PERTURBATIONS[:2])
    assert rob["abstain_flips"] == sum(v["abstained"] is not item["abstained"] for v in rob["variants"])
    texts = [item["answer"]["text"]] + [v["text"] for v in rob["variants"]]
    assert rob["deviation"] == pytest.approx(_deviation(sample_rag.embedder.encode(texts)), abs=1e-4)
    assert report["robustness"]["mean_deviation"] == pytest.approx(rob["deviation"])
    assert report["robustness"]["abstain_flips"] == rob["abstain_flips"]
    assert report["retrieval"] is None
    assert json.loads((out / "report.json").read_text())["n_items"] == 1
    assert (out / "latency.png").read_bytes()[:8] == PNG and (out / "scores.png").read_bytes()[:8] == PNG


# --- answers made elsewhere (ragas-style datasets) ---------------------------------------------------------------
LIGHTHOUSE = ("Gannet Head Lighthouse was designed by the engineer Thomas Carrick and first lit in 1867. "
              "Its tower holds 112 steps up to the lantern gallery.")
BAKERY = "The Wren Loaf Cooperative Bakery opened in 1994; its head baker is Dilys Penrose."


def test_ragas_style_keys_are_read_and_checked():
    item = normalize_item({"user_input": "Who designed it?", "ground_truth": "Thomas Carrick.",
                           "response": "Thomas Carrick designed it [1].", "retrieved_contexts": [LIGHTHOUSE]})
    assert item["question"] == "Who designed it?" and item["reference"] == "Thomas Carrick."
    assert item["answer"] == "Thomas Carrick designed it [1]." and item["contexts"] == [LIGHTHOUSE]
    same = normalize_item({"question": "Q?", "answer": "A [1].", "contexts": ["ctx"], "user_input": "Q?"})
    assert same["answer"] == "A [1]." and same["contexts"] == ["ctx"]
    plain = normalize_item({"question": "Q?"})
    assert plain["answer"] is None and plain["contexts"] is None  # localrag answers these itself
    for bad, says in (
        ({"user_input": "Q?", "question": "Other?"}, "different values"),
        ({"question": "Q?", "response": "A."}, "needs the 'retrieved_contexts'"),
        ({"question": "Q?", "retrieved_contexts": ["c"]}, "without a 'response'"),
        ({"question": "Q?", "response": "A.", "retrieved_contexts": "c"}, "list of strings"),
        ({"question": "Q?", "response": 3, "contexts": ["c"]}, "must be a string"),
    ):
        with pytest.raises(EvalInputError, match=says):
            normalize_item(bad)


def test_given_answers_are_scored_not_asked_again(rag_factory, tmp_path):
    """An empty data directory (no collection, so nothing could be retrieved or asked): every item brings its own
    answer and contexts, and the report judges exactly those answers with the same proxy metrics."""
    rag = rag_factory(tmp_path / "empty")
    qa = _write(tmp_path / "ragas.jsonl", [
        {"user_input": "Who designed Gannet Head Lighthouse?", "ground_truth": "Thomas Carrick.",
         "response": "Gannet Head Lighthouse was designed by Thomas Carrick [1].",
         "retrieved_contexts": [LIGHTHOUSE, BAKERY]},
        {"user_input": "Who designed Gannet Head Lighthouse?", "ground_truth": "Thomas Carrick.",
         "response": "It was designed by a team of Venetian glassmakers in 1702 [2].",
         "retrieved_contexts": [LIGHTHOUSE, BAKERY]},
        {"user_input": "Who drives the bakery's delivery van?", "ground_truth": "", "answerable": False,
         "response": "I don't know: the documents do not say.", "retrieved_contexts": [BAKERY]},
        {"user_input": "How many steps lead to the gallery?", "response": "There are 112 steps [7].",
         "retrieved_contexts": [LIGHTHOUSE]},
    ])
    result = run_eval(rag, load_items(qa))
    assert result["n_failed"] == 0 and result["exit_code"] == 0, result["errors"]
    good, bad, idk, stray = result["items"]
    assert all(r["given"] for r in result["items"])
    assert good["answer"]["text"] == "Gannet Head Lighthouse was designed by Thomas Carrick [1]."
    assert [c["n"] for c in good["answer"]["citations"]] == [1]
    faith = {r["id"]: r["scores"]["proxy"]["values"]["faithfulness"] for r in (good, bad)}
    assert faith["line1"] > 0.5 > faith["line2"], faith
    rel = {r["id"]: r["scores"]["proxy"]["values"]["context_recall"] for r in (good, bad)}
    assert rel["line1"] is not None  # the reference is there, so context recall is scored
    assert idk["abstained"] is True and idk["correct"] is True and good["correct"] is True
    assert stray["answer"]["citations"] == [] and any("[7]" in w for w in stray["answer"]["warnings"])
    assert result["abstention"]["accuracy"] == 1.0
    given = runner.given_answer("Gannet Head Lighthouse was designed by Thomas Carrick [1].", [LIGHTHOUSE, BAKERY])
    direct = rag.score_answer("Who designed Gannet Head Lighthouse?", given, reference="Thomas Carrick.")
    assert direct["values"] == good["scores"]["proxy"]["values"]


def test_an_asked_item_still_needs_a_collection(rag_factory, tmp_path):
    rag = rag_factory(tmp_path / "empty")
    items = [{"question": "Q?", "response": "A.", "retrieved_contexts": ["c"]}, {"question": "Who?"}]
    with pytest.raises(ValueError, match="no collection"):
        run_eval(rag, items)
