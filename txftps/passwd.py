# -*- test-case-name: tests.test_htpasswd -*-
"""
Manage users in a bcrypt htpasswd file, for machines without Apache's
C{htpasswd}::

    python -m txftps.passwd add FILE USER        # asks for the password twice
    python -m txftps.passwd change FILE USER
    python -m txftps.passwd remove FILE USER
    python -m txftps.passwd list FILE
    echo secret | python -m txftps.passwd add --password-stdin FILE USER

The file is written atomically (a temporary file renamed over it) with mode
0600, so a running server never reads half a file. Hashes are bcrypt with
cost 12, in the C{$2y$} form Apache writes.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile

import bcrypt

from txftps._htpasswd import HtpasswdError, parseHtpasswd

__all__ = ["hashPassword", "main"]

COST = 12


def hashPassword(password: str, cost: int = COST) -> bytes:
    """
    Hash C{password} with bcrypt, in Apache's C{$2y$} form.
    """
    hashed = bcrypt.hashpw(password.encode("utf-8", "surrogateescape"), bcrypt.gensalt(cost))
    return b"$2y$" + hashed[4:]


def _read(path: str) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        return []
    parseHtpasswd(content, path)
    return content.splitlines()


def _write(path: str, lines: list[bytes]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".txftps-passwd-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(line + b"\n" for line in lines))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _userOf(line: bytes) -> str | None:
    line = line.strip()
    if not line or line.startswith(b"#"):
        return None
    return line.partition(b":")[0].decode("utf-8")


def _writableName(user: str | None) -> bool:
    if not user or user != user.strip() or user.startswith("#"):
        return False
    if any(c in user for c in ":/\\") or not all(c.isprintable() for c in user):
        return False
    try:
        user.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _askPassword(fromStdin: bool) -> str:
    if fromStdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("txftps.passwd: the passwords differ")
    if not password:
        raise SystemExit("txftps.passwd: an empty password is refused")
    return password


def main(argv: list[str] | None = None) -> int:
    """
    The command line; see the module docstring.
    """
    parser = argparse.ArgumentParser(
        prog="python -m txftps.passwd", description="Manage a bcrypt htpasswd file."
    )
    parser.add_argument("action", choices=["add", "change", "remove", "list"])
    parser.add_argument("file")
    parser.add_argument("user", nargs="?")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    options = parser.parse_args(argv)
    try:
        lines = _read(options.file)
    except (HtpasswdError, UnicodeDecodeError) as e:
        raise SystemExit(f"txftps.passwd: {e}")
    except OSError as e:
        raise SystemExit(f"txftps.passwd: cannot read {options.file}: {e.strerror}")
    if options.action == "list":
        for line in lines:
            user = _userOf(line)
            if user is not None:
                sys.stdout.write(user + "\n")
        return 0
    user = options.user
    if not _writableName(user):
        raise SystemExit(
            "txftps.passwd: give a UTF-8 user name without ':', '/', '\\', NUL or"
            " control characters, not starting with '#' and without spaces around it"
        )
    present = [i for i, line in enumerate(lines) if _userOf(line) == user]
    if options.action == "add" and present:
        raise SystemExit(f"txftps.passwd: {user} already exists; use change")
    if options.action in ("change", "remove") and not present:
        raise SystemExit(f"txftps.passwd: no user {user} in {options.file}")
    if options.action == "remove":
        lines = [line for i, line in enumerate(lines) if i not in present]
    else:
        entry = user.encode("utf-8") + b":" + hashPassword(_askPassword(options.password_stdin))
        if present:
            lines[present[0]] = entry
        else:
            lines.append(entry)
    try:
        _write(options.file, lines)
    except OSError as e:
        raise SystemExit(f"txftps.passwd: cannot write {options.file}: {e.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
