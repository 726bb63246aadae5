"""The EPCIS 2.0 capture and REST query interface of the trace app (``.../apps/trace/epcis/``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gongyun.apps import AppCtx, needs
from gongyun.apps.trace import epcis_store, store, traces
from gongyun.apps.trace.domain.epcis import document, parse_document, query_document
from gongyun.apps.trace.domain.epcis_xml import xml_to_document
from gongyun.apps.trace.domain.ids import key_of
from gongyun.apps.trace.errors import EpcisDocumentInvalid
from gongyun.errors import InvalidInput
from gongyun.security.rbac import Perm

router = APIRouter(prefix="/epcis")
Reader = Annotated[AppCtx, Depends(needs(Perm.identifiers_read))]
Writer = Annotated[AppCtx, Depends(needs(Perm.identifiers_write))]
LD = "application/ld+json"


class EpcisDocument(JSONResponse):
    """An EPCIS 2.0 JSON-LD document (so the OpenAPI document names ``application/ld+json``)."""

    media_type = LD


# The capture body is read as it comes (JSON-LD or XML, checked as a whole by the EPCIS schema).
CAPTURE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            LD: {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
        },
    }
}


def _doc_response(doc: dict[str, Any]) -> JSONResponse:
    return EpcisDocument(doc, headers={"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"})


@router.post("/capture", status_code=202, openapi_extra=CAPTURE_BODY)
async def capture(request: Request, ctx: Writer) -> JSONResponse:
    """Capture an EPCIS 2.0 document (JSON-LD or XML); all of it or, with every problem listed, none."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    if "xml" in ctype:
        doc, problems = xml_to_document(raw)
        if doc is None:
            raise EpcisDocumentInvalid("the XML document cannot be read", errors=problems)
    else:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise EpcisDocumentInvalid(
                "the body is not JSON", errors=[{"path": "", "message": "not JSON"}]
            ) from None
    events, problems = parse_document(doc)
    if problems:
        raise EpcisDocumentInvalid(
            f"the document has {len(problems)} problem(s); nothing was stored", errors=problems
        )
    result = await epcis_store.capture(ctx.session, ctx.tenant_id, events)
    await ctx.audit("epcis.capture", "", **result)
    capture_id = events[0].event_id if events else "empty"
    return JSONResponse(
        {"captureID": capture_id, "running": False, "success": True, "errors": [], **result},
        status_code=202,
        headers={"GS1-EPCIS-Version": "2.0.0"},  # captured already: no capture job to poll
    )


async def _query(ctx: AppCtx, request: Request, **fixed: str) -> JSONResponse:
    """One page of a query; a ``Link: <…>; rel="next"`` header and ``nextPageToken`` when more follow."""
    params = {k: v for k, v in request.query_params.items()}
    params.update(fixed)
    per_page = params.get("perPage", "1000")
    if not per_page.isdigit() or not 1 <= int(per_page) <= 10_000:
        raise InvalidInput("perPage is 1..10000", field="perPage")
    found, token = await epcis_store.query_page(ctx.session, ctx.tenant_id, params, int(per_page))
    body = query_document(found)
    response = _doc_response(body)
    if token is not None:
        following = request.url.remove_query_params("nextPageToken").include_query_params(
            perPage=per_page, nextPageToken=token
        )
        response.headers["Link"] = f'<{following}>; rel="next"'
        response.headers["Access-Control-Expose-Headers"] = "Link"
    return response


@router.get("/events", response_class=EpcisDocument)
async def events(request: Request, ctx: Reader) -> JSONResponse:
    """Events matching EPCIS 2.0 query parameters (``eventType``, ``EQ_bizStep``, ``MATCH_epc``, ...)."""
    return await _query(ctx, request)


@router.get("/events/{event_id:path}", response_class=EpcisDocument)
async def one_event(event_id: str, request: Request, ctx: Reader) -> JSONResponse:
    """One event by its eventID."""
    found = await epcis_store.query(ctx.session, ctx.tenant_id, {"eventID": event_id}, 1)
    if not found:
        from gongyun.apps.trace.errors import TraceItemNotFound

        raise TraceItemNotFound(f"no event {event_id}", event=event_id)
    return _doc_response(found[0])


@router.get("/eventTypes/{event_type}/events", response_class=EpcisDocument)
async def by_type(event_type: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events of one type."""
    return await _query(ctx, request, eventType=event_type)


@router.get("/epcs/{epc:path}/events", response_class=EpcisDocument)
async def by_epc(epc: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events naming one identifier in any role."""
    return (
        await _query(ctx, request, MATCH_anyEPC=epc)
        if ":class:" not in epc
        else await _query(ctx, request, MATCH_anyEPCClass=epc)
    )


@router.get("/bizSteps/{biz_step}/events", response_class=EpcisDocument)
async def by_biz_step(biz_step: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events of one business step."""
    return await _query(ctx, request, EQ_bizStep=biz_step)


@router.get("/dispositions/{disposition}/events", response_class=EpcisDocument)
async def by_disposition(disposition: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events with one disposition."""
    return await _query(ctx, request, EQ_disposition=disposition)


@router.get("/bizLocations/{location:path}/events", response_class=EpcisDocument)
async def by_location(location: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events at one business location."""
    return await _query(ctx, request, EQ_bizLocation=location)


@router.get("/readPoints/{point:path}/events", response_class=EpcisDocument)
async def by_read_point(point: str, request: Request, ctx: Reader) -> JSONResponse:
    """Events at one read point."""
    return await _query(ctx, request, EQ_readPoint=point)


@router.get("/history/{ref:path}", response_class=EpcisDocument)
async def history(
    ref: str,
    ctx: Reader,
    direction: Literal["backward", "forward", "both"] = "backward",
    depth: int | None = Query(None, ge=1, le=100),
) -> JSONResponse:
    """A product's history as an EPCIS 2.0 document: the events of everything its trace reaches."""
    if ref.isdigit():
        root = int(ref)
    else:
        try:
            root = int((await store.item(ctx.session, ctx.tenant_id, key_of(ref)))["id"])
        except ValueError as exc:
            raise InvalidInput(str(exc), field="item") from None
    keys: set[str] = set()
    for d in ("backward", "forward") if direction == "both" else (direction,):
        res = await traces.trace(ctx.session, ctx.tenant_id, root, d, depth)
        keys |= {n["key"] for n in res.nodes}
    found = await epcis_store.events_of_keys(ctx.session, ctx.tenant_id, sorted(keys))
    return _doc_response(document(found))
