"""A GGUF model in this process, through llama-cpp-python: the transport of `ChatLLM` is llama.cpp's
`create_chat_completion` (OpenAI-shaped dicts already), behind one lock."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from localrag.app.llm.base import ContextOverflow, LLMError, LLMUnavailable, Sampling
from localrag.app.llm.gguf import resolve_gguf
from localrag.app.llm.loop import ChatLLM

__all__ = ["LLAMA_CPP_PIP", "LlamaCppLLM"]

LLAMA_CPP_PIP = 'pip install "llama-cpp-python[server]==0.3.36"'

_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def _overflow(exc: ValueError) -> ContextOverflow | None:
    """llama-cpp-python's 'Requested tokens (n) exceed context window of m' as a ContextOverflow (else None)."""
    m = _OVERFLOW.search(str(exc))
    if m is None:
        return None
    return ContextOverflow(f"the prompt has {m.group(1)} tokens, more than the context window of {m.group(2)}: "
                           "shorten it or raise llm_n_ctx", int(m.group(1)), int(m.group(2)))


MAX_PREFIXES = 4  # system prompts whose KV state is kept (about 1.7 MB each for Qwen2.5-0.5B's answer prompt)


class LlamaCppLLM(ChatLLM):
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
    model_id: str  # the GGUF file's name

    def __init__(
        self, model_path: str | Path | None = None, *, n_ctx: int = 4096, n_threads: int | None = None,
        n_gpu_layers: int = 0, seed: int = 0, prompt_lookup: int = 0, sampling: Sampling | None = None,
        reuse_prefix: bool = False, prefix_cache: bool = True,
    ) -> None:
        self.model_path = resolve_gguf(model_path)
        self.reuse_prefix = reuse_prefix
        self.prefix_cache = prefix_cache and not reuse_prefix and prompt_lookup == 0
        self._prefixes: dict[str, tuple[list[int], Any]] = {}  # system prompt -> (its tokens, llama.cpp state)
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

    @property
    def _where(self) -> str:
        return f"llama.cpp ({self.model_id})"

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

    @contextmanager
    def _hold(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            self._release()

    # -- the system prompt's KV state, computed once and restored before each call that starts with it
    def _prefix_tokens(self, system: str) -> list[int]:
        """The tokens that every prompt with this system message starts with: the common prefix of two renders of
        the chat template that differ only in the user's text, less one token for a boundary that could merge."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = getattr(self._llm, "metadata", {}) or {}
        template = meta.get("tokenizer.chat_template")
        if not template:
            return []
        vocab = self._llm
        fmt = Jinja2ChatFormatter(template=template, eos_token=vocab.detokenize([vocab.token_eos()]).decode(
            "utf-8", "ignore"), bos_token=vocab.detokenize([vocab.token_bos()]).decode("utf-8", "ignore"))
        renders = []
        for user in ("x", "y"):
            r = fmt(messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
            renders.append(vocab.tokenize(r.prompt.encode("utf-8"), add_bos=not r.added_special, special=True))
        n = 0
        for a, b in zip(*renders, strict=False):
            if a != b:
                break
            n += 1
        return renders[0][:max(0, n - 1)]

    def _restore_prefix(self, messages: list[dict]) -> None:
        """Before a call (lock held): load the KV state of its system prompt, evaluated on its own the first time
        and kept, so the call reads only the rest of its prompt. Every call with the same system prompt starts from
        the same state: the output stays reproducible."""
        if not (self.prefix_cache and messages and messages[0].get("role") == "system"):
            return
        system = str(messages[0].get("content", ""))
        if system not in self._prefixes:
            tokens = self._prefix_tokens(system)
            if len(tokens) < 16:
                self._prefixes[system] = (tokens, None)
                return
            self._llm.reset()
            self._llm.eval(tokens)
            state = self._llm.save_state()
            # the prefix's logits are never read again (the user's message follows it): keep a zero view instead
            # of n_tokens x vocabulary floats (83 MB for Qwen2.5's 151k vocabulary)
            state.scores = np.broadcast_to(np.zeros(state.scores.shape[1], dtype=state.scores.dtype),
                                           state.scores.shape)
            if len(self._prefixes) >= MAX_PREFIXES:  # a few system prompts: answer, rewrite, judge
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[system] = (tokens, state)
        tokens, state = self._prefixes[system]
        if state is not None:
            self._llm.load_state(state)

    # -- transport
    def _call(self, messages: list[dict], p: Sampling, **extra: Any) -> Any:
        self._restore_prefix(messages)
        try:
            return self._llm.create_chat_completion(
                # plain {"role", "content"} dicts (check_messages); llama_cpp types each role as its own TypedDict
                messages=messages,  # type: ignore[arg-type]
                temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens,
                stop=p.stop or None, **extra,
            )
        except ValueError as exc:
            raise _overflow(exc) or exc from None

    def _send_chat(self, messages: list[dict], p: Sampling, response_format: dict | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"response_format": response_format} if response_format is not None else {}
        first: dict[str, float] = {}
        if response_format is None:
            extra["logits_processor"] = self._llama_cpp.LogitsProcessorList([self._first_token_watch(first)])
        body = dict(self._call(messages, p, **extra)) | {"model": self.model_id}  # llama.cpp names the file path
        return body | ({"abstain_p": first["p"]} if "p" in first else {})

    def _yes_no(self, messages: list[dict]) -> tuple[float, float] | None:
        """One forward pass over the prompt (max_tokens 1, greedy); the first token's distribution gives P(yes) and
        P(no) (lock held by the caller)."""
        probs: dict[str, float] = {}
        ids = {w: {t[0] for t in (self._llm.tokenize(v.encode(), add_bos=False, special=False)
                                  for v in (w, w.capitalize(), " " + w, " " + w.capitalize())) if t}
               for w in ("yes", "no")}

        def watch(input_ids: Any, scores: Any) -> Any:
            if not probs:
                z = np.asarray(scores, dtype=np.float64)
                e = np.exp(z - z.max())
                total = e.sum()
                for w, toks in ids.items():
                    probs[w] = float(sum(e[i] for i in toks) / total)
            return scores

        self._call(messages, Sampling(temperature=0.0, top_p=1.0, max_tokens=1),
                   logits_processor=self._llama_cpp.LogitsProcessorList([watch]))
        return (probs["yes"], probs["no"]) if probs else None

    def _first_token_watch(self, out: dict[str, float]) -> Any:
        """A pass-through logits processor that reads, at the first sampled token, the probability that the reply
        starts with "I" (the start of "I don't know"): the model's own judgement, for free."""
        import numpy as np

        ids = {t[0] for t in (self._llm.tokenize(w.encode(), add_bos=False, special=False) for w in ("I", " I")) if t}

        def watch(input_ids: Any, scores: Any) -> Any:
            if "p" not in out:
                z = np.asarray(scores, dtype=np.float64)
                e = np.exp(z - z.max())
                out["p"] = float(sum(e[i] for i in ids) / e.sum())
            return scores

        return watch

    @contextmanager
    def _open_chat_stream(self, messages: list[dict], p: Sampling) -> Iterator[Iterator[dict]]:
        # llama-cpp-python's chat stream carries no usage: a pass-through logits processor sees the prompt length
        # (its first call) and counts the sampled tokens; the usage chunk is added at the end, as OpenAI servers do
        seen = {"prompt": 0, "sampled": 0}

        def count(input_ids: Any, scores: Any) -> Any:
            if seen["sampled"] == 0:
                seen["prompt"] = len(input_ids)
            seen["sampled"] += 1
            return scores

        chunks = self._call(messages, p, stream=True, logits_processor=self._llama_cpp.LogitsProcessorList([count]))
        try:
            yield self._chunks_then_usage(chunks, seen)
        finally:
            chunks.close()

    def _chunks_then_usage(self, chunks: Iterator[dict], seen: dict[str, int]) -> Iterator[dict]:
        text, finish = [], None
        try:
            for chunk in chunks:
                for choice in chunk["choices"]:
                    text.append(choice["delta"].get("content") or "")
                    finish = choice.get("finish_reason") or finish
                yield chunk | {"model": self.model_id}
        except ValueError as exc:  # llama-cpp-python checks the prompt length only when a stream is first read
            raise _overflow(exc) or exc from None
        # the last sampled token is the end-of-turn token (not counted, as in llama.cpp's usage) unless it made text:
        # a cut at max_tokens, or a stop string inside it
        first = seen["prompt"]
        evaluated = self._llm.input_ids[first:first + max(seen["sampled"] - 1, 0)].tolist()
        shown = self._llm.detokenize(evaluated).decode("utf-8", errors="ignore") if evaluated else ""
        last_made_text = finish == "length" or len("".join(text)) > len(shown)
        n = seen["sampled"] - (0 if last_made_text else 1)
        yield {"choices": [], "usage": {"prompt_tokens": seen["prompt"] or None, "completion_tokens": max(n, 0)}}

    # -- the rest of the protocol
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (no BOS; special-token text counted as plain text)."""
        if not text:
            return 0
        # tokenizing reads only the vocabulary, not the context: no need to wait for a running generation
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def info(self) -> dict[str, Any]:
        """The model file, its size and context, the threads, and how long it took to load."""
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
        with self._hold():
            closer = getattr(self._llm, "close", None)
            if closer is not None:
                closer()
