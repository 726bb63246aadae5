"""Detection: rule language, starter rules, allow-list learning and behaviours."""

from __future__ import annotations

from pathlib import Path

import pytest

from gongyun.security.ids.capture import read_capture
from gongyun.security.ids.decoder import Anomaly, Decoder
from gongyun.security.ids.detect import BEHAVIOURS, Baseline, Detector, DetectorConfig
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.mqtt import MqttRecord
from gongyun.security.ids.opcua import OpcUaRecord
from gongyun.security.ids.rules import RuleInvalid, parse_rule, parse_rules, starter_rules
from gongyun.security.ids.stats import Stats


def mb(
    ts: float,
    fc: int,
    *,
    src: str = "127.0.0.1",
    unit: int = 1,
    address: int | None = 0,
    quantity: int = 1,
    values: list[int] | None = None,
    exception: str | None = None,
    uid: str = "C1",
    raw: bytes = b"",
) -> ModbusRecord:
    r = ModbusRecord(ts, uid, src, 40000, "127.0.0.1", 5020, 1, unit, fc, "X", address, quantity, values)
    r.exception, r.matched, r.raw_request = exception, True, raw or bytes([fc, 0, address or 0, 0, quantity])
    return r


def test_starter_rules_parse_and_carry_attack_ids() -> None:
    rules = starter_rules()
    assert len(rules) >= 15
    assert all(
        r.technique.startswith("T0") and r.severity in ("low", "medium", "high", "critical") for r in rules
    )
    assert len({r.sid for r in rules}) == len(rules)


@pytest.mark.parametrize(
    "text",
    [
        'alert modbus (msg:"x"; technique:T0855;)',  # no sid
        'alert foo (sid:1; msg:"x"; technique:T0855;)',
        'alert modbus (sid:1; msg:"x"; technique:X1;)',
        'alert modbus (sid:1; msg:"x"; technique:T0855; colour:red;)',
        'alert modbus (sid:1; msg:"x"; technique:T0855; severity:huge;)',
        "drop modbus (sid:1;)",
    ],
)
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(RuleInvalid):
        parse_rule(text)


def test_rule_keywords() -> None:
    r = parse_rule(
        'alert modbus (sid:9; msg:"w"; function:write; unit:1-3; address:10-20; value:>100; technique:T0836;)'
    )
    assert r.matches(mb(0, 16, unit=2, address=18, quantity=4, values=[5, 6, 101, 7]))
    assert not r.matches(mb(0, 16, unit=2, address=21, quantity=4, values=[101]))  # address outside
    assert not r.matches(mb(0, 3, unit=2, address=18))  # a read
    assert not r.matches(mb(0, 6, unit=9, address=18, values=[200]))  # unit
    neg = parse_rule('alert modbus (sid:10; msg:"n"; function:!3,4; technique:T0855;)')
    assert neg.matches(mb(0, 6)) and not neg.matches(mb(0, 3))
    q = parse_rule('alert mqtt (sid:11; msg:"c"; topic:spBv1.0/+/NCMD/#; technique:T0855;)')
    m = MqttRecord(0, "C", "a", 1, "b", 1883, "PUBLISH", True, topic="spBv1.0/G/NCMD/node")
    assert q.matches(m)
    with pytest.raises(RuleInvalid):  # ';' ends an option: node ids with ';' must be quoted
        parse_rule('alert opcua (sid:12; msg:"o"; service:WriteRequest; node:ns=2;s=X; technique:T0836;)')
    u = parse_rule('alert opcua (sid:12; msg:"o"; service:WriteRequest; node:"ns=2;s=X"; technique:T0836;)')
    o = OpcUaRecord(0, "C", "a", 1, "b", 4840, "MSG", True, service="WriteRequest", nodes=["ns=2;s=X"])
    assert u.matches(o)
    assert len(parse_rules('# c\nalert modbus (sid:1; msg:"a"; \\\n technique:T0855;)\n')) == 1


def test_starter_rules_on_the_reference_capture(ics_dir: Path) -> None:
    stats = Stats()
    recs = Decoder(stats=stats).frames(read_capture(ics_dir / "modbus_example.pcap", stats))
    det = Detector(starter_rules())
    sids = {e.rule_id for r in recs for e in det.process(r)}
    assert {"1001", "1002", "1006", "1007", "1011"} <= sids
    assert "B-FC-SCAN" in sids  # 15 function codes from one client
    assert "B-UNIT-SCAN" in sids  # units 1..10


def test_learned_allowlist_then_deviations_and_accept() -> None:
    det = Detector(learn_s=10)
    for t in range(10):
        assert det.process(mb(t, 3, address=0, quantity=2)) == []
        assert det.process(mb(t + 0.5, 6, address=0, values=[1000 + t])) == []
    assert not det.learning or det._now < 10
    assert det.process(mb(11, 3, address=0, quantity=2)) == []
    [ev] = det.process(mb(12, 3, address=5, quantity=2))
    assert ev.rule_id == "L-ADDRESS" and ev.technique == BEHAVIOURS["L-ADDRESS"].technique
    [ev2] = det.process(mb(13, 6, address=0, values=[1700]))
    assert ev2.rule_id == "L-VALUE"
    [ev3] = det.process(mb(14, 4, address=0))
    assert ev3.rule_id == "L-NEW-FUNCTION"
    [ev4] = det.process(mb(15, 3, src="127.0.0.66"))
    assert ev4.rule_id == "L-NEW-FLOW"
    # accepting extends the baseline; the same deviation later is normal
    b = Baseline.from_dict(det.baseline.to_dict())
    for e in (ev, ev2, ev3):
        assert b.accept(e.to_dict())
    det2 = Detector(learn_s=0, baseline=b)
    assert det2.process(mb(100, 3, address=5, quantity=2)) == []
    assert det2.process(mb(101, 6, address=0, values=[1700])) == []
    assert det2.process(mb(102, 4, address=0)) == []


def test_behaviours() -> None:
    cfg = DetectorConfig()
    det = Detector(config=cfg)
    evs = [e for u in range(1, 10) for e in det.process(mb(u, 3, unit=u))]
    assert [e.rule_id for e in evs] == ["B-UNIT-SCAN"]
    evs = [e for a in range(0, 200, 10) for e in det.process(mb(50, 3, address=a))]
    assert [e.rule_id for e in evs] == ["B-ADDR-SCAN"]
    det = Detector()
    evs = [e for i in range(40) for e in det.process(mb(100 + i * 0.1, 6, values=[i], uid="C9"))]
    assert [e.rule_id for e in evs] == ["B-WRITE-FLOOD"]
    det = Detector()
    pdu = bytes([6, 0, 0, 3, 0xE8])
    assert det.process(mb(1, 6, values=[1000], uid="Ca", raw=pdu)) == []
    [rep] = det.process(mb(9, 6, values=[1000], uid="Cb", raw=pdu, src="127.0.0.66"))
    assert rep.rule_id == "B-REPLAY"
    det = Detector()
    evs = [
        e for i in range(4) for e in det.process(mb(i, 90 + i, exception="ILLEGAL_FUNCTION", address=None))
    ]
    assert "B-FC-SCAN" in [e.rule_id for e in evs]
    an = Anomaly("modbus.not_modbus", 1.0, "C", "1.2.3.4", 5, "6.7.8.9", 502, "modbus", {"bytes": "4745"})
    assert [e.rule_id for e in det.process(an)] == ["B-NOT-MODBUS"]


def test_opcua_and_mqtt_behaviours() -> None:
    det = Detector(learn_s=5, config=DetectorConfig(mqtt_command_clients=["gongyun-platform"]))
    signed = OpcUaRecord(
        0, "C1", "127.0.0.1", 1, "127.0.0.1", 4840, "OPN", True, security_policy="Basic256Sha256"
    )
    assert det.process(signed) == []
    cmd = MqttRecord(
        1,
        "C2",
        "127.0.0.1",
        2,
        "127.0.0.1",
        1883,
        "PUBLISH",
        True,
        client_id="gongyun-platform",
        topic="spBv1.0/G/NCMD/n",
        sparkplug={"type": "NCMD", "metrics": {}},
    )
    assert det.process(cmd) == []
    none = OpcUaRecord(10, "C3", "127.0.0.66", 1, "127.0.0.1", 4840, "OPN", True, security_policy="None")
    assert {e.rule_id for e in det.process(none)} == {"B-OPCUA-NONE", "B-OPCUA-NEW-CLIENT"}
    rogue = MqttRecord(
        11,
        "C4",
        "127.0.0.66",
        2,
        "127.0.0.1",
        1883,
        "PUBLISH",
        True,
        client_id="evil",
        topic="spBv1.0/G/DCMD/n/d",
        sparkplug={"type": "DCMD", "metrics": {"x": 1}},
    )
    assert [e.rule_id for e in det.process(rogue)] == ["B-MQTT-ROGUE-CMD"]
    assert det.process(cmd) == []


def test_an_opcua_client_seen_only_mid_session_while_learning_may_reconnect() -> None:
    """A gateway connected before the sensor started shows only MSG chunks while it learns."""
    det = Detector(learn_s=5)
    read = OpcUaRecord(0, "C1", "127.0.0.1", 50001, "127.0.0.1", 4840, "MSG", True, service="ReadRequest")
    assert det.process(read) == []
    reconnect = [
        OpcUaRecord(10, "C2", "127.0.0.1", 50002, "127.0.0.1", 4840, kind, True) for kind in ("HEL", "OPN")
    ]
    assert [e.rule_id for r in reconnect for e in det.process(r)] == []
    stranger = OpcUaRecord(11, "C3", "127.0.0.66", 50003, "127.0.0.1", 4840, "HEL", True)
    assert [e.rule_id for e in det.process(stranger)] == ["B-OPCUA-NEW-CLIENT"]
