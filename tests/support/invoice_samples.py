"""An invoice and a till receipt drawn with Pillow, with the values an extraction should give and where each value
was drawn - the ground truth for evidence tests (shared.evidence) with a real OCR engine reading the page.

The values are in the shapes of the shipped presets (``shared/presets/invoice.json``, ``receipt.json``): dates in
ISO form and amounts as plain decimals, while the page prints them as people do (``14 March 2026``,
``13/04/2026``, ``4,750.00``), so finding them takes the normalised match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]


@dataclass
class Sample:
    """A drawn document: the image, the extraction's answer, and where each leaf value was drawn.

    Attributes:
        image: The page.
        data: The answer an extraction should give (preset-shaped).
        drawn: JSON pointer -> the boxes (pixels) its value was drawn in (two for a value over two lines).
    """

    image: Image.Image
    data: dict[str, Any]
    drawn: dict[str, list[Box]] = field(default_factory=dict)


class _Canvas:
    def __init__(self, width: int, height: int, size: int) -> None:
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.font = ImageFont.load_default(size=size)

    def text(self, x: int, y: int, text: str, *, font: Any = None) -> Box:
        font = font or self.font
        self.draw.text((x, y), text, fill="black", font=font)
        x0, y0, x1, y1 = self.draw.textbbox((x, y), text, font=font)
        return int(x0), int(y0), int(x1), int(y1)

    def labelled(self, x: int, y: int, label: str, value: str) -> Box:
        """``label`` then ``value`` on one line; the value's box."""
        end = self.text(x, y, label)[2]
        return self.text(end + 14, y, value)


def invoice() -> Sample:
    """A supplier invoice: numbers, two date formats, parties (an address over two lines), three line items."""
    c = _Canvas(1240, 1754, 28)
    drawn: dict[str, list[Box]] = {}
    c.text(100, 90, "INVOICE", font=ImageFont.load_default(size=56))
    drawn["/invoice_number"] = [c.labelled(100, 200, "Invoice no:", "INV-2026-0042")]
    drawn["/issue_date"] = [c.labelled(100, 250, "Issue date:", "14 March 2026")]
    drawn["/due_date"] = [c.labelled(100, 300, "Due date:", "13/04/2026")]
    c.text(100, 400, "From")
    drawn["/seller/name"] = [c.text(100, 445, "Harbour Cranes Ltd")]
    drawn["/seller/address"] = [c.text(100, 490, "12 Quay Street"), c.text(100, 535, "Dover CT17 9BU")]
    drawn["/seller/tax_id"] = [c.labelled(100, 580, "VAT", "GB123456789")]
    c.text(700, 400, "Bill to")
    drawn["/buyer/name"] = [c.text(700, 445, "Lighthouse Keepers Guild")]
    drawn["/buyer/address"] = [c.text(700, 490, "4 Cliff Road, Penzance")]
    drawn["/currency"] = [c.labelled(100, 680, "Currency:", "EUR")]
    columns = (100, 560, 740, 960)
    y = 780
    for x, head in zip(columns, ("Description", "Qty", "Unit price", "Amount")):
        c.text(x, y, head)
    items = [
        ("Crane hire", "2", "400.00", "800.00"),
        ("Fuel surcharge", "1", "350.00", "350.00"),
        ("Harbour dues", "3", "1,200.00", "3,600.00"),
    ]
    line_items = []
    for i, row in enumerate(items):
        y += 60
        for x, key, text in zip(columns, ("description", "quantity", "unit_price", "amount"), row):
            drawn[f"/line_items/{i}/{key}"] = [c.text(x, y, text)]
        line_items.append(
            {
                "description": row[0],
                "quantity": row[1],
                "unit_price": row[2].replace(",", ""),
                "amount": row[3].replace(",", ""),
            }
        )
    drawn["/subtotal"] = [c.labelled(740, 1100, "Subtotal", "4,750.00")]
    drawn["/tax"] = [c.labelled(740, 1150, "VAT 20%", "950.00")]
    drawn["/total"] = [c.labelled(740, 1200, "Total due", "5,700.00")]
    data = {
        "invoice_number": "INV-2026-0042",
        "issue_date": "2026-03-14",
        "due_date": "2026-04-13",
        "seller": {"name": "Harbour Cranes Ltd", "address": "12 Quay Street, Dover CT17 9BU", "tax_id": "GB123456789"},
        "buyer": {"name": "Lighthouse Keepers Guild", "address": "4 Cliff Road, Penzance"},
        "currency": "EUR",
        "subtotal": "4750.00",
        "tax": "950.00",
        "total": "5700.00",
        "line_items": line_items,
    }
    return Sample(c.image, data, drawn)


def receipt() -> Sample:
    """A till receipt: a dotted date, two items with the same price (told apart by their rows), tax and total."""
    c = _Canvas(720, 1100, 28)
    drawn: dict[str, list[Box]] = {}
    drawn["/vendor"] = [c.text(60, 60, "CORNER BAKERY", font=ImageFont.load_default(size=40))]
    drawn["/date"] = [c.labelled(60, 150, "Date", "05.03.2026")]
    items = [("Sourdough loaf", "1", "4.50"), ("Flat white", "2", "2.80"), ("Apple muffin", "1", "2.80")]
    line_items = []
    y = 240
    for i, (name, qty, amount) in enumerate(items):
        drawn[f"/line_items/{i}/description"] = [c.text(60, y, name)]
        drawn[f"/line_items/{i}/quantity"] = [c.text(420, y, qty)]
        drawn[f"/line_items/{i}/amount"] = [c.text(560, y, amount)]
        line_items.append({"description": name, "quantity": qty, "amount": amount})
        y += 60
    drawn["/tax"] = [c.labelled(60, 480, "incl. VAT 7%", "0.66")]
    drawn["/total"] = [c.labelled(60, 540, "TOTAL", "10.10")]
    drawn["/currency"] = [c.labelled(60, 600, "Paid in", "EUR")]
    data = {
        "vendor": "CORNER BAKERY",
        "date": "2026-03-05",
        "currency": "EUR",
        "total": "10.10",
        "tax": "0.66",
        "line_items": line_items,
    }
    return Sample(c.image, data, drawn)
