"""Redaction (invariant 4): unit checks of the redactor and the record factory, and a canary run
of the real agent through errors, whose files and output must not contain the canaries."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.redaction import MASK, forget_secrets, install, redact, register_secret

ROOT = Path(__file__).resolve().parents[1]
KEY = "CanaryKeyQ7wLx93mZpT0aVb"
SECRET = "CanarySecret5fN2kR8dYh1eJu4"
PASSPHRASE = "CanaryPass6GzXo"
TOKEN = "987654321:CanaryTokenAAbbCCddEEffGGhh1122"
SIG = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CANARIES = (KEY, SECRET, PASSPHRASE, TOKEN, SIG)


@pytest.fixture(autouse=True)
def clean_registry():
    forget_secrets()
    yield
    forget_secrets()


def test_registered_secrets_and_their_url_encoding_are_masked():
    register_secret("p@ss/word+123")
    text = redact("x p@ss/word+123 y p%40ss%2Fword%2B123 z")
    assert "p@ss" not in text and "p%40ss" not in text and text.count(MASK) == 2
    register_secret("abc")                                       # too short to be a credential
    assert redact("abc") == "abc"


@pytest.mark.parametrize("text, leaked", [
    (f"GET https://api.binance.com/api/v3/order?symbol=BTCUSDT&timestamp=1&signature={SIG}", SIG),
    ("headers {'X-MBX-APIKEY': 'vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A'}",
     "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"),
    ('{"apiKey": "abcdef123456", "secret": "zyxw98765"}', "zyxw98765"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    (f"POST https://api.telegram.org/bot{TOKEN}/sendMessage", "CanaryTokenAAbb"),
    ("wss://stream.binance.com/ws/pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a", "pqia91ma19a5s61cv6a8"),
])
def test_credential_shaped_text_is_masked_without_registration(text, leaked):
    out = redact(text)
    assert leaked not in out and MASK in out


def test_ordinary_text_is_left_alone():
    text = "order E1700000000000 filled 0.01 BTC @ 43210.5, pnl +12.30 USDT; https://example.com/api/v3/ping"
    assert redact(text) == text


def test_records_are_redacted_at_creation_for_every_handler_including_tracebacks():
    install()
    register_secret(SECRET)
    seen: list[logging.LogRecord] = []

    class Sink(logging.Handler):
        def emit(self, record):
            seen.append(record)

    logger = logging.getLogger("test.redaction.sink")
    sink = Sink()
    logger.addHandler(sink)
    try:
        logger.error("auth %s failed", SECRET)
        try:
            raise RuntimeError(f"exchange said: invalid key {SECRET}")
        except RuntimeError:
            logger.exception("boom")
        logger.warning("stack", stack_info=True, extra={"note": 1})
    finally:
        logger.removeHandler(sink)
    assert SECRET not in seen[0].getMessage() and seen[0].args is None
    assert seen[1].exc_info is None and SECRET not in seen[1].exc_text and "RuntimeError" in seen[1].exc_text
    assert SECRET not in logging.Formatter().format(seen[1])


def test_the_engine_stores_halt_reasons_redacted(tmp_path, sample_csv):
    import asyncio

    from agent.config import default_config
    from agent.session import replay_session
    from persistence.store import Store

    register_secret(SECRET)

    async def go():
        engine = replay_session(default_config(), tmp_path, sample_csv, None)
        await engine.start()
        engine._halt_now(f"exchange rejected key {SECRET} with signature={SIG}")
        await engine.stop()

    asyncio.run(go())
    state = (tmp_path / "state.json").read_text()
    assert "exchange rejected key" in state and SECRET not in state and SIG not in state
    store = Store(tmp_path / "trades.db")
    try:
        assert SECRET not in json.dumps(store.get_meta("checkpoint") or "")
    finally:
        store.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and SIG.encode() not in data, path


# ----- the canary run -------------------------------------------------------------------------
DRIVER = r"""
import os, sys
fault = sys.argv[1]
key, secret = os.environ["EXCHANGE_API_KEY"], os.environ["EXCHANGE_API_SECRET"]
sig = sys.argv[2]
reply = (f"binance {{'code': -2015, 'msg': 'Invalid API-key {key}, IP, or permissions'}} "
         f"POST https://api.binance.com/api/v3/order?symbol=BTCUSDT&timestamp=1&signature={sig} "
         f"headers X-MBX-APIKEY: {key} secret={secret}")
from agent import paper_venue
from agent.venue import OrderRejected
if fault == "reject":
    async def place(self, order):
        raise OrderRejected(reply)
    paper_venue.PaperVenue.place = place
elif fault == "auth":
    async def rules(self):
        raise PermissionError(reply)
    paper_venue.PaperVenue.market_rules = rules
elif fault == "crash":
    from data import replay_feed
    original = replay_feed.ReplayFeed.stream
    async def stream(self, resume_after_ts=None):
        n = 0
        async for event in original(self, resume_after_ts):
            n += 1
            if n > 2500:
                raise RuntimeError(reply)
            yield event
    replay_feed.ReplayFeed.stream = stream
from agent.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _canary_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "TELEGRAM_", "TRADING_AGENT_"))}
    env.update(EXCHANGE_API_KEY=KEY, EXCHANGE_API_SECRET=SECRET, EXCHANGE_API_PASSPHRASE=PASSPHRASE,
               TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_CHAT_ID="424242",
               TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",      # nothing listens: sends fail
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return env


def _assert_no_canary(data_dir: Path, *outputs: str) -> None:
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        blob = path.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in blob, f"{canary[:10]}... in {path}"
    for text in outputs:
        for canary in CANARIES:
            assert canary not in text, f"{canary[:10]}... in the output"


@pytest.mark.slow
@pytest.mark.parametrize("fault, code", [("reject", 0), ("auth", 1), ("crash", 1)])
def test_canary_credentials_never_reach_a_file_or_the_output(tmp_path, fault, code):
    data = tmp_path / "data"
    result = subprocess.run([sys.executable, "-c", DRIVER, fault, SIG, "demo", "--no-gui", "--speed", "max",
                             "--data-dir", str(data)], cwd=ROOT, env=_canary_env(tmp_path),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == code, result.stderr[-3000:]
    log_text = (data / "logs" / "agent.log").read_text()
    if fault == "reject":
        assert "rejected" in log_text and "Invalid API-key" in log_text      # the error itself is kept
    elif fault == "auth":
        assert "start-up failed" in log_text and "PermissionError" in log_text
    else:
        assert "engine-feed died" in log_text and "Invalid API-key" in log_text
    _assert_no_canary(data, result.stdout, result.stderr)


@pytest.mark.slow
def test_canaries_in_bad_config_values_and_an_open_dotenv_are_never_echoed(tmp_path, sample_csv):
    from .conftest import DEFAULT_CONFIG

    data = tmp_path / "data"
    data.mkdir()
    raw = json.loads(DEFAULT_CONFIG.read_text())
    raw["exchange"]["api_key"] = KEY
    raw["exchange"]["api_secret"] = SECRET
    raw["risk_management"]["max_daily_trades"] = -1
    bad = tmp_path / "bad" / "config.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(raw))
    env = _canary_env(tmp_path)
    for k in ("EXCHANGE_API_KEY", "EXCHANGE_API_SECRET", "EXCHANGE_API_PASSPHRASE", "TELEGRAM_BOT_TOKEN"):
        env.pop(k)
    outputs = []
    for args in (["validate-config", str(bad)],
                 ["--no-gui", "--replay", "x.csv", "--config", str(bad), "--data-dir", str(data)]):
        r = subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and "api_key" in r.stderr and "max_daily_trades" in r.stderr
        outputs += [r.stdout, r.stderr]
    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text(DEFAULT_CONFIG.read_text())
    dotenv = good / ".env"
    dotenv.write_text(f"EXCHANGE_API_KEY={KEY}\nEXCHANGE_API_SECRET={SECRET}\nTELEGRAM_BOT_TOKEN={TOKEN}\n")
    dotenv.chmod(0o644)
    r = subprocess.run([sys.executable, "-m", "agent", "--no-gui", "--replay", str(sample_csv), "--config",
                        str(good / "config.json"), "--data-dir", str(data)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"chmod 600 {dotenv}" in r.stderr
    outputs += [r.stdout, r.stderr]
    _assert_no_canary(data, *outputs)
