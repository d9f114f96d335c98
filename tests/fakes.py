"""Fakes for control-flow tests only (named as fakes): loaders that stand in for the real loader in the worker
process, and a question writer that stands in for the LLM in `localrag tune`'s control-flow tests."""

from __future__ import annotations

import re
import time
from pathlib import Path

from localrag.ingest.document import LoadedDocument


def fake_slow_loader(path: Path) -> LoadedDocument:
    """Hangs on files whose name contains 'slow'; loads every other file with the real loader."""
    from localrag.ingest.loaders import load_file

    if "slow" in path.name:
        time.sleep(600)
    return load_file(path)


def fake_crashing_loader(path: Path) -> LoadedDocument:
    """Kills its own process on files whose name contains 'crash' (like the OS killing a parser out of memory)."""
    import os
    import signal

    from localrag.ingest.loaders import load_file

    if "crash" in path.name:
        os.kill(os.getpid(), signal.SIGKILL)
    return load_file(path)


class FakeQuestionLLM:
    """A fake LLM for control-flow tests of `localrag tune`: its "question" is the passage's first words.
    `fail_after`: raises KeyboardInterrupt after that many calls (a kill in the middle of the question stage);
    `hold_after` and `ready`: after that many calls, touches the file `ready` and hangs (a tune that is still
    running, for another process to meet)."""

    model_id = "fake-question-llm"

    def __init__(self, fail_after: int | None = None, hold_after: int | None = None,
                 ready: Path | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after
        self.hold_after = hold_after
        self.ready = ready

    def generate(self, messages, **kw):  # noqa: ANN001, ANN003, ANN201
        from localrag.app.llm.base import Completion

        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        if self.hold_after is not None and self.calls >= self.hold_after:
            if self.ready is not None:
                self.ready.touch()
            time.sleep(600)
        self.calls += 1
        passage = messages[-1]["content"].split('"""')[1]
        words = re.findall(r"[A-Za-z][A-Za-z'-]+", passage)[:9]
        return Completion(f"What about {' '.join(words)}?", 0, 0, "stop", 0.0)

    def close(self) -> None:
        pass


class FakeVerifier:
    """A fake checking model for control-flow tests of verified abstention (answer.verify_model): it gives the same
    P(yes) to every question (or, given a list, the next one of the list to each) and records what it was asked.
    What a real checking model says is tested with the packaged model itself (tests/test_small_models.py)."""

    model_id = "fake-verifier"

    def __init__(self, p_yes: float | None | list[float | None]) -> None:
        self.p_yes = p_yes
        self.asked: list[list[dict]] = []

    def yes_probability(self, messages: list[dict]) -> float | None:
        self.asked.append(messages)
        if isinstance(self.p_yes, list):
            return self.p_yes[min(len(self.asked), len(self.p_yes)) - 1]
        return self.p_yes

    def close(self) -> None:
        pass
