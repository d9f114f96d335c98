"""The labelled corpora of the retrieval benchmark: one entry point from a corpus name to a folder to ingest, and to
its question set(s) with evidence and a fixed dev/test split (data/eval/README.md).

    python -m bench.corpora python-docs DEST [--max-files N] [--html-root DIR]
    python -m bench.corpora python-howto DEST [--max-files N] [--html-root DIR]
    python -m bench.corpora list

Corpora (name: folder to ingest; question files):

* `sample`: `data/sample`; `data/eval/retrieval.jsonl` (dev), `data/eval/retrieval_test.jsonl` (test)
* `articles`: `../shared/corpora/articles` (four web articles beside the repository); `data/eval/qa_articles.jsonl`
* `python-docs`: prepared from Debian's `python3-doc` by `prepare_python_docs`; `data/eval/retrieval_pydocs.jsonl`
* `python-howto`: the FAQ and HOWTO pages of the same docs (`PYHOWTO_PAGES`, disjoint from `PYDOCS_PAGES`), prepared
  the same way; `data/eval/retrieval_pyhowto.jsonl` (written after the search defaults were chosen: held out)

The Python docs are the largest corpus (about 2,000 chunks with the default 200-token chunks): a fixed list of pages
(`PYDOCS_PAGES`: the tutorial and the library pages of well-known modules) is copied out of the installed HTML,
keeping only each page's main content (Sphinx's `role="main"` block) minus the `¶` permalink anchors and the
"see the tutorial" sidebars, with footnotes turned from `<aside>` into plain blocks so that they are read, so the
stored text has no page chrome. The copy is byte-for-byte reproducible from the same `python3-doc` package.
`python-howto` is prepared by the same function from another fixed list (`PYHOWTO_PAGES`: the four FAQ pages and
ten HOWTOs; 780 chunks with the default ingest).
"""

from __future__ import annotations

import json
import os
import shutil
from html import escape
from pathlib import Path
from typing import Any

__all__ = [
    "ARTICLES", "CORPORA", "PYDOCS_ENV", "PYDOCS_HTML_ROOTS", "PYDOCS_PAGES", "PYHOWTO_PAGES", "PYTHON_DOCS_CORPORA",
    "QUESTION_SETS", "SAMPLE",
    "CorpusError", "corpus_folder", "find_python_docs", "load_question_set", "main", "prepare_python_docs",
    "pydocs_file_name",
]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
ARTICLES = ROOT.parent / "shared" / "corpora" / "articles"
EVAL = ROOT / "data" / "eval"
CORPORA = ("sample", "articles", "python-docs", "python-howto")
# corpus -> (question file, the split of every line: None when each line carries its own "split")
QUESTION_SETS: dict[str, list[tuple[Path, str | None]]] = {
    "sample": [(EVAL / "retrieval.jsonl", "dev"), (EVAL / "retrieval_test.jsonl", "test")],
    "articles": [(EVAL / "qa_articles.jsonl", None)],
    "python-docs": [(EVAL / "retrieval_pydocs.jsonl", None)],
    "python-howto": [(EVAL / "retrieval_pyhowto.jsonl", None)],
}

PYDOCS_ENV = "LOCALRAG_PYDOCS_HTML"  # overrides where the installed HTML is looked for
PYDOCS_HTML_ROOTS = (
    Path("/usr/share/doc/python3.11/html"),
    Path("/usr/share/doc/python3-doc/html"),
    Path("/usr/share/doc/python3/html"),
)
INSTALL_HINT = "install Debian's Python documentation: `apt-get install python3-doc` (HTML under " \
               "/usr/share/doc/python3.11/html), or pass --html-root / set LOCALRAG_PYDOCS_HTML to a folder " \
               "holding the Python 3.11 HTML docs (its library/ and tutorial/ folders)"

# The fixed page list, in this order (max_files takes a prefix): every tutorial chapter, then library pages of
# modules people ask about. Changing it changes the corpus: the question set's evidence must be checked again.
PYDOCS_PAGES: tuple[str, ...] = (
    "tutorial/appetite.html", "tutorial/interpreter.html", "tutorial/introduction.html",
    "tutorial/controlflow.html", "tutorial/datastructures.html", "tutorial/modules.html",
    "tutorial/inputoutput.html", "tutorial/errors.html", "tutorial/classes.html", "tutorial/stdlib.html",
    "tutorial/stdlib2.html", "tutorial/venv.html", "tutorial/whatnow.html", "tutorial/interactive.html",
    "tutorial/floatingpoint.html", "tutorial/appendix.html",
    "library/json.html", "library/csv.html", "library/pathlib.html", "library/os.path.html",
    "library/shutil.html", "library/tempfile.html", "library/glob.html", "library/fnmatch.html",
    "library/itertools.html", "library/functools.html", "library/collections.html", "library/heapq.html",
    "library/bisect.html", "library/dataclasses.html", "library/enum.html", "library/contextlib.html",
    "library/copy.html", "library/re.html", "library/string.html", "library/textwrap.html",
    "library/datetime.html", "library/time.html", "library/timeit.html", "library/random.html",
    "library/math.html", "library/statistics.html", "library/fractions.html",
    "library/argparse.html", "library/logging.html", "library/subprocess.html", "library/sqlite3.html",
    "library/pickle.html", "library/hashlib.html", "library/secrets.html", "library/zipfile.html",
    "library/venv.html", "library/threading.html", "library/queue.html", "library/concurrent.futures.html",
    "library/asyncio-task.html", "library/typing.html", "library/abc.html",
    "library/urllib.parse.html", "library/base64.html", "library/uuid.html", "library/tomllib.html",
)

# The python-howto corpus: the FAQ and HOWTO pages of the same docs, none of them in PYDOCS_PAGES. Same rules: a
# change to the list means checking data/eval/retrieval_pyhowto.jsonl's evidence again.
PYHOWTO_PAGES: tuple[str, ...] = (
    "faq/general.html", "faq/programming.html", "faq/design.html", "faq/library.html",
    "howto/sorting.html", "howto/unicode.html", "howto/regex.html", "howto/functional.html",
    "howto/descriptor.html", "howto/sockets.html", "howto/ipaddress.html", "howto/urllib2.html",
    "howto/logging.html", "howto/annotations.html",
)
# corpus -> its fixed page list, for the corpora prepared from the Python docs
PYTHON_DOCS_CORPORA: dict[str, tuple[str, ...]] = {"python-docs": PYDOCS_PAGES, "python-howto": PYHOWTO_PAGES}


class CorpusError(RuntimeError):
    """A corpus that cannot be prepared or found; the message says what to do next."""


def find_python_docs(html_root: Path | None = None) -> Path:
    """The folder of the installed Python HTML docs (the one holding library/ and tutorial/)."""
    candidates = [html_root] if html_root else []
    if not html_root and os.environ.get(PYDOCS_ENV):
        candidates.append(Path(os.environ[PYDOCS_ENV]))
    if not candidates:
        candidates.extend(PYDOCS_HTML_ROOTS)
    for root in candidates:
        if (root / "library" / "json.html").is_file() and (root / "tutorial" / "index.html").is_file():
            return root.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise CorpusError(f"the Python documentation is not installed (looked in {where}): {INSTALL_HINT}")


def pydocs_file_name(page: str) -> str:
    """The flat file name a page gets in the prepared folder (`library/os.path.html` -> `library-os.path.html`).
    localrag matches evidence by file name, so tutorial/index.html and library/index.html must not collide."""
    return page.replace("/", "-")


def _main_html(data: bytes, page: str) -> tuple[str, str]:
    """(title, inner HTML of the page's main block without the permalink anchors)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data.decode("utf-8"))
    main = tree.css_first("[role=main]")
    if main is None:
        raise CorpusError(f"{page}: no role=\"main\" block; is this the Sphinx HTML of the Python docs?")
    for node in main.css("a.headerlink, aside.sidebar"):  # permalink "¶" marks; "see the tutorial" pointer boxes
        node.decompose()
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else page
    # what is left in <aside> are footnotes (docutils >= 0.18 writes them so): real text, which an HTML reader
    # drops with the page's sidebars, so they become plain blocks
    body = (main.inner_html or "").replace("<aside ", "<div ").replace("</aside>", "</div>")
    return title, body


def prepare_python_docs(dest: Path, max_files: int | None = None, html_root: Path | None = None,
                        pages: tuple[str, ...] = PYDOCS_PAGES) -> Path:
    """Write a fixed page list (`pages`: `PYDOCS_PAGES` unless given, e.g. `PYHOWTO_PAGES`; the first `max_files` of
    it when given) into `dest` as minimal HTML pages named by `pydocs_file_name`, and return `dest`. Other files
    already in `dest` are removed, so the folder holds exactly this corpus; a page missing from the install is an
    error (the corpus would differ)."""
    root = find_python_docs(html_root)
    pages = pages[:max_files] if max_files is not None else pages
    if max_files is not None and max_files < 1:
        raise CorpusError("--max-files must be at least 1")
    missing = [p for p in pages if not (root / p).is_file()]
    if missing:
        raise CorpusError(f"{root} lacks {', '.join(missing[:5])}: is it the Python 3.11 documentation? "
                          f"{INSTALL_HINT}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise CorpusError(f"{dest} is a file: give a folder to write the corpus into")
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {pydocs_file_name(p) for p in pages}
    for old in dest.iterdir():
        if old.name not in wanted:
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
    for page in pages:
        title, body = _main_html((root / page).read_bytes(), page)
        html = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
                f"</head>\n<body><main>\n{body}\n</main></body></html>\n")
        out = dest / pydocs_file_name(page)
        if not out.is_file() or out.read_text(encoding="utf-8") != html:
            out.write_text(html, encoding="utf-8")
    return dest


def corpus_folder(name: str, dest: Path | None = None, max_files: int | None = None,
                  html_root: Path | None = None) -> Path:
    """The folder to ingest for corpus `name` (one of CORPORA). `python-docs` and `python-howto` are prepared into
    `dest` (required); the other two are used in place."""
    if name == "sample":
        return SAMPLE
    if name == "articles":
        if not ARTICLES.is_dir():
            raise CorpusError(f"the articles corpus is not at {ARTICLES}: it lives beside the repository in "
                              "../shared/corpora/articles (four .txt files)")
        return ARTICLES
    if name in PYTHON_DOCS_CORPORA:
        if dest is None:
            raise CorpusError(f"the {name} corpus is prepared into a folder: give dest")
        return prepare_python_docs(dest, max_files=max_files, html_root=html_root, pages=PYTHON_DOCS_CORPORA[name])
    raise CorpusError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")


def load_question_set(name: str, split: str | None = None) -> list[dict[str, Any]]:
    """The labelled questions of corpus `name` in one shape: {"id", "query", "type", "relevant", "split"}
    (`query` is the QA files' `question`), optionally only one split ("dev" or "test"). Unanswerable questions
    have `relevant == []`. Files are read in QUESTION_SETS order, lines in file order."""
    if name not in QUESTION_SETS:
        raise CorpusError(f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}")
    if split not in (None, "dev", "test"):
        raise CorpusError(f"split must be dev or test, not {split!r}")
    out: list[dict[str, Any]] = []
    for path, file_split in QUESTION_SETS[name]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            obj = json.loads(line)
            where = f"{path.name}:{n}"
            query = obj.get("query", obj.get("question"))
            row_split = file_split or obj.get("split")
            if not isinstance(query, str) or row_split not in ("dev", "test"):
                raise CorpusError(f"{where}: a question needs a query (or question) and a dev/test split")
            out.append({"id": str(obj["id"]), "query": query, "type": obj.get("type", ""),
                        "relevant": list(obj.get("relevant") or []), "split": row_split})
    return [q for q in out if split is None or q["split"] == split]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, what in (("python-docs", "the Python docs corpus (tutorial and library pages)"),
                       ("python-howto", "the Python FAQ and HOWTO corpus")):
        py = sub.add_parser(name, help=f"prepare {what} into DEST")
        py.add_argument("dest", type=Path)
        py.add_argument("--max-files", type=int, help="only the first N pages of the fixed list (smoke runs)")
        py.add_argument("--html-root", type=Path,
                        help="the installed HTML docs (default: /usr/share/doc/python3.11/html)")
    sub.add_parser("list", help="the corpora, their folders and question counts per split")
    args = ap.parse_args(argv)
    try:
        if args.cmd in PYTHON_DOCS_CORPORA:
            dest = prepare_python_docs(args.dest, max_files=args.max_files, html_root=args.html_root,
                                       pages=PYTHON_DOCS_CORPORA[args.cmd])
            n = sum(1 for _ in dest.glob("*.html"))
            print(f"{n} pages written to {dest}; ingest with: localrag --data-dir DIR ingest {dest}")
            return 0
        for name in CORPORA:
            qs = load_question_set(name)
            dev = sum(q["split"] == "dev" for q in qs)
            print(f"{name:<12} questions {len(qs):>3} (dev {dev}, test {len(qs) - dev}); files: "
                  + ", ".join(str(p.relative_to(ROOT)) for p, _ in QUESTION_SETS[name]))
        return 0
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
