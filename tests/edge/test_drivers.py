"""Driver registry and manifests."""

from __future__ import annotations

import pytest

from gongyun.edge.drivers.base import Deadband
from gongyun.edge.profiles import Protocol, Tag
from gongyun.edge.runtime import driver_class, parse_broker


@pytest.mark.parametrize("protocol", list(Protocol))
def test_every_protocol_has_a_driver_with_a_manifest(protocol: Protocol) -> None:
    cls = driver_class(protocol)
    assert cls.protocol == str(protocol)
    manifest = cls.manifest
    assert manifest.protocol == str(protocol) and "==" in manifest.library
    assert "devices:command" in manifest.permissions


def test_deadband_filters_small_moves_but_not_quality_changes() -> None:
    from gongyun.core.types import Quality

    tag = Tag(name="t", deadband=0.5)
    band = Deadband()
    assert band.passes(tag, 10.0, Quality.good)
    assert not band.passes(tag, 10.3, Quality.good)
    assert not band.passes(tag, 10.45, Quality.good)  # measured against the last value sent
    assert band.passes(tag, 10.6, Quality.good)
    assert band.passes(tag, 10.6, Quality.bad)
    every = Tag(name="e")  # deadband 0: every read is a sample
    assert band.passes(every, 1.0, Quality.good) and band.passes(every, 1.0, Quality.good)
    text = Tag(name="s", type="string", deadband=1)  # deadband > 0 on text or bool: changes only
    assert band.passes(text, "RUNNING", Quality.good)
    assert not band.passes(text, "RUNNING", Quality.good)
    assert band.passes(text, "STOPPED", Quality.good)


def test_parse_broker() -> None:
    assert parse_broker("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker("mqtt://[::1]:1883") == ("::1", 1883)
    assert parse_broker("localhost") == ("localhost", 1883)
