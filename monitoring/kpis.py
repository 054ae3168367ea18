"""The operating KPIs (PRD), computed from the ledger so they survive restarts, each with its
alert threshold. One function for every place that shows them: `trading-agent status`, the
daily summary alert, the window's Performance tab (`kpis_from_store(engine.store, ...)`).

What each one measures, from what the store records:
- execution rate: signals the agent meant to trade that became trades. A signal skipped by a
  rule (in position, paused or halted by the operator, the risk check, no Fibonacci levels, an
  entry already in progress) is not counted; one the agent missed is: its entry order was
  rejected or canceled, it went stale before the entry, or the market data had a gap.
  ENTERED / (ENTERED + missed).
- slippage: each fill of an order that executes at the market (market and stop orders; a
  limit order fills at its price or better) against the price the order was decided at
  (orders.expected_price: the live price for an entry, the stop for a stop exit). Adverse is
  positive: a buy filled higher, a sell lower. Average and worst, in percent.
- fill time: a market order's creation (recorded before it is sent) to its fill report.
- detection latency: the signal candle's close to the entry order's creation (the decision to
  trade, taken at the first price after the close). In a replay both are simulated time (0).
- connection uptime: the share of the live feed's health checks (every 30 s) that found the
  data link up, counted per UTC day in the ledger (link_checks), so it survives restarts. Time
  the agent was not running has no checks: it is not counted either way. A replay has none.

Thresholds (PRD defaults, `Thresholds`): a WARNING when the execution rate is below 90 %, the
average slippage above 0.1 %, the average fill time above 5 s, the uptime below 99 %, the
average detection latency above 1 s. No samples: no value, no warning.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MISSED_PREFIXES = ("entry order ", "stale", "market data incomplete")
_TF = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_execution_rate_pct: float = 90.0
    max_avg_slippage_pct: float = 0.1
    max_fill_time_s: float = 5.0
    min_uptime_pct: float = 99.0
    max_detection_latency_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str                  # execution_rate, slippage, fill_time, uptime, detection_latency
    label: str
    value: float | None        # the figure the threshold applies to (None: no samples)
    text: str                  # the value and its detail, for people
    threshold: str             # e.g. "below 90%"
    breached: bool = False
    worst: float | None = None
    samples: int = 0

    def line(self) -> str:
        flag = f"  WARNING: {self.threshold}" if self.breached else ""
        return f"{self.label}: {self.text}{flag}"


@dataclass(frozen=True, slots=True)
class KpiReport:
    kpis: tuple[Kpi, ...] = field(default_factory=tuple)

    @property
    def warnings(self) -> list[Kpi]:
        return [k for k in self.kpis if k.breached]

    def get(self, name: str) -> Kpi:
        for k in self.kpis:
            if k.name == name:
                return k
        raise KeyError(name)

    def lines(self) -> list[str]:
        return [k.line() for k in self.kpis]


def timeframe_ms(timeframe: str | None) -> int | None:
    """"15m" -> 900000; None for anything else."""
    m = _TF.match(timeframe or "")
    return None if m is None else int(m.group(1)) * _UNIT_MS[m.group(2)]


def _pct(x: float) -> str:
    return f"{x:.1f}%" if abs(x) >= 10 else f"{x:.3g}%"


def _secs(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def compute_kpis(rows: Mapping[str, Sequence[tuple]], *, tf_ms: int | None,
                 thresholds: Thresholds | None = None) -> KpiReport:
    """The KPIs from `Store.kpi_rows()` (see the module docstring for the definitions)."""
    th = thresholds or Thresholds()
    out: list[Kpi] = []

    # signal-to-trade execution rate
    signals = rows.get("signals", ())
    entered = sum(1 for _, action, _ in signals if action == "ENTERED")
    missed = sum(1 for _, action, reason in signals
                 if action == "SKIPPED" and str(reason).startswith(MISSED_PREFIXES))
    by_rule = len(signals) - entered - missed
    meant = entered + missed
    rate = None if meant == 0 else 100.0 * entered / meant
    out.append(Kpi("execution_rate", "execution rate", rate,
                   ("no signal to trade yet" if rate is None else
                    f"{_pct(rate)} ({entered} of {meant} signals traded)")
                   + (f"; {by_rule} skipped by rule" if by_rule else ""),
                   f"below {th.min_execution_rate_pct:g}%",
                   rate is not None and rate < th.min_execution_rate_pct, samples=meant))

    # slippage (market and stop fills against the decision price)
    slips = []
    for purpose, side, typ, expected, fill, _, _ in rows.get("fills", ()):
        if typ == "limit" or not expected or fill is None:
            continue
        diff = (fill - expected) if side == "buy" else (expected - fill)
        slips.append(100.0 * diff / expected)
    avg = None if not slips else sum(slips) / len(slips)
    worst = None if not slips else max(slips)
    out.append(Kpi("slippage", "slippage", avg,
                   "no market fill yet" if avg is None else
                   f"average {avg:+.3f}%, worst {worst:+.3f}% ({len(slips)} fills; + is adverse)",
                   f"average above {th.max_avg_slippage_pct:g}%",
                   avg is not None and avg > th.max_avg_slippage_pct, worst=worst, samples=len(slips)))

    # order fill time (market orders: submit -> fill)
    waits = [max(0, updated - created) for _, _, typ, _, _, created, updated in rows.get("fills", ())
             if typ == "market" and updated is not None]
    avg_ms = None if not waits else sum(waits) / len(waits)
    out.append(Kpi("fill_time", "fill time", None if avg_ms is None else avg_ms / 1000,
                   "no market fill yet" if avg_ms is None else
                   f"average {_secs(avg_ms)}, worst {_secs(max(waits))} ({len(waits)} market orders)",
                   f"average above {th.max_fill_time_s:g} s",
                   avg_ms is not None and avg_ms / 1000 > th.max_fill_time_s,
                   worst=None if not waits else max(waits) / 1000, samples=len(waits)))

    # connection uptime (health checks of the live feed, per UTC day)
    link = rows.get("link", ())
    checks, up_checks = sum(r[1] for r in link), sum(r[2] for r in link)
    up = None if checks == 0 else 100.0 * up_checks / checks
    out.append(Kpi("uptime", "connection uptime", up,
                   "no health check recorded yet (a live feed checks every 30 s; a replay has none)"
                   if up is None else
                   f"{_pct(up)} of {checks} health checks ({checks - up_checks} with the link down)",
                   f"below {th.min_uptime_pct:g}%", up is not None and up < th.min_uptime_pct,
                   samples=checks))

    # signal detection latency (candle close -> entry decision)
    lat: list[int] = []
    if tf_ms is not None:
        lat = [max(0, created - (bar + tf_ms)) for bar, created in rows.get("entries", ())]
    avg_lat = None if not lat else sum(lat) / len(lat)
    out.append(Kpi("detection_latency", "detection latency", None if avg_lat is None else avg_lat / 1000,
                   ("no entry yet" if tf_ms is not None else "unknown timeframe") if avg_lat is None else
                   f"average {_secs(avg_lat)}, worst {_secs(max(lat))} from candle close to entry "
                   f"order ({len(lat)} entries)",
                   f"average above {th.max_detection_latency_s:g} s",
                   avg_lat is not None and avg_lat / 1000 > th.max_detection_latency_s,
                   worst=None if not lat else max(lat) / 1000, samples=len(lat)))
    return KpiReport(tuple(out))


def kpis_from_store(store: Any, *, since_ms: int | None = None,
                    thresholds: Thresholds | None = None, timeframe: str | None = None) -> KpiReport:
    """The KPIs of a store (read-only or the engine's own; a handful of small queries).
    `timeframe` defaults to the data folder's identity."""
    if timeframe is None:
        identity = store.identity()
        timeframe = None if identity is None else identity.timeframe
    return compute_kpis(store.kpi_rows(since_ms), tf_ms=timeframe_ms(timeframe),
                        thresholds=thresholds)
