"""`trading-agent keys set|show|delete|import`: the operator's keyring commands.

- set: prompts (no echo) for each field, or reads one value per line from a pipe; stores in the
  OS keyring under the exchange and account (or the Telegram service with --telegram).
- show: for every field, where the agent would find it and only its last 4 characters.
- delete: removes the keyring entries.
- import CONFIG: moves real keys out of a config.json into the keyring, then rewrites the file
  with the exporter's placeholders atomically (temp file, fsync, rename). Nothing is rewritten
  unless every key was stored and read back.

Exit codes: 0 done, 2 bad input, 3 refused (no keyring to store into)."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from agent import credentials as cr

EXIT_OK, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 2, 3
_PLACEHOLDER = re.compile(r"YOUR_[A-Z0-9_]+_HERE")
# Where a config.json holds credentials: (section, key) -> keyring field
CONFIG_CREDENTIALS = {("exchange", "api_key"): "api_key",
                      ("exchange", "api_secret"): "api_secret",
                      ("exchange", "api_passphrase"): "api_passphrase",
                      ("data_feed", "polygon_api_key"): "polygon_api_key"}


def is_placeholder(value) -> bool:
    return value is None or (isinstance(value, str) and (not value.strip() or bool(_PLACEHOLDER.fullmatch(value))))


def exporter_placeholders() -> dict[tuple[str, str], str | None]:
    """The exporter's own placeholders, read from the packaged example config."""
    raw = json.loads(resources.files("agent").joinpath("default_config.json").read_text(encoding="utf-8"))
    return {loc: raw[loc[0]][loc[1]] for loc in CONFIG_CREDENTIALS}


def build_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub = p.add_subparsers(dest="action", required=True, metavar="{set,show,delete,import}")
    for name, text in (("set", "store keys in the OS keyring"),
                       ("show", "where each key is found, last 4 characters only"),
                       ("delete", "remove keys from the OS keyring")):
        s = sub.add_parser(name, help=text)
        _target_args(s)
        if name == "set":
            s.add_argument("--field", action="append", choices=cr.ALL_FIELDS,
                           help="only this field (repeatable; default: all of the service)")
    imp = sub.add_parser("import", help="move real keys out of a config.json into the keyring")
    imp.add_argument("config", type=Path)
    imp.add_argument("--account", help="keyring account (default: testnet or live, from the config)")
    return p


def _target_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--config", type=Path, help="take the exchange and account from this config "
                   "(and look for a .env beside it)")
    s.add_argument("--exchange", help="ccxt exchange id (default: from --config, else binance)")
    s.add_argument("--account", help="key set name (default: testnet or live, from --config)")
    s.add_argument("--telegram", action="store_true", help="the Telegram bot token and chat id")


def main(argv: list[str]) -> int:
    args = build_parser(argparse.ArgumentParser(prog="trading-agent keys")).parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "import":
            return import_config(args.config, args.account)
        exchange, account = _target(args)
        fields = cr.TELEGRAM_FIELDS if args.telegram else cr.EXCHANGE_FIELDS
        if args.action == "set":
            return set_keys(exchange, account, tuple(args.field or fields))
        if args.action == "show":
            return show_keys(exchange, account, fields, args.config)
        return delete_keys(exchange, account, fields)
    except cr.KeyringUnavailable as exc:
        print(f"refused: {exc}. Without a keyring, use systemd credentials, the environment "
              f"({', '.join(cr.ENV_NAMES.values())}) or a .env file (chmod 600) beside the config.",
              file=sys.stderr)
        return EXIT_REFUSED
    except (cr.CredentialError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _target(args: argparse.Namespace) -> tuple[str, str]:
    exchange, testnet = args.exchange, True
    if args.config is not None:
        raw = _read_json(args.config)
        ex = raw.get("exchange") or {}
        exchange = exchange or ex.get("exchange_name")
        testnet = bool(ex.get("testnet", True))
    return exchange or "binance", args.account or cr.default_account(testnet)


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a config.json object")
    return raw


def _read_values(fields: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    interactive = sys.stdin.isatty()
    for f in fields:
        if interactive:
            value = getpass.getpass(f"{f} (empty to skip): ")
        else:
            value = sys.stdin.readline().rstrip("\r\n")
        if value.strip():
            values[f] = value.strip()
    return values


def set_keys(exchange: str, account: str, fields: tuple[str, ...]) -> int:
    cr._keyring()                                 # fail before asking for anything
    values = _read_values(fields)
    if not values:
        print("nothing stored (every value was empty)", file=sys.stderr)
        return EXIT_BAD_INPUT
    for f, value in values.items():
        if f not in cr.NOT_SECRET:
            cr.register_secret(value)
        service = cr.service_for(f, exchange, account)
        cr.keyring_set(service, f, value)
        print(f"stored {f} in the OS keyring ({service}): {cr.mask(value)}")
    return EXIT_OK


def show_keys(exchange: str, account: str, fields: tuple[str, ...], config: Path | None) -> int:
    creds = cr.load_credentials(exchange=exchange, account=account, config_path=config, fields=fields)
    for f in fields:
        value = creds.get(f)
        shown = value if (value and f in cr.NOT_SECRET) else cr.mask(value)
        print(f"{f}: {shown}" + (f"  ({creds.sources[f]})" if f in creds.sources else ""))
    print("looked in: " + "; ".join(creds.searched))
    return EXIT_OK


def delete_keys(exchange: str, account: str, fields: tuple[str, ...]) -> int:
    for f in fields:
        service = cr.service_for(f, exchange, account)
        deleted = cr.keyring_delete(service, f)
        print(f"{f}: {'deleted from' if deleted else 'was not in'} the OS keyring ({service})")
    return EXIT_OK


def import_config(path: Path, account: str | None) -> int:
    """Keys out of the file into the keyring; the file then holds the exporter's placeholders."""
    raw = _read_json(path)
    ex = raw.get("exchange") if isinstance(raw.get("exchange"), dict) else {}
    exchange = ex.get("exchange_name") or "binance"
    account = account or cr.default_account(bool(ex.get("testnet", True)))
    real: dict[tuple[str, str], str] = {}
    for (section, key) in CONFIG_CREDENTIALS:
        value = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), dict) else None
        if not is_placeholder(value):
            if not isinstance(value, str):
                raise ValueError(f"{section}.{key} is neither a string nor null")
            real[(section, key)] = value.strip()
            cr.register_secret(value)
    if not real:
        print(f"{path} holds no real keys (only placeholders): nothing to import")
        return EXIT_OK
    cr._keyring()
    for (section, key), value in real.items():
        service = cr.exchange_service(exchange, account)
        field_name = CONFIG_CREDENTIALS[(section, key)]
        cr.keyring_set(service, field_name, value)
        if cr.keyring_get(service, field_name) != value:
            raise cr.KeyringUnavailable(f"the OS keyring did not keep {service} {field_name}")
    placeholders = exporter_placeholders()
    for (section, key) in real:
        raw[section][key] = placeholders[(section, key)]
    original = Path(path).read_text(encoding="utf-8")
    text = json.dumps(raw, indent=2, ensure_ascii=False) + ("\n" if original.endswith("\n") else "")
    atomic_write_text(Path(path), text)
    for (section, key), value in real.items():
        print(f"moved {section}.{key} ({cr.mask(value)}) to the OS keyring "
              f"({cr.exchange_service(exchange, account)} {CONFIG_CREDENTIALS[(section, key)]})")
    print(f"rewrote {path} with placeholders. If this file was ever shared or committed, revoke "
          "those keys at the exchange.")
    return EXIT_OK


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same folder with the same mode, fsync, rename, fsync the folder."""
    mode = os.stat(path).st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    from persistence.paths import fsync_dir

    fsync_dir(path.parent)


def register(subparsers) -> None:
    """For an argparse-subcommand CLI: `trading-agent keys ...`."""
    p = subparsers.add_parser("keys", help="API keys and the Telegram token in the OS keyring")
    build_parser(p)
    p.set_defaults(handler=run)
