"""SIEM export of IDS events: syslog (RFC 5424, structured data) and ArcSight CEF."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gongyun import __version__

# RFC 5424 severities: 2 critical, 3 error, 4 warning, 5 notice
_SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}
_CEF_SEVERITY = {"critical": 10, "high": 8, "medium": 5, "low": 3}
_FACILITY = 13  # log audit
_SD_ID = "gongyunIds@53999"  # a private enterprise number placeholder, as RFC 5424 asks for name@number


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _split(endpoint: str) -> tuple[str, str]:
    if endpoint.count(":") == 1:
        host, port = endpoint.split(":")
        return host, port
    return endpoint, ""


def syslog_line(event: dict[str, Any], *, hostname: str = "gongyun", app: str = "gongyun-ids") -> str:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``."""
    sev = _SYSLOG_SEVERITY.get(str(event.get("severity")), 4)
    ts = datetime.fromtimestamp(float(event.get("last_ts") or event.get("ts") or 0), UTC)
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "id": event.get("id", ""),
        "rule": event.get("rule_id", ""),
        "severity": event.get("severity", ""),
        "technique": event.get("technique", ""),
        "proto": event.get("proto", ""),
        "src": event.get("src", ""),
        "dst": event.get("dst", ""),
        "count": event.get("count", 1),
        "sensor": event.get("sensor", ""),
        "incident": event.get("incident_id") or "",
    }
    link = event.get("link") or {}
    for k in ("device", "asset_path", "identifier"):
        if link.get(k):
            params[k] = link[k]
    sd = "[" + _SD_ID + "".join(f' {k}="{_sd_escape(str(v))}"' for k, v in params.items()) + "]"
    msgid = "".join(c for c in str(event.get("rule_id", "-")) if 33 <= ord(c) <= 126)[:32] or "-"
    return f"<{_FACILITY * 8 + sev}>1 {stamp} {hostname} {app} - {msgid} {sd} \ufeff{event.get('msg', '')}"


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _cef_ext(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def cef_line(event: dict[str, Any]) -> str:
    """One CEF:0 line (ArcSight Common Event Format)."""
    src, spt = _split(str(event.get("src", "")))
    dst, dpt = _split(str(event.get("dst", "")))
    ts_ms = int(float(event.get("last_ts") or event.get("ts") or 0) * 1000)
    ext = {
        "rt": str(ts_ms),
        "src": src,
        "spt": spt,
        "dst": dst,
        "dpt": dpt,
        "app": str(event.get("proto", "")),
        "cnt": str(event.get("count", 1)),
        "cs1Label": "technique",
        "cs1": str(event.get("technique", "")),
        "cs2Label": "incident",
        "cs2": str(event.get("incident_id") or ""),
        "cs3Label": "sensor",
        "cs3": str(event.get("sensor", "")),
        "externalId": str(event.get("id", "")),
    }
    link = event.get("link") or {}
    if link.get("device"):
        ext["dhost"] = str(link["device"])
    if link.get("asset_path"):
        ext["cs4Label"], ext["cs4"] = "asset", str(link["asset_path"])
    if link.get("identifier"):
        ext["cs5Label"], ext["cs5"] = "identifier", str(link["identifier"])
    header = "|".join(
        _cef_header(x)
        for x in (
            "CEF:0",
            "Gongyun",
            "IDS",
            __version__,
            str(event.get("rule_id", "")),
            str(event.get("msg", "")),
            str(_CEF_SEVERITY.get(str(event.get("severity")), 5)),
        )
    )
    return header + "|" + " ".join(f"{k}={_cef_ext(v)}" for k, v in ext.items() if v != "")
