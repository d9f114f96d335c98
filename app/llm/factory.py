"""Choosing a backend from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from localrag.app.llm.base import LLMConfigError, Sampling
from localrag.app.llm.llamacpp import LlamaCppLLM
from localrag.app.llm.openai_compat import OpenAICompatLLM

if TYPE_CHECKING:
    from localrag.app.config import Settings

__all__ = ["make_llm"]


def make_llm(settings: Settings) -> LlamaCppLLM | OpenAICompatLLM:
    """The LLM the settings describe (llm_backend, llm_model, llm_base_url, ...). Loads the model (llama-cpp) or
    just prepares the client (openai: nothing is sent until the first call)."""
    s = settings
    sampling = Sampling(s.llm_temperature, s.llm_top_p, s.llm_max_tokens, list(s.llm_stop))
    if s.llm_backend == "openai":
        if not s.llm_base_url:
            raise LLMConfigError("llm_backend is 'openai' but llm_base_url is not set: set LOCALRAG_LLM_BASE_URL, e.g. "
                           "http://127.0.0.1:8080/v1 as printed by `localrag llm serve`")
        return OpenAICompatLLM(s.llm_base_url, s.llm_model, api_key_env=s.llm_api_key_env, timeout_s=s.llm_timeout_s,
                               sampling=sampling, max_concurrency=s.llm_max_concurrency)
    return LlamaCppLLM(
        s.llm_model, n_ctx=s.llm_n_ctx, n_threads=s.llm_threads, n_gpu_layers=s.llm_gpu_layers, seed=s.llm_seed,
        prompt_lookup=s.llm_prompt_lookup, sampling=sampling,
    )

