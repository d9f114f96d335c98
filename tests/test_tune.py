"""`localrag tune` (issue 23): questions per chunk (the real qwen 0.5B on a handful of chunks; a named fake LLM where a
test is about control flow), resume after a kill, the switch only on improvement, --undo, the fallback when the
tuned files are missing or corrupt, and queries using the collection's own model. Real embedder (packaged MiniLM)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import SAMPLE
from fakes import FakeQuestionLLM
from sqlalchemy import select

from localrag.app.rag import RagError
from localrag.app.tune import TrainSettings, TuneOptions
from localrag.app.tune.questions import parse_question, sample_chunks, write_questions
from localrag.index.store import TuneQuestionRow, TuneRunRow

FILES = ["gannet-head-lighthouse.md", "wren-loaf-bakery.md"]
FAST = TrainSettings(epochs=1, batch_size=8, max_seq_length=128)
FORCE = TuneOptions(min_gain=-1.0, train=FAST)  # switch whatever the held-out change (control-flow tests)
NEVER = TuneOptions(min_gain=10.0, train=TrainSettings(epochs=0))  # untrained, never switched: tests of the questions


@pytest.fixture()
def small(rag_factory, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in FILES:
        shutil.copy(SAMPLE / name, src / name)
    rag = rag_factory()
    assert rag.ingest([src]).exit_code == 0
    rag.set_llm(FakeQuestionLLM())
    return rag, src


def _coll(rag):
    return rag.store.collection("default")


def _stored(rag, ids=None):
    coll = _coll(rag)
    ids = rag.store.chunk_ids(coll.id) if ids is None else ids
    return ids, rag.store.embeddings(ids, coll.embedding_dim)


def test_parse_question_keeps_one_question_and_rejects_junk():
    assert parse_question('Question: "When was the lighthouse on Gannet Head built?"\nmore') == \
        "When was the lighthouse on Gannet Head built?"
    assert parse_question("1. who bakes the wren loaf? It is ...") == "Who bakes the wren loaf?"
    for junk in ("The lighthouse was built in 1871.", "What does the passage say about tides?", "Why?",
                 "", "???", "Sure! Here is a question:"):
        assert parse_question(junk) is None, junk


def test_the_packaged_qwen_writes_questions_for_a_few_chunks(small):
    rag, _ = small
    rag.set_llm(None)  # the configured LLM: the packaged qwen2.5-coder-0.5b
    rag._llm = None
    coll = _coll(rag)
    ids = sample_chunks(rag.store, coll.id, 4)
    counts = write_questions(rag.store, coll.id, lambda: rag.llm, ids)
    assert counts.asked == 4 and counts.reused == 0
    with rag.store.session() as s:
        rows = s.scalars(select(TuneQuestionRow).where(TuneQuestionRow.collection_id == coll.id)).all()
    good = [r.question for r in rows if r.status == "ok"]
    assert len(rows) == 4 and len(good) >= 3, [(r.status, r.question) for r in rows]
    assert all(q.endswith("?") and 4 <= len(q.split()) <= 40 for q in good)
    assert {r.model for r in rows} == {rag.llm.model_id}


def test_sample_is_stratified_by_document(small):
    rag, _ = small
    coll = _coll(rag)
    picked = sample_chunks(rag.store, coll.id, 4)
    with rag.store.session() as s:
        from localrag.index.store import ChunkRow

        docs = {d for (d,) in s.execute(select(ChunkRow.document_id).where(ChunkRow.id.in_(picked)))}
    assert len(picked) == 4 and len(docs) == 2


def test_a_killed_question_stage_resumes_without_rewriting(small):
    rag, _ = small
    coll = _coll(rag)
    rag.set_llm(FakeQuestionLLM(fail_after=5))
    with pytest.raises(KeyboardInterrupt):
        rag.tune(options=FORCE)
    with rag.store.session() as s:
        first = {r.chunk_id: (r.id, r.question, r.created) for r in s.scalars(select(TuneQuestionRow))}
    assert len(first) == 5
    fake = FakeQuestionLLM()
    rag.set_llm(fake)
    report = rag.tune(options=NEVER)
    total = len(rag.store.chunk_ids(coll.id))
    assert report["questions"] == {"asked": total - 5, "reused": 5, "junk": 0}
    assert fake.calls == total - 5
    with rag.store.session() as s:
        after = {r.chunk_id: (r.id, r.question, r.created) for r in s.scalars(select(TuneQuestionRow))}
    assert {c: after[c] for c in first} == first and len(after) == total
    assert report["kept"] + report["dropped"] == total and not report["switched"]
    again = rag.tune(options=NEVER)  # nothing left to ask
    assert again["questions"] == {"asked": 0, "reused": total, "junk": 0} and fake.calls == total - 5


def test_no_improvement_keeps_the_base_model(small):
    rag, _ = small
    base_ids, base_vecs = _stored(rag)
    report = rag.tune(options=TuneOptions(train=TrainSettings(epochs=0)))  # untrained: the same scores
    assert report["before"] == report["after"] and not report["switched"]
    assert "not switched" in report["decision"]
    assert rag.collection_embedder().model_id == rag.embedder.model_id
    assert np.array_equal(_stored(rag)[1], base_vecs)
    with rag.store.session() as s:
        assert [r.status for r in s.scalars(select(TuneRunRow))] == ["kept-base"]


def test_switch_queries_use_the_tuned_model_then_undo(small, rag_factory, tmp_path):
    rag, src = small
    coll = _coll(rag)
    ids, base_vecs = _stored(rag)
    version = coll.corpus_version
    rag.cache.put(coll.id, version, "some-llm", "p1", "Who designed the lighthouse?", {"answer": "Elias Thornbury"})
    assert rag.cache_stats("default")["entries"] == 1
    report = rag.tune(options=FORCE)
    assert rag.cache_stats("default")["entries"] == 0  # answers found with the base model's search are not served
    assert report["switched"] and report["seconds"].keys() >= {"questions", "filter", "training", "re-embedding"}
    tuned = rag.collection_embedder()
    assert tuned.model_id.startswith(rag.embedder.model_id + "+tuned:")
    # the store holds the tuned vectors now, and a search ranks by the tuned model
    texts = dict(zip(*rag.store.chunk_texts(coll.id), strict=True))
    vecs = _stored(rag, ids)[1]
    assert np.allclose(vecs, tuned.encode([texts[int(i)] for i in ids]), atol=2e-3)
    assert not np.allclose(vecs, base_vecs, atol=2e-3)
    query = "Who designed the lighthouse?"
    expect = ids[np.argsort(-(vecs @ tuned.encode([query])[0]), kind="stable")[:3]]
    assert [h.chunk_id for h in rag.search(query, k=3, mode="dense", min_relevance=0)] == list(expect)
    assert _coll(rag).corpus_version == version + 1
    other = rag_factory(rag.data_dir)  # another process's Rag sees the switch
    assert other.collection_embedder().model_id == tuned.model_id
    # an ingest into the tuned collection embeds with the tuned model
    assert rag.collection_embedder() is tuned  # not reloaded when the corpus changes
    (src / "extra.txt").write_text("The harbour ferry to Skerry Island leaves at nine every morning in summer.")
    assert rag.ingest([src]).exit_code == 0
    new = np.setdiff1d(rag.store.chunk_ids(coll.id), ids)
    assert rag.collection_embedder() is tuned
    assert len(new) == 1
    assert np.allclose(_stored(rag, new)[1], tuned.encode([(src / "extra.txt").read_text()]), atol=2e-3)
    # --undo: the base model's vectors again (the new chunk re-embedded with it)
    undone = rag.tune(undo=True)
    assert undone["re_embedded"] == 1 and rag.collection_embedder().model_id == rag.embedder.model_id
    assert np.allclose(_stored(rag, ids)[1], base_vecs, atol=1e-6)
    assert np.allclose(_stored(rag, new)[1], rag.embedder.encode([(src / "extra.txt").read_text()]), atol=2e-3)
    assert rag.search("ferry to Skerry Island", k=1, mode="dense", min_relevance=0)[0].chunk_id == int(new[0])
    assert not (rag._folder(coll) / "tuned" / report["tag"]).exists()
    with pytest.raises(RagError, match="nothing to undo"):
        rag.tune(undo=True)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_unusable_tuned_files_fall_back_to_the_base_model(small, rag_factory, damage):
    rag, _ = small
    ids, base_vecs = _stored(rag)
    report = rag.tune(options=FORCE)
    assert report["switched"]
    folder = rag._folder(_coll(rag)) / "tuned" / report["tag"]
    if damage == "corrupt":
        (folder / "model" / "model.safetensors").write_bytes(b"not a model")
    else:
        shutil.rmtree(folder)
    fresh = rag_factory(rag.data_dir)
    with pytest.warns(RuntimeWarning, match="unusable.*base model"):
        hits = fresh.search("Who designed the lighthouse?", k=3, mode="dense", min_relevance=0)
    assert hits and fresh.collection_embedder().model_id == fresh.embedder.model_id
    assert np.allclose(_stored(fresh, ids)[1], base_vecs, atol=1e-6)
    with fresh.store.session() as s:
        assert [r.status for r in s.scalars(select(TuneRunRow))] == ["reverted"]


def test_cli_tune_reuses_stored_questions_and_undoes(small):
    from typer.testing import CliRunner

    from localrag.app.cli import app

    rag, _ = small
    assert rag.tune(options=TuneOptions(min_gain=-1.0, train=TrainSettings(epochs=0)))["switched"]  # untrained
    runner = CliRunner()
    data = ["--data-dir", str(rag.data_dir)]
    res = runner.invoke(app, [*data, "tune", "--epochs", "0", "--json"])  # every chunk has its question: no LLM
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["questions"]["asked"] == 0 and not report["switched"]
    assert "the tuned model is active" in report["decision"]
    res = runner.invoke(app, [*data, "tune", "--undo"])
    assert res.exit_code == 0 and "base model again" in res.output, res.output
    res = runner.invoke(app, [*data, "tune", "--undo"])
    assert res.exit_code == 1 and "nothing to undo" in res.output
