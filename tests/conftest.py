"""Fixtures shared by engine-level tests: the synthetic sample on disk and config builders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.config import AgentConfig, parse_config
from data.sample import generate_sample, write_csv

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "agent" / "default_config.json"


def make_config(**sections: dict) -> AgentConfig:
    """The packaged default config with some fields overridden, e.g.
    make_config(risk_management={"max_daily_trades": 1})."""
    raw = json.loads(DEFAULT_CONFIG.read_text())
    for section, values in sections.items():
        raw[section].update(values)
    return parse_config(json.dumps(raw), source="test config")


# Relaxed thresholds with every exit enabled: many trades, all exit kinds, on the sample.
ACTIVE = dict(
    seller_params={"vol_z": 1.5, "tr_z": 1.0, "cloc_min": 0.5},
    backtest_params={"use_stop_loss": True, "use_traditional_tp": True, "use_time_exit": True,
                     "reward_r": 3.0, "max_hold": 48},
)


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "synthetic_sample_15m.csv"
    write_csv(generate_sample(), path)
    return path


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_ABSENT: set[str] = set()


def require_shared(path: Path, what: str = "golden parity") -> None:
    """Skip when ../shared data is absent (a fresh clone), with the reason in one line at the
    end of the run; with CI set, its absence is a failure, never a silent skip."""
    if Path(path).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {path} is absent: {what} not checked", pytrace=False)
    _ABSENT.add(what)
    pytest.skip(f"{path} absent: {what} not checked")


def pytest_terminal_summary(terminalreporter) -> None:
    if _ABSENT:
        terminalreporter.write_line(f"NOTE: ../shared ({SHARED}) is absent: {', '.join(sorted(_ABSENT))} "
                                    "tests skipped (set CI=1 to make this a failure)")


# The local exchange simulator's fixtures (`sim`, `ccxt_client`), available to every test.
from tests.exchange_sim.fixtures import ccxt_client, sim  # noqa: E402,F401
