"""Loading deals from JSON and CSV files, and the import CLI, with bad files."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from coaching.deal_import import DealFileError, load_file, parse_csv, parse_json
from coaching.deals import DealStatus, EventKind
from storage.deals import DealRepo
from tests.deals_support import make_flow
from tests.flows import Flow

GOOD_JSON = {
    "deals": [
        {
            "id": 7001, "name": "Acme <fleet>", "created_at": "2026-02-01T10:00:00Z", "budget": "$180,000.50",
            "currency": "usd", "stage": "Negotiation", "owner": "ann", "contact": "Dana",
            "events": [
                {"kind": "call", "at": "2026-02-02T10:00:00", "duration_s": 600, "direction": "out"},
                {"kind": "stage_change", "at": "2026-02-03T10:00:00+03:00", "from_stage": "A", "to_stage": "B"},
                {"kind": "task", "at": "2026-02-03T10:00:00Z", "due_at": "2026-02-05T10:00:00Z", "text": "call"},
            ],
        },
        {"id": 7002, "name": "Won one", "created_at": "2026-01-01T00:00:00Z", "status": "won", "budget": 99.5},
    ]
}

GOOD_CSV = """\
deal_id,deal_name,created_at,budget,currency,stage,status,owner,contact,kind,at,duration_s,done,due_at,text
8001,Northwind,2026-02-01T10:00:00Z,"42 000",RUB,Qualification,active,boris,Marco,call,2026-02-02T10:00:00Z,300,,,
8001,,,,,,,,,message,2026-02-03T10:00:00Z,,,,"Hi, any news?"
8001,,,,,,,,,task,2026-02-03T10:00:00Z,,yes,2026-02-04T10:00:00Z,send offer
8002,Keystone,2026-02-05T10:00:00Z,,,New lead,,ann,,,,,,,
"""


def test_json_is_parsed_with_utc_times_and_exact_money() -> None:
    deals = parse_json(json.dumps(GOOD_JSON))
    d = deals[0]
    assert d.budget == Decimal("180000.50") and d.currency == "USD" and d.owner_ref == "ann"
    assert [e.kind for e in d.events] == [EventKind.CALL, EventKind.STAGE_CHANGE, EventKind.TASK]
    assert d.events[0].at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert d.events[1].at.hour == 7  # +03:00 converted to UTC
    assert deals[1].status is DealStatus.WON and deals[1].budget == Decimal("99.5")
    assert parse_json(json.dumps(GOOD_JSON["deals"]))[0].id == 7001  # a bare list works too


def test_csv_groups_rows_into_deals_and_events() -> None:
    deals = parse_csv(GOOD_CSV)
    assert [d.id for d in deals] == [8001, 8002]
    d = deals[0]
    assert d.name == "Northwind" and d.budget == Decimal("42000") and d.owner_ref == "boris"
    assert [e.kind for e in d.events] == [EventKind.CALL, EventKind.MESSAGE, EventKind.TASK]
    assert d.events[0].duration_s == 300 and d.events[1].text == "Hi, any news?" and d.events[2].done
    assert deals[1].events == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"deals": 5}', "expected a list"),
        ('[{"id": 1, "name": "x"}]', "deals[0].created_at: Field required"),
        ('[{"id": 1, "name": "x", "created_at": "2026-01-01", "budget": "lots"}]', "deals[0].budget"),
        ('[{"id": 1, "name": "x", "created_at": "2026-01-01T00:00:00Z", "events": [{"kind": "fax", "at": '
         '"2026-01-01T00:00:00Z"}]}]', "deals[0].events.0.kind"),
        ('[{"id": 1, "name": "x", "created_at": "2026-01-01T00:00:00Z", "colour": "red"}]', "deals[0].colour"),
        ('[{"id": 1, "name": "a", "created_at": "2026-01-01T00:00:00Z"}, '
         '{"id": 1, "name": "b", "created_at": "2026-01-01T00:00:00Z"}]', "appears twice"),
        ('[7]', "expected an object"),
    ],
)
def test_bad_json_names_the_place(text: str, message: str) -> None:
    with pytest.raises(DealFileError) as info:
        parse_json(text)
    assert message in str(info.value)


def test_bad_csv_names_the_row() -> None:
    with pytest.raises(DealFileError, match="missing the column"):
        parse_csv("name,when\nx,y\n")
    with pytest.raises(DealFileError, match="row 3: deal_id is empty"):
        parse_csv("deal_id,deal_name,created_at\n1,a,2026-01-01T00:00:00Z\n,b,2026-01-01T00:00:00Z\n")
    with pytest.raises(DealFileError, match=r"deal 1 \(row 2\).created_at"):
        parse_csv("deal_id,deal_name,created_at\n1,a,yesterday\n")


def test_files_by_extension(tmp_path: Path) -> None:
    with pytest.raises(DealFileError, match="no such file"):
        load_file(tmp_path / "nope.json")
    bad = tmp_path / "deals.xlsx"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(DealFileError, match=r"expected a \.json or \.csv"):
        load_file(bad)
    binary = tmp_path / "deals.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DealFileError, match="not UTF-8"):
        load_file(binary)
    emoji = tmp_path / "emoji.json"
    emoji.write_text(json.dumps([{"id": 1, "name": "🚀" * 5000, "created_at": "2026-01-01T00:00:00Z"}]))
    with pytest.raises(DealFileError, match="at most 500"):
        load_file(emoji)


def _cli(flow: Flow) -> tuple[argparse.ArgumentParser, Any]:
    cli = flow.app.cli_commands["import"]
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser, cli


async def test_import_deals_loads_deals_for_the_managers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow, ann, boris = await make_flow()
    try:
        parser, cli = _cli(flow)
        path = tmp_path / "deals.json"
        path.write_text(json.dumps(GOOD_JSON), encoding="utf-8")
        assert await cli.run(flow.app, parser.parse_args(["deals", str(path)])) == 0
        csv_path = tmp_path / "deals.csv"
        csv_path.write_text(GOOD_CSV, encoding="utf-8")
        assert await cli.run(flow.app, parser.parse_args(["deals", str(csv_path)])) == 0
        out = capsys.readouterr().out
        assert "imported 2 deals and 3 events" in out and "1 deal(s) have no matching manager" in out
        repo = DealRepo(flow.app.db)
        assert (await repo.get(7001)).person_id == ann.id  # type: ignore[union-attr]
        assert (await repo.get(8001)).person_id == boris.id  # type: ignore[union-attr]
        [reply] = await flow.send(ann, "/analyze 7001")
        assert "Acme &lt;fleet&gt;" in reply
        broken = tmp_path / "broken.json"
        broken.write_text("{", encoding="utf-8")
        report = tmp_path / "report.csv"
        assert await cli.run(flow.app, parser.parse_args(["deals", str(broken), "--report", str(report)])) == 2
        assert "import failed: not valid JSON" in capsys.readouterr().err
        assert "not valid JSON" in report.read_text()
    finally:
        await flow.close()


async def test_import_deals_map_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow, _, _ = await make_flow()
    try:
        parser, cli = _cli(flow)
        path = tmp_path / "export.csv"
        path.write_text("Lead ID,Title,Created\n9001,From amo,2026-02-01T00:00:00Z\n", encoding="utf-8")
        args = ["deals", str(path), "--map", "deal_id=Lead ID", "--map", "deal_name=Title", "--map",
                "created_at=Created"]
        assert await cli.run(flow.app, parser.parse_args([*args, "--dry-run"])) == 0
        assert "1 deals and 0 events are valid (dry run)" in capsys.readouterr().out
        repo = DealRepo(flow.app.db)
        assert await repo.get(9001) is None
        assert await cli.run(flow.app, parser.parse_args(args)) == 0
        assert (await repo.get(9001)).name == "From amo"  # type: ignore[union-attr]
        assert await cli.run(flow.app, parser.parse_args(["deals", str(path), "--map", "oops"])) == 2
        assert "FIELD=COLUMN" in capsys.readouterr().err
    finally:
        await flow.close()
