"""EPCIS 2.0 capture and queries, checked against GS1's epcis2.js (npm): documents it builds are
captured and queried back equal; every document Gongyun exports passes its validateEpcisDocument;
bad documents are refused with every problem listed and nothing stored."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.apps.helpers import eps, running_with_apps, tenant_with_users
from tests.jsinterop import run_js

APPS = eps(trace="gongyun.apps.trace.manifest:MANIFEST")
API = "/api/v1/apps/trace"
SPEC = {
    "time": "2026-03-01T08:00:00.000+08:00",
    "serials": ["urn:epc:id:sgtin:4012345.000001.E1", "urn:epc:id:sgtin:4012345.000001.E2"],
    "readPoint": "urn:epc:id:sgln:4012345.00001.0",
    "bizLocation": "urn:epc:id:sgln:4012345.00001.0",
    "inputLot": "urn:epc:class:lgtin:9506000.013435.L0001",
    "outputLot": "urn:epc:class:lgtin:4012345.000001.B77",
    "pallet": "urn:epc:id:sscc:4012345.0000000001",
    "asset": "urn:epc:id:giai:4012345.PRESS-1",
}
XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
    creationDate="2026-03-02T09:00:00.000+08:00">
  <EPCISBody><EventList>
    <ObjectEvent>
      <eventTime>2026-03-02T09:00:00.000+08:00</eventTime>
      <eventTimeZoneOffset>+08:00</eventTimeZoneOffset>
      <eventID>urn:uuid:6f1b8a8e-3f0a-4a5e-9a53-4c1f5e0d2b11</eventID>
      <epcList><epc>urn:epc:id:sgtin:4012345.000001.E1</epc></epcList>
      <action>OBSERVE</action>
      <bizStep>urn:epcglobal:cbv:bizstep:inspecting</bizStep>
      <disposition>urn:epcglobal:cbv:disp:conformant</disposition>
      <readPoint><id>urn:epc:id:sgln:4012345.00001.0</id></readPoint>
    </ObjectEvent>
  </EventList></EPCISBody>
</epcis:EPCISDocument>"""


async def _tenant(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    t = await tenant_with_users(client, name, "tenant-admin")
    h: dict[str, str] = t["headers"]["tenant-admin"]
    assert (await client.patch("/api/v1/apps/trace", json={"enabled": True}, headers=h)).status_code == 200
    return h


async def _events(client: httpx.AsyncClient, h: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    r = await client.get(f"{API}/epcis/events{query}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "EPCISQueryDocument"
    return list(body["epcisBody"]["queryResults"]["resultsBody"]["eventList"])


def _events_of(r: httpx.Response) -> list[dict[str, Any]]:
    return list(r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"])


async def test_epcis_capture_query_and_export(tmp_path: Path) -> None:
    built = run_js("epcis_check.js", {"build": SPEC})["built"]
    assert run_js("epcis_check.js", {"validate": [built]})["validate"] == [{"success": True, "errors": []}]
    async with running_with_apps(tmp_path, APPS) as (client, _):
        h = await _tenant(client, "maker")
        other = await _tenant(client, "other")
        r = await client.post(
            f"{API}/items", json={"id": SPEC["inputLot"], "kind": "material_lot"}, headers=h
        )
        assert r.status_code == 201, r.text

        # bad documents: every problem listed, nothing stored
        bad = copy.deepcopy(built)
        del bad["epcisBody"]["eventList"][0]["eventTime"]
        bad["epcisBody"]["eventList"][1]["action"] = "ADD"
        bad["epcisBody"]["eventList"][3]["action"] = "MAYBE"
        bad["epcisBody"]["eventList"][4]["epcList"] = ["urn:epc:id:sscc:4012345.9999999999"]
        r = await client.post(f"{API}/epcis/capture", json=bad, headers=h)
        assert r.status_code == 422 and r.json()["code"] == "trace_epcis_invalid"
        paths = {e["path"] for e in r.json()["errors"]}
        assert {
            "epcisBody.eventList[0].eventTime",
            "epcisBody.eventList[1].action",
            "epcisBody.eventList[3].action",
        } <= paths
        unknown = copy.deepcopy(built)
        unknown["epcisBody"]["eventList"][1]["inputQuantityList"][0]["epcClass"] = (
            "urn:epc:class:lgtin:9506000.013435.NOPE"
        )
        unknown["epcisBody"]["eventList"][4]["epcList"] = ["urn:epc:id:sscc:4012345.9999999999"]
        r = await client.post(f"{API}/epcis/capture", json=unknown, headers=h)
        assert r.status_code == 422
        assert len([e for e in r.json()["errors"] if "unknown identifier" in e["message"]]) == 2
        assert await _events(client, h) == []
        assert (await client.get(f"{API}/items?kind=serial", headers=h)).json() == []

        # the document epcis2.js built: captured, then queried back equal
        r = await client.post(f"{API}/epcis/capture", json=built, headers=h)
        assert r.status_code == 202, r.text
        assert r.json()["events"] == 6 and r.json()["links"] == 3
        sent = built["epcisBody"]["eventList"]
        assert await _events(client, h) == sent
        # paging: perPage, the Link header's next page (with its nextPageToken), the last page has none
        paged: list[dict[str, Any]] = []
        url: str | None = f"{API}/epcis/events?perPage=4"
        while url is not None:
            r = await client.get(url, headers=h)
            assert r.status_code == 200, r.text
            paged += r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            link = r.headers.get("link")
            url = None if link is None else httpx.URL(link.split(">")[0].lstrip("<")).raw_path.decode()
            assert link is None or ('rel="next"' in link and "nextPageToken=" in link)
        assert paged == sent
        r = await client.get(f"{API}/epcis/events?perPage=2&EQ_bizStep=shipping", headers=h)
        assert "link" not in r.headers and len(_events_of(r)) == 2
        r = await client.get(f"{API}/epcis/events?nextPageToken=garbage!", headers=h)
        assert r.status_code in (400, 422)
        assert await _events(client, h, "?eventType=AggregationEvent") == [sent[2]]
        assert await _events(client, h, "?EQ_bizStep=shipping") == [sent[3], sent[4]]
        assert await _events(client, h, f"?MATCH_epc={SPEC['serials'][1]}") == [sent[0], sent[2]]
        assert await _events(client, h, f"?MATCH_inputEPC={SPEC['inputLot']}") == []
        assert await _events(client, h, f"?MATCH_epcClass={SPEC['inputLot']}") == []
        assert await _events(client, h, f"?MATCH_inputEPCClass={SPEC['inputLot']}") == [sent[1]]
        assert await _events(client, h, f"?MATCH_anyEPCClass={SPEC['outputLot']}") == [sent[1]]
        assert (
            await _events(client, h, "?GE_eventTime=2026-03-01T00:25:00Z&LT_eventTime=2026-03-01T00:45:00Z")
            == sent[3:5]
        )
        r = await client.get(f"{API}/epcis/bizSteps/packing/events", headers=h)
        assert r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == [sent[2]]
        r = await client.get(f"{API}/epcis/eventTypes/AssociationEvent/events", headers=h)
        assert r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == [sent[5]]
        r = await client.get(f"{API}/epcis/events/{quote(sent[0]['eventID'], safe='')}", headers=h)
        assert r.json() == sent[0]
        assert await _events(client, other) == []  # another tenant sees none of it
        # capturing the same events again is refused, nothing doubled
        assert (await client.post(f"{API}/epcis/capture", json=built, headers=h)).status_code == 422

        # XML binding
        r = await client.post(
            f"{API}/epcis/capture", content=XML, headers={**h, "content-type": "application/xml"}
        )
        assert r.status_code == 202, r.text
        got = await _events(client, h, "?EQ_bizStep=inspecting")
        assert got[0]["eventID"] == "urn:uuid:6f1b8a8e-3f0a-4a5e-9a53-4c1f5e0d2b11"
        assert got[0]["disposition"] == "conformant" and got[0]["epcList"] == [SPEC["serials"][0]]

        # genealogy from the events: the serial went onto the pallet; the input lot made the output lot
        serial = (await client.get(f"{API}/items/{SPEC['serials'][0]}", headers=h)).json()
        fwd = (await client.get(f"{API}/trace/forward/{serial['id']}", headers=h)).json()
        assert {n["kind"] for n in fwd["nodes"]} == {"serial", "pallet"}
        lot_fwd = (await client.get(f"{API}/trace/forward/{SPEC['inputLot']}", headers=h)).json()
        assert [n["key"] for n in lot_fwd["nodes"]][1] == "/01/04012345000016/10/B77"

        # exports pass epcis2.js's validateEpcisDocument
        exports = []
        for ref, direction in (
            (serial["id"], "both"),
            (SPEC["inputLot"], "forward"),
            (serial["id"], "backward"),
        ):
            r = await client.get(f"{API}/epcis/history/{ref}?direction={direction}", headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
            exports.append(r.json())
        assert len(exports[0]["epcisBody"]["eventList"]) == 6  # its own, the pallet's
        # and so do its query answers (EPCISQueryDocument), whole and paged
        for query in ("", "?perPage=2", "?EQ_bizStep=shipping"):
            r = await client.get(f"{API}/epcis/events{query}", headers=h)
            assert r.status_code == 200
            exports.append(r.json())
        verdicts = run_js("epcis_check.js", {"validate": exports})["validate"]
        assert verdicts == [{"success": True, "errors": []}] * 6
