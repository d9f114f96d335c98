"""The distribution installs ONE import package, `localrag`, and a non-editable install works on its own.

The wheel is built from this checkout and installed with `pip install --no-deps --target` into a temporary folder
(its dependencies come from the test environment); the CLI then runs from that folder with the checkout nowhere
on the import path, ingests two sample files and answers a question with a citation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
GENERIC = {"app", "eval", "index", "ingest", "retrieval", "ui", "tests", "data"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, cwd=out, capture_output=True, text=True,
    )
    (whl,) = out.glob("localrag-*.whl")
    return whl


def test_wheel_installs_only_the_localrag_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"localrag"}, sorted(top)
    assert not top & GENERIC
    for sub in ("app", "index", "ingest", "retrieval", "eval", "ui"):
        assert f"localrag/{sub}/__init__.py" in names, sub
    assert "localrag/__init__.py" in names and "localrag/app/rag.py" in names
    assert not [n for n in names if n.startswith("localrag/tests/") or n.startswith("localrag/data/")]
    (entry,) = [n for n in names if n.endswith("entry_points.txt")]
    assert "localrag = localrag.app.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_every_subpackage_in_the_tree_is_in_the_wheel(wheel):
    """pyproject.toml lists the packages explicitly (package-dir maps the root to `localrag`): a new folder with an
    __init__.py that is not listed would be missing from a non-editable install."""
    in_tree = {
        "localrag/" + str(init.parent.relative_to(ROOT))
        for top in sorted(GENERIC - {"tests", "data"})
        for init in (ROOT / top).rglob("__init__.py")
    }
    in_wheel = {n.rsplit("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist() if n.endswith("/__init__.py")}
    assert in_tree <= in_wheel, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(in_tree - in_wheel)}"


def test_installed_wheel_ingests_and_answers_from_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("gannet-head-lighthouse.md", "port-wren-history.md"):
        (corpus / name).write_bytes((SAMPLE / name).read_bytes())
    # the installed copy first; the checkout is not on the path (cwd is a temp folder, PYTHONPATH has only `site`)
    env = dict(os.environ, PYTHONPATH=str(site), HF_HUB_OFFLINE="1")
    where = subprocess.run([sys.executable, "-c", "import localrag, localrag.app.rag as r; print(localrag.__file__);"
                            "print(r.__file__); import importlib.util as u; print(u.find_spec('app'))"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    assert where[0].startswith(str(site)) and where[1].startswith(str(site)), where
    assert where[2] == "None", "a top-level `app` module is importable"

    cli = [sys.executable, "-m", "localrag.app.cli", "--data-dir", str(tmp_path / "data")]
    ing = subprocess.run([*cli, "ingest", str(corpus), "--json"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert ing.returncode == 0, ing.stderr[-2000:]
    assert json.loads(ing.stdout)["counts"]["ingested"] == 2
    ask = subprocess.run([*cli, "ask", "Who designed Gannet Head Lighthouse?", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ask.returncode == 0, (ask.returncode, ask.stdout[-1500:], ask.stderr[-1500:])
    answer = json.loads(ask.stdout)
    assert not answer["abstained"] and answer["citations"], answer
    assert all(c["source"].startswith(str(corpus)) for c in answer["citations"])
