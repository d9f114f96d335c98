"""Saved chats and answer feedback: conversations with their messages, 👍/👎 ratings, and their export as
chat-format fine-tuning data (`localrag export sft`).

Everything lives in the store's database (index/store.py: ConversationRow, MessageRow, FeedbackRow), so a chat
survives a browser refresh or a server restart, and a rating keeps what is needed to train on it (the question as
the model saw it, the numbered sources, the answer, citations, scores, model id) even after the documents change.

The export writes one JSON object per line, `{"messages": [system, user, assistant], ...}`: the system prompt and
user message are the ones the answering model was given (app.answer.build_messages: the fenced numbered sources and
the question), the assistant message is the rated answer. TRL's `SFTTrainer` and Unsloth read such files as they are
(`datasets.load_dataset("json", data_files=...)`).
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, func, select

from localrag.index.store import ConversationRow, FeedbackRow, MessageRow, Store, dumps, utcnow

__all__ = ["Conversations", "ConversationError", "sft_record"]

Rating = Literal["up", "any"]
TITLE_CHARS = 80


class ConversationError(ValueError):
    """An unknown conversation or message, or a bad rating; the message says which."""


def _loads(text: str | None, default: Any = None) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _answer_dict(answer: Any) -> dict[str, Any]:
    """An Answer (or its dict) as a JSON-ready dict."""
    if answer is None:
        return {}
    if isinstance(answer, dict):
        return answer
    to_dict = getattr(answer, "to_dict", None)
    if to_dict is None:
        raise ConversationError(f"expected an Answer or a dict, got {type(answer).__name__}")
    return to_dict()


def _title(text: str) -> str:
    t = " ".join(text.split())
    return t if len(t) <= TITLE_CHARS else t[: TITLE_CHARS - 1].rstrip() + "…"


def _rating(value: int | str | bool) -> int:
    if value in (1, "up", "+1", True, "👍"):
        return 1
    if value in (-1, "down", "-1", False, "👎"):
        return -1
    raise ConversationError(f"a rating is 'up' or 'down' (1 or -1), got {value!r}")


class Conversations:
    """Conversations, messages and feedback in a Store. Thread-safe: every call is its own short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- conversations -------------------------------------------------------------------------------------
    def create(self, collection: str = "default", title: str = "", settings: dict[str, Any] | None = None) -> str:
        """A new, empty conversation; returns its id."""
        cid = uuid.uuid4().hex
        with self.store.session() as s:
            s.add(ConversationRow(id=cid, collection=collection, title=_title(title),
                                  settings=dumps(settings) if settings else None))
        return cid

    def list(self, collection: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Conversations, the most recently active first: id, title, collection, created, updated, messages."""
        counts = (select(MessageRow.conversation_id, func.count().label("n"))
                  .group_by(MessageRow.conversation_id).subquery())
        q = (select(ConversationRow, func.coalesce(counts.c.n, 0))
             .outerjoin(counts, counts.c.conversation_id == ConversationRow.id)
             .order_by(ConversationRow.updated.desc(), ConversationRow.created.desc()).limit(limit))
        if collection is not None:
            q = q.where(ConversationRow.collection == collection)
        with self.store.session() as s:
            rows = s.execute(q).all()
            return [{"id": c.id, "title": c.title or "(empty)", "collection": c.collection,
                     "created": c.created, "updated": c.updated, "messages": int(n)} for c, n in rows]

    def load(self, conversation_id: str) -> dict[str, Any] | None:
        """A conversation with its messages in order (each: id, role, content, answer dict or None, created,
        feedback dict or None); None when there is no such conversation."""
        with self.store.session() as s:
            c = s.get(ConversationRow, conversation_id)
            if c is None:
                return None
            msgs = s.scalars(select(MessageRow).where(MessageRow.conversation_id == conversation_id)
                             .order_by(MessageRow.id)).all()
            ids = [m.id for m in msgs]
            fb = {f.message_id: self._feedback_dict(f) for f in
                  s.scalars(select(FeedbackRow).where(FeedbackRow.message_id.in_(ids)))} if ids else {}
            return {
                "id": c.id, "title": c.title, "collection": c.collection, "settings": _loads(c.settings, {}),
                "created": c.created, "updated": c.updated,
                "messages": [{"id": m.id, "role": m.role, "content": m.content, "answer": _loads(m.answer),
                              "created": m.created, "feedback": fb.get(m.id)} for m in msgs],
            }

    def delete(self, conversation_id: str) -> bool:
        """Delete a conversation and its messages (feedback given on them is kept). True when it existed."""
        with self.store.session() as s:
            c = s.get(ConversationRow, conversation_id)
            if c is None:
                return False
            ids = list(s.scalars(select(MessageRow.id).where(MessageRow.conversation_id == conversation_id)))
            if ids:  # keep the ratings: they are self-contained training data
                for f in s.scalars(select(FeedbackRow).where(FeedbackRow.message_id.in_(ids))):
                    f.message_id = None
                s.flush()
                s.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
            s.delete(c)
        return True

    def append(self, conversation_id: str, role: str, content: str, answer: Any = None) -> int:
        """Add a message (role "user" or "assistant"; an assistant turn may carry its Answer); returns its id. The
        first user message becomes the title of an untitled conversation."""
        if role not in ("user", "assistant"):
            raise ConversationError(f"role must be 'user' or 'assistant', got {role!r}")
        with self.store.session() as s:
            c = s.get(ConversationRow, conversation_id)
            if c is None:
                raise ConversationError(f"no conversation {conversation_id!r}")
            m = MessageRow(conversation_id=conversation_id, role=role, content=content,
                           answer=dumps(_answer_dict(answer)) if answer is not None else None)
            s.add(m)
            if role == "user" and not c.title:
                c.title = _title(content)
            c.updated = utcnow()
            s.flush()
            return m.id

    def history(self, conversation_id: str, turns: int | None = None) -> builtins.list[dict[str, str]]:
        """The conversation as chat messages ({"role", "content"}), for `Rag.ask(..., history=...)`."""
        conv = self.load(conversation_id)
        if conv is None:
            raise ConversationError(f"no conversation {conversation_id!r}")
        msgs = [{"role": m["role"], "content": m["content"]} for m in conv["messages"]]
        return msgs[-2 * turns:] if turns else msgs

    # --- feedback ------------------------------------------------------------------------------------------
    def rate(self, rating: int | str, *, message_id: int | None = None, answer: Any = None,
             question: str | None = None, comment: str | None = None, collection: str | None = None) -> int:
        """Store a 👍 (1, "up") or 👎 (-1, "down") with an optional comment; returns the feedback id.

        Rate a saved assistant message by `message_id` (its answer and the question before it are taken from the
        conversation; rating it again replaces the earlier rating), or any answer by passing the Answer (or its
        dict) as `answer`."""
        value = _rating(rating)
        with self.store.session() as s:
            conv_id = None
            if message_id is not None:
                m = s.get(MessageRow, message_id)
                if m is None or m.role != "assistant":
                    raise ConversationError(f"no assistant message {message_id!r} to rate")
                conv_id = m.conversation_id
                ans = _answer_dict(answer) if answer is not None else _loads(m.answer, {})
                if not ans:
                    ans = {"text": m.content}
                if question is None:
                    prev = s.scalars(select(MessageRow).where(MessageRow.conversation_id == conv_id,
                                                              MessageRow.id < m.id, MessageRow.role == "user")
                                     .order_by(MessageRow.id.desc())).first()
                    question = ans.get("question") or (prev.content if prev else "")
                if collection is None:
                    conv = s.get(ConversationRow, conv_id)
                    collection = ans.get("collection") or (conv.collection if conv else "default")
                row = s.scalars(select(FeedbackRow).where(FeedbackRow.message_id == message_id)).first()
            else:
                if answer is None:
                    raise ConversationError("rate needs the message_id of a saved answer, or the answer itself")
                ans = _answer_dict(answer)
                row = None
            if row is None:
                row = FeedbackRow(message_id=message_id, conversation_id=conv_id, rating=value)
                s.add(row)
            row.rating, row.comment, row.updated = value, (comment or "").strip() or None, utcnow()
            row.collection = collection or ans.get("collection") or "default"
            row.question = question if question is not None else str(ans.get("question") or "")
            row.standalone_question = ans.get("standalone_question")
            row.answer = str(ans.get("text") or "")
            row.abstained = bool(ans.get("abstained"))
            row.sources = dumps(ans.get("sources") or [])
            row.citations = dumps(ans.get("citations") or [])
            row.scores = dumps(ans["scores"]) if ans.get("scores") else None
            row.model_id = str(ans.get("model_id") or "")
            row.prompt_version = str(ans.get("prompt_version") or "")
            s.flush()
            return row.id

    @staticmethod
    def _feedback_dict(f: FeedbackRow) -> dict[str, Any]:
        return {
            "id": f.id, "message_id": f.message_id, "conversation_id": f.conversation_id, "collection": f.collection,
            "rating": f.rating, "comment": f.comment, "question": f.question,
            "standalone_question": f.standalone_question, "answer": f.answer, "abstained": f.abstained,
            "sources": _loads(f.sources, []), "citations": _loads(f.citations, []), "scores": _loads(f.scores),
            "model_id": f.model_id, "prompt_version": f.prompt_version, "created": f.created, "updated": f.updated,
        }

    def feedback(self, rating: Rating = "any", collection: str | None = None) -> builtins.list[dict[str, Any]]:
        """Stored feedback, oldest first: all of it, or only 👍 (`rating="up"`), of one collection or all."""
        if rating not in ("up", "any"):
            raise ConversationError(f"rating must be 'up' or 'any', got {rating!r}")
        q = select(FeedbackRow).order_by(FeedbackRow.id)
        if rating == "up":
            q = q.where(FeedbackRow.rating > 0)
        if collection is not None:
            q = q.where(FeedbackRow.collection == collection)
        with self.store.session() as s:
            return [self._feedback_dict(f) for f in s.scalars(q)]

    def feedback_for(self, message_id: int) -> dict[str, Any] | None:
        with self.store.session() as s:
            f = s.scalars(select(FeedbackRow).where(FeedbackRow.message_id == message_id)).first()
            return None if f is None else self._feedback_dict(f)

    # --- export --------------------------------------------------------------------------------------------
    def sft_records(self, rating: Rating = "up", collection: str | None = None) -> Iterator[dict[str, Any]]:
        for f in self.feedback(rating, collection):
            rec = sft_record(f)
            if rec is not None:
                yield rec

    def export_sft(self, out: str | Path, rating: Rating = "up", collection: str | None = None) -> int:
        """Write rated answers as chat-format JSONL (`{"messages": [system, user, assistant], "rating": ...}`) to
        `out`; returns how many lines were written (a rating without an answer text is left out)."""
        path = Path(out).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in self.sft_records(rating, collection):
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(path)
        return n


def sft_record(feedback: dict[str, Any]) -> dict[str, Any] | None:
    """One feedback row as a chat-format training example: the exact system and user messages the answering model
    was given (numbered, fenced sources and the question), and the rated answer as the assistant turn."""
    from localrag.app.answering import Source, build_messages

    answer = (feedback.get("answer") or "").strip()
    if not answer:
        return None
    fields = set(Source.__dataclass_fields__)
    sources: Sequence[Source] = [Source(**{k: v for k, v in s.items() if k in fields})
                                 for s in feedback.get("sources") or []]
    question = feedback.get("standalone_question") or feedback.get("question") or ""
    messages = build_messages(question, sources)
    messages.append({"role": "assistant", "content": answer})
    return {"messages": messages, "rating": "up" if feedback.get("rating", 0) > 0 else "down",
            "model_id": feedback.get("model_id") or "", "collection": feedback.get("collection") or ""}
