"""Real documents of every supported type, made with the same libraries users' tools use.

Each holds one distinctive passage (a "needle") among filler paragraphs, and
a question whose answer is that passage, with where it must be cited from.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

FILLER = [
    "Quarterly planning meetings gather the department leads to compare budgets and staffing forecasts.",
    "The marketing team prepares seasonal campaigns and reviews their performance with external agencies.",
    "Software releases follow a two week cadence with code review, automated testing and a staged rollout.",
    "Customer support answers tickets by email and chat, and escalates urgent issues to the on-call engineer.",
    "Office supplies are ordered through the procurement portal and delivered to the reception desk.",
    "New employees complete an onboarding checklist covering security training and equipment setup.",
]


@dataclass(frozen=True)
class Sample:
    file_name: str
    kind: str
    data: bytes
    needle: str
    question: str
    page: int | None = None
    section: str | None = None


def filler(count: int = 3, offset: int = 0) -> list[str]:
    return [FILLER[(offset + i) % len(FILLER)] for i in range(count)]


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=11)
    for paragraphs in pages:
        pdf.add_page()
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(6)
    return bytes(pdf.output())


def make_docx(sections: list[tuple[str, list[str]]], title: str | None = None) -> bytes:
    import docx

    document = docx.Document()
    if title:
        document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: list[tuple[str, str]]) -> bytes:
    from pptx import Presentation

    presentation = Presentation()
    layout = presentation.slide_layouts[1]  # title and content
    for title, body in slides:
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def samples() -> list[Sample]:
    txt_needle = "The lighthouse keeper on Varn Island refuels the lamp with whale oil every Thursday."
    md_needle = "Bicycles must be locked in the basement cage on level minus two."
    html_needle = "The cafeteria serves breakfast from seven until nine thirty on weekdays."
    pdf_needle = "The quarterly audit of the Zephyr reactor happens in the last week of March."
    docx_needle = "Economy train tickets are reimbursed within fourteen days of the trip."
    pptx_needle = "The Orion mobile app launches in the autumn of next year."
    csv_row = "Copper saucepan"
    json_needle = "Only certified guide dogs are allowed inside the office building."

    txt = "\n\n".join(filler(3) + [txt_needle] + filler(2, 3)).encode()
    md = "\n\n".join([
        "# Facilities guide", *filler(2), "## Parking", "Cars park in lot B behind the warehouse.",
        "## Bicycle storage", md_needle, "## Cleaning", *filler(2, 2),
    ]).encode()
    html = (
        "<!doctype html><html><head><title>Campus life</title><style>p{color:red}</style>"
        "<script>var secret = 'never indexed';</script></head><body><nav>Home | About</nav>"
        f"<h1>Campus life</h1><p>{FILLER[0]}</p><h2>Cafeteria hours</h2><p>{html_needle}</p>"
        f"<h2>Library</h2><ul><li>{FILLER[1]}</li><li>{FILLER[2]}</li></ul></body></html>"
    ).encode()
    pdf = make_pdf([filler(3), filler(1, 3) + [pdf_needle], filler(3, 4)], title="Safety report")
    docx_bytes = make_docx([("Introduction", filler(2)), ("Travel expenses", [docx_needle]),
                            ("Equipment", filler(2, 2))], title="Finance policy")
    pptx = make_pptx([("Company update", FILLER[0]), ("Roadmap", pptx_needle), ("Hiring", FILLER[5])])
    csv = ("sku,name,price,colour\nA1,Teal kettle,35,teal\nB2,Copper saucepan,89,copper\n"
           "C3,Steel ladle,12,silver\nD4,Oak chopping board,27,brown\n").encode()
    data = {
        "title": "Office FAQ",
        "faq": [
            {"question": "Is there parking?", "answer": "Yes, in lot B behind the warehouse."},
            {"question": "Can pets come to the office?", "answer": json_needle},
        ],
        "contacts": {"reception": "extension 100", "security": "extension 200"},
    }
    return [
        Sample("lighthouse.txt", "txt", txt, txt_needle, "How often is the Varn Island lamp refuelled with oil?"),
        Sample("facilities.md", "md", md, md_needle, "Where are bicycles locked?",
               section="Facilities guide > Bicycle storage"),
        Sample("campus.html", "html", html, html_needle, "When does the cafeteria serve breakfast?",
               section="Campus life > Cafeteria hours"),
        Sample("safety.pdf", "pdf", pdf, pdf_needle, "When is the Zephyr reactor audit?", page=2),
        Sample("finance.docx", "docx", docx_bytes, docx_needle, "How fast are economy train tickets reimbursed?",
               section="Finance policy > Travel expenses"),
        Sample("update.pptx", "pptx", pptx, pptx_needle, "When does the Orion mobile app launch?",
               page=2, section="Roadmap"),
        Sample("products.csv", "csv", csv, csv_row, "What is the price of the copper saucepan?"),
        Sample("faq.json", "json", json.dumps(data).encode(), json_needle, "Are guide dogs allowed in the office?",
               section="faq"),
    ]


def zip_bomb_docx() -> bytes:
    """A DOCX-shaped zip whose document.xml inflates ~1000x (64 MiB of spaces)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", " " * (64 * 1024 * 1024))
    return out.getvalue()
