# -*- test-case-name: tests.test_listing -*-
"""
Directory listings for LIST and NLST, and quoting of names in replies.

Listings never break the protocol: a name with a CR, LF or another control
character is left out, so every listing line is exactly one entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "LIST_KEYS",
    "MLST_FACTS",
    "MLST_KEYS",
    "formatFacts",
    "formatList",
    "formatMLSD",
    "formatNames",
    "printableName",
    "quotePath",
]

#: The L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} keys that
#: L{formatList} needs, in order.
LIST_KEYS = ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_HALF_YEAR = 180 * 24 * 3600


def printableName(name: str) -> bool:
    """
    Can C{name} be sent on one listing or reply line?
    """
    return all(c.isprintable() or c == " " for c in name)


def _date(mtime: float, now: float) -> str:
    t = time.gmtime(mtime)
    month = _MONTHS[t.tm_mon - 1]
    if abs(now - mtime) < _HALF_YEAR:
        return f"{month} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{month} {t.tm_mday:2d}  {t.tm_year}"


def formatList(entries: Sequence[tuple[str, Sequence[Any]]], now: float) -> bytes:
    """
    Format L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} results
    (with L{LIST_KEYS}) as C{ls -l} lines.

    @param entries: C{(name, [size, directory, permissions, hardlinks,
        modified, owner, group])} tuples.
    @param now: the current time, to choose between time and year.
    @return: CRLF-terminated UTF-8 lines.
    """
    lines = []
    for name, attrs in entries:
        if not printableName(name):
            continue
        size, directory, permissions, hardlinks, modified, owner, group = attrs
        mode = ("d" if directory else "-") + permissions.shorthand()
        lines.append(
            f"{mode} {hardlinks:3d} {str(owner)[:8]:<8} {str(group)[:8]:<8}"
            f" {size:12d} {_date(modified, now)} {name}\r\n"
        )
    return "".join(lines).encode("utf-8", "surrogateescape")


def formatNames(entries: Sequence[tuple[str, Sequence[Any]]]) -> bytes:
    """
    Format L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} results
    as NLST lines: one name per line.
    """
    return "".join(f"{name}\r\n" for name, _ in entries if printableName(name)).encode(
        "utf-8", "surrogateescape"
    )


def quotePath(path: str) -> str:
    """
    Quote a path for a 257 reply (RFC 959): embedded quotes doubled, control
    characters replaced so that the reply stays one line.
    """
    safe = "".join(c if c.isprintable() else "?" for c in path)
    return '"' + safe.replace('"', '""') + '"'


#: The RFC 3659 facts txftps offers, in FEAT order.
MLST_FACTS = ("type", "size", "modify", "perm", "unique")

#: The L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} keys that
#: L{formatFacts} needs.
MLST_KEYS = ("size", "directory", "modified", "permissions")


def _perm(directory: bool, permissions: Any, writable: bool) -> str:
    user = permissions.user
    if directory:
        perm = ("e" if user.execute else "") + ("l" if user.read else "")
        if writable and user.write:
            perm += "cmpdf"
        return perm
    perm = "r" if user.read else ""
    if writable and user.write:
        perm += "awdf"
    return perm


def formatFacts(name: str, attrs: Sequence[Any], facts: Sequence[str], writable: bool) -> str:
    """
    One RFC 3659 fact line (without CRLF): C{type=file;size=3;... name}.

    @param attrs: L{MLST_KEYS} values, then the C{unique} value if any.
    @param facts: the facts the client selected (C{OPTS MLST}).
    @param writable: the shell allows changes (for the C{perm} fact).
    """
    size, directory, modified, permissions = attrs[:4]
    values = {
        "type": "dir" if directory else "file",
        "size": str(size),
        "modify": time.strftime("%Y%m%d%H%M%S", time.gmtime(modified)),
        "perm": _perm(directory, permissions, writable),
    }
    if len(attrs) > 4:
        values["unique"] = str(attrs[4])
    text = "".join(f"{fact}={values[fact]};" for fact in facts if fact in values)
    return f"{text} {name}"


def formatMLSD(
    entries: Sequence[tuple[str, Sequence[Any]]], facts: Sequence[str], writable: bool
) -> bytes:
    """
    Format L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} results
    for MLSD, leaving out unprintable names.
    """
    return "".join(
        formatFacts(name, attrs, facts, writable) + "\r\n"
        for name, attrs in entries
        if printableName(name)
    ).encode("utf-8", "surrogateescape")
