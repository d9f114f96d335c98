"""Word documents (.docx): paragraphs and tables in reading order, headings as section titles.

A .docx is a ZIP of XML parts. It is checked before python-docx opens it: old binary .doc files and
password-protected documents (both OLE compound files), damaged or truncated archives, ZIPs that are not Word
documents, parts that would unpack to gigabytes (zip bombs) and DTDs in the XML are refused with a reason.
"""

from __future__ import annotations

import io
import re
import zipfile

from localrag.ingest.document import Kind, LoadedDocument, LoadError
from localrag.ingest.sections import Block, clean_blocks_to_units

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Unpacked size limit of all parts together: real documents are a few MB of XML; images are not read.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_XML_PART_BYTES = 256 * 1024 * 1024
_HEADING_STYLE_RE = re.compile(r"^(?:heading|überschrift|titre|título|kop)\s*(\d)$", re.IGNORECASE)
_DTD_RE = re.compile(rb"<!\s*(?:doctype|entity)", re.IGNORECASE)


def _check_container(data: bytes) -> None:
    if data.startswith(OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise LoadError(
                "encrypted Word document: a password is needed to open it; save a copy without a password "
                "(File › Info › Protect Document) and ingest that"
            )
        raise LoadError("old Word 97-2003 document (.doc), not .docx: save it as .docx or PDF first")
    if data.startswith(b"%PDF-"):
        raise LoadError("the content is a PDF file, not a Word document: give it a .pdf suffix")
    if not data.startswith(b"PK"):
        raise LoadError("not a Word document: a .docx file is a ZIP archive and this one is not; check what it is")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as err:
        raise LoadError(
            f"damaged or truncated Word document ({str(err)[:80]}); get a fresh copy or re-save it"
        ) from None
    names = {i.filename for i in infos}
    if "word/document.xml" not in names:
        if "ppt/presentation.xml" in names or "xl/workbook.xml" in names:
            raise LoadError("the content is a PowerPoint/Excel file, not a Word document: export it as PDF")
        raise LoadError("a ZIP archive but not a Word document (no word/document.xml)")
    total = sum(i.file_size for i in infos if i.filename.endswith((".xml", ".rels")))
    biggest = max(i.file_size for i in infos if i.filename.endswith(".xml"))
    if total > MAX_UNPACKED_BYTES or biggest > MAX_XML_PART_BYTES:
        raise LoadError(
            f"Word document unpacks to {total / 2**20:.0f} MB of XML (limit {MAX_UNPACKED_BYTES // 2**20} MB): "
            "too large or a zip bomb; split it or save it as PDF"
        )
    try:
        with archive.open("word/document.xml") as part:
            head = part.read(4096)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise LoadError(f"damaged Word document ({str(err)[:80]}); get a fresh copy or re-save it") from None
    if _DTD_RE.search(head):
        raise LoadError("Word document with a DOCTYPE/ENTITY declaration is rejected (entity expansion is unsafe)")


def _heading_level(paragraph: object) -> int:
    style = getattr(paragraph, "style", None)
    name = (getattr(style, "name", None) or "").strip()
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE_RE.match(name)
    return min(6, int(match.group(1))) if match else 0


def load_docx(data: bytes) -> LoadedDocument:
    """One unit per section (heading), labelled with the heading and its section path; tables row by row."""
    _check_container(data)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                    if cells:
                        blocks.append(Block(" | ".join(cells)))
            else:
                blocks.append(Block(item.text, _heading_level(item)))
        title = (document.core_properties.title or "").strip()
    except LoadError:
        raise
    except Exception as err:  # python-docx/lxml raise many types on broken parts
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise LoadError(f"damaged Word document: {detail}; get a fresh copy or re-save it") from None
    warnings: list[str] = []
    units = clean_blocks_to_units(blocks, warnings)
    if not units:
        raise LoadError("no text in this Word document (empty, or only images?)")
    meta = {}
    if title:
        meta["title"] = " ".join(title.split())
    elif units[0].label:
        meta["title"] = units[0].label
    return LoadedDocument(kind=Kind.DOCX, units=units, warnings=list(dict.fromkeys(warnings)), meta=meta)
