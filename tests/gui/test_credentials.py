"""A testnet or live config without API keys: the window asks for them (masked), stores them in
the OS keyring and never shows them again (last 4 characters at most); without a keyring
backend it says so and names the environment / .env alternative."""
from __future__ import annotations

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from PySide6.QtWidgets import QLabel, QLineEdit

from agent import credentials as cr
from ui.credentials_dialog import CredentialsDialog
from window_helpers import capture_messages, click, until

pytestmark = pytest.mark.gui
KEY, SECRET = "AKIAkey-0123456789WXYZ", "secret-abcdefghij-9876"


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


@pytest.fixture
def no_env_keys(monkeypatch):
    for name in list(cr.ENV_NAMES.values()) + list(cr.LEGACY_ENV_NAMES.values()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def memory_keyring(no_env_keys):
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring(no_env_keys):
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def testnet(window, monkeypatch):
    """The window's engine with a testnet config; Start is recorded, not run."""
    cfg = window.engine.config
    window.engine.config = cfg.model_copy(update={"exchange": cfg.exchange.model_copy(
        update={"paper_trading": False, "testnet": True})})
    started: list[bool] = []

    async def start() -> None:
        started.append(True)
    monkeypatch.setattr(window.engine, "start", start)
    return started


def _dialog(window) -> CredentialsDialog | None:
    found = [d for d in window.findChildren(CredentialsDialog) if d.isVisible()]
    return found[0] if found else None


def _all_texts(dialog) -> str:
    return "\n".join([w.text() for w in dialog.findChildren(QLabel)]
                     + [e.placeholderText() for e in dialog.findChildren(QLineEdit)]
                     + [e.text() for e in dialog.findChildren(QLineEdit)])


async def test_start_asks_for_masked_keys_and_stores_them_in_the_keyring(
        window, testnet, memory_keyring):
    click(window.control_bar.start_button)
    await until(lambda: _dialog(window) is not None, "the keys are asked for")
    dialog = _dialog(window)
    assert all(e.echoMode() == QLineEdit.EchoMode.Password for e in dialog.fields.values())
    assert not dialog.save_button.isEnabled()
    dialog.fields["api_key"].setText(KEY)
    dialog.fields["api_secret"].setText(SECRET)
    click(dialog.save_button)
    await window.wait_idle()
    service = cr.exchange_service(window.engine.config.exchange.exchange_name, "testnet")
    assert memory_keyring.store[(service, "api_key")] == KEY
    assert memory_keyring.store[(service, "api_secret")] == SECRET
    assert testnet == [True]                                   # then it started
    toasts = [t.label.text() for t in window.notifier.toasts]
    assert any("WXYZ" in t for t in toasts)
    assert not any(KEY in t or SECRET in t for t in toasts)


async def test_stored_keys_are_never_shown_again_only_their_last_four(window, testnet,
                                                                      memory_keyring):
    service = cr.exchange_service(window.engine.config.exchange.exchange_name, "testnet")
    memory_keyring.store[(service, "api_key")] = KEY
    memory_keyring.store[(service, "api_secret")] = SECRET
    window.edit_credentials()
    await until(lambda: _dialog(window) is not None, "the keys dialog")
    dialog = _dialog(window)
    text = _all_texts(dialog)
    assert "WXYZ" in text and "9876" in text
    assert KEY not in text and SECRET not in text and KEY[:-4] not in text
    dialog.reject()
    await window.wait_idle()


async def test_start_with_keys_already_stored_asks_nothing(window, testnet, memory_keyring):
    service = cr.exchange_service(window.engine.config.exchange.exchange_name, "testnet")
    memory_keyring.store[(service, "api_key")] = KEY
    memory_keyring.store[(service, "api_secret")] = SECRET
    await window.start_engine()
    assert testnet == [True] and _dialog(window) is None


async def test_without_a_keyring_the_window_says_so_and_names_the_alternative(
        window, testnet, no_keyring, monkeypatch):
    shown = capture_messages(monkeypatch)
    click(window.control_bar.start_button)
    await until(lambda: _dialog(window) is not None, "the keys dialog")
    dialog = _dialog(window)
    problem = dialog.problem_label.text()
    assert "no OS keyring backend" in problem
    assert "EXCHANGE_API_KEY" in problem and "EXCHANGE_API_SECRET" in problem and ".env" in problem
    assert not dialog.save_button.isEnabled()
    dialog.reject()
    await window.wait_idle()
    assert testnet == []                                       # not started
    (title, text), = shown
    assert title == "Start refused" and "missing credentials: api_key, api_secret" in text


def _testnet_config():
    from agent.config import default_config

    cfg = default_config()
    return cfg.model_copy(update={"exchange": cfg.exchange.model_copy(
        update={"paper_trading": False, "testnet": True})})


def _when_asked(answer: dict[str, str] | None, seen: list[str]) -> None:
    """When the modal keys dialog shows: type `answer` and Save, or Cancel (None)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def act(tries: int = 0) -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, CredentialsDialog):
            if tries < 500:
                QTimer.singleShot(10, lambda: act(tries + 1))
            return
        seen.append(_all_texts(dialog))
        if answer is None:
            dialog.reject()
            return
        for name, value in answer.items():
            dialog.fields[name].setText(value)
        click(dialog.save_button)

    QTimer.singleShot(0, act)


def _cli_args(no_gui: bool):
    import argparse

    return argparse.Namespace(no_gui=no_gui, config=None)


def test_a_testnet_run_started_without_keys_asks_for_them_before_the_window_opens(
        qapp, memory_keyring):
    from agent import cli

    cfg, seen = _testnet_config(), []
    _when_asked({"api_key": KEY, "api_secret": SECRET}, seen)
    creds = cli._credentials(cfg, _cli_args(no_gui=False), "testnet", None)
    assert len(seen) == 1 and "TESTNET" in seen[0]
    assert (creds.api_key, creds.api_secret) == (KEY, SECRET)
    service = cr.exchange_service(cfg.exchange.exchange_name, "testnet")
    assert memory_keyring.store[(service, "api_key")] == KEY


def test_cancelling_the_keys_before_the_window_refuses_the_run_naming_where_keys_were_looked_for(
        qapp, memory_keyring):
    from agent import cli

    seen: list[str] = []
    _when_asked(None, seen)
    with pytest.raises(cli.Refused, match="testnet trading needs exchange credentials.*EXCHANGE_API_KEY"):
        cli._credentials(_testnet_config(), _cli_args(no_gui=False), "testnet", None)
    assert len(seen) == 1 and memory_keyring.store == {}


def test_headless_runs_are_refused_without_keys_and_never_ask(memory_keyring, monkeypatch):
    from agent import cli
    from ui import credentials_dialog

    monkeypatch.setattr(credentials_dialog, "ask_before_window",
                        lambda *a: pytest.fail("a headless run opened a dialog"))
    with pytest.raises(cli.Refused, match="testnet trading needs exchange credentials"):
        cli._credentials(_testnet_config(), _cli_args(no_gui=True), "testnet", None)
