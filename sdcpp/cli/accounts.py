"""``sdcpp users`` and ``sdcpp keys``: accounts and API keys of a server's data dir.

They open the server's database directly (SQLite in WAL mode), so they work while the server
runs, and the server sees each change at the next request: roles and the active flag are read
per request, revoked keys stop working at once.

    sdcpp users add NAME [--role admin] [--password-stdin]    users list [--json]
    sdcpp users passwd NAME [--password-stdin]                users role NAME admin|user
    sdcpp users disable|enable|delete NAME
    sdcpp keys create --user NAME [--name N] [--json]         keys list [--user NAME] [--json]
    sdcpp keys revoke ID_OR_PREFIX
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import sys
from typing import Any

from ..errors import InvalidArgument


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="the server's data dir (default ./sdcpp-data)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="accounts of the REST server (auth)")
    usub = users.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="create a local account")
    add.add_argument("name")
    add.add_argument("--role", choices=["user", "admin"], default="user")
    pw = add.add_mutually_exclusive_group()
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.add_argument(
        "--no-password", action="store_true", help="no local login (a PAM or unix user's role)"
    )
    add.set_defaults(func=run_users_add)
    passwd = usub.add_parser("passwd", help="set a password (signs out the user's sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=run_users_passwd)
    role = usub.add_parser("role", help="make an account admin or user")
    role.add_argument("name")
    role.add_argument("role", choices=["user", "admin"])
    role.set_defaults(func=run_users_role)
    for name, func, text in (
        ("disable", run_users_disable, "refuse every login, token and key of an account"),
        ("enable", run_users_enable, "undo disable"),
        ("delete", run_users_delete, "delete an account and its API keys"),
    ):
        cmd = usub.add_parser(name, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(func=func)
    ls = usub.add_parser("list", help="all accounts")
    ls.set_defaults(func=run_users_list)
    for cmd in (add, passwd, role, ls, *(usub.choices[n] for n in ("disable", "enable", "delete"))):
        _data_dir_arg(cmd)

    keys = sub.add_parser("keys", help="API keys of the REST server (auth)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="a new key (printed once, never again)")
    create.add_argument("--user", required=True)
    create.add_argument("--name", default="default")
    create.set_defaults(func=run_keys_create)
    kls = ksub.add_parser("list", help="keys (never the keys themselves)")
    kls.add_argument("--user")
    kls.set_defaults(func=run_keys_list)
    revoke = ksub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    revoke.set_defaults(func=run_keys_revoke)
    for cmd in (create, kls, revoke):
        _data_dir_arg(cmd)


def _store(args: argparse.Namespace) -> Any:
    from ..server.auth.store import open_auth_store
    from ..server.settings import Settings

    settings = Settings.load(cli={"data_dir": args.data_dir})
    if not settings.data_dir.is_dir():
        raise InvalidArgument(f"no data dir at {settings.data_dir} (use --data-dir)")
    return open_auth_store(settings)  # SDCPP_DATABASE_URL: the accounts in PostgreSQL


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidArgument("the passwords differ")
    else:
        raise InvalidArgument("no terminal: pass the password on stdin with --password-stdin")
    if not password:
        raise InvalidArgument("empty password")
    return password


def _print(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def run_users_add(args: argparse.Namespace) -> int:
    from ..server.auth import accounts

    password = None if args.no_password else _password(args)
    with _store(args) as store:
        user = accounts.add_user(store, args.name, args.role, password)
    return _print(args, user.public(), f"added {user.username} ({user.role})")


def run_users_passwd(args: argparse.Namespace) -> int:
    from ..server.auth import accounts

    password = _password(args)
    with _store(args) as store:
        user = accounts.set_password(store, args.name, password)
    return _print(args, user.public(), f"password of {user.username} changed")


def run_users_role(args: argparse.Namespace) -> int:
    with _store(args) as store:
        user = store.set_role(args.name, args.role)
    return _print(args, user.public(), f"{user.username} is now {user.role}")


def run_users_disable(args: argparse.Namespace) -> int:
    with _store(args) as store:
        user = store.set_active(args.name, False)
    return _print(args, user.public(), f"{user.username} disabled")


def run_users_enable(args: argparse.Namespace) -> int:
    with _store(args) as store:
        user = store.set_active(args.name, True)
    return _print(args, user.public(), f"{user.username} enabled")


def run_users_delete(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.delete_user(args.name)
    return _print(args, {"deleted": args.name}, f"{args.name} deleted")


def run_users_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        users = store.users()
    lines = [
        f"{u.username:<24} {u.role:<6} {u.source:<6} {'active' if u.active else 'disabled'}"
        for u in users
    ]
    return _print(args, [u.public() for u in users], "\n".join(lines) or "no users")


def run_keys_create(args: argparse.Namespace) -> int:
    from ..server.auth import accounts

    with _store(args) as store:
        key, record = accounts.create_key(store, args.user, args.name)
    note = f"API key {record.prefix} for {record.username}: store it now, it is not shown again"
    text = f"{key}\n({note})"
    return _print(args, {**record.public(), "key": key}, text)


def run_keys_list(args: argparse.Namespace) -> int:
    from ..server.auth import accounts

    with _store(args) as store:
        user_id = accounts.get_user(store, args.user).id if args.user else None
        keys = store.keys(user_id)
    lines = [
        f"{k.prefix}  {k.username:<16} {k.name:<20} created {_when(k.created_at)}  "
        f"used {_when(k.last_used_at)}{'  REVOKED' if k.revoked_at else ''}"
        for k in keys
    ]
    return _print(args, [k.public() for k in keys], "\n".join(lines) or "no keys")


def run_keys_revoke(args: argparse.Namespace) -> int:
    from ..server.auth import accounts

    with _store(args) as store:
        record = accounts.find_key(store, args.key)
        revoked = store.revoke_key(record.id)
    state = "revoked" if revoked else "was already revoked"
    return _print(args, {"id": record.id, "revoked": True}, f"key {record.prefix} {state}")
