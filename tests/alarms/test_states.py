"""Every ISA-18.2 transition, shelving, and the refused operator actions."""

from __future__ import annotations

import pytest

from gongyun.alarms.states import AlarmStateMachine, InvalidTransition, State

S = 1_000_000


def machine(state: State, condition: bool) -> AlarmStateMachine:
    return AlarmStateMachine(state, condition)


def test_normal_to_unack_active_on_condition() -> None:
    m = machine(State.normal, False)
    tr = m.set_condition(True, 1, 85.0)
    assert tr and (tr.before, tr.after, tr.cause, tr.value) == (
        State.normal,
        State.unack_active,
        "activated",
        85.0,
    )


def test_unack_active_to_ack_active_on_ack() -> None:
    m = machine(State.unack_active, True)
    tr = m.ack("op", 2)
    assert (tr.after, tr.user, tr.cause) == (State.ack_active, "op", "acknowledged")


def test_ack_active_to_normal_on_clear() -> None:
    m = machine(State.ack_active, True)
    tr = m.set_condition(False, 3)
    assert tr and tr.after is State.normal and tr.cause == "cleared"


def test_unack_active_to_unack_rtn_on_clear() -> None:
    m = machine(State.unack_active, True)
    tr = m.set_condition(False, 3)
    assert tr and tr.after is State.unack_rtn


def test_unack_rtn_to_normal_on_ack() -> None:
    m = machine(State.unack_rtn, False)
    tr = m.ack("op", 4)
    assert tr.after is State.normal


def test_unack_rtn_back_to_unack_active_when_condition_returns() -> None:
    m = machine(State.unack_rtn, False)
    tr = m.set_condition(True, 5)
    assert tr and tr.after is State.unack_active


def test_no_transition_when_condition_unchanged() -> None:
    m = machine(State.unack_active, True)
    assert m.set_condition(True, 6) is None
    m2 = machine(State.normal, False)
    assert m2.set_condition(False, 6) is None


@pytest.mark.parametrize(
    "state,condition", [(State.normal, False), (State.ack_active, True), (State.shelved, True)]
)
def test_ack_refused_where_there_is_nothing_to_ack(state: State, condition: bool) -> None:
    with pytest.raises(InvalidTransition) as err:
        machine(state, condition).ack("op", 1)
    assert err.value.code == "alarm_transition_invalid" and err.value.status == 409


@pytest.mark.parametrize("state", [State.normal, State.unack_active, State.ack_active, State.unack_rtn])
def test_shelve_from_every_state_hides_condition_changes(state: State) -> None:
    cond = state in (State.unack_active, State.ack_active)
    m = machine(state, cond)
    tr = m.shelve("op", 10, 10 + 60 * S)
    assert (tr.before, tr.after, tr.user) == (state, State.shelved, "op")
    assert m.set_condition(not cond, 11) is None  # remembered, not shown
    assert m.condition is (not cond) and m.state is State.shelved


def test_unshelve_by_hand_follows_the_condition() -> None:
    m = machine(State.normal, False)
    m.shelve("op", 0, 100 * S)
    m.set_condition(True, 1)
    tr = m.unshelve(2, "op")
    assert (tr.after, tr.cause) == (State.unack_active, "unshelved")
    m2 = machine(State.unack_active, True)
    m2.shelve("op", 0, 100 * S)
    m2.set_condition(False, 1)
    assert m2.unshelve(2, "op").after is State.normal


def test_shelf_expires_at_exactly_its_end() -> None:
    m = machine(State.unack_active, True)
    m.shelve("op", 0, 60 * S)
    assert m.tick(60 * S - 1) is None
    tr = m.tick(60 * S)
    assert tr and (tr.after, tr.cause, tr.user) == (State.unack_active, "shelf_expired", None)
    assert m.shelved_until is None


def test_bad_shelving_requests() -> None:
    m = machine(State.normal, False)
    with pytest.raises(InvalidTransition):
        m.shelve("op", 10, 10)
    m.shelve("op", 10, 20)
    with pytest.raises(InvalidTransition):
        m.shelve("op", 11, 30)
    with pytest.raises(InvalidTransition):
        machine(State.normal, False).unshelve(1, "op")
