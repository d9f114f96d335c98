"""What every LLM backend shares: the errors, the result types, sampling defaults, the `LLM` protocol that the
answering code depends on, and the message check."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "LLM", "Completion", "ContextOverflow", "LLMConfigError", "LLMError", "LLMUnavailable", "Sampling",
    "StreamResult", "check_messages",
]

ROLES = frozenset({"system", "user", "assistant"})


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
    # the model's own probability that its reply starts with "I" (as "I don't know" does): its judgement of whether
    # the sources answer the question, read from the first token's distribution (llama.cpp in process only)
    abstain_p: float | None = None

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
        """The parameters of one call: the given ones, the defaults for those left as None; checked."""
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

    @property
    def model_id(self) -> str: ...  # read-only here: an attribute or a property satisfies it

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


def check_messages(messages: list[dict]) -> list[dict]:
    """OpenAI-style messages, checked and copied: ``[{"role": "system"|"user"|"assistant", "content": str}]``."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(
                f"messages[{i}] must be {{'role': 'system'|'user'|'assistant', 'content': str}}, got {m!r:.120}"
            )
        clean.append({"role": m["role"], "content": m["content"]})
    return clean
