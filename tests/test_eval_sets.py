"""The labelled question sets of the four benchmark corpora (bench.corpora): their shape (ids, the
fixed dev/test split, unanswerable questions, types balanced across the split), and that every evidence spec names a
stored file and matches 1 to 3 chunks of it as the default ingest cuts them (same loader, same chunker, same
tokenizer), so a spec can neither miss nor match half a page. No embedding and no store: chunk texts only.

The answer-mode QA sets over the two Python corpora (data/eval/qa_pydocs.jsonl, qa_pyhowto.jsonl; bench.answer_grid
SETS) are checked the same way: their shape here, their evidence together with the retrieval set of the same corpus.

The Python-docs and Python-howto evidence needs Debian's python3-doc (.ci/run installs it) and the articles evidence
needs ../shared/corpora/articles; without them those checks are skipped with the reason, the shape checks still run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.answer_grid import SETS as QA_SETS
from bench.answer_modes import key_facts, load_set
from bench.corpora import (
    ARTICLES,
    CORPORA,
    PYDOCS_PAGES,
    PYHOWTO_PAGES,
    CorpusError,
    corpus_folder,
    find_python_docs,
    load_question_set,
    prepare_python_docs,
    pydocs_file_name,
)
from localrag.app.config import Settings
from localrag.eval.retrieval_metrics import spec_matches
from localrag.ingest.chunker import Tokenizer, chunk_units
from localrag.ingest.loaders import load_file

# (corpus, min questions, min unanswerable, types whose dev and test counts may differ by at most one)
SHAPES = [
    ("sample", 100, 10, False),  # two files, one per split (dev written first, test held out)
    ("articles", 40, 6, True),
    ("python-docs", 50, 6, True),
    ("python-howto", 48, 8, True),  # held out: written after the defaults were chosen, never searched while written
]


@pytest.mark.parametrize(("name", "min_questions", "min_unanswerable", "balanced"), SHAPES, ids=[s[0] for s in SHAPES])
def test_each_set_has_both_halves_unanswerables_and_unique_ids(name, min_questions, min_unanswerable, balanced):
    qs = load_question_set(name)
    assert len(qs) >= min_questions
    assert len({q["id"] for q in qs}) == len(qs), "duplicate ids"
    assert sum(not q["relevant"] for q in qs) >= min_unanswerable
    splits = Counter(q["split"] for q in qs)
    assert set(splits) == {"dev", "test"} and min(splits.values()) >= 20, splits
    for q in qs:
        assert q["query"].strip() and q["type"], q["id"]
        for spec in q["relevant"]:
            assert spec["source"] and spec.get("contains", "x").strip(), q["id"]
    if balanced:  # the split was stratified by type (alternating within each type, in file order)
        for t in {q["type"] for q in qs}:
            dev = sum(q["type"] == t and q["split"] == "dev" for q in qs)
            test = sum(q["type"] == t and q["split"] == "test" for q in qs)
            assert abs(dev - test) <= 1, (t, dev, test)
    assert load_question_set(name, "test") == [q for q in qs if q["split"] == "test"]


def test_python_docs_questions_name_pages_of_the_fixed_list_and_are_a_mix_of_kinds():
    qs = load_question_set("python-docs")
    files = {pydocs_file_name(p) for p in PYDOCS_PAGES}
    assert {s["source"] for q in qs for s in q["relevant"]} <= files
    assert len(files) == len(PYDOCS_PAGES), "two pages would get the same file name"
    types = Counter(q["type"] for q in qs)
    assert types["unanswerable"] >= 6 and types["paraphrase"] >= 20 and types["keyword"] >= 6 and types["exact"] >= 6
    assert all(not q["relevant"] for q in qs if q["type"] == "unanswerable")


def test_python_howto_questions_name_pages_of_its_list_and_are_a_mix_of_kinds():
    qs = load_question_set("python-howto")
    files = {pydocs_file_name(p) for p in PYHOWTO_PAGES}
    assert len(files) == len(PYHOWTO_PAGES) and not set(PYHOWTO_PAGES) & set(PYDOCS_PAGES)
    assert [q["id"] for q in qs] == [f"h{i:02d}" for i in range(1, 49)]
    assert all(len(q["relevant"]) == 1 and q["relevant"][0]["source"] in files for q in qs if q["relevant"])
    for split in ("dev", "test"):  # each half: 10 paraphrase, 5 keyword, 5 exact answerable + 4 unanswerable
        types = Counter(q["type"] for q in qs if q["split"] == split)
        assert types == {"paraphrase": 10, "keyword": 5, "exact": 5, "unanswerable": 4}, (split, types)
    assert all(not q["relevant"] for q in qs if q["type"] == "unanswerable")
    assert all(q["relevant"] for q in qs if q["type"] != "unanswerable")
    per_page = Counter(q["relevant"][0]["source"] for q in qs if q["relevant"])
    assert set(per_page) == files and min(per_page.values()) >= 2, per_page  # every page, at least twice


def test_unknown_corpus_split_or_missing_docs_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="choose one of"):
        corpus_folder("wikipedia")
    with pytest.raises(CorpusError, match="dev or test"):
        load_question_set("sample", "train")
    with pytest.raises(CorpusError, match="apt-get install python3-doc"):
        find_python_docs(tmp_path)  # an empty folder is not the docs
    assert corpus_folder("sample").is_dir() and CORPORA == ("sample", "articles", "python-docs", "python-howto")
    with pytest.raises(CorpusError, match="give dest"):
        corpus_folder("python-howto")


# answer-mode QA set (bench.answer_grid) -> (its corpus, the corpus's page list): written after the retrieval sets,
# 32 answerable questions (8 each of fact, number, name, howto) and 8 unanswerable near misses, half dev, half test
PY_QA = {"pydocs": ("python-docs", PYDOCS_PAGES), "pyhowto": ("python-howto", PYHOWTO_PAGES)}
QA_KEYS = {"id", "question", "reference", "type", "relevant", "split", "answerable"}


@pytest.mark.parametrize("name", sorted(PY_QA))
def test_python_qa_sets_are_registered_split_by_type_and_gradable(name):
    corpus, pages = PY_QA[name]
    path, registered = QA_SETS[name]
    assert registered == corpus, "bench.answer_grid prepares this set's corpus by its bench.corpora name"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = load_set(path, None)
    assert len(items) == 40 and len({i["id"] for i in items}) == 40, "40 questions, unique ids"
    files = {pydocs_file_name(p) for p in pages}
    for row, item in zip(rows, items, strict=True):
        assert set(row) <= QA_KEYS and row["split"] in ("dev", "test"), row["id"]
        if item["type"] == "unanswerable":  # the format of qa.jsonl: no reference, no evidence, answerable false
            assert row["answerable"] is False and row["reference"] == "" and row["relevant"] == [], row["id"]
        else:  # one evidence spec on a page of the corpus, and a reference the key-facts grader can check
            assert item["answerable"] and len(item["relevant"]) == 1, row["id"]
            assert item["relevant"][0]["source"] in files and item["relevant"][0]["contains"].strip(), row["id"]
            facts = key_facts(item["reference"], item["question"])
            assert facts["numbers"] or facts["words"], (row["id"], item["reference"])
    for split in ("dev", "test"):
        types = Counter(i["type"] for i in items if i["split"] == split)
        assert types == {"fact": 4, "number": 4, "name": 4, "howto": 4, "unanswerable": 4}, (split, types)
    assert load_set(path, "test") == [i for i in items if i["split"] == "test"]
    retrieval = {q["query"].casefold() for q in load_question_set(corpus)}
    assert not retrieval & {i["question"].casefold() for i in items}, "a retrieval question copied into the QA set"


def _chunk_texts(folder: Path, names: set[str], tokenizer: Tokenizer, max_tokens: int) -> dict[str, list[str]]:
    """name -> chunk texts of that file, cut as the default ingest cuts them."""
    s = Settings().ingest
    return {n: [c.text for c in chunk_units(load_file(folder / n).units, tokenizer, s.chunk_tokens, s.chunk_overlap,
                                            max_tokens)] for n in sorted(names)}


def _assert_specs_resolve(name: str, folder: Path, embedder, qa_set: str | None = None) -> None:
    """Every evidence spec of corpus `name`'s question set (and of the answer-mode QA set `qa_set` over the same
    corpus, when given) matches 1 to 3 chunks of its file."""
    qs = load_question_set(name)
    if qa_set is not None:
        qs = qs + [{"id": i["id"], "relevant": i["relevant"]} for i in load_set(QA_SETS[qa_set][0], None)]
    names = {s["source"] for q in qs for s in q["relevant"]}
    missing = sorted(n for n in names if not (folder / n).is_file())
    assert not missing, f"evidence names files that are not in {folder}: {missing}"
    chunks = _chunk_texts(folder, names, Tokenizer(embedder.tokenizer), embedder.max_tokens)
    bad = []
    for q in qs:
        for spec in q["relevant"]:
            hits = sum(spec_matches(spec, spec["source"], text, None, None) for text in chunks[spec["source"]])
            if not 1 <= hits <= 3:
                bad.append((q["id"], spec["contains"], hits))
    assert not bad, f"specs matching no chunk or too many (id, contains, chunks): {bad}"


def test_python_docs_evidence_is_in_the_prepared_pages(tmp_path, embedder):
    try:
        find_python_docs()
    except CorpusError as exc:
        pytest.skip(str(exc))
    folder = prepare_python_docs(tmp_path / "pydocs")
    assert sorted(p.name for p in folder.iterdir()) == sorted(pydocs_file_name(p) for p in PYDOCS_PAGES)
    text = (folder / "library-json.html").read_text(encoding="utf-8")
    assert "headerlink" not in text and "<aside" not in text and 'role="navigation"' not in text
    again = prepare_python_docs(folder)  # idempotent, and a stray file is removed
    (again / "stray.txt").write_text("x")
    assert sorted(prepare_python_docs(folder, max_files=3).iterdir()) == sorted(
        folder / pydocs_file_name(p) for p in PYDOCS_PAGES[:3])
    prepare_python_docs(folder)
    _assert_specs_resolve("python-docs", folder, embedder, qa_set="pydocs")


def test_python_howto_evidence_is_in_the_prepared_pages(tmp_path, embedder):
    try:
        find_python_docs()
    except CorpusError as exc:
        pytest.skip(str(exc))
    folder = corpus_folder("python-howto", dest=tmp_path / "pyhowto")
    assert sorted(p.name for p in folder.iterdir()) == sorted(pydocs_file_name(p) for p in PYHOWTO_PAGES)
    text = (folder / "faq-programming.html").read_text(encoding="utf-8")
    assert "headerlink" not in text and "<aside" not in text and 'role="navigation"' not in text
    assert sorted(prepare_python_docs(folder, max_files=2, pages=PYHOWTO_PAGES).iterdir()) == sorted(
        folder / pydocs_file_name(p) for p in PYHOWTO_PAGES[:2])
    prepare_python_docs(folder, pages=PYHOWTO_PAGES)
    _assert_specs_resolve("python-howto", folder, embedder, qa_set="pyhowto")


def test_article_evidence_is_in_the_articles(embedder):
    if not ARTICLES.is_dir():
        pytest.skip(f"the articles corpus is not at {ARTICLES}")
    _assert_specs_resolve("articles", ARTICLES, embedder)
