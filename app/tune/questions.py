"""Stage 1 of `localrag tune`: the instruct LLM writes one question per chunk, each stored as soon as it is made.

A killed run resumes where it stopped: a chunk that has a stored question (usable, or "junk" when the model's
output was not one question) is never asked again, so a re-run writes questions only for the chunks without one.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from localrag.index.store import ChunkRow, Store, TuneQuestionRow

__all__ = ["QuestionCounts", "parse_question", "question_messages", "sample_chunks", "stored_questions",
           "write_questions"]

MAX_PASSAGE_CHARS = 1500  # the prompt's passage (about 350 tokens): a longer chunk is cut, its start kept
SYSTEM = "You write search questions for passages of a person's own documents."
ASK = ("Passage:\n\"\"\"\n{passage}\n\"\"\"\n\nWrite one question that this passage answers, the way someone searching "
       "their documents for it would ask. Do not mention 'the passage' or 'the text'. Reply with the question only, "
       "on one line, ending with '?'.")
# a question that points at the prompt rather than at the content cannot be asked of a search engine
_META = re.compile(r"\b(passage|the text|this text|the above|the author|the document|this document|excerpt)\b", re.I)
_PREFIX = re.compile(r"^\s*(?:(?:question|q)\s*\d*\s*[:.)-]\s*|\d+\s*[.)]\s*|[-*•>#]+\s*)", re.I)


def question_messages(chunk_text: str) -> list[dict[str, str]]:
    passage = chunk_text.strip()[:MAX_PASSAGE_CHARS]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK.format(passage=passage)}]


def parse_question(raw: str) -> str | None:
    """The one question in the model's output, cleaned (a "Question:" prefix, numbering, quotes and markdown
    removed), or None when it is not one usable question: no '?', under 4 or over 40 words, no letters, or about
    the prompt ("What does the passage say ...")."""
    for line in raw.replace("\r", "\n").split("\n"):
        text = _PREFIX.sub("", line.strip().strip("*_`").strip()).strip().strip("\"'“”‘’*_`").strip()
        if not text:
            continue
        if "?" not in text:
            return None
        text = text[: text.index("?") + 1].strip().strip("\"'“”‘’").strip()
        words = text.split()
        if not 4 <= len(words) <= 40 or not re.search(r"[^\W\d_]", text) or _META.search(text):
            return None
        return text[0].upper() + text[1:]
    return None


def sample_chunks(store: Store, collection_id: int, max_chunks: int | None, seed: int = 13) -> list[int]:
    """Chunk ids to write questions for: all of them, or `max_chunks` stratified by document (each document's
    chunks shuffled, then taken one document after another in turn, so every document is represented and a long one
    does not crowd the others out). Sorted by id."""
    with store.session() as s:
        rows = s.execute(select(ChunkRow.id, ChunkRow.document_id).where(ChunkRow.collection_id == collection_id)
                         .order_by(ChunkRow.id)).all()
    if max_chunks is None or max_chunks >= len(rows):
        return [int(r[0]) for r in rows]
    rng = random.Random(seed)
    by_doc: dict[int, list[int]] = defaultdict(list)
    for cid, did in rows:
        by_doc[int(did)].append(int(cid))
    queues = [by_doc[d] for d in sorted(by_doc)]
    for q in queues:
        rng.shuffle(q)
    rng.shuffle(queues)
    picked: list[int] = []
    while len(picked) < max_chunks:
        for q in queues:
            if q and len(picked) < max_chunks:
                picked.append(q.pop())
    return sorted(picked)


def stored_questions(store: Store, collection_id: int, chunk_ids: Sequence[int] | None = None) -> dict[int, str]:
    """{chunk id: question} of the usable stored questions (of these chunks, or all of the collection's)."""
    q = select(TuneQuestionRow.chunk_id, TuneQuestionRow.question).where(
        TuneQuestionRow.collection_id == collection_id, TuneQuestionRow.status == "ok")
    with store.session() as s:
        rows = s.execute(q).all()
    wanted = None if chunk_ids is None else set(chunk_ids)
    return {int(c): t for c, t in rows if wanted is None or int(c) in wanted}


@dataclass
class QuestionCounts:
    asked: int = 0  # chunks the LLM wrote for in this run
    reused: int = 0  # chunks that already had a stored question (or junk) from an earlier run
    junk: int = 0  # of `asked`, outputs that were not one usable question

    def to_dict(self) -> dict[str, int]:
        return {"asked": self.asked, "reused": self.reused, "junk": self.junk}


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


def write_questions(store: Store, collection_id: int, llm: Callable[[], Any], chunk_ids: Sequence[int],
                    progress: ProgressFn | None = None, max_tokens: int = 48) -> QuestionCounts:
    """Ask the LLM (`llm()` makes it, only when needed) for one question per chunk that has none stored,
    committing each as it is made."""
    with store.session() as s:
        done = set(s.scalars(select(TuneQuestionRow.chunk_id).where(
            TuneQuestionRow.collection_id == collection_id)))
        todo = [c for c in chunk_ids if c not in done]
        texts = dict(s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(todo))).all()) if todo else {}
    counts = QuestionCounts(reused=len(chunk_ids) - len(todo))
    if not todo:
        return counts
    model_obj = llm()  # loaded only when some chunk needs a question
    model = str(getattr(model_obj, "model_id", "?"))
    for n, cid in enumerate(todo, start=1):
        if progress:
            progress("questions", n - 1, len(todo))
        text = texts.get(cid)
        if text is None:  # removed since the sample was drawn
            continue
        raw = model_obj.generate(question_messages(text), temperature=0.0, max_tokens=max_tokens, stop=["\n\n"]).text
        question = parse_question(raw)
        counts.asked += 1
        counts.junk += question is None
        with store.session() as s:
            s.add(TuneQuestionRow(collection_id=collection_id, chunk_id=cid, question=question or raw[:500],
                                  status="ok" if question else "junk", model=model))
    if progress:
        progress("questions", len(todo), len(todo))
    return counts
