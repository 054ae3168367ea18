"""Asks for the exchange API keys a testnet or live config needs, and stores them in the OS
keyring (agent.credentials: the same services `trading-agent keys set` uses).

Guarantees: the fields are masked while typed; a stored value is never shown again, only its
last 4 characters (credentials.mask); the typed values leave the dialog once (take_values) and
the fields are cleared. Without a usable keyring backend the dialog says so, offers no Save,
and names the environment variables and the .env file that work instead.

Asked from the window (Start, an imported config, the API keys menu) or, for a testnet or live
config started from the command line without keys, before the window opens
(ask_before_window), so the operator is asked instead of refused."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QFormLayout, QLabel,
                               QLineEdit, QVBoxLayout, QWidget)

from agent import credentials as cr
from agent.config import AgentConfig
from monitoring.redaction import register_secret
from ui import theme

LABELS = {"api_key": "API key", "api_secret": "API secret",
          "api_passphrase": "Passphrase (if the exchange uses one)"}
REQUIRED = ("api_key", "api_secret")

log = logging.getLogger(__name__)


def keyring_problem() -> str | None:
    """Why the OS keyring cannot store keys here, or None when it can."""
    try:
        cr.keyring_get(cr.telegram_service(), "chat_id")
    except cr.KeyringUnavailable as exc:
        return str(exc)
    return None


def alternative_text(env_file: str | None) -> str:
    names = ", ".join(cr.ENV_NAMES[f] for f in REQUIRED)
    where = env_file or "a .env file beside the config"
    return (f"Instead, set {names} in the agent's environment, or write them into {where} "
            "(then chmod 600 it).")


class CredentialsDialog(QDialog):
    """See the module docstring."""

    def __init__(self, parent: QWidget | None, *, mode: str, exchange: str, account: str,
                 found: cr.Credentials, problem: str | None, env_file: str | None) -> None:
        super().__init__(parent)
        self.setObjectName("credentialsDialog")
        self.setWindowTitle("Exchange API keys")
        self.setModal(True)
        self.service = cr.exchange_service(exchange, account)
        intro = QLabel(
            f"The {mode.upper()} config trades on {exchange} (key set “{account}”) and needs its "
            f"API key and secret.\nThey are stored in the OS keyring ({self.service}) and are "
            "never shown again: only their last 4 characters.")
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        form = QFormLayout()
        self.fields: dict[str, QLineEdit] = {}
        for name, caption in LABELS.items():
            edit = QLineEdit()
            edit.setObjectName(f"credential_{name}")
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)
            stored = found.get(name)
            edit.setPlaceholderText(
                f"found: {cr.mask(stored)} ({found.sources.get(name, '')}); type to replace"
                if stored else ("required" if name in REQUIRED else "optional"))
            edit.textChanged.connect(self._update_save)
            form.addRow(caption, edit)
            self.fields[name] = edit
        layout.addLayout(form)
        self.problem_label = QLabel("")
        self.problem_label.setObjectName("keyringProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(f"color: {theme.DOWN};")
        layout.addWidget(self.problem_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.addButton("Save to keyring",
                                             QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setObjectName("saveCredentials")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._found = found
        self.keyring_ok = problem is None
        if problem is not None:
            self.problem_label.setText(f"The keys cannot be stored here: {problem}.\n"
                                       + alternative_text(env_file))
            for edit in self.fields.values():
                edit.setEnabled(False)
        self._update_save()
        self.setMinimumWidth(560)

    def _update_save(self) -> None:
        complete = all(self.fields[f].text().strip() or self._found.get(f) for f in REQUIRED)
        typed = any(edit.text().strip() for edit in self.fields.values())
        self.save_button.setEnabled(self.keyring_ok and complete and typed)

    def take_values(self) -> dict[str, str]:
        """The typed values (trimmed, non-empty), once: the fields are cleared."""
        values = {name: edit.text().strip() for name, edit in self.fields.items()
                  if edit.text().strip()}
        for edit in self.fields.values():
            edit.clear()
        return values


def dialog_env_file(config_path: Path | None) -> str | None:
    env_file = cr.env_file_for(config_path)
    return str(env_file) if env_file else None


def dialog_for(config: AgentConfig, config_path: Path | None, found: cr.Credentials,
               parent: QWidget | None = None) -> CredentialsDialog:
    ex = config.exchange
    return CredentialsDialog(parent, mode=config.mode, exchange=ex.exchange_name,
                             account=cr.default_account(ex.testnet), found=found,
                             problem=keyring_problem(), env_file=dialog_env_file(config_path))


def store_in_keyring(service: str, values: dict[str, str]) -> str:
    """Store typed values in the OS keyring and read each back; returns what was stored, masked
    ("api_key ****abcd, ..."). Raises KeyringUnavailable when the keyring did not keep one."""
    for name, value in values.items():
        register_secret(value)           # before anything could print it
        cr.keyring_set(service, name, value)
        if cr.keyring_get(service, name) != value:
            raise cr.KeyringUnavailable(f"the OS keyring did not keep {service} {name}")
    log.info("operator: API keys stored in the OS keyring %s (%s)", service, ", ".join(values))
    return ", ".join(f"{name} {cr.mask(value)}" for name, value in values.items())


def ask_before_window(config: AgentConfig, config_path: Path | None, found: cr.Credentials) -> bool:
    """The dialog on its own, before the window opens; True when keys were stored."""
    app = QApplication.instance() or QApplication(sys.argv[:1])   # noqa: F841 - kept alive
    dialog = dialog_for(config, config_path, found)
    accepted = dialog.exec() == QDialog.DialogCode.Accepted
    values = dialog.take_values()
    if not accepted or not values:
        return False
    try:
        store_in_keyring(dialog.service, values)
    except cr.KeyringUnavailable as exc:
        log.error("the API keys were not stored: %s. %s", exc, alternative_text(dialog_env_file(config_path)))
        return False
    return True
