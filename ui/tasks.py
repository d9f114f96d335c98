"""Long actions (ingest, sync, remove, an evaluation run) in a worker thread, so that a click elsewhere on the page
does not abort them.

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

__all__ = ["Task"]


@dataclass
class Task:
    label: str  # "Ingesting", "Syncing", "Removing", "Evaluating"
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
