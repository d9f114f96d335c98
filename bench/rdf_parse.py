"""RDF parse speed, side by side: pyoxigraph (what localrag uses) vs rdflib, on a 100k-triple file and on a file
with a 1.9 MB literal on one line.

    python -m bench.rdf_parse [--triples 100000] [--long-mb 1.9] [--repeat 3]

Rows: `pyoxigraph` (the raw parser), `localrag parse_rdf` (pyoxigraph plus conversion to rdflib terms and
de-duplication: what ingestion runs), `oxrdflib` (rdflib Graph on the Oxigraph store, when installed), `rdflib`
(rdflib's own parser into its default in-memory Graph). The best of --repeat runs is reported (rdflib on the
long line runs once: it takes tens of seconds).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def write_many_triples(path: Path, triples: int) -> Path:
    """N-Triples: people with a type, a label, an age, and a link to the next one (4 triples each)."""
    ex = "http://example.org/people/"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(triples // 4):
            s = f"<{ex}p{i}>"
            fh.write(f"{s} <{TYPE}> <{ex}Person> .\n")
            fh.write(f'{s} <{LABEL}> "Person number {i}"@en .\n')
            fh.write(f'{s} <{ex}age> "{20 + i % 60}"^^<http://www.w3.org/2001/XMLSchema#integer> .\n')
            fh.write(f"{s} <{ex}knows> <{ex}p{i + 1}> .\n")
    return path


def write_long_line(path: Path, megabytes: float) -> Path:
    """N-Triples whose third line holds one literal of `megabytes` MB (an abstract pasted on one line)."""
    words = " ".join(f"tide{i % 97}" for i in range(int(megabytes * 1024 * 1024) // 7))
    path.write_text(
        f'<http://example.org/a> <{LABEL}> "A" .\n<http://example.org/b> <{LABEL}> "B" .\n'
        f'<http://example.org/a> <http://example.org/abstract> "{words}" .\n',
        encoding="utf-8",
    )
    return path


def _pyoxigraph(data: bytes) -> int:
    import pyoxigraph as ox

    return sum(1 for _ in ox.parse(data, format=ox.RdfFormat.N_TRIPLES))


def _localrag(data: bytes) -> int:
    from localrag.ingest.rdf import parse_rdf

    return len(parse_rdf(data, "nt", "file:///bench.nt")[0])


def _oxrdflib(data: bytes) -> int:
    from rdflib import Graph

    graph = Graph(store="Oxigraph")
    graph.parse(io.BytesIO(data), format="ox-nt")
    return len(graph)


def _rdflib(data: bytes) -> int:
    from rdflib import Graph

    graph = Graph()
    graph.parse(data=data, format="nt")
    return len(graph)


def parsers() -> dict[str, Callable[[bytes], int]]:
    out: dict[str, Callable[[bytes], int]] = {"pyoxigraph": _pyoxigraph, "localrag parse_rdf": _localrag}
    if importlib.util.find_spec("oxrdflib") is not None:
        out["oxrdflib"] = _oxrdflib
    out["rdflib"] = _rdflib
    return out


def timed(fn: Callable[[bytes], int], data: bytes, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(data)
        best = min(best, time.perf_counter() - start)
    return best, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triples", type=int, default=100_000)
    ap.add_argument("--long-mb", type=float, default=1.9)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        many = write_many_triples(Path(tmp) / "many.nt", args.triples).read_bytes()
        long = write_long_line(Path(tmp) / "long.nt", args.long_mb).read_bytes()
    print(f"files: {args.triples:,}-triple N-Triples ({len(many) / 2**20:.1f} MB); "
          f"long line: {args.long_mb} MB literal on one line ({len(long) / 2**20:.1f} MB)")
    print(f"{'parser':<20} {'100k: s':>9} {'triples/s':>11} {'long: s':>9} {'triples/s':>11}")
    for name, fn in parsers().items():
        many_s, many_n = timed(fn, many, args.repeat)
        long_s, long_n = timed(fn, long, 1 if name == "rdflib" else args.repeat)
        print(f"{name:<20} {many_s:9.3f} {many_n / many_s:11,.0f} {long_s:9.3f} {long_n / long_s:11,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
