"""Shared set-up for the receipt tests: a flow with the store and the outside-budtender plugins,
house-brand products in the catalogue, small receipt photos drawn with Pillow, and model answers."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.model import InboundFile
from coaching.roles import Role
from storage.budtender_network import BudtenderNetworkRepo, NetworkRow
from storage.store_import import ProductRow, StoreImportWriter
from tests.fakes.openai_server import FakeOpenAI
from tests.flows import Flow

START = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
STORE = {"code": "silverlake", "name": "MOTA Silverlake", "timezone": "America/Los_Angeles"}
HOUSE = [("P-OG", "MOTA OG Kush 3.5g", Decimal("45.00")), ("P-GUM", "MOTA Sour Gummies 100mg", Decimal("20.00"))]
OTHER = [("P-XX", "Stiiizy Blue Dream Pod", Decimal("40.00"))]
CUSTOMER_PHONE = "+16195550123"


def receipt_photo(text: str = "GREEN CROSS #A-1001", size: tuple[int, int] = (240, 320)) -> bytes:
    """A small JPEG that looks like a receipt (white paper, black text); different text → different bytes."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate([text, "MOTA OG KUSH 3.5G  45.00", "STIIIZY POD  40.00", "TOTAL 85.00"]):
        draw.text((10, 10 + 24 * i), line, fill="black")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def photo_file(content: bytes, name: str = "receipt.jpg") -> InboundFile:
    return InboundFile(name, "image/jpeg", len(content), content=content, provider_id=f"f-{hash(content)}")


def reading(*, number: str = "A-1001", when: date = date(2026, 11, 19), store: str = "Green Cross",
            lines: list[tuple[str, int, str]] | None = None, customer_phone: str | None = None,
            customer_name: str | None = None, is_receipt: bool = True) -> dict[str, Any]:
    """A model answer in the `ReceiptReading` shape."""
    lines = lines if lines is not None else [("MOTA OG KUSH 3.5G", 1, "45.00"), ("STIIIZY BLUE DREAM POD", 1, "40.00")]
    return {"is_receipt": is_receipt, "store": store, "date": when.isoformat(), "receipt_number": number,
            "customer_name": customer_name, "customer_phone": customer_phone,
            "lines": [{"product": p, "quantity": q, "line_total": t} for p, q, t in lines]}


async def make_flow(monkeypatch: pytest.MonkeyPatch, ai: FakeOpenAI | None = None, *, database_url: str | None = None,
                    plugins: tuple[str, ...] = (), **settings: Any) -> Flow:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if ai is not None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key")
        monkeypatch.setenv("HUDDLE_OPENAI_BASE_URL", ai.base_url)
        monkeypatch.setenv("HUDDLE_OPENAI_TIMEOUT", "2")
    names = [*plugins, "handlers.store", "handlers.enrollment", "handlers.external_budtenders"]
    flow = await Flow.create(plugins=names, start=START, config={"stores": [STORE]}, database_url=database_url,
                             **settings)
    writer = StoreImportWriter(flow.app.db, flow.app.people)
    rows = [ProductRow(sku, name, "flower", "MOTA", True, price=price) for sku, name, price in HOUSE]
    rows += [ProductRow(sku, name, "vape", "Stiiizy", False, price=price) for sku, name, price in OTHER]
    await writer.write_products(rows, {}, START)
    return flow


async def network_budtender(flow: Flow, name: str = "Ann Lee", *, telegram: str | None = "7001",
                            phone: str | None = "+16195550177", dispensary: str = "Green Cross") -> Any:
    """A budtender of the network with a Telegram address (as after `start CODE`)."""
    repo = BudtenderNetworkRepo(flow.app.db, Role.EXTERNAL_BUDTENDER)
    person_id = await repo.add(NetworkRow(name, dispensary, phone, "San Diego"), flow.clock.now())
    if telegram:
        from bot.model import Address

        await flow.app.people.add_address(person_id, Address("telegram", telegram))
    flow.app.people.forget()
    person = await flow.app.people.get(person_id)
    assert person is not None
    return person
