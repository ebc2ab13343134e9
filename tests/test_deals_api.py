"""The admin HTTP API for deals: bearer token, 202 + job ids, 400 reasons, monitoring control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.model import Person
from bot.testing import Flow
from tests.deals_support import make_flow

TOKEN = "s3cret-admin"


@pytest.fixture
async def api() -> AsyncIterator[tuple[Flow, Person, Person, httpx.AsyncClient]]:
    flow, ann, boris = await make_flow(admin_token=TOKEN)
    port = await flow.app.http.start(host="127.0.0.1", port=0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        try:
            yield flow, ann, boris, client
        finally:
            await flow.close()


async def _done(flow: Flow, client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    await flow.app.deps["deals_api"].idle()
    await flow.settle()
    job = (await client.get(f"/api/deals/jobs/{job_id}")).json()
    assert job["status"] == "done", job
    return job


ADMIN_ROUTES = [
    ("POST", "/api/deals/101/analyze"), ("POST", "/api/managers/1/analyze-deals"), ("POST", "/api/deals/analyze-all"),
    ("POST", "/api/deals/check-stale?days_threshold=3"), ("POST", "/api/monitoring/start?interval_hours=6"),
    ("POST", "/api/monitoring/stop"), ("GET", "/api/monitoring/status"), ("GET", "/api/deals/jobs/x"),
]


async def test_every_route_needs_the_token(api: tuple[Flow, Person, Person, httpx.AsyncClient]) -> None:
    flow, ann, _, client = api
    for method, path in ADMIN_ROUTES:
        r = await client.request(method, path, headers={"Authorization": ""})
        assert r.status_code == 401, path
        r = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401, path
    assert flow.sent_to(ann) == []
    spec = (await client.get("/api/deals/openapi.json", headers={"Authorization": ""})).json()
    assert spec["openapi"].startswith("3.") and "/api/monitoring/start" in spec["paths"]
    assert spec["paths"]["/api/monitoring/start"]["post"]["parameters"][0]["schema"]["maximum"] == 168


async def test_analyze_one_deal_notifies_its_manager(api: tuple[Flow, Person, Person, httpx.AsyncClient]) -> None:
    flow, ann, boris, client = api
    job = await _done(flow, client, await client.post("/api/deals/101/analyze?notify=true"))
    assert job["deal_id"] == 101 and job["result"]["messages"] == 1 and job["result"]["rules"] == 1
    [msg] = flow.sent_to(ann)
    assert "DEAL ANALYSIS</b> #101" in msg and flow.sent_to(boris) == []
    await _done(flow, client, await client.post("/api/deals/101/analyze?notify=false"))
    assert len(flow.sent_to(ann)) == 1
    assert (await client.post("/api/deals/999/analyze")).status_code == 404
    r = await client.post("/api/deals/101/analyze?notify=maybe")
    assert r.status_code == 400 and "notify must be true or false" in r.json()["error"]
    assert (await client.post("/api/deals/abc/analyze")).status_code == 400
    assert (await client.get("/api/deals/jobs/nope")).status_code == 404


async def test_manager_and_all_analysis(api: tuple[Flow, Person, Person, httpx.AsyncClient]) -> None:
    flow, ann, boris, client = api
    job = await _done(flow, client, await client.post(f"/api/managers/{ann.id}/analyze-deals"))
    assert job["manager_name"] == "Ann Lee"
    sent = flow.sent_to(ann)
    assert len(sent) == 2 and sent[0].startswith("📊") and "#101" in sent[1]
    assert (await client.post("/api/managers/9999/analyze-deals")).status_code == 404
    job = await _done(flow, client, await client.post("/api/deals/analyze-all"))
    assert job["result"]["managers"] == 2 and job["result"]["identical"] == 1
    assert len(flow.sent_to(ann)) == 3 and len(flow.sent_to(boris)) == 2  # Ann had #101's analysis already
    assert flow.sent_to(boris)[0].startswith("📊 <b>Мониторинг сделок</b>")


async def test_check_stale(api: tuple[Flow, Person, Person, httpx.AsyncClient]) -> None:
    flow, ann, boris, client = api
    for bad in ("0", "366", "abc", "-1"):
        r = await client.post(f"/api/deals/check-stale?days_threshold={bad}")
        assert r.status_code == 400 and "days_threshold" in r.json()["error"]
    job = await _done(flow, client, await client.post("/api/deals/check-stale?days_threshold=7"))
    assert job["result"] == {"managers": 2, "deals": 2, "messages": 2, "ai": 0, "rules": 0, "held_back": 0,
                             "identical": 0, "unchanged": 0, "errors": []}
    [alert] = flow.sent_to(ann)
    assert "#101" in alert and "#102" not in alert
    assert "#201" in flow.sent_to(boris)[0]


async def test_monitoring_start_status_stop(api: tuple[Flow, Person, Person, httpx.AsyncClient]) -> None:
    flow, ann, boris, client = api
    for bad in ("0", "169", "x"):
        r = await client.post(f"/api/monitoring/start?interval_hours={bad}")
        assert r.status_code == 400 and "interval_hours" in r.json()["error"]
    assert (await client.get("/api/monitoring/status")).json()["is_running"] is False
    r = await client.post("/api/monitoring/start?interval_hours=12")
    assert r.status_code == 200 and r.json()["managers"] == [ann.id, boris.id]
    status = (await client.get("/api/monitoring/status")).json()
    assert status["is_running"] is True and status["monitors"][0]["next_run"] == "2026-03-02 21:00 UTC"
    await flow.advance(timedelta(hours=12))
    assert len(flow.sent_to(ann)) == 2 and len(flow.sent_to(boris)) == 2
    assert (await client.post("/api/monitoring/stop")).json()["managers"] == [ann.id, boris.id]
    await flow.advance(timedelta(hours=12))
    assert len(flow.sent_to(ann)) == 2
    assert (await client.get("/api/monitoring/status")).json()["is_running"] is False
