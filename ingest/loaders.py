"""Turn one file into a LoadedDocument, or a LoadError that tells a person what is wrong and what to do.

`load_file` is a pure function of the file's bytes: it never touches the network or other files, and it
guards the inputs known to make pypdf/rdflib hang or blow up (see ingest/rdf.py). The ingestion job still
runs it in a worker process with a kill-timeout, as a last resort.

Parser libraries are imported when a file of their kind is loaded (pypdf for PDFs, pyoxigraph/rdflib for RDF),
so the worker holds only what the kinds it has seen need.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from localrag.ingest.document import Kind, LoadedDocument, LoadError, Unit, UnsupportedType
from localrag.ingest.formats import SUPPORTED_SUFFIXES
from localrag.ingest.sections import OutlineEntry, flatten_outline, page_sections
from localrag.ingest.text import (
    EMPTY_MESSAGE,
    CleanStats,
    captured_library_noise,
    clean_text,
    load_text,
    summarize_noise,
)

if TYPE_CHECKING:
    from pypdf import PdfReader

__all__ = ["SUPPORTED_SUFFIXES", "detect_kind", "load_file", "load_pdf"]

# Files are read whole into the worker's memory; beyond this the worker would risk running out of it.
MAX_FILE_BYTES = 256 * 1024 * 1024
# The PDF header may follow some junk bytes; readers look for it within the first KB.
PDF_HEADER_WINDOW = 1024
# At most this many pages are named individually in "page could not be read" warnings.
MAX_PAGE_WARNINGS = 10


def detect_kind(path: Path) -> Kind:
    """The document kind from the file suffix (case-insensitive); raises UnsupportedType otherwise."""
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        return kind
    what = f"'{path.suffix}'" if path.suffix else "(the file name has no suffix)"
    raise UnsupportedType(
        f"unsupported type {what} (supported: {', '.join(SUPPORTED_SUFFIXES)}); "
        "convert it to PDF or text first"
    )


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise LoadError("this is a folder, not a file")
        if size > MAX_FILE_BYTES:
            raise LoadError(
                f"file too large ({size / 2**20:.0f} MB; limit {MAX_FILE_BYTES // 2**20} MB): "
                "split it into smaller files"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise LoadError("file not found (moved or deleted?)") from None
    except PermissionError:
        raise LoadError("permission denied: cannot read the file; check its permissions") from None
    except OSError as err:
        raise LoadError(f"cannot read the file: {err.strerror or err}") from None


def load_file(path: Path) -> LoadedDocument:
    """Load a supported file into units of text (plus graph nodes/edges for RDF).

    Raises UnsupportedType for unknown suffixes and LoadError for files that cannot be ingested.
    """
    path = Path(path)
    kind = detect_kind(path)
    data = _read(path)
    if not data.strip():
        raise LoadError(EMPTY_MESSAGE)
    if kind is Kind.PDF:
        return load_pdf(data)
    if kind is Kind.RDF:
        from localrag.ingest.rdf import load_rdf

        return load_rdf(path, data)
    if kind is Kind.HTML:
        from localrag.ingest.html import load_html

        return load_html(data)
    if kind is Kind.DOCX:
        from localrag.ingest.docx import load_docx

        return load_docx(data)
    return load_text(data, kind)


def _damaged(err: Exception) -> LoadError:
    message = str(err).strip()
    lowered = message.lower()
    if "ended unexpectedly" in lowered or "eof marker" in lowered or "startxref" in lowered:
        detail = "the file ends too early (incomplete download or copy?)"
    elif "xref" in lowered or "trailer" in lowered:
        detail = "its cross-reference table is broken"
    elif message:
        detail = message.splitlines()[0][:160]
    else:
        detail = type(err).__name__
    return LoadError(f"damaged or truncated PDF: {detail}; get a fresh copy or re-export it")


def _open_pdf(data: bytes, warnings: list[str]) -> PdfReader:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as err:  # pypdf raises many types on damaged files (PdfReadError, ValueError, ...)
        raise _damaged(err) from None
    if not encrypted:
        return reader
    try:
        opened = reader.decrypt("")  # owner-password-only PDFs open with the empty user password
    except DependencyError:
        raise LoadError(
            "encrypted PDF uses AES, which needs the 'cryptography' package; install it, or decrypt the file "
            "(e.g. qpdf --decrypt) and ingest again"
        ) from None
    except NotImplementedError as err:
        raise LoadError(
            f"encrypted PDF with an unsupported protection method ({str(err)[:80]}); decrypt it "
            "(e.g. qpdf --decrypt) and ingest again"
        ) from None
    except Exception as err:
        raise _damaged(err) from None
    if not opened:
        raise LoadError(
            "encrypted PDF: a password is needed to open it; "
            "decrypt it (e.g. qpdf --decrypt) and ingest again"
        )
    warnings.append("PDF is encrypted with an owner password only (it opens without one); ingested it")
    return reader


# OCR of image-only pages (Tesseract, when installed): at most this many images per page, seconds per image.
OCR_MAX_IMAGES_PER_PAGE = 8
OCR_TIMEOUT_S = 60
OCR_MIN_IMAGE_PIXELS = 100 * 100  # icons and rules are not scans


def _tesseract() -> str | None:
    import shutil

    return shutil.which("tesseract")


def _ocr_page(page: object, tesseract: str) -> str:
    """Text Tesseract reads from a page's images (a scan is one image per page); '' when it reads nothing."""
    import subprocess

    texts: list[str] = []
    for n, image_file in enumerate(page.images):  # type: ignore[attr-defined]
        if n >= OCR_MAX_IMAGES_PER_PAGE:
            break
        image = image_file.image
        if image is None or image.width * image.height < OCR_MIN_IMAGE_PIXELS:
            continue
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="PNG")
        try:
            done = subprocess.run(
                [tesseract, "stdin", "stdout", "--psm", "3"], input=buffer.getvalue(), capture_output=True,
                timeout=OCR_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            texts.append(done.stdout.decode("utf-8", errors="replace"))
    return "\n\n".join(t for t in texts if t.strip())


def _outline(reader: PdfReader) -> list[OutlineEntry]:
    """The PDF outline (bookmarks) as entries in document order with their section paths; [] if none."""

    def page_of(item: object) -> int | None:
        try:
            return reader.get_destination_page_number(item)  # type: ignore[arg-type]
        except Exception:  # an entry pointing nowhere (a broken destination) is left out, not the others
            return None

    try:
        return flatten_outline(list(reader.outline), page_of)
    except Exception:  # a broken outline must not lose the text
        return []


def load_pdf(data: bytes) -> LoadedDocument:
    """One unit per page with text, numbered from 1; pages that fail are skipped with a warning."""
    if b"%PDF-" not in data[:PDF_HEADER_WINDOW]:
        raise LoadError("not a PDF (no %PDF header): the file is something else; check what it really is")
    warnings: list[str] = []
    units: list[Unit] = []
    meta: dict[str, str] = {}
    stats = CleanStats()
    failed: list[str] = []
    with captured_library_noise("pypdf") as noise:
        reader = _open_pdf(data, warnings)
        try:
            page_count = len(reader.pages)
        except Exception as err:  # a broken page tree shows up only here
            raise _damaged(err) from None
        meta["pages"] = str(page_count)
        try:
            title = reader.metadata.title if reader.metadata else None
        except Exception:  # metadata is optional; a broken info dictionary must not stop the text
            title = None
        if isinstance(title, str) and title.strip():
            meta["title"] = " ".join(clean_text(title)[0].split())
        outline = _outline(reader)
        pages: list[tuple[int, str, bool]] = []  # (page number, text, read by OCR)
        tesseract = _tesseract()
        ocr_pages: list[int] = []
        for number in range(1, page_count + 1):
            try:
                raw = reader.pages[number - 1].extract_text() or ""
            except Exception as err:  # one bad page (broken stream, font) must not lose the others
                failed.append(f"page {number} ({str(err).strip()[:80] or type(err).__name__})")
                continue
            if not raw.strip() and tesseract:
                try:
                    raw = _ocr_page(reader.pages[number - 1], tesseract)
                except Exception as err:  # an undecodable image must not lose the other pages
                    failed.append(f"page {number} (OCR: {str(err).strip()[:80] or type(err).__name__})")
                    continue
                if raw.strip():
                    ocr_pages.append(number)
            text, page_stats = clean_text(raw)
            stats += page_stats
            if text.strip():
                pages.append((number, text, number in ocr_pages))
        sections = page_sections(outline, {number: text for number, text, _ in pages})
        for number, text, ocr in pages:
            section, starts = sections[number]
            units.append(Unit(text=text, page=number, section=section, section_starts=starts, ocr=ocr))
    if page_count == 0:
        raise LoadError("PDF has no pages: nothing to ingest")
    if failed and not units:
        raise LoadError(f"damaged PDF: no page could be read ({failed[0]}); get a fresh copy or re-export it")
    if not units and tesseract:
        raise LoadError("no extractable text, and OCR (Tesseract) read none from the page images either")
    if not units:
        raise LoadError(
            "no extractable text (scanned or image-only PDF?): install Tesseract (e.g. apt-get install "
            "tesseract-ocr) to OCR it, or run OCR first (e.g. ocrmypdf)"
        )
    if ocr_pages:
        meta["ocr_pages"] = ",".join(map(str, ocr_pages))
        warnings.append(f"{len(ocr_pages)} image-only page(s) read by OCR (Tesseract): check the text for errors")
    if failed:
        shown = ", ".join(failed[:MAX_PAGE_WARNINGS])
        more = f" and {len(failed) - MAX_PAGE_WARNINGS} more" if len(failed) > MAX_PAGE_WARNINGS else ""
        warnings.append(f"skipped unreadable page(s): {shown}{more}")
    meta["pages_with_text"] = str(len(units))
    warnings.extend(stats.warnings())
    warnings.extend(summarize_noise("pypdf", noise))
    return LoadedDocument(kind=Kind.PDF, units=units, warnings=warnings, meta=meta)
