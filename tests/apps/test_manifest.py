"""Manifest validation: every problem in one message, clashes, version ranges, failures isolated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gongyun import __version__
from gongyun.apps import AppHost, AppManifest, AppStatus, Localized, check_manifest
from tests.apps.fixture_apps import named
from tests.apps.helpers import eps

FIX = "tests.apps.fixture_apps"


def test_a_malformed_manifest_is_refused_with_every_problem_in_one_message() -> None:
    host = AppHost.discover(eps(broken=f"{FIX}:MALFORMED", greeter=f"{FIX}:GREETER"))
    broken, greeter = host.get("broken"), host.get("greeter")
    assert broken is not None and greeter is not None
    assert broken.status is AppStatus.failed and broken.manifest is None
    message = broken.reason
    assert message.startswith("app 'broken' refused: ")
    assert "title: missing" in message
    assert "unknown permission(s): rockets:launch" in message
    assert f"needs platform >=99, this platform is {__version__}" in message
    assert len(broken.problems) == 3
    assert greeter.status is AppStatus.loaded and greeter.manifest is not None  # the others load


def test_a_manifest_built_at_import_lists_every_problem_too() -> None:
    with pytest.raises(ValidationError) as caught:
        AppManifest(  # type: ignore[call-arg]
            name="Bad Name",
            version="not a version",
            platform="~~1",
            title=Localized(en="x", zh_cn="x"),
            permissions=["nope"],
            reads=(),
            writes=(),
            classification="secret",
        )
    fields = {str(e["loc"][0]) for e in caught.value.errors()}
    assert fields == {"name", "version", "platform", "description", "permissions", "classification"}


@pytest.mark.parametrize("name", ["alarms", "assets", "apps", "admin"])
def test_a_name_of_the_platform_is_refused(name: str) -> None:
    host = AppHost.discover(eps(**{name: f"{FIX}:ALARMS"}))
    [entry] = host.entries()
    assert entry.status is AppStatus.failed
    assert any("clashes with a built-in part of the platform" in p for p in entry.problems)


def test_a_name_taken_by_another_app_is_refused_and_the_first_keeps_it() -> None:
    host = AppHost.discover(eps(twin=f"{FIX}:TWIN_A") + eps(twin=f"{FIX}:TWIN_B"))
    first, second = host.entries()
    assert first.status is AppStatus.loaded
    assert second.status is AppStatus.failed and "name 'twin' clashes with the app" in second.reason
    assert host.get("twin") is first


def test_entry_point_and_manifest_names_must_agree() -> None:
    [entry] = AppHost.discover(eps(other=f"{FIX}:GREETER")).entries()
    assert entry.status is AppStatus.failed
    assert "entry point name 'other' differs from the manifest name 'greeter'" in entry.reason


def test_an_import_error_is_marked_failed_with_the_reason() -> None:
    host = AppHost.discover(eps(ghost="tests.apps.no_such_module:MANIFEST", greeter=f"{FIX}:GREETER"))
    ghost = host.get("ghost")
    assert ghost is not None and ghost.status is AppStatus.failed
    assert "ModuleNotFoundError" in ghost.reason and "no_such_module" in ghost.reason
    assert host.get("greeter") is not None and host.get("greeter").status is AppStatus.loaded  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("platform", "ok"),
    [(">=0.1", True), ("<0.1", False), (f"=={__version__}", True), (">=1,<2", False), ("nonsense", False)],
)
def test_platform_range(platform: str, ok: bool) -> None:
    checked = check_manifest({**named("ranged"), "platform": platform})
    assert (checked.manifest is not None) is ok
    if not ok:
        assert checked.problems and checked.problems[0].startswith("platform: ")


def test_something_that_is_not_a_manifest_is_refused() -> None:
    checked = check_manifest(42)
    assert checked.manifest is None and "not an AppManifest" in checked.problems[0]


def test_settings_need_defaults() -> None:
    from pydantic import BaseModel

    class NoDefault(BaseModel):
        url: str

    checked = check_manifest({**named("cfg"), "settings": NoDefault})
    assert checked.problems == ["settings: the settings model must have a default for every field"]


def test_a_third_party_app_cannot_take_the_name_of_a_built_in_app() -> None:
    from importlib.metadata import distribution

    builtin = eps(alpha=f"{FIX}:NAMED_ALPHA")[0]._for(distribution("gongyun"))  # as if shipped by gongyun
    third = eps(alpha=f"{FIX}:NAMED_ALPHA")  # no distribution: sorts before "gongyun"
    host = AppHost.discover([*third, builtin])
    first, second = host.entries()
    assert first.builtin and first.distribution == "gongyun" and first.status is AppStatus.loaded
    assert second.status is AppStatus.failed
    assert "name 'alpha' clashes with the built-in app from gongyun" in second.reason
    assert host.get("alpha") is first
