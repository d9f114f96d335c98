"""Choosing a backend from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from localrag.app.llm.base import LLMConfigError, LLMError, Sampling
from localrag.app.llm.llamacpp import LlamaCppLLM
from localrag.app.llm.models import DEFAULT_MODEL
from localrag.app.llm.openai_compat import OpenAICompatLLM

if TYPE_CHECKING:
    from localrag.app.config import Settings

__all__ = ["answering_gguf", "judge_gguf", "judge_info", "make_judge_llm", "make_llm", "verify_gguf"]


def make_llm(settings: Settings) -> LlamaCppLLM | OpenAICompatLLM:
    """The LLM the settings describe (`settings.llm`: backend, model, base_url, ...). Loads the model (llama-cpp) or
    just prepares the client (openai: nothing is sent until the first call)."""
    s = settings.llm
    sampling = Sampling(s.temperature, s.top_p, s.max_tokens, list(s.stop))
    if s.backend == "openai":
        if not s.base_url:
            raise LLMConfigError("llm.backend is 'openai' but llm.base_url is not set: set LOCALRAG_LLM__BASE_URL (or "
                                 "base_url under [llm] in localrag.toml), e.g. http://127.0.0.1:8080/v1 as printed by "
                                 "`localrag llm serve`")
        return OpenAICompatLLM(s.base_url, s.model, api_key_env=s.api_key_env, timeout_s=s.timeout_s,
                               sampling=sampling, max_concurrency=s.max_concurrency)
    return LlamaCppLLM(
        s.model or DEFAULT_MODEL, n_ctx=s.n_ctx, n_threads=s.threads or settings.threads or usable_cores(),
        n_gpu_layers=s.gpu_layers, seed=s.seed, prompt_lookup=s.prompt_lookup, sampling=sampling,
    )


def answering_gguf(settings: Settings) -> Path | None:
    """The GGUF file the answering model (llm.model) loads, without loading it; None for llm.backend=openai or when
    it cannot be resolved (its own error comes when it is used)."""
    from localrag.app.llm.gguf import resolve_gguf

    if settings.llm.backend != "llama-cpp":
        return None
    try:
        return resolve_gguf(settings.llm.model or DEFAULT_MODEL).resolve()
    except LLMError:
        return None


def verify_gguf(settings: Settings) -> Path | None:
    """The GGUF file of the model that checks generated answers (answer.verify_model), without loading or
    downloading it: None when none is set; a models.ModelError naming the pull command when it is not pulled."""
    return _named_gguf(settings.answer.verify_model, "the checking model (answer.verify_model")


def judge_gguf(settings: Settings) -> Path | None:
    """The GGUF file of the LLM judge's model (eval.judge_model: a model name, a .gguf file or an hf: id), without
    loading or downloading it: None when none is set (the answering LLM judges). A model that is not pulled (or an
    hf: file not downloaded) is a models.ModelError that says what to run (`localrag models pull NAME`); every
    error names the setting."""
    return _named_gguf(settings.eval.judge_model, "the LLM judge's model (eval.judge_model")


def _named_gguf(name: str | None, what: str) -> Path | None:
    from localrag.app.llm import models
    from localrag.app.llm.gguf import resolve_gguf

    if not name:
        return None
    try:
        if models.is_hf_ref(name):  # never downloaded here: `localrag models pull hf:...` does that once
            path = models.hf_local_path(name)
            if not path.is_file():
                raise models.ModelError(f"{name} is not downloaded yet: run `localrag models pull {name}`")
            return resolve_gguf(path).resolve()
        return resolve_gguf(name).resolve()
    except LLMError as exc:
        raise type(exc)(f"{what} = {name}): {exc}") from None


def make_judge_llm(settings: Settings, path: Path) -> LlamaCppLLM:
    """The LLM judge's model (the GGUF `path`, from judge_gguf) in this process, with the answering model's llama.cpp
    settings (llm.n_ctx, threads, gpu_layers, seed) and no prompt lookup: the judge's calls are short JSON verdicts."""
    s = settings.llm
    return LlamaCppLLM(path, n_ctx=s.n_ctx, n_threads=s.threads or settings.threads or usable_cores(),
                       n_gpu_layers=s.gpu_layers, seed=s.seed,
                       sampling=Sampling(s.temperature, s.top_p, s.max_tokens, list(s.stop)))


def judge_info(settings: Settings) -> dict[str, Any]:
    """Which model judges with `localrag eval --judge llm`, without loading it: `judge_model` (the setting),
    `judge_path`, `judge_shares_answering_model` (one instance serves both), and `judge_error` (e.g. not pulled:
    the pull command)."""
    name = settings.eval.judge_model
    info: dict[str, Any] = {"judge_model": name, "judge_path": None, "judge_shares_answering_model": name is None,
                            "judge_error": None}
    try:
        path = judge_gguf(settings)
    except LLMError as exc:
        info["judge_error"] = str(exc)
        return info
    if path is not None:
        info["judge_path"] = str(path)
        info["judge_shares_answering_model"] = path == answering_gguf(settings)
    return info


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count): one answer at a time runs
    on all of them."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
