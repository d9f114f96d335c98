"""Knowledge-graph neighbour expansion (depth 1): the nodes linked to a hit's node, with their facts.

Neighbours are context for the hit (an answer may need "who built the vessel" from the builder's node); they
are marked as expansion and never ranked as search hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import or_, select

from localrag.index.store import ChunkRow, DocumentRow, KgEdgeRow, KgNodeRow, Store
from localrag.retrieval.types import Hit, Neighbour

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def relation_words(predicate: str) -> str:
    """`https://ex.org/builtBy` -> "built by"; `http://ex.org/home_port` -> "home port"."""
    name = re.split(r"[#/:]", predicate.rstrip("/#"))[-1] or predicate
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ").replace("-", " "))
    return " ".join(name.split()).lower()


@dataclass
class Links:
    """The graph around a set of nodes: their URI-valued edges (rdf:type excluded), and for each linked node its
    first chunk (id, label, text) and its label."""

    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, predicate, object)
    first_chunk: dict[str, tuple[int, str | None, str]] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)


def load_links(store: Store, collection_id: int, uris: set[str]) -> Links:
    """Edges touching `uris` (either direction) and what the store knows of the nodes at their other end."""
    if not uris:
        return Links()
    with store.session() as s:
        edges = s.execute(
            select(KgEdgeRow.subject, KgEdgeRow.predicate, KgEdgeRow.object)
            .where(
                KgEdgeRow.collection_id == collection_id,
                KgEdgeRow.object_is_uri.is_(True),
                KgEdgeRow.predicate != RDF_TYPE,
                or_(KgEdgeRow.subject.in_(uris), KgEdgeRow.object.in_(uris)),
            )
            .order_by(KgEdgeRow.id)
        ).all()
        linked = {o for sub, _, o in edges if sub in uris} | {sub for sub, _, o in edges if o in uris}
        if not linked:
            return Links()
        chunk_rows = s.execute(
            select(ChunkRow.id, ChunkRow.kg_uri, ChunkRow.label, ChunkRow.text)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id, ChunkRow.kg_uri.in_(linked))
            .order_by(ChunkRow.id)
        ).all()
        labels = dict(
            s.execute(
                select(KgNodeRow.uri, KgNodeRow.label).where(
                    KgNodeRow.collection_id == collection_id, KgNodeRow.uri.in_(linked)
                )
            ).all()
        )
    first_chunk: dict[str, tuple[int, str | None, str]] = {}
    for cid, uri, label, text in chunk_rows:
        if uri is not None:  # always: the query asks for kg_uri in `linked`
            first_chunk.setdefault(uri, (cid, label, text))
    return Links(edges=[(sub, pred, obj) for sub, pred, obj in edges], first_chunk=first_chunk, labels=labels)


def attach_neighbours(hits: list[Hit], links: Links, max_neighbours: int = 8) -> None:
    """Append to each RDF hit the nodes linked to it (in edge order, each once, up to `max_neighbours`); a node
    that is itself among the hits is not repeated as a neighbour."""
    hit_chunks = {h.chunk_id for h in hits}
    for h in hits:
        if not h.kg_uri:
            continue
        seen: set[str] = set()
        for sub, pred, obj in links.edges:
            if sub == h.kg_uri:
                other, direction = obj, "out"
            elif obj == h.kg_uri:
                other, direction = sub, "in"
            else:
                continue
            if other == h.kg_uri or other in seen:
                continue
            found = links.first_chunk.get(other)
            if found is not None and found[0] in hit_chunks:
                continue  # already a hit of its own
            seen.add(other)
            cid, label, text = found if found is not None else (None, links.labels.get(other), "")
            h.neighbours.append(
                Neighbour(
                    uri=other, label=label or links.labels.get(other), relation=relation_words(pred),
                    direction=direction, chunk_id=cid, text=text,
                )
            )
            if len(h.neighbours) >= max_neighbours:
                break


def expand(store: Store, collection_id: int, hits: list[Hit], max_neighbours: int = 8) -> None:
    """The expansion stage: attach up to `max_neighbours` linked nodes (either direction, rdf:type links excluded)
    to each RDF hit."""
    uris = {h.kg_uri for h in hits if h.kg_uri}
    if not uris:
        return
    attach_neighbours(hits, load_links(store, collection_id, uris), max_neighbours)
