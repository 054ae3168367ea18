"""The transition tables are the behaviour: every legal row works, anything else raises."""
import pytest

from agent.state_machine import (POSITION_TABLE, RUN_TABLE, IllegalTransition, PositionState,
                                 RunState, StateMachine)


@pytest.mark.parametrize(("state", "trigger", "target"),
                         [(s, t, n) for (s, t), n in POSITION_TABLE.items()])
def test_every_legal_position_transition_lands_where_the_table_says(state, trigger, target):
    fsm = StateMachine("position", POSITION_TABLE, state)
    assert fsm.transition(trigger) is target
    assert fsm.state is target


@pytest.mark.parametrize(("state", "trigger", "target"), [(s, t, n) for (s, t), n in RUN_TABLE.items()])
def test_every_legal_run_transition_lands_where_the_table_says(state, trigger, target):
    fsm = StateMachine("run", RUN_TABLE, state)
    assert fsm.transition(trigger) is target


@pytest.mark.parametrize(("state", "trigger"), [
    (PositionState.MONITORING, "entry_filled"),  # a fill with no order in flight
    (PositionState.IN_POSITION, "signal"),       # no pyramiding
    (PositionState.ENTERING, "exit"),            # cannot exit what is not filled yet
    (PositionState.CLOSED, "signal"),            # must re-arm first
    (PositionState.INITIALIZING, "approved"),
])
def test_illegal_position_transitions_raise_and_keep_the_state(state, trigger):
    fsm = StateMachine("position", POSITION_TABLE, state)
    with pytest.raises(IllegalTransition, match=trigger):
        fsm.transition(trigger)
    assert fsm.state is state


@pytest.mark.parametrize(("state", "trigger"), [
    (RunState.HALTED, "start"),      # a halt must be cleared by the operator first
    (RunState.HALTED, "resume"),
    (RunState.STOPPED, "pause"),
    (RunState.ERROR, "started"),
    (RunState.RUNNING, "clear"),
])
def test_illegal_run_transitions_raise(state, trigger):
    fsm = StateMachine("run", RUN_TABLE, state)
    assert not fsm.can(trigger)
    with pytest.raises(IllegalTransition):
        fsm.transition(trigger)


def test_a_full_round_trip_follows_the_prd_states():
    fsm = StateMachine("position", POSITION_TABLE, PositionState.INITIALIZING)
    path = [fsm.transition(t) for t in ("connected", "warmed_up", "signal", "check_risk", "approved",
                                        "entry_filled", "exit", "exit_filled", "rearm")]
    assert [s.value for s in path] == ["CONNECTED", "MONITORING", "SIGNAL", "RISK_CHECK", "ENTERING",
                                       "IN_POSITION", "EXITING", "CLOSED", "MONITORING"]
