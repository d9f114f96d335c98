"""OCR of image-only PDF pages with Tesseract (when installed), on a scanned page the test draws itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localrag.ingest.document import LoadError
from localrag.ingest.loaders import load_file

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def write_scanned_pdf(path: Path) -> Path:
    """Page 1 has real text; page 2 is only a picture of printed text, like a scanner makes."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1700, 500), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=64)
    draw.text((60, 80), "The harbour light was", fill=0, font=font)
    draw.text((60, 220), "built in 1899 by Ada Smith.", fill=0, font=font)
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "A typed page about the pier.")
    pdf.add_page()
    pdf.image(image, x=10, y=20, w=190)
    path.write_bytes(bytes(pdf.output()))
    return path


@needs_tesseract
def test_image_only_page_is_read_by_ocr(tmp_path: Path) -> None:
    doc = load_file(write_scanned_pdf(tmp_path / "scan.pdf"))
    assert [u.page for u in doc.units] == [1, 2]
    ocr = doc.units[1].text.lower()
    assert "harbour light" in ocr and "1899" in ocr and "ada smith" in ocr
    assert doc.meta["ocr_pages"] == "2"
    assert any("OCR (Tesseract)" in w for w in doc.warnings)


def test_without_tesseract_the_clear_error_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fpdf import FPDF
    from PIL import Image

    import localrag.ingest.loaders as loaders

    monkeypatch.setattr(loaders, "_tesseract", lambda: None)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(Image.new("RGB", (400, 400), (250, 250, 250)), x=10, y=10, w=100)
    path = tmp_path / "scan_only.pdf"
    path.write_bytes(bytes(pdf.output()))
    with pytest.raises(LoadError, match="no extractable text .*install Tesseract"):
        load_file(path)
