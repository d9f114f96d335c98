"""Any OpenAI-compatible chat server over HTTP (`localrag llm serve`, llama.cpp's server, vLLM, Ollama, hosted
APIs): the transport of `ChatLLM` is POST {base_url}/chat/completions, read whole or as server-sent events.
Nothing reaches the network unless a base URL was configured."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from localrag.app.llm.base import ContextOverflow, LLMConfigError, LLMError, LLMUnavailable, Sampling
from localrag.app.llm.loop import ChatLLM

__all__ = ["CHARS_PER_TOKEN", "DEFAULT_MAX_CONCURRENCY", "OpenAICompatLLM"]

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0  # estimate for servers without a tokenize endpoint (English text with BPE tokenizers)
DEFAULT_MAX_CONCURRENCY = 4  # chat completions in flight per server and model (Settings.llm_max_concurrency)


class _SharedClient:
    """One httpx client and one request limit for every OpenAICompatLLM of a process that talks to the same server
    and model with the same key: many UI sessions (each with its own Rag) then send at most `max_concurrency` chat
    completions at once, and the rest wait their turn (up to the timeout) instead of piling onto the server."""

    _registry: dict[tuple, _SharedClient] = {}
    _registry_lock = threading.Lock()

    def __init__(self, key: tuple, client: Any, max_concurrency: int) -> None:
        self.key = key
        self.client = client
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.users = 0
        self.in_flight = 0
        self.peak = 0

    @classmethod
    def get(cls, httpx: Any, base_url: str, model: str | None, api_key: str | None, timeout_s: float,
            max_concurrency: int, transport: Any) -> _SharedClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

        def new_client() -> Any:
            return httpx.Client(
                headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)), transport=transport,
                limits=httpx.Limits(max_connections=max(10, 2 * max_concurrency)),
            )

        if transport is not None:  # a test's own transport: never shared
            own = cls((), new_client(), max_concurrency)
            own.users = 1
            return own
        key = (base_url, model, hashlib.sha256((api_key or "").encode()).hexdigest(), float(timeout_s))
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls._registry[key] = cls(key, new_client(), max_concurrency)
            elif shared.max_concurrency != max_concurrency:
                log.warning("the client of %s (model %s) already sends at most %d requests at once; "
                            "llm_max_concurrency=%d is ignored while it is open", base_url, model,
                            shared.max_concurrency, max_concurrency)
            shared.users += 1
        return shared

    @contextmanager
    def slot(self, timeout_s: float, where: str) -> Iterator[None]:
        if not self._slots.acquire(timeout=timeout_s):
            raise LLMError(
                f"the LLM server at {where} is busy: {self.max_concurrency} requests from this process "
                f"(llm_max_concurrency) were still running after {timeout_s:g} s (llm_timeout_s); try again, or "
                "give the server more capacity and raise llm_max_concurrency"
            )
        with self._registry_lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._registry_lock:
                self.in_flight -= 1
            self._slots.release()

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            if self.key and self._registry.get(self.key) is self:
                del self._registry[self.key]
        self.client.close()


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


def _sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """The JSON events of a server-sent-event stream, up to ``data: [DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            raise LLMError(f"the LLM server sent a stream event that is not JSON: {data[:200]!r}") from None
        if isinstance(event, dict):
            yield event


class OpenAICompatLLM(ChatLLM):
    """Any OpenAI-compatible chat server over HTTP: POST {base_url}/chat/completions (SSE when streaming).

    `model` None means the server's first model (GET /models). The API key comes from the environment variable
    named `api_key_env` and is sent as a Bearer token when set.
    """

    backend = "openai"

    def __init__(
        self, base_url: str, model: str | None = None, *, api_key_env: str = "LOCALRAG_LLM_API_KEY",
        api_key: str | None = None, timeout_s: float = 120.0, sampling: Sampling | None = None,
        transport: Any = None, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise LLMUnavailable("httpx is not installed: run `pip install httpx`") from None
        if max_concurrency < 1:
            raise LLMConfigError(f"llm_max_concurrency must be at least 1, got {max_concurrency}")
        self._httpx = httpx
        self.base_url = _normalize_base_url(base_url)
        parts = urlsplit(self.base_url)
        self.root_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._model = model
        self.api_key_env = api_key_env
        key = api_key if api_key is not None else os.environ.get(api_key_env) if api_key_env else None
        self.sampling = sampling or Sampling()
        self.timeout_s = timeout_s
        # one HTTP client and one concurrency limit per (server, model, key): every Rag / UI session shares them
        self._shared = _SharedClient.get(httpx, self.base_url, model, key, timeout_s, max_concurrency, transport)
        self._client = self._shared.client
        self._closed = False
        self._json_mode: str | None = None  # "json_schema" (OpenAI) or "json_object" (llama.cpp), once known
        self._tokenize: str | None = None  # "extras" (llama-cpp-python), "tokenize" (llama.cpp, vLLM) or "estimate"
        self._lock = threading.Lock()  # guards the lazily learned facts above, not the requests

    @property
    def max_concurrency(self) -> int:
        """Chat completions this process sends to the server at once (shared by every client of the same server)."""
        return self._shared.max_concurrency

    def _hold(self) -> AbstractContextManager[None]:
        """A request slot for one chat completion (a whole stream holds it until it ends). Waiting for a slot is not
        part of the timed call; a wait longer than llm_timeout_s is an LLMError that says the server is busy."""
        return self._shared.slot(self.timeout_s, self.base_url)

    @property
    def _where(self) -> str:
        return f"the LLM server at {self.base_url}"

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

    # -- transport
    def _send_chat(self, messages: list[dict], p: Sampling, response_format: dict | None) -> dict[str, Any]:
        payload = self._payload(messages, p, stream=False)
        if response_format is not None:
            payload["response_format"] = response_format
        resp = self._request("POST", f"{self.base_url}/chat/completions", json=payload)
        self._raise_for(resp, "chat")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise LLMError(f"the LLM server at {self.base_url} sent an answer that is not an OpenAI chat "
                           f"completion: {resp.text[:200]!r}")
        return body

    def _yes_no(self, messages: list[dict]) -> tuple[float, float] | None:
        """The first token's top log-probabilities (OpenAI `logprobs` / `top_logprobs`, which llama.cpp's server
        and vLLM send); None when the server sends none."""
        payload = self._payload(messages, Sampling(temperature=0.0, top_p=1.0, max_tokens=1), stream=False)
        payload |= {"logprobs": True, "top_logprobs": 20}
        resp = self._request("POST", f"{self.base_url}/chat/completions", json=payload)
        self._raise_for(resp, "chat")
        try:
            top = resp.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            pairs = [(str(t["token"]).strip().lower(), math.exp(float(t["logprob"]))) for t in top]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return (sum(p for w, p in pairs if w == "yes"), sum(p for w, p in pairs if w == "no"))

    @contextmanager
    def _open_chat_stream(self, messages: list[dict], p: Sampling) -> Iterator[Iterator[dict]]:
        httpx = self._httpx
        payload = self._payload(messages, p, stream=True)
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for(resp, "chat")
                yield _sse_events(resp.iter_lines())
        except httpx.ConnectError as exc:
            raise LLMUnavailable(self._unreachable(exc)) from None
        except httpx.TimeoutException:
            raise LLMError(f"the LLM server at {self.base_url} stopped sending for {self.timeout_s:g} s "
                           "(llm_timeout_s)") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"HTTP error while streaming from {self.base_url}: {exc}") from None

    def _json_formats(self, schema: dict) -> dict[str, dict]:
        """OpenAI's `json_schema` response format first; llama.cpp's `{"type": "json_object", "schema": ...}` when
        the server refuses it (remembered for later calls)."""
        return {
            "json_schema": {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}},
            "json_object": {"type": "json_object", "schema": schema},
        }

    def _format_refused(self, exc: LLMError) -> bool:
        # llama-cpp-python's server answers an unknown response_format type with HTTP 500, others 400/422
        return re.search(r"HTTP (400|422|500)", str(exc)) is not None

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
            "max_concurrency": self.max_concurrency,
        }

    def close(self) -> None:
        """Let go of the shared client (closed when its last user lets go)."""
        if not self._closed:
            self._closed = True
            self._shared.release()
