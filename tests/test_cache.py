"""Semantic answer cache (app/cache/) on a private copy of the ingested sample corpus, with the real
MiniLM embedder: exact and semantic hits, scoping, TTL, clear, the size cap, thread safety, the verification
rules, and the labeled pair set (0 false hits required)."""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from bench.cache import evaluate_pairs, format_table, load_pairs
from localrag.app.cache import CorpusTerms, SemanticCache, new_words_check, normalize_question, verify_equivalent
from localrag.app.cache.equivalence import defined_acronyms, expand_acronyms
from localrag.index.store import AnswerCacheRow, CollectionRow, Store, utcnow

M, P = "llm-a", "prompt-v1"  # answering model id and prompt version used by most tests
TALL = "How tall is the Gannet Head lighthouse?"
HEIGHT = "What is the height of Gannet Head Lighthouse?"  # a paraphrase of TALL (cosine ~0.98)


@pytest.fixture(scope="module")
def scratch(sample_rag, tmp_path_factory):
    """A private copy of the sample database (the session one stays read-only) plus a second, empty collection."""
    src_path = make_url(sample_rag.store.url).database
    dst_path = tmp_path_factory.mktemp("cache") / "copy.sqlite"
    src, dst = sqlite3.connect(src_path), sqlite3.connect(dst_path)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    store = Store(f"sqlite:///{dst_path}")
    with store.session() as s:
        s.add(CollectionRow(name="other", embedding_model="m", embedding_dim=384, chunk_tokens=200, chunk_overlap=40))
    yield store
    store.engine.dispose()


@pytest.fixture()
def coll(scratch):
    return scratch.collection("default")


@pytest.fixture()
def other(scratch):
    return scratch.collection("other")


@pytest.fixture()
def cache(scratch, embedder):
    c = SemanticCache(scratch, embedder)
    c.clear()
    return c


def put(cache, coll, question, payload=None, **scope):
    args = {"corpus_version": coll.corpus_version, "model_id": M, "prompt_version": P} | scope
    return cache.put(coll.id, args["corpus_version"], args["model_id"], args["prompt_version"], question,
                     payload if payload is not None else {"q": question})


def get(cache, coll, question, **scope):
    args = {"corpus_version": coll.corpus_version, "model_id": M, "prompt_version": P} | scope
    return cache.lookup(coll.id, args["corpus_version"], args["model_id"], args["prompt_version"], question)


# --- normalization, exact and semantic hits ------------------------------------------------------------------
def test_normalize_question():
    assert normalize_question("  How TALL is\tthe  Lighthouse?? ") == "how tall is the lighthouse"
    assert normalize_question("\uff37\uff48\uff41\uff54\u2019s the height!") == "what's the height"
    assert normalize_question("Why?!...") == "why"
    assert normalize_question("   ") == ""


def test_exact_hit_after_normalization_and_payload_round_trip(cache, coll):
    payload = {"answer": "31 m \u2014 \u00abgranite\u00bb", "citations": [{"chunk": 12, "score": 0.83}],
               "scores": {"faithfulness": 1.0}, "none": None, "flags": [True, False], "n": 3}
    eid = put(cache, coll, TALL, payload)
    hit = get(cache, coll, "  how TALL is the gannet head LIGHTHOUSE ")
    assert hit is not None and hit.kind == "exact" and hit.similarity == 1.0
    assert hit.entry_id == eid and hit.matched_question == TALL
    assert hit.payload == payload
    assert 0 <= hit.age_s < 60


def test_semantic_hit_on_a_paraphrase_counts_hits(cache, coll, embedder):
    eid = put(cache, coll, TALL)
    hit = get(cache, coll, HEIGHT)
    assert hit is not None and hit.kind == "paraphrase" and hit.entry_id == eid
    assert cache.threshold <= hit.similarity <= 1.0 and hit.matched_question == TALL
    vec = embedder.encode([HEIGHT])[0]  # a caller may pass the embedding it already has
    hit2 = cache.lookup(coll.id, coll.corpus_version, M, P, HEIGHT, embedding=vec)
    assert hit2 is not None and hit2.similarity == pytest.approx(hit.similarity, abs=1e-5)
    st = cache.stats(coll.id)
    assert st["entries"] == 1 and st["hits"] == 2 and st["paraphrase_hits"] == 2
    assert st["oldest"] is not None and st["oldest"] == st["newest"]


def test_verification_rejects_a_near_duplicate_and_logs_why(cache, coll, caplog):
    put(cache, coll, "Who was the first principal keeper of Gannet Head Lighthouse?")
    with caplog.at_level(logging.DEBUG, logger="localrag.app.cache"):
        assert get(cache, coll, "Who was the last principal keeper of Gannet Head Lighthouse?") is None
    assert any("qualifiers differ (last vs first)" in r.getMessage() for r in caplog.records)  # (asked vs stored)
    st = cache.stats(coll.id)
    assert st["refused"] == 1 and st["hits"] == 0


def test_put_replaces_the_same_question(cache, coll):
    first = put(cache, coll, TALL, {"v": 1})
    second = put(cache, coll, TALL.upper(), {"v": 2})
    assert second != first
    assert cache.stats(coll.id)["entries"] == 1
    assert get(cache, coll, TALL).payload == {"v": 2}


def test_vectors_held_in_memory_follow_other_writers(scratch, embedder, coll):
    reader, writer = SemanticCache(scratch, embedder), SemanticCache(scratch, embedder)
    writer.clear()
    put(writer, coll, TALL, {"v": "tall"})
    assert get(reader, coll, HEIGHT).payload == {"v": "tall"}  # the reader now holds the scope's vectors
    writer.clear()
    put(writer, coll, "Who designed Gannet Head Lighthouse?", {"v": "designer"})
    assert get(reader, coll, HEIGHT) is None  # not the new entry's answer under the old entry's vector
    writer.clear()


def test_bad_inputs(cache, coll, scratch, embedder):
    with pytest.raises(ValueError, match="JSON"):
        put(cache, coll, TALL, {"when": object()})
    with pytest.raises(ValueError, match="empty"):
        put(cache, coll, " ?! ")
    assert get(cache, coll, "   ") is None
    with pytest.raises(ValueError):
        SemanticCache(scratch, embedder, threshold=0)
    with pytest.raises(ValueError):
        SemanticCache(scratch, embedder, max_entries=0)


# --- scope, TTL, clear, cap ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change", ["collection", "corpus_version", "model_id", "prompt_version"])
def test_other_scope_misses(cache, coll, other, change):
    put(cache, coll, TALL)
    assert get(cache, coll, TALL) is not None and get(cache, coll, HEIGHT) is not None
    scope = {"corpus_version": coll.corpus_version + 1, "model_id": "llm-b", "prompt_version": "prompt-v2"}
    if change == "collection":
        assert get(cache, other, TALL) is None and get(cache, other, HEIGHT) is None
    else:
        kw = {change: scope[change]}
        assert get(cache, coll, TALL, **kw) is None and get(cache, coll, HEIGHT, **kw) is None
        # a put in the new scope prunes the old one (it can never be read again)
        put(cache, coll, "Who designed Gannet Head Lighthouse?", **kw)
        assert cache.stats(coll.id)["entries"] == 1
        assert get(cache, coll, TALL) is None


def test_a_late_put_for_an_older_corpus_version_keeps_newer_entries(cache, coll):
    v = coll.corpus_version
    put(cache, coll, TALL, corpus_version=v + 1)
    put(cache, coll, "Who designed Gannet Head Lighthouse?", corpus_version=v)  # started before the ingest
    assert get(cache, coll, TALL, corpus_version=v + 1) is not None
    put(cache, coll, "Who is the harbour master of Port Wren?", corpus_version=v + 1)
    assert cache.stats(coll.id)["entries"] == 2  # the stale one is gone now


def test_put_prunes_only_its_own_collection(cache, coll, other):
    put(cache, coll, TALL)
    put(cache, other, TALL, corpus_version=7)
    assert cache.stats(coll.id)["entries"] == 1 and cache.stats(other.id)["entries"] == 1
    assert get(cache, coll, TALL) is not None


def _age(store, seconds):
    with store.session() as s:
        s.execute(update(AnswerCacheRow).values(created=utcnow() - timedelta(seconds=seconds)))


def test_ttl_expiry(scratch, embedder, coll):
    cache = SemanticCache(scratch, embedder, ttl_s=3600)
    cache.clear()
    put(cache, coll, TALL)
    _age(scratch, 1800)
    hit = get(cache, coll, TALL)
    assert hit is not None and 1790 < hit.age_s < 1900
    _age(scratch, 7200)
    assert get(cache, coll, TALL) is None and get(cache, coll, HEIGHT) is None
    put(cache, coll, "Who designed Gannet Head Lighthouse?")  # prunes the expired entry
    assert cache.stats(coll.id)["entries"] == 1
    forever = SemanticCache(scratch, embedder, ttl_s=None)
    put(forever, coll, TALL)
    _age(scratch, 10 * 365 * 86400)
    assert get(forever, coll, HEIGHT) is not None
    forever.clear()


def test_clear(cache, coll, other):
    put(cache, coll, TALL)
    put(cache, coll, "Who designed Gannet Head Lighthouse?")
    put(cache, other, TALL)
    assert cache.clear(coll.id) == 2
    assert get(cache, coll, TALL) is None and get(cache, coll, HEIGHT) is None
    assert cache.stats(other.id)["entries"] == 1
    assert cache.clear() == 1
    assert cache.stats()["entries"] == 0


def test_size_cap_drops_least_recently_used(scratch, embedder, coll):
    cache = SemanticCache(scratch, embedder, max_entries=3)
    cache.clear()
    qs = ["Who designed Gannet Head Lighthouse?", "When was the Port Wren Bird Club founded?",
          "Who is the harbour master of Port Wren?", "What is the export limit of the microgrid?"]
    ids = [put(cache, coll, q) for q in qs[:3]]
    assert get(cache, coll, qs[0]).entry_id == ids[0]  # used: now more recent than qs[1] and qs[2]
    put(cache, coll, qs[3])
    assert cache.stats()["entries"] == 3
    assert get(cache, coll, qs[1]) is None
    assert all(get(cache, coll, q) is not None for q in (qs[0], qs[2], qs[3]))
    cache.clear()


def test_concurrent_lookups(cache, coll, embedder):
    put(cache, coll, TALL)
    put(cache, coll, "Who was the first principal keeper of Gannet Head Lighthouse?")
    asks = [(TALL, "exact"), (HEIGHT, "paraphrase"),
            ("Who was the last principal keeper of Gannet Head Lighthouse?", None)] * 10
    vecs = {q: embedder.encode([q])[0] for q, _ in asks[:3]}
    errors: list[BaseException] = []

    def ask(item):
        q, kind = item
        try:
            hit = cache.lookup(coll.id, coll.corpus_version, M, P, q, embedding=vecs[q])
            assert (hit.kind if hit else None) == kind
            return hit
        except BaseException as exc:  # collected: a failure in a worker thread must fail the test
            errors.append(exc)
            raise

    with ThreadPoolExecutor(max_workers=6) as pool:
        hits = list(pool.map(ask, asks))
    assert not errors
    assert sum(h is not None for h in hits) == 20
    assert cache.stats(coll.id)["hits"] == 20


def test_rare_terms_are_cached_per_corpus_version(cache, coll):
    terms = cache.rare_terms(coll.id, coll.corpus_version)
    assert cache.rare_terms(coll.id, coll.corpus_version) is terms
    assert cache.rare_terms(coll.id, coll.corpus_version + 1) is not terms
    assert terms.n_chunks > 50
    assert "harbour" not in terms and "port" not in terms  # in many chunks of the sample corpus
    assert "kittiwake" in terms and "croissant" in terms  # in few chunks, or in none


# --- the labeled pair set ------------------------------------------------------------------------------------
def test_pair_set_is_well_formed():
    pairs = load_pairs()
    kinds = [p["type"] for p in pairs]
    assert kinds.count("paraphrase") >= 25 and kinds.count("near_duplicate") >= 25
    assert all(p.get("why") or p.get("kind") != "general" for p in pairs)  # the first 118 say why; later ones a kind
    assert all(p["split"] in ("dev", "test") and p["corpus"] in ("sample", "articles") for p in pairs)
    for half in ("dev", "test"):  # both halves hold every type, and new kinds on both sides
        kinds_of = {(p["type"], p["kind"]) for p in pairs if p["split"] == half}
        assert {("paraphrase", k) for k in ("synonym", "reorder", "tell_me", "acronym")} <= kinds_of
        assert {"negation", "name", "date", "first_last", "entity_template"} <= {k for t, k in kinds_of
                                                                                if t == "near_duplicate"}


def test_pair_set_has_no_false_hits(scratch, embedder, coll):
    pairs = load_pairs()
    report = evaluate_pairs(scratch, embedder, coll.id, pairs, thresholds=(0.95, 0.90, 0.85))
    print("\n" + format_table(report))
    for t, r in report["thresholds"].items():
        assert r["false_hits"] == 0, f"false hits at {t}: {r['false_hit_ids']}"
    loosest = report["thresholds"]["0.85"]
    assert loosest["paraphrase_hit_rate"] > 0
    # a threshold alone would fail: many near-duplicates are as close as paraphrases
    near = [r for r in report["pairs"] if r["type"] == "near_duplicate"]
    assert sum(r["cosine"] >= 0.9 for r in near) >= 10
    assert max(r["cosine"] for r in near) >= 0.99
    assert loosest["cosine_only_false_hits"] > 0 and report["thresholds"]["0.95"]["cosine_only_false_hits"] > 0


# --- verify_equivalent rules ---------------------------------------------------------------------------------
def test_verify_negation():
    assert verify_equivalent("Is the lighthouse active?", "Is the lighthouse not active?") == "negation differs ('not')"
    assert verify_equivalent("Is the bakery open?", "Isn't the bakery open?").startswith("negation differs")
    assert verify_equivalent("Has the bakery been in arrears?", "Has the bakery never been in arrears?")
    assert verify_equivalent("Which boats can enter?", "Which boats can enter without a permit?")
    assert verify_equivalent("Which birds breed here?", "Which birds breed here, except gannets?")
    assert verify_equivalent("Why isn't the lantern lit?", "Why is the lantern not lit?") is None


def test_verify_numbers():
    assert verify_equivalent("What happened in 1867?", "What happened in 1865?") == "numbers differ (1867 vs 1865)"
    assert verify_equivalent("Were eleven crew lost?", "Were 11 crew lost?") is None
    assert verify_equivalent("Were two crew lost?", "Were three crew lost?").startswith("numbers differ")
    assert verify_equivalent("Who sits on the second bench?", "Who sits on the third bench?").startswith("numbers")
    assert verify_equivalent("Is 1,150 the peak count?", "Is 1150 the peak count?") is None
    assert verify_equivalent("How much does a share cost?", "How much does one share cost?") is None
    assert verify_equivalent("Who was keeper 1867-1894?", "Who was keeper from 1867 to 1894?") is None
    assert verify_equivalent("What is the charge per night?", "What is the charge per week?").startswith("rates")


def test_verify_entities():
    assert verify_equivalent("Where is Saltings Hide?", "Where is Mole End?").startswith("entities differ")
    swapped = verify_equivalent("Did Wren Loaf open before Gannet Head Lighthouse?",
                                "Did Gannet Head Lighthouse open before Wren Loaf?")
    assert swapped is not None and swapped.startswith("entity order differs")
    assert verify_equivalent("Is the bakery open on Saturday?", "Is the bakery open on Sunday?")
    assert verify_equivalent("Does the buoy use VHF?", "Does the buoy use UHF?") == "entities differ: 'VHF' vs 'UHF'"
    assert verify_equivalent("What does KW-3 show?", "What does KW-6 show?")
    spelled_out = "When was the Port Wren Marine Research Station founded?"
    assert verify_equivalent("When was PWMRS founded?", spelled_out) is None
    assert verify_equivalent("when was gannet head lighthouse lit", "When was Gannet Head Lighthouse lit?") is None


def test_verify_qualifiers_and_focus():
    assert verify_equivalent("Who was the first keeper?", "Who was the last keeper?") == \
        "qualifiers differ (first vs last)"
    assert verify_equivalent("What was the range before 2016?", "What was the range after 2016?")
    assert verify_equivalent("Which month had the most sun?", "Which month had the least sun?")
    assert verify_equivalent("What is mean high water?", "What is mean low water?")
    assert verify_equivalent("Where do kittiwakes nest in the north?", "Where do kittiwakes nest in the south?")
    assert verify_equivalent("Where do kittiwakes nest in the north?", "Where do kittiwakes nest?") is None
    assert verify_equivalent("Who is the principal keeper?", "Who was the principal keeper?") == \
        "tense differ (present vs past)"
    assert verify_equivalent("When was the club founded?", "Where was the club founded?").startswith("asks for")
    assert verify_equivalent("When was the club founded?", "In what year was the club founded?") is None
    assert verify_equivalent("How tall is the tower?", "What is the height of the tower?") is None
    assert verify_equivalent("How long is the mole?", "How tall is the mole?").startswith("asks for")


def test_verify_rare_terms(cache, coll):
    # without corpus statistics every differing content word counts
    assert verify_equivalent("When was the bakery opened?", "When was the lighthouse opened?") == \
        "terms differ: 'bakery' vs 'lighthouse'"
    # with a set: only the words in it are rare
    assert verify_equivalent("Where is the harbour office?", "Where is the harbour building?", set()) is None
    assert verify_equivalent("Where is the harbour office?", "Where is the harbour building?", {"office"})
    # with the sample corpus: "harbour" is common, "kittiwake" rare, "croissant" absent (rare)
    terms = cache.rare_terms(coll.id, coll.corpus_version)
    assert isinstance(terms, CorpusTerms)
    assert verify_equivalent("How many kittiwakes nest here?", "How many puffins nest here?", terms)
    assert verify_equivalent("Does the bakery sell bread?", "Does the bakery sell croissants?", terms)
    assert verify_equivalent("Which VHF channel does the Port Wren harbour use?",
                             "Which VHF channel does Port Wren use?", terms) is None
    assert verify_equivalent("Who designed the tower?", "Who was the designer of the tower?", terms) is None
    assert verify_equivalent("Why did PWCE choose LFP?", "What was the reason PWCE chose LFP?", terms) is None


# --- the answer-level checks (app.ask.answers_too uses them; tests/test_cache_answers.py runs the route) -----------
MINUTES = ("Present: Cllr Beatrice Nkemelu (Mayor, in the chair), Cllr Peter Jago (Deputy Mayor), Cllr Marcus Bell. "
           "The minutes were signed by the Mayor.")
ROLES = "Port Wren Community Energy: Ana Moyle is the chair and Tom Hicks the operations engineer."


def test_acronyms_the_documents_define_are_spelled_out():
    acr = defined_acronyms("The Port Wren Marine Research Station (PWMRS) was founded in 1974. A Large Language "
                           "Model (LLM) writes. Some words (NOT an acronym) and Fore Street (FS) too.")
    assert acr == {"pwmrs": "Port Wren Marine Research Station", "llm": "Large Language Model",
                   "fs": "Fore Street"}
    assert expand_acronyms("Who founded PWMRS?", acr) == "Who founded Port Wren Marine Research Station?"
    assert expand_acronyms("Is the LLM local? And the NHS?", acr) == "Is the Large Language Model local? And the NHS?"
    assert CorpusTerms([MINUTES, "The Port Wren Marine Research Station (PWMRS) opened."]).acronyms == {
        "pwmrs": "Port Wren Marine Research Station"}


def test_words_that_share_a_chunk_are_told_apart():
    terms = CorpusTerms([ROLES, "The skipper of the catamaran.", "Tides and the harbour."], min_chunks=3)
    assert terms.together("chair", "engineer") == 1 and terms.together("operations", "chair") == 1
    assert terms.together("skipper", "captain") == 0 and terms.together("chair", "skipper") == 0


def test_new_words_check():
    terms = CorpusTerms([ROLES, MINUTES, "The skipper of the catamaran is Alun Rees."], min_chunks=5)
    # a synonym that the collection never writes beside the word it replaces: the same question
    assert new_words_check("Who captains the catamaran?", "Who is the skipper of the catamaran?",
                           ["The skipper of the catamaran is Alun Rees."], [], terms) is None
    # another role of one template, written beside the first in the collection
    assert "apart" in new_words_check("Who is the operations engineer of Port Wren Community Energy?",
                                      "Who is the chair of Port Wren Community Energy?", ["Ana Moyle is the chair"],
                                      [ROLES], terms)
    # ... and when the answer's own sentence names both roles
    assert "names both" in new_words_check("Who is the operations engineer of Port Wren Community Energy?",
                                           "Who is the chair of Port Wren Community Energy?", [ROLES], [ROLES], terms)
    # a word the cited sources hold but the answer does not quote: they tell it apart
    assert "tell 'deputy' apart" in new_words_check("Who was the deputy mayor?", "Who was the mayor?",
                                                    ["Cllr Beatrice Nkemelu (Mayor, in the chair)"], [MINUTES], terms)
    # a word absent from the sources that only adds to the question narrows it
    assert "narrows" in new_words_check("Who was the deputy mayor?", "Who was the mayor?", ["Mayor of Port Wren"],
                                        ["Mayor of Port Wren who chaired the meeting."], terms)
    # dropping the word: the sources name the Mayor both with and without "Deputy"
    assert "with and without 'deputy'" in new_words_check("Who was the mayor?", "Who was the deputy mayor?",
                                                          ["Cllr Peter Jago (Deputy Mayor)"], [MINUTES], terms)
    # a word the answer quotes is what the answer is about
    assert new_words_check("What was the population at the census?", "How many lived here at the census?",
                           ["A population of 3,412 at the census."], [], terms) is None


def test_name_order_matters_only_when_the_question_relates_names():
    assert verify_equivalent("How many operations per second can the Neural Engine of Apple's M4 chip perform?",
                             "Apple's M4 chip: how many operations per second can its Neural Engine perform?") is None
    assert verify_equivalent("Was the Bird Club founded before the Research Station?",
                             "Was the Research Station founded before the Bird Club?").startswith("entity order")
