"""An in-memory keyring backend for tests (keyring ships only the `fail` one)."""
from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


class BrokenKeyring(MemoryKeyring):
    """A backend that exists but fails (a locked or vanished Secret Service)."""

    def get_password(self, service, username):
        raise RuntimeError("D-Bus connection lost")

    def set_password(self, service, username, password):
        raise RuntimeError("D-Bus connection lost")
