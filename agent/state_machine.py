"""The engine's two state machines, as data.

Reading a table is reading the behaviour: every legal `(state, trigger) -> next state` is listed
here and nowhere else. A trigger that is not in the table is a bug in the caller; it raises
IllegalTransition, which the engine turns into a HALT logged at CRITICAL (invariant 2), never a
silent no-op."""
from __future__ import annotations

from enum import StrEnum
from typing import Generic, TypeVar


class IllegalTransition(RuntimeError):
    """A trigger fired in a state whose table has no row for it."""


class PositionState(StrEnum):
    INITIALIZING = "INITIALIZING"
    CONNECTED = "CONNECTED"
    MONITORING = "MONITORING"
    SIGNAL = "SIGNAL"
    RISK_CHECK = "RISK_CHECK"
    ENTERING = "ENTERING"
    IN_POSITION = "IN_POSITION"
    EXITING = "EXITING"
    CLOSED = "CLOSED"


class RunState(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    HALTED = "HALTED"
    ERROR = "ERROR"


P = PositionState
POSITION_TABLE: dict[tuple[PositionState, str], PositionState] = {
    (P.INITIALIZING, "connected"): P.CONNECTED,
    (P.INITIALIZING, "restore_position"): P.IN_POSITION,
    (P.CONNECTED, "warmed_up"): P.MONITORING,
    (P.CONNECTED, "restore_position"): P.IN_POSITION,
    (P.MONITORING, "signal"): P.SIGNAL,
    (P.SIGNAL, "skip"): P.MONITORING,
    (P.SIGNAL, "check_risk"): P.RISK_CHECK,
    (P.RISK_CHECK, "rejected"): P.MONITORING,
    (P.RISK_CHECK, "approved"): P.ENTERING,
    (P.ENTERING, "filled"): P.IN_POSITION,
    (P.ENTERING, "failed"): P.MONITORING,
    (P.IN_POSITION, "exit"): P.EXITING,
    (P.EXITING, "filled"): P.CLOSED,
    (P.EXITING, "failed"): P.IN_POSITION,
    (P.CLOSED, "rearm"): P.MONITORING,
}

R = RunState
RUN_TABLE: dict[tuple[RunState, str], RunState] = {
    (R.STOPPED, "start"): R.STARTING,
    (R.STARTING, "started"): R.RUNNING,
    (R.STARTING, "fail"): R.ERROR,
    (R.STARTING, "halt"): R.HALTED,
    (R.RUNNING, "pause"): R.PAUSED,
    (R.PAUSED, "resume"): R.RUNNING,
    (R.RUNNING, "halt"): R.HALTED,
    (R.PAUSED, "halt"): R.HALTED,
    (R.STOPPED, "halt"): R.HALTED,
    (R.HALTED, "halt"): R.HALTED,
    (R.RUNNING, "fail"): R.ERROR,
    (R.PAUSED, "fail"): R.ERROR,
    (R.RUNNING, "stop"): R.STOPPED,
    (R.PAUSED, "stop"): R.STOPPED,
    (R.STARTING, "stop"): R.STOPPED,
    (R.ERROR, "stop"): R.STOPPED,
    (R.HALTED, "clear"): R.STOPPED,
}


S = TypeVar("S", bound=StrEnum)


class StateMachine(Generic[S]):
    """A current state plus the table that says where each trigger leads."""

    def __init__(self, name: str, table: dict[tuple[S, str], S], initial: S) -> None:
        self.name = name
        self._table = table
        self.state = initial

    def can(self, trigger: str) -> bool:
        return (self.state, trigger) in self._table

    def transition(self, trigger: str) -> S:
        try:
            self.state = self._table[(self.state, trigger)]
        except KeyError:
            raise IllegalTransition(
                f"{self.name}: trigger {trigger!r} is not allowed in state {self.state}") from None
        return self.state

    def force(self, state: S) -> None:
        """Set the state without a trigger: only for restoring what the store says at startup."""
        self.state = state
