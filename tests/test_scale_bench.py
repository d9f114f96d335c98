"""`localrag bench scale --smoke`: runs in seconds, says its data are synthetic, and reports every figure."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from localrag.app.cli import app


def test_bench_scale_smoke_reports_every_figure():
    res = CliRunner().invoke(app, ["bench", "scale", "--smoke", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # each size also goes to stderr as it finishes
    assert "random unit vectors" in out["synthetic"]
    assert [s["chunks"] for s in out["sizes"]] == [1000, 2000]
    for s in out["sizes"]:
        assert set(s["latency"]) == {"dense_flat", "dense_ivf", "bm25", "hybrid"}
        assert all(v["p95_ms"] >= v["p50_ms"] > 0 for v in s["latency"].values())
        assert 0 < s["ivf_recall_at_10"] <= 1
        assert s["add_file_bm25_ms"] > 0 and s["add_file_ivf_ms"] > 0 and s["rebuild_bm25s_s"] > 0
        for k in ("text", "fp16_vector", "bm25", "flat", "ivf", "sqlite"):
            assert s[f"{k}_bytes_per_chunk"] > 0, k
        assert s["flat_bytes_per_chunk"] >= 384 * 4 and s["rss_mb"] > 0


def test_bench_scale_text_output_names_the_synthetic_data():
    res = CliRunner().invoke(app, ["bench", "scale", "--sizes", "1500", "--queries", "5", "--milvus"])
    assert res.exit_code == 0, res.output
    assert "1,500 chunks (synthetic)" in res.output and "old full BM25 rebuild" in res.output
    assert "synthetic data" in res.output and "recall@10" in res.output
    assert "Milvus HNSW (milvus-lite): recall@10 vs flat" in res.output


def test_bench_without_a_checkout_exits_2_and_says_where_to_run_it(monkeypatch, tmp_path):
    """Installed from a wheel there is no bench/ folder beside the package: the command says how to run it instead."""
    from localrag.app.cli import bench as cli_bench

    monkeypatch.setattr(cli_bench, "bench_dir", lambda: tmp_path / "bench")
    res = CliRunner().invoke(app, ["bench", "scale", "--smoke"])
    assert res.exit_code == 2
    assert "source checkout" in res.output and "python -m bench.scale" in res.output
