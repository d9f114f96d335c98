"""The request / stream / stop loop that every backend shares.

`ChatLLM` implements the `LLM` protocol's calls once: checking the messages, resolving the sampling parameters
(temperature, top_p, max_tokens, stop strings), timing, reading a completion or a stream of chunks, collecting the
text, usage and finish reason, releasing the model when a stream ends or is closed early, and JSON output (try each
response format the backend offers, remember the one that worked, parse and check against the schema).

A backend supplies only its transport, in the OpenAI chat-completion wire format (dicts):

- `_send_chat(messages, sampling, response_format)`: one finished completion,
  ``{"choices": [{"message": {"content"}, "finish_reason"}], "usage": {...}, "model": ...}``;
- `_open_chat_stream(messages, sampling)`: a context manager around an iterator of stream chunks,
  ``{"choices": [{"delta": {"content"}, "finish_reason"}]}``, optionally ending with a ``{"usage": {...}}`` chunk
  (OpenAI's ``stream_options.include_usage``); leaving the context ends the request;
- `count_tokens(text)`, and where there is something to show or free, `info()` and `close()`;
- optionally `_hold()` (held around one call, outside the timed part: an in-process model's lock),
  `_json_formats(schema)` and `_format_refused(error)` (which JSON response formats to try, and whether an error
  means "this format is not supported, try the next").

Transport errors are the backend's to translate into `LLMError`s (`LLMUnavailable`, `ContextOverflow`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from localrag.app.llm.base import Completion, LLMError, LLMUnavailable, Sampling, StreamResult, check_messages
from localrag.app.llm.json_output import check_schema, parse_json

__all__ = ["ChatLLM"]

log = logging.getLogger(__name__)


class ChatLLM(ABC):
    """Base of the backends: generate, stream and generate_json over a backend's transport (see the module)."""

    backend: str = ""
    sampling: Sampling
    _json_mode: str | None = None  # the JSON response format that worked, once known

    if TYPE_CHECKING:
        @property
        def model_id(self) -> str:
            """The model's name: a backend sets it as an attribute (llama.cpp: the file's name) or defines a
            property (openai: the server's first model, asked once), so it is read-only here."""

    # -- transport: what a backend supplies -----------------------------------------------------------------------
    @property
    def _where(self) -> str:
        """Who answered, for error messages ("the LLM server at http://...")."""
        return f"the {self.backend} model {self.model_id}"

    def _hold(self) -> AbstractContextManager[Any]:
        """Held for one whole call, before the clock starts (an in-process model is taken here). Default: nothing."""
        return nullcontext()

    @abstractmethod
    def _send_chat(self, messages: list[dict], p: Sampling, response_format: dict | None) -> dict[str, Any]:
        """One chat completion, not streamed, as an OpenAI chat-completion dict."""

    @abstractmethod
    def _open_chat_stream(self, messages: list[dict], p: Sampling) -> AbstractContextManager[Iterator[dict]]:
        """A streamed chat completion: a context manager yielding OpenAI stream chunks (usage, if any, last)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's tokenizer (or the best estimate the backend has)."""

    def info(self) -> dict[str, Any]:
        """What `localrag llm info` shows about this backend."""
        return {"backend": self.backend, "model_id": self.model_id}

    def close(self) -> None:
        """Free what the backend holds (a loaded model, an HTTP client). Default: nothing to free."""
        return None

    def _json_formats(self, schema: dict) -> dict[str, dict]:
        """The response formats that constrain output to `schema`, by name, in the order to try them."""
        return {"json_object": {"type": "json_object", "schema": schema}}

    def _format_refused(self, exc: LLMError) -> bool:
        """Whether `exc` means the backend does not support the response format asked for (then the next is tried)."""
        return False

    # -- the protocol ------------------------------------------------------------------------------------------
    def generate(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> Completion:
        """One completion of `messages`; parameters left as None take the configured sampling defaults."""
        msgs = check_messages(messages)
        return self._complete(msgs, self.sampling.resolve(temperature, top_p, max_tokens, stop))

    def stream(
        self, messages: list[dict], *, temperature: float | None = None, top_p: float | None = None,
        max_tokens: int | None = None, stop: Sequence[str] | None = None,
    ) -> StreamResult:
        """The completion as text pieces while it is written; `.completion` holds usage and timings at the end."""
        msgs = check_messages(messages)
        p = self.sampling.resolve(temperature, top_p, max_tokens, stop)
        return StreamResult(lambda rec: self._stream(rec, msgs, p))

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict:
        """A JSON object constrained by `schema` (a JSON schema): each response format the backend offers is tried
        until one is accepted (remembered for later calls); the result is checked against the schema."""
        check_schema(schema)
        msgs = check_messages(messages)
        p = self.sampling.resolve(temperature, None, max_tokens, [])
        forms = self._json_formats(schema)
        order = [self._json_mode] if self._json_mode in forms else list(forms)
        refused: list[LLMError] = []
        for i, mode in enumerate(order):
            try:
                c = self._complete(msgs, p, forms[mode])
            except LLMUnavailable:
                raise
            except LLMError as exc:
                if i + 1 < len(order) and self._format_refused(exc):
                    log.info("%s refused response_format %s (%s); trying %s", self._where, mode, exc, order[i + 1])
                    refused.append(exc)
                    continue
                if refused:
                    raise LLMError(f"{self._where} refused {'both' if len(order) == 2 else 'all'} JSON response "
                                   f"formats: {refused[0]}; then: {exc}") from None
                raise
            self._json_mode = mode
            return parse_json(c, schema)
        raise AssertionError("unreachable")  # the last format either returns or raises

    def yes_probability(self, messages: list[dict]) -> float | None:
        """The model's probability of answering "yes" rather than "no" to `messages` (a yes/no question), read from
        its first reply token: P(yes) / (P(yes) + P(no)) over the spellings "yes", "Yes", " yes", " Yes" (and the
        same for "no"). None when the backend does not expose token probabilities (a server without logprobs) or
        when neither word is among the likely first tokens."""
        msgs = check_messages(messages)
        with self._hold():
            pair = self._yes_no(msgs)
        if pair is None or pair[0] + pair[1] <= 0:
            return None
        return pair[0] / (pair[0] + pair[1])

    def _yes_no(self, messages: list[dict]) -> tuple[float, float] | None:
        """(P(yes), P(no)) of the first reply token, summed over their spellings; None when not available."""
        return None

    # -- the loop ------------------------------------------------------------------------------------------------
    def _complete(self, messages: list[dict], p: Sampling, response_format: dict | None = None) -> Completion:
        with self._hold():
            t0 = time.perf_counter()
            body = self._send_chat(messages, p, response_format)
            seconds = time.perf_counter() - t0
        return self._completion(body, seconds)

    def _completion(self, body: dict[str, Any], seconds: float) -> Completion:
        try:
            choice, usage = body["choices"][0], body.get("usage") or {}
            timings = body.get("timings") or {}  # llama.cpp's own server reports prompt time
            ttft = timings["prompt_ms"] / 1000 if isinstance(timings.get("prompt_ms"), int | float) else None
            return Completion(
                text=(choice.get("message") or {}).get("content") or "", prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"), finish_reason=choice.get("finish_reason"),
                seconds=seconds, ttft_seconds=ttft, model=str(body.get("model") or self.model_id),
                abstain_p=body.get("abstain_p"),
            )
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"{self._where} sent an answer that is not an OpenAI chat completion: "
                           f"{str(body)[:200]!r}") from None

    def _stream(self, rec: StreamResult, messages: list[dict], p: Sampling) -> Iterator[str]:
        """Yield the text pieces of one streamed completion, then set `rec.completion`. Closing the generator early
        (StreamResult.close) leaves both contexts: the request ends and the model is released."""
        with self._hold():
            t0 = time.perf_counter()
            ttft: float | None = None
            finish: str | None = None
            parts: list[str] = []
            usage: dict[str, Any] = {}
            model = self.model_id
            with self._open_chat_stream(messages, p) as chunks:
                for chunk in chunks:
                    if chunk.get("error"):
                        e = chunk["error"]
                        raise LLMError(f"{self._where} failed mid-stream: "
                                       f"{e.get('message', e) if isinstance(e, dict) else e}")
                    usage = chunk.get("usage") or usage
                    model = chunk.get("model") or model
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if ttft is None:
                                ttft = time.perf_counter() - t0
                            parts.append(piece)
                            yield piece
                        finish = choice.get("finish_reason") or finish
            # without usage (llama-cpp-python's server sends none) each streamed piece is one token on llama.cpp
            rec.completion = Completion(
                text="".join(parts), prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens", len(parts)), finish_reason=finish,
                seconds=time.perf_counter() - t0, ttft_seconds=ttft, model=str(model),
            )
