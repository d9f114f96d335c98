"""One answer being written, in a thread of its own, so that nothing the user clicks kills it.

Streamlit reruns the page script on every widget interaction and abandons the run in progress. If the script
consumed `Rag.ask_stream` itself, any click while an answer streams would drop the generator (and the answer). Here a
worker thread consumes the stream into an `AnswerJob`; the page only displays the job's text and, on a rerun, picks
the same job up again from the session. The finished answer is saved to the conversation by the worker, so it is
kept even if the browser tab is gone. Stop sets a flag that the worker checks between streamed pieces; it then closes
the stream (which frees the LLM for the next caller).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from localrag import Answer, Rag
from localrag.app.answering import Replace, Restart

__all__ = ["AnswerJob", "STOPPED_NOTE"]

STOPPED_NOTE = "stopped before the answer was finished"


@dataclass
class AnswerJob:
    question: str
    collection: str
    options: dict[str, Any]  # keyword arguments for Rag.ask_stream (k, mode, filters, history, cache, ...)
    conversation_id: str | None = None
    text: str = ""  # what has been streamed of the current draft
    restarts: list[str] = field(default_factory=list)  # reasons for rejected drafts, in order
    showing: str = ""  # auto mode: "quote" while the quote is shown, "answer" once the model's answer replaced it
    quote_shown: str = ""  # auto mode: the quote that was shown until the model's answer replaced it
    answer: Answer | None = None
    error: BaseException | None = None
    stopped: bool = False
    message_id: int | None = None  # the saved assistant message
    save_error: str | None = None
    started: float = field(default_factory=time.perf_counter)
    first_piece_s: float | None = None  # time to the first streamed text, as the page saw it
    finished_s: float | None = None
    version: int = 0  # bumped on every change: the page redraws only when it moved
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # --- control ---------------------------------------------------------------------------------------------
    def start(self, rag: Rag) -> AnswerJob:
        self._thread = threading.Thread(target=self._run, args=(rag,), name="localrag-answer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # --- the worker ------------------------------------------------------------------------------------------
    def _run(self, rag: Rag) -> None:
        gen = None
        try:
            gen = rag.ask_stream(self.question, self.collection, **self.options)
            for event in gen:
                if self._stop.is_set():
                    self.stopped = True
                    break
                if isinstance(event, str):
                    if self.first_piece_s is None and event:
                        self.first_piece_s = time.perf_counter() - self.started
                    self.text += event
                    if self.options.get("answer_mode") == "auto" and not self.showing:
                        self.showing = "quote"
                elif isinstance(event, Replace):
                    self.showing, self.quote_shown = "answer", self.text
                    self.text = ""
                elif isinstance(event, Restart):
                    self.restarts.append(event.reason)
                    self.text = ""
                elif isinstance(event, Answer):
                    self.answer = event
                self.version += 1
        except Exception as exc:  # noqa: BLE001 - shown to the user as an error box by the page
            self.error = exc
        finally:
            if gen is not None:
                try:
                    gen.close()  # frees the LLM when stopped mid-stream
                except Exception:  # noqa: BLE001, S110 - closing an already failed stream
                    pass
            self.finished_s = time.perf_counter() - self.started
            self._save(rag)
            self.version += 1
            self._done.set()

    def _save(self, rag: Rag) -> None:
        if self.conversation_id is None or self.error is not None:
            return
        try:
            if self.answer is not None:
                self.message_id = rag.conversations.append(self.conversation_id, "assistant", self.answer.text,
                                                           self.answer_record())
            elif self.stopped and self.text.strip():
                self.message_id = rag.conversations.append(
                    self.conversation_id, "assistant", self.text,
                    {"text": self.text, "question": self.question, "stopped": True, "collection": self.collection})
        except Exception as exc:  # noqa: BLE001 - the answer is still shown; the page says it was not saved
            self.save_error = str(exc)

    # --- for the page ----------------------------------------------------------------------------------------
    def answer_record(self) -> dict[str, Any]:
        """The Answer as a dict, plus the rejected drafts' reasons and the times the page saw."""
        assert self.answer is not None
        ans = self.answer.to_dict()
        ans["restarts"] = list(self.restarts)
        ans["ui"] = {"first_piece_s": self.first_piece_s, "finished_s": self.finished_s,
                     "quote_shown": self.quote_shown or None}
        return ans

    def message(self) -> dict[str, Any]:
        """The finished turn as a chat message (the same shape as Conversations.load's messages)."""
        if self.answer is not None:
            return {"id": self.message_id, "role": "assistant", "content": self.answer.text,
                    "answer": self.answer_record(), "feedback": None, "save_error": self.save_error}
        if self.stopped:
            return {"id": self.message_id, "role": "assistant", "content": self.text,
                    "answer": {"text": self.text, "stopped": True}, "feedback": None, "save_error": self.save_error}
        return {"id": None, "role": "assistant", "content": "", "answer": None, "feedback": None,
                "error": self.error}
