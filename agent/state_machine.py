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


class Trigger(StrEnum):
    """Everything that moves a state machine. A StrEnum, so the tables read as plain words."""

    CONNECTED = "connected"
    RESTORE_POSITION = "restore_position"
    RESTORE_ENTRY = "restore_entry"          # an entry order still working at the venue
    WARMED_UP = "warmed_up"
    SIGNAL = "signal"
    SKIP = "skip"
    CHECK_RISK = "check_risk"
    REJECTED = "rejected"
    APPROVED = "approved"
    ENTRY_FILLED = "entry_filled"
    ENTRY_FAILED = "entry_failed"
    EXIT = "exit"                            # the agent closes at market (time, manual, emergency)
    EXIT_FILLED = "exit_filled"              # a resting exit, or the agent's market exit, filled
    EXIT_FAILED = "exit_failed"
    REARM = "rearm"
    START = "start"
    STARTED = "started"
    FAIL = "fail"
    HALT = "halt"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CLEAR = "clear"


P = PositionState
T = Trigger
POSITION_TABLE: dict[tuple[PositionState, Trigger], PositionState] = {
    (P.INITIALIZING, T.CONNECTED): P.CONNECTED,
    (P.INITIALIZING, T.RESTORE_POSITION): P.IN_POSITION,
    (P.INITIALIZING, T.RESTORE_ENTRY): P.ENTERING,
    (P.CONNECTED, T.WARMED_UP): P.MONITORING,
    (P.MONITORING, T.SIGNAL): P.SIGNAL,
    (P.SIGNAL, T.SKIP): P.MONITORING,
    (P.SIGNAL, T.CHECK_RISK): P.RISK_CHECK,
    (P.RISK_CHECK, T.REJECTED): P.MONITORING,
    (P.RISK_CHECK, T.APPROVED): P.ENTERING,
    (P.ENTERING, T.ENTRY_FILLED): P.IN_POSITION,
    (P.ENTERING, T.ENTRY_FAILED): P.MONITORING,
    (P.IN_POSITION, T.EXIT): P.EXITING,
    (P.IN_POSITION, T.EXIT_FILLED): P.CLOSED,
    (P.EXITING, T.EXIT_FILLED): P.CLOSED,
    (P.EXITING, T.EXIT_FAILED): P.IN_POSITION,
    (P.CLOSED, T.REARM): P.MONITORING,
}

R = RunState
RUN_TABLE: dict[tuple[RunState, Trigger], RunState] = {
    (R.STOPPED, T.START): R.STARTING,
    (R.STARTING, T.STARTED): R.RUNNING,
    (R.STARTING, T.FAIL): R.ERROR,
    (R.STARTING, T.HALT): R.HALTED,
    (R.RUNNING, T.PAUSE): R.PAUSED,
    (R.PAUSED, T.RESUME): R.RUNNING,
    (R.RUNNING, T.HALT): R.HALTED,
    (R.PAUSED, T.HALT): R.HALTED,
    (R.STOPPED, T.HALT): R.HALTED,
    (R.HALTED, T.HALT): R.HALTED,
    (R.ERROR, T.HALT): R.HALTED,
    (R.RUNNING, T.FAIL): R.ERROR,
    (R.PAUSED, T.FAIL): R.ERROR,
    (R.RUNNING, T.STOP): R.STOPPED,
    (R.PAUSED, T.STOP): R.STOPPED,
    (R.STARTING, T.STOP): R.STOPPED,
    (R.ERROR, T.STOP): R.STOPPED,
    (R.HALTED, T.CLEAR): R.STOPPED,
}


S = TypeVar("S", bound=StrEnum)


class StateMachine(Generic[S]):
    """A current state plus the table that says where each trigger leads."""

    def __init__(self, name: str, table: dict[tuple[S, Trigger], S], initial: S) -> None:
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
