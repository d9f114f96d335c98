"""Long actions (ingest, sync, remove, an evaluation run, a tune) in a worker thread, so that a click elsewhere on the
page does not abort them.

Streamlit reruns the script on every widget interaction and stops the run in progress at its next Streamlit call.
An ingest running in the script itself would be aborted half-way by that (the store is crash-safe, but the user's
ingest would be lost). A `Task` runs the action in a thread and records its progress; the page shows the progress and,
when the task is done, its result, whichever script run happens to be current. The progress callback is called from
the worker thread and only records values: it never touches Streamlit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageProgress", "Task", "duration"]


@dataclass
class Task:
    label: str  # "Ingesting", "Syncing", "Removing", "Evaluating", "Tuning", "Undoing the tune"
    fn: Callable[[Callable[..., None]], Any]  # called as fn(progress); its return value is the result
    context: dict[str, Any] = field(default_factory=dict)  # what the page needs to show the result
    progress: tuple[Any, ...] = ()  # the last arguments given to the progress callback
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> Task:
        threading.Thread(target=self._run, name=f"localrag-{self.label.lower()}", daemon=True).start()
        return self

    def _record(self, *args: Any) -> None:
        self.progress = args

    def _run(self) -> None:
        try:
            self.result = self.fn(self._record)
        except Exception as exc:  # noqa: BLE001 - shown by the page as an error box
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - self.started
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class StageProgress:
    """The progress callback of a job that reports `(stage, done, total)` per stage (Rag.tune: "questions",
    "training", "re-embedding"; the CLI draws the same calls as bars), kept for the page: the stage, its fraction,
    and an ETA from the stage's own pace since its first report. Called from the worker thread; each call replaces
    one tuple, so the page never reads half an update."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.state: tuple[str, int, int, float, int] | None = None  # stage, done, total, its first report, done then
        self.stages: list[str] = []  # in the order they began

    def __call__(self, stage: str, done: int, total: int) -> None:
        now, s = self._clock(), self.state
        if s is None or s[0] != stage:
            self.stages.append(stage)
            self.state = (stage, done, total, now, done)
        else:
            self.state = (stage, done, total, s[3], s[4])

    @property
    def stage(self) -> str | None:
        return self.state[0] if self.state else None

    @property
    def fraction(self) -> float:
        if self.state is None or self.state[2] <= 0:
            return 0.0
        return min(1.0, max(0.0, self.state[1] / self.state[2]))

    def eta(self) -> float | None:
        """Seconds left in the current stage at its pace so far; None until two reports of it have come."""
        if self.state is None:
            return None
        _, done, total, since, first = self.state
        if total > 0 and done >= total:
            return 0.0
        if done <= first:
            return None
        return (self._clock() - since) / (done - first) * (total - done)


def duration(x: float | None) -> str:
    """Seconds as people read them: "2.5 s", "45 s", "3 min 20 s", "2 h 05 min"; "–" when unknown."""
    if x is None or x != x or x < 0:
        return "–"
    if x < 10:
        return f"{x:.1f} s"
    s = round(x)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
