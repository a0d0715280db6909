"""How this corpus was cut: single pages of real documents shipped inside registry packages, with references.

Not run by the tests (they read the files it wrote). To redo it, fetch the packages named in ``SOURCES`` with their
ordinary clients into one folder and unpack them there::

    pip download --no-deps --no-binary :all: -d SRC ocrmypdf==17.13.0 pypdf==7.1.1 tabula-py==2.10.0
    (cd SRC && for f in *.tar.gz; do tar xzf "$f"; done)
    (cd SRC && apt-get download texlive-latex-extra-doc texlive-publishers-doc texlive-science-doc \
        texlive-humanities-doc && for f in *.deb; do dpkg-deb -x "$f" deb; done)   # Debian 12, 2022.20230122
    .venv/bin/python tests/data/corpus/make_corpus.py SRC

Each page is kept as it came (a one-page PDF cut with pypdfium2, text layer and all; an image unchanged), so the
service reads what a user would send. The reference is what the source gives: a born-digital page's own text layer
(pypdfium2), a scan's own OCR layer or transcription where its package ships one, or none (``truth`` null: such a
page is measured only on what the layout pass keeps of the line reading).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEX = "deb/usr/share/doc/texlive-doc/latex"
OCRMYPDF = "ocrmypdf-17.13.0/tests/resources"
PYPDF = "pypdf-7.1.1/resources"
TABULA = "tabula_py-2.10.0/tests/resources"

_PYPI = "PyPI sdist"
_DEB = "Debian 12 package"

# id, kind, file under SRC, page (0-based; None: an image), reference, package, licence, origin
SOURCES: list[tuple[str, str, str, int | None, str, str, str, str]] = [
    # --- scans -----------------------------------------------------------------------------------------------------
    (
        "huckfinn-c03",
        "scanned book page with an illustration",
        f"{OCRMYPDF}/c03-29.pdf",
        0,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "public domain",
        "Project Gutenberg scan of Adventures of Huckleberry Finn (1884), p. 29",
    ),
    (
        "linn-brochure",
        "scanned brochure, two columns",
        f"{OCRMYPDF}/linn.png",
        None,
        "linn.txt",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-3.0 or GFDL-1.2+",
        "Wikimedia Commons, LinnSequencer brochure page 2 (1985 Forat Electronics)",
    ),
    (
        "typewriter-recipe",
        "typewritten text (photographed)",
        f"{OCRMYPDF}/typewriter.png",
        None,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-3.0 or GFDL-1.2+",
        "Wikimedia Commons, Triumph typewriter text Linzensoep (2005 Ellywa)",
    ),
    (
        "wikipedia-printout-en",
        "scanned printout, article with contents box",
        f"{OCRMYPDF}/epson.pdf",
        0,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-3.0",
        "English Wikipedia 'Optical character recognition' (2016), printed and scanned",
    ),
    (
        "wikipedia-printout-de",
        "scanned printout, article with infobox and figure",
        f"{OCRMYPDF}/masks.pdf",
        0,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-3.0",
        "German Wikipedia 'Linux' (2016), printed and scanned",
    ),
    (
        "line-chart",
        "chart (a real picture with text in it)",
        f"{OCRMYPDF}/graph.pdf",
        0,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-3.0 or GFDL-1.2+",
        "Wikimedia Commons, Simple line graph of ACE 2012 results (2012 SmokeyJoe)",
    ),
    (
        "baiona-map",
        "map (a real picture with text in it)",
        f"{OCRMYPDF}/baiona.png",
        None,
        "none",
        f"{_PYPI} ocrmypdf 17.13.0",
        "CC-BY-SA-4.0",
        "Wikimedia Commons, Baionako udalerri mugakideak (2014 Euskaldunaa)",
    ),
    (
        "vicksburg-1",
        "scanned book page with an engraving",
        f"{PYPDF}/Seige_of_Vicksburg_Sample_OCR.pdf",
        1,
        "ocr-layer",
        f"{_PYPI} pypdf 7.1.1",
        "public domain",
        "'The Siege of Vicksburg' (1863), scanned with an OCR layer",
    ),
    (
        "vicksburg-2",
        "scanned book page",
        f"{PYPDF}/Seige_of_Vicksburg_Sample_OCR.pdf",
        3,
        "ocr-layer",
        f"{_PYPI} pypdf 7.1.1",
        "public domain",
        "'The Siege of Vicksburg' (1863), scanned with an OCR layer",
    ),
    (
        "vicksburg-3",
        "scanned book page with an engraving and footnote",
        f"{PYPDF}/Seige_of_Vicksburg_Sample_OCR.pdf",
        5,
        "ocr-layer",
        f"{_PYPI} pypdf 7.1.1",
        "public domain",
        "'The Siege of Vicksburg' (1863), scanned with an OCR layer",
    ),
    (
        "fmc-letter-p2",
        "scanned typed filing: list of addresses",
        f"{PYPDF}/indirect-rotation.pdf",
        1,
        "ocr-layer",
        f"{_PYPI} pypdf 7.1.1",
        "BSD-3-Clause (pypdf test data)",
        "agreement filed with the US Federal Maritime Commission (2015), scanned with an OCR layer",
    ),
    # --- government ---------------------------------------------------------------------------------------------
    (
        "census-abstract-table",
        "full-page statistical table, small print",
        f"{TABULA}/12s0324.pdf",
        0,
        "text-layer",
        f"{_PYPI} tabula-py 2.10.0",
        "public domain (US federal government work)",
        "US Census Bureau, Statistical Abstract of the United States 2012, table 324",
    ),
    (
        "sf424-form",
        "government form with boxes",
        f"{PYPDF}/SF424_page2.pdf",
        0,
        "text-layer",
        f"{_PYPI} pypdf 7.1.1",
        "public domain (US federal government work)",
        "US federal grant form SF-424, page 2",
    ),
    (
        "geobase-contents",
        "government report: table of contents",
        f"{PYPDF}/GeoBase_NHNC1_Data_Model_UML_EN.pdf",
        3,
        "text-layer",
        f"{_PYPI} pypdf 7.1.1",
        "Open Government Licence - Canada",
        "Natural Resources Canada, GeoBase National Hydro Network data model (2004)",
    ),
    (
        "geobase-diagram",
        "government report: diagram page",
        f"{PYPDF}/GeoBase_NHNC1_Data_Model_UML_EN.pdf",
        6,
        "text-layer",
        f"{_PYPI} pypdf 7.1.1",
        "Open Government Licence - Canada",
        "Natural Resources Canada, GeoBase National Hydro Network data model (2004)",
    ),
    (
        "campaign-donors",
        "full-page register table (legal size)",
        f"{TABULA}/campaign_donors.pdf",
        0,
        "text-layer",
        f"{_PYPI} tabula-py 2.10.0",
        "MIT (tabula-py test data)",
        "Argentine campaign donor register",
    ),
    # --- newspapers, posters, slides ------------------------------------------------------------------------------
    (
        "papertex-front",
        "newspaper front page, three columns",
        f"{TEX}/papertex/example/example.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "papertex package example newspaper",
    ),
    (
        "papertex-inside",
        "newspaper page, three and four columns",
        f"{TEX}/papertex/example/example.pdf",
        1,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "papertex package example newspaper",
    ),
    (
        "flowfram-news",
        "newspaper page, A5, two columns",
        f"{TEX}/flowfram/samples/sample-news.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3",
        "flowfram package sample newspaper",
    ),
    (
        "flowfram-poster",
        "poster, A0 landscape, many columns",
        f"{TEX}/flowfram/samples/sample-poster.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3",
        "flowfram package sample poster",
    ),
    (
        "tcolorbox-poster",
        "poster, A3 landscape, coloured boxes",
        f"{TEX}/tcolorbox/tcolorbox-example-poster.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3",
        "tcolorbox package example poster",
    ),
    (
        "bfh-sciposter",
        "scientific poster, A0 portrait",
        f"{TEX}/bfh-ci/DEMO-BFHSciPoster.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "bfh-ci package demo poster",
    ),
    (
        "bfh-slide-title",
        "slide, 16:9, large title over a picture",
        f"{TEX}/bfh-ci/DEMO-BFHBeamer.pdf",
        2,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "bfh-ci package demo slides",
    ),
    (
        "bfh-slide-blocks",
        "slide, 16:9, coloured blocks",
        f"{TEX}/bfh-ci/DEMO-BFHBeamer.pdf",
        5,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "bfh-ci package demo slides",
    ),
    (
        "spb-slide-section",
        "slide, 16:9, section title",
        f"{TEX}/beamertheme-saintpetersburg/example.pdf",
        1,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3c",
        "beamertheme-saintpetersburg example slides",
    ),
    (
        "spb-slide-bullets",
        "slide, 16:9, bullets",
        f"{TEX}/beamertheme-saintpetersburg/example.pdf",
        5,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3c",
        "beamertheme-saintpetersburg example slides",
    ),
    (
        "elpres-slide",
        "slide, 4:3, bullets",
        f"{TEX}/elpres/elpres-example.pdf",
        1,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "elpres package example slides",
    ),
    (
        "minimalistic-slide-dark",
        "slide, 16:9, light text on dark",
        f"{TEX}/beamertheme-pure-minimalistic/beamertheme-pure-minimalistic-demo.pdf",
        2,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "GPL-3.0-or-later",
        "beamertheme-pure-minimalistic demo slides",
    ),
    # --- letters, forms, statements ---------------------------------------------------------------------------
    (
        "uantwerpen-letter",
        "business letter",
        f"{TEX}/uantwerpendocs/uantwerpenletter-example.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "uantwerpendocs package example letter",
    ),
    (
        "bfh-letter",
        "business letter, sparse",
        f"{TEX}/bfh-ci/DEMO-BFHLetter.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "bfh-ci package demo letter",
    ),
    (
        "bank-statement",
        "bank statement (transactions table)",
        f"{TEX}/bankstatement/bankstatement-example.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "bankstatement package example",
    ),
    (
        "exam-cover",
        "exam cover sheet (form with boxes)",
        f"{TEX}/uantwerpendocs/uantwerpenexam-example1.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "uantwerpendocs package example exam",
    ),
    (
        "logbook-grid",
        "full-page form grid, white on dark",
        f"{TEX}/diabetes-logbook/dmlb-template.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "other free licence (TeX Live catalogue: other-free)",
        "diabetes-logbook package template",
    ),
    (
        "grading-table",
        "small grading table, mostly empty page",
        f"{TEX}/exsheets/grading-table.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3",
        "exsheets package example",
    ),
    (
        "invoice-manual",
        "manual page with code and a small table",
        f"{TEX}/invoice/invoice.pdf",
        8,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL-1.3c",
        "invoice package manual",
    ),
    # --- papers, math ------------------------------------------------------------------------------------------
    (
        "aps-sample-p1",
        "physics paper, two columns, title block",
        f"{TEX}/revtex4-1/sample/aps/apssamp.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "revtex4-1 APS sample article",
    ),
    (
        "aps-sample-p2",
        "physics paper, two columns, equations",
        f"{TEX}/revtex4-1/sample/aps/apssamp.pdf",
        1,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "revtex4-1 APS sample article",
    ),
    (
        "acm-sigconf-p1",
        "conference paper, two columns, teaser figure",
        f"{TEX}/acmart/samples/sample-sigconf.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "acmart sample-sigconf",
    ),
    (
        "quantum-template-p2",
        "journal page, two columns, plot and equations",
        f"{TEX}/quantumarticle/quantum-template.pdf",
        1,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "quantumarticle template",
    ),
    (
        "math-cheat-sheet",
        "math cheat sheet, 6x4 in, three columns of formulas",
        f"{TEX}/rbt-mathnotes/examples/cheat-sheet.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-science-doc 2022.20230122",
        "LPPL-1.3c",
        "rbt-mathnotes example",
    ),
    (
        "math-exam",
        "math exam with formulas and answer space",
        f"{TEX}/mathexam/sample.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "mathexam package sample",
    ),
    (
        "siunitx-table",
        "manual page with a full-width table",
        f"{TEX}/siunitx/siunitx.pdf",
        10,
        "text-layer",
        f"{_DEB} texlive-science-doc 2022.20230122",
        "LPPL-1.3c",
        "siunitx manual",
    ),
    (
        "critical-edition",
        "critical edition: text and apparatus notes",
        f"{TEX}/reledmac/examples/2-manuscript-apparatus.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-humanities-doc 2022.20230122",
        "LPPL-1.3",
        "reledmac example",
    ),
    (
        "verse-manual",
        "manual page with poems and code",
        f"{TEX}/verse/verse.pdf",
        6,
        "text-layer",
        f"{_DEB} texlive-humanities-doc 2022.20230122",
        "LPPL",
        "verse package manual",
    ),
    (
        "testflow-page",
        "typesetting test page: rules, math, boxes",
        f"{TEX}/ieeetran/testflow_ctl_LTR.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3",
        "IEEEtran testflow",
    ),
    (
        "bfh-factsheet",
        "factsheet, large coloured title",
        f"{TEX}/bfh-ci/DEMO-BFHFactsheet.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-publishers-doc 2022.20230122",
        "LPPL-1.3c",
        "bfh-ci package demo factsheet",
    ),
    (
        "recipe-cards",
        "two recipe cards on one page",
        f"{TEX}/recipecard/test2.pdf",
        0,
        "text-layer",
        f"{_DEB} texlive-latex-extra-doc 2022.20230122",
        "LPPL",
        "recipecard package test",
    ),
    (
        "pypdf-example",
        "short report: table, figures",
        f"{PYPDF}/example.pdf",
        0,
        "text-layer",
        f"{_PYPI} pypdf 7.1.1",
        "BSD-3-Clause (pypdf test data)",
        "pypdf test document",
    ),
    (
        "subfigures",
        "chapter page: text and two photographs",
        f"{PYPDF}/side-by-side-subfig.pdf",
        0,
        "text-layer",
        f"{_PYPI} pypdf 7.1.1",
        "BSD-3-Clause (pypdf test data)",
        "pypdf test document",
    ),
]


def cut_page(src: Path, index: int, out: Path) -> str:
    """Write page ``index`` of ``src`` as a one-page PDF; return that page's text layer."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(src))
    text = doc[index].get_textpage().get_text_range()
    one = pdfium.PdfDocument.new()
    one.import_pages(doc, [index])
    one.save(str(out))
    return text


def main(src: Path) -> None:
    (HERE / "pages").mkdir(exist_ok=True)
    (HERE / "truth").mkdir(exist_ok=True)
    entries = []
    for doc_id, kind, rel, page, reference, package, licence, origin in SOURCES:
        path = src / rel
        if page is None:
            out = HERE / "pages" / f"{doc_id}{path.suffix}"
            shutil.copyfile(path, out)
            layer = ""
        else:
            out = HERE / "pages" / f"{doc_id}.pdf"
            layer = cut_page(path, page, out)
        truth = None
        if reference in ("text-layer", "ocr-layer"):
            truth = f"truth/{doc_id}.txt"
            (HERE / truth).write_text(layer.replace("\r\n", "\n").replace("\r", "\n"))
        elif reference != "none":
            truth = f"truth/{doc_id}.txt"
            shutil.copyfile(path.parent / reference, HERE / truth)
        entries.append(
            {
                "id": doc_id,
                "file": str(out.relative_to(HERE)),
                "truth": truth,
                "truth_format": "text" if truth else None,
                "reference": reference if reference in ("text-layer", "ocr-layer", "none") else "transcription",
                "kind": kind,
                "source": f"{package}: {rel.split('/', 1)[1] if '/' in rel else rel}"
                + (f", page {page + 1}" if page is not None else ""),
                "origin": origin,
                "licence": licence,
            }
        )
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    print(f"{len(entries)} pages written")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
