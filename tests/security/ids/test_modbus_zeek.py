"""Modbus/TCP decoding equals Zeek's (ICSNPP) modbus_detailed log on the reference capture."""

from __future__ import annotations

from pathlib import Path

from gongyun.security.ids.capture import read_capture
from gongyun.security.ids.decoder import Decoder
from gongyun.security.ids.modbus import ModbusRecord
from gongyun.security.ids.stats import Stats

LINK_ID = 13  # column index of modbus_detailed_link_id: random per run in Zeek, compared by presence


def _zeek_rows(path: Path) -> list[list[str]]:
    return [
        line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if not line.startswith("#")
    ]


def _decode(path: Path) -> tuple[list[ModbusRecord], Stats]:
    stats = Stats()
    records = Decoder(stats=stats).frames(read_capture(path, stats))
    return [r for r in records if isinstance(r, ModbusRecord)], stats


def test_every_field_of_the_26_records_equals_zeek(ics_dir: Path) -> None:
    expected = _zeek_rows(ics_dir / "modbus_example.zeek_modbus_detailed.log")
    records, stats = _decode(ics_dir / "modbus_example.pcap")
    assert len(expected) == 26
    assert len(records) == len(expected)
    assert not stats.skips
    for i, (rec, exp) in enumerate(zip(records, expected, strict=True)):
        row = rec.zeek_row()
        assert len(row) == len(exp), i
        for col, (got, want) in enumerate(zip(row, exp, strict=True)):
            if col in (0, 1):  # ts is masked in the log (XXXX), uids are checked below
                continue
            if col == LINK_ID:
                assert (got == "-") == (want == "-"), (i, col, got, want)
                continue
            assert got == want, f"record {i} column {col}: {got!r} != {want!r}"
    # one uid per connection, as Zeek has
    by_uid_zeek = [e[1] for e in expected]
    by_uid_ours = [r.uid for r in records]
    assert len(set(by_uid_ours)) == len(set(by_uid_zeek)) == 2
    assert [by_uid_ours.index(u) for u in by_uid_ours] == [by_uid_zeek.index(u) for u in by_uid_zeek]
    assert records[0].ts == 1595660608.237928 and records[-1].ts == 1595890833.306976


def test_plain_log_functions_agree(ics_dir: Path) -> None:
    plain = [r[6] for r in _zeek_rows(ics_dir / "modbus_example.zeek_modbus.log")]
    records, _ = _decode(ics_dir / "modbus_example.pcap")
    ours = {r.func + ("_EXCEPTION" if r.exception else "") for r in records}
    assert set(plain) <= ours


def test_details_beyond_zeek(ics_dir: Path) -> None:
    records, _ = _decode(ics_dir / "modbus_example.pcap")
    by_tid = {(r.uid, r.tid): r for r in records if r.matched}
    mask = next(r for r in by_tid.values() if r.fc == 22)
    assert mask.extra["and_mask"] == 0xDEAD and mask.extra["or_mask"] == 0
    rw = next(r for r in by_tid.values() if r.fc == 23)
    assert rw.extra["write_values"] == [255] and rw.extra["read_values"] == [170]
    mei = next(r for r in by_tid.values() if r.fc == 43)
    assert mei.extra["device_id"]["VendorName"] == "Zeek Modbus Test"
    assert mei.extra["device_id"]["MajorMinorRevision"] == "1.2.3.6"
    assert all(r.raw_request for r in records if r.matched)
