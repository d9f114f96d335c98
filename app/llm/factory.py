"""Choosing a backend from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from localrag.app.llm.base import LLMConfigError, Sampling
from localrag.app.llm.llamacpp import LlamaCppLLM
from localrag.app.llm.models import DEFAULT_MODEL
from localrag.app.llm.openai_compat import OpenAICompatLLM

if TYPE_CHECKING:
    from localrag.app.config import Settings

__all__ = ["make_llm"]


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count): one answer at a time runs
    on all of them."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
