"""Settings grouped by area (storage, ingest, search, llm, answer, eval), and every flat name from before the grouping
still working in all three channels: localrag.toml top-level keys, LOCALRAG_<NAME> variables and keyword overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localrag.app.config import FLAT_KEYS, ConfigError, Settings, describe, load_settings

# every flat setting name of the release before the grouping (app/config.py's one flat Settings), but data_dir,
# embedding_model and device, which stay at the top
OLD_FLAT_NAMES = {
    "database_url", "embed_batch_size", "chunk_tokens", "chunk_overlap", "file_timeout_s", "max_file_mb",
    "lexical_backend", "use_gpu", "vector_backend", "faiss_index", "faiss_ann_threshold", "faiss_nprobe", "milvus_uri",
    "milvus_index", "milvus_collection_prefix", "search_mode", "fusion", "candidates", "rrf_k", "rrf_weight_dense",
    "rrf_weight_lexical", "convex_alpha", "fusion_norm", "fusion_adaptive", "fusion_conf_top", "min_relevance",
    "reranker_model", "rerank_top", "rerank_batch_size", "kg_max_neighbours", "llm_backend", "llm_model",
    "llm_base_url", "llm_api_key_env", "llm_n_ctx", "llm_threads", "llm_gpu_layers", "llm_seed", "llm_temperature",
    "llm_top_p", "llm_max_tokens", "llm_stop", "llm_prompt_lookup", "llm_timeout_s", "llm_max_concurrency",
    "answer_mode", "answer_k", "answer_min_relevance", "answer_context_tokens", "answer_compress_tokens",
    "answer_max_tokens", "answer_retries", "score_answers", "cache_enabled", "cache_threshold", "cache_ttl_s",
}

OLD_TOML = """\
# a localrag.toml written for the flat settings
data_dir = "{data}"
embedding_model = "all-MiniLM-L6-v2"
device = "cpu"
chunk_tokens = 120
chunk_overlap = 16
embed_batch_size = 16
max_file_mb = 50
lexical_backend = "bm25s"
use_gpu = false
faiss_index = "flat"
search_mode = "hybrid"
fusion = "rrf"
rrf_k = 60
candidates = 30
min_relevance = 0.0
kg_max_neighbours = 3
llm_backend = "llama-cpp"
llm_n_ctx = 2048
llm_temperature = 0.0
llm_stop = ["###"]
answer_mode = "extractive"
answer_k = 3
answer_min_relevance = 0.1
score_answers = false
cache_enabled = false
cache_ttl_s = 3600
"""


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch, tmp_path):
    """No LOCALRAG_* variable or localrag.toml of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("LOCALRAG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


ADDED_SINCE = {"answer_doubt_p", "answer_min_support",  # verified abstention (issue 22)
               "answer_cache_margin",  # paraphrase hits (issue 24)
               "eval_judge_model",  # the LLM judge's own model (issue 22)
               # the checking model of auto mode (issue 22)
               "answer_verify_model", "answer_verify_min", "answer_verify_quote_min", "answer_verify_alternatives"}


def test_groups_hold_every_old_flat_name():
    assert set(FLAT_KEYS) == OLD_FLAT_NAMES | ADDED_SINCE  # (a key added later gets a flat spelling too)
    s = Settings()
    for flat, (group, name) in FLAT_KEYS.items():
        assert hasattr(getattr(s, group), name), flat
    assert (s.search.mode, s.llm.backend, s.answer.mode, s.storage.lexical_backend) == (
        "hybrid", "llama-cpp", "auto", "bm25")
    assert FLAT_KEYS["search_mode"] == ("search", "mode") and FLAT_KEYS["llm_model"] == ("llm", "model")
    assert FLAT_KEYS["score_answers"] == ("answer", "score")
    assert FLAT_KEYS["cache_enabled"] == ("answer", "cache_enabled")


def test_every_setting_keeps_a_description():
    rows = list(describe())
    assert len(rows) == len(OLD_FLAT_NAMES | ADDED_SINCE) + 4  # + data_dir, embedding_model, device, threads
    assert all(desc for _, _, _, desc in rows), [key for key, _, _, desc in rows if not desc]
    llm_model = next(desc for key, _, _, desc in rows if key == "llm.model")
    assert llm_model.startswith("llama-cpp: a model name (`localrag models list`), a .gguf file or "
                                "hf:owner/repo/file.gguf")


def test_old_keyword_overrides(tmp_path):
    from localrag.app.rag import Rag

    s = load_settings(search_mode="dense", answer_mode="generative", cache_enabled=False, chunk_tokens=100,
                      llm_temperature=0.0, llm_stop=["END"], score_answers=False, lexical_backend="bm25s",
                      rerank_top=7, faiss_nprobe=None)
    assert (s.search.mode, s.answer.mode, s.answer.cache_enabled, s.ingest.chunk_tokens) == (
        "dense", "generative", False, 100)
    assert (s.llm.temperature, s.llm.stop, s.answer.score, s.storage.lexical_backend) == (0.0, ["END"], False, "bm25")
    assert s.search.rerank_top == 7 and s.storage.faiss_nprobe is None
    with Rag.open(tmp_path / "data", search_mode="lexical", answer_mode="extractive", cache_enabled=False) as rag:
        assert (rag.settings.search.mode, rag.settings.answer.cache_enabled) == ("lexical", False)
    # the new spellings, and both at once when they agree
    assert load_settings(search={"mode": "dense"}, llm={"model": "m"}).llm.model == "m"
    assert load_settings(search_mode="dense", search={"mode": "dense"}).search.mode == "dense"
    assert Settings.model_validate({"search_mode": "lexical"}).search.mode == "lexical"


def test_old_environment_variables(monkeypatch):
    for name, value in {"SEARCH_MODE": "dense", "LLM_STOP": '["###", "END"]', "CACHE_ENABLED": "false",
                        "SCORE_ANSWERS": "0", "LEXICAL_BACKEND": "bm25s", "CHUNK_TOKENS": "128", "ANSWER_K": "6",
                        "LLM_THREADS": "2", "RERANKER_MODEL": "some/cross-encoder", "DATA_DIR": "/tmp/x"}.items():
        monkeypatch.setenv(f"LOCALRAG_{name}", value)
    s = load_settings()
    assert (s.search.mode, s.llm.stop) == ("dense", ["###", "END"])
    assert (s.answer.cache_enabled, s.answer.score) == (False, False)
    assert (s.storage.lexical_backend, s.ingest.chunk_tokens, s.answer.k, s.llm.threads) == ("bm25", 128, 6, 2)
    assert s.search.reranker_model == "some/cross-encoder" and s.data_dir == Path("/tmp/x")


def test_new_environment_variables(monkeypatch):
    monkeypatch.setenv("LOCALRAG_SEARCH__MODE", "lexical")
    monkeypatch.setenv("LOCALRAG_LLM__STOP", '["x"]')
    monkeypatch.setenv("LOCALRAG_ANSWER", json.dumps({"k": 9, "cache_enabled": False}))
    s = load_settings()
    assert (s.search.mode, s.llm.stop, s.answer.k, s.answer.cache_enabled) == ("lexical", ["x"], 9, False)
    monkeypatch.setenv("LOCALRAG_SEARCH_MODE", "lexical")  # the same value both ways: fine
    assert load_settings().search.mode == "lexical"
    monkeypatch.setenv("LOCALRAG_SEARCH_MODE", "dense")  # different values: which one is meant?
    with pytest.raises(ConfigError, match=r"search_mode \(the old name\) and search.mode are both set"):
        load_settings()


def test_old_and_new_toml(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text(OLD_TOML.format(data=tmp_path / "d"))
    s = load_settings(old)
    assert (s.data_dir, s.device, s.ingest.chunk_tokens, s.ingest.chunk_overlap) == (tmp_path / "d", "cpu", 120, 16)
    assert (s.storage.lexical_backend, s.storage.use_gpu, s.storage.faiss_index) == ("bm25", False, "flat")
    assert (s.search.fusion, s.search.rrf_k, s.search.candidates, s.search.kg_max_neighbours) == ("rrf", 60, 30, 3)
    assert (s.llm.n_ctx, s.llm.temperature, s.llm.stop) == (2048, 0.0, ["###"])
    assert (s.answer.k, s.answer.min_relevance, s.answer.score, s.answer.cache_enabled) == (3, 0.1, False, False)
    new = tmp_path / "localrag.toml"  # the working directory's file, read without --config
    new.write_text('[search]\nmode = "dense"\nfusion = "convex"\n\n[llm]\nmodel = "smollm2-135m"\n\n'
                   '[storage]\nlexical_backend = "bm25"\n')
    s = load_settings()
    assert (s.search.mode, s.search.fusion, s.llm.model, s.storage.lexical_backend) == (
        "dense", "convex", "smollm2-135m", "bm25")


def test_priority_across_spellings(tmp_path, monkeypatch):
    """keyword > environment > localrag.toml, whichever spelling each channel uses."""
    (tmp_path / "localrag.toml").write_text('search_mode = "dense"\n[answer]\nk = 7\n')
    monkeypatch.setenv("LOCALRAG_ANSWER_K", "5")
    s = load_settings()
    assert (s.search.mode, s.answer.k) == ("dense", 5)
    monkeypatch.setenv("LOCALRAG_SEARCH__MODE", "lexical")
    assert load_settings().search.mode == "lexical"
    s = load_settings(search_mode="hybrid", answer={"k": 2})
    assert (s.search.mode, s.answer.k) == ("hybrid", 2)
    (tmp_path / "localrag.toml").write_text('search_mode = "bogus"\n')  # overridden, so never validated
    assert load_settings().search.mode == "lexical"


@pytest.mark.parametrize(("toml", "env", "kw", "named"), [
    ('search_mode = "fast"\n', {}, {}, "search_mode: Input should be 'hybrid', 'dense' or 'lexical'"),
    ('[search]\nmode = "fast"\n', {}, {}, "search.mode: Input should be"),
    ("", {"LOCALRAG_ANSWER_K": "0"}, {}, "answer_k: Input should be greater than or equal to 1"),
    ("", {"LOCALRAG_ANSWER__K": "0"}, {}, "answer.k: Input should be greater than or equal to 1"),
    ("", {}, {"llm_stop": "x"}, "llm_stop: Input should be a valid list"),
    ("", {}, {"chunk_tokens": 64, "chunk_overlap": 64}, "chunk_overlap: Value error, must be smaller than chunk_tokens "
     "(64)"),
    ('lexical_backend = "bm25x"\n', {}, {}, "lexical_backend: Input should be 'bm25' or 'rank-bm25'"),
    ('serch_mode = "dense"\n', {}, {}, "serch_mode: Extra inputs are not permitted"),
    ('[search]\nmod = "dense"\n', {}, {}, "search.mod: Extra inputs are not permitted"),
    ("", {"LOCALRAG_LLM__MODLE": "x"}, {}, "llm.modle: Extra inputs are not permitted"),
    ("", {}, {"bogus": 1}, "bogus: Extra inputs are not permitted"),
    ('search_mode = "dense"\n[search]\nmode = "lexical"\n', {}, {},
     "localrag.toml: search_mode (the old name) and search.mode are both set"),
])
def test_errors_name_the_key_as_written(tmp_path, monkeypatch, toml, env, kw, named):
    (tmp_path / "localrag.toml").write_text(toml)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        load_settings(**kw)
    assert named in str(info.value)


def test_lexical_backend_names(tmp_path):
    assert load_settings(lexical_backend="bm25s").storage.lexical_backend == "bm25"
    assert load_settings(storage={"lexical_backend": "bm25s"}).storage.lexical_backend == "bm25"
    assert load_settings(lexical_backend="rank-bm25").storage.lexical_backend == "rank-bm25"


def test_an_old_config_and_data_directory_still_open(tmp_path, monkeypatch, embedder):
    """A localrag.toml and LOCALRAG_* variables written for the flat settings: ingest, reopen, search, status."""
    from localrag.app.cli import app
    from localrag.app.rag import Rag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.md").write_text("# Ferry\n\nThe Skerry Point ferry leaves at 09:40 on weekdays.\n")
    data = tmp_path / "data"
    config = tmp_path / "old.toml"
    config.write_text(OLD_TOML.format(data=data))
    monkeypatch.setenv("LOCALRAG_SEARCH_MODE", "lexical")
    monkeypatch.setenv("LOCALRAG_CANDIDATES", "20")
    monkeypatch.setenv("LOCALRAG_MAX_FILE_MB", "10")
    with Rag.open(config_file=config, embedder=embedder) as rag:
        assert (rag.settings.search.mode, rag.settings.search.candidates, rag.settings.ingest.max_file_mb) == (
            "lexical", 20, 10)
        assert rag.ingest([docs]).exit_code == 0
    with Rag.open(config_file=config, embedder=embedder, search_mode="hybrid") as rag:
        res = rag.search("when does the ferry leave", k=1)
        assert res.mode == "hybrid" and res.fusion == "rrf" and res[0].source.endswith("ferry.md")
        coll = rag.status()["collections"][0]
        assert (coll["chunk_tokens"], coll["chunk_overlap"], coll["index"]["lexical_backend"]) == (120, 16, "bm25")
        assert rag.ask("When does the ferry leave?").mode == "extractive"
    out = CliRunner().invoke(app, ["--config", str(config), "status", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["collections"][0]["documents"] == 1


def test_eval_judge_model_setting(monkeypatch):
    """The LLM judge's model: qwen2.5-coder-1.5b by default, set in every channel; "" or "none" = the answering LLM."""
    assert load_settings().eval.judge_model == "qwen2.5-coder-1.5b"
    monkeypatch.setenv("LOCALRAG_EVAL__JUDGE_MODEL", "smollm2-135m")
    assert load_settings().eval.judge_model == "smollm2-135m"
    assert load_settings(eval_judge_model="/m/judge.gguf").eval.judge_model == "/m/judge.gguf"
    for none in ("", "none", "None"):
        monkeypatch.setenv("LOCALRAG_EVAL__JUDGE_MODEL", none)
        assert load_settings().eval.judge_model is None
    desc = next(d for key, _, _, d in describe() if key == "eval.judge_model")
    assert "localrag models pull qwen2.5-coder-1.5b" in desc and "0.61" in desc and "0.43" in desc


def test_none_spelled_turns_the_checking_and_judge_models_off():
    s = load_settings(answer={"verify_model": "None"}, eval={"judge_model": ""})
    assert s.answer.verify_model is None and s.eval.judge_model is None
    assert Settings().answer.verify_model == "qwen2.5-coder-1.5b"
