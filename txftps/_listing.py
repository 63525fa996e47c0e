# -*- test-case-name: tests.test_listing -*-
"""
Directory listings for LIST, NLST and MLSD, and the escaping and quoting of
names in listings and replies.

Listings never break the protocol and hide nothing: every entry is shown on
exactly one line. A name is shown as L{escapeName} writes it: each control
character (C0, DEL, C1, and the Unicode line and paragraph separators) and
each byte that is not UTF-8 becomes C{\\xHH}, one per byte of the name on
disk; a backslash that would otherwise begin an escape is doubled. Paths that
clients send are read back with L{unescapeName}, so the escaped name works in
every command.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from twisted.protocols.ftp import InvalidPath, toSegments

#: The L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} keys that
#: L{formatList} needs, in order.
LIST_KEYS = ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_HALF_YEAR = 180 * 24 * 3600


def printableName(name: str) -> bool:
    """
    Is C{name} made of printable characters and spaces only?
    """
    return all(c.isprintable() or c == " " for c in name)


def _escaped(c: str) -> bool:
    """
    Is C{c} written as C{\\xHH} in a listing: a control character, a line or
    paragraph separator, or a byte that is not UTF-8 (surrogate-escaped)?
    """
    code = ord(c)
    return (
        code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029) or 0xDC80 <= code < 0xDD00
    )


# The characters of L{_escaped} without the surrogate escapes, and with them
# and the backslash: searched in C, as every reply line goes through them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPED_OR_BACKSLASH = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\udc80-\udcff\\\\]")


def hasControlCharacters(name: str) -> bool:
    """
    Does C{name} hold a control character (C0, DEL, C1) or a line or
    paragraph separator, that L{escapeName} would escape? (Bytes that are not
    UTF-8 do not count.)
    """
    return _CONTROL.search(name) is not None


_HEX_ESCAPE = re.compile(r"x[0-9a-fA-F]{2}")


def escapeName(name: str) -> str:
    """
    Write C{name} so that it fits on one line and can be read back by
    L{unescapeName}: each escaped character (see L{hasControlCharacters}),
    and each byte of a name that is not UTF-8, becomes C{\\xHH} for each byte
    of its UTF-8 form (CR is C{\\x0d}, U+0085 is C{\\xc2\\x85}); a backslash
    followed by a backslash, by an escaped character or by C{x} and two hex
    digits is doubled; every other character stays as it is.
    """
    if _ESCAPED_OR_BACKSLASH.search(name) is None:
        return name
    out = []
    for i, c in enumerate(name):
        if _escaped(c):
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape")))
        elif c == "\\":
            rest = name[i + 1 :]
            ambiguous = rest[:1] == "\\" or (rest and _escaped(rest[0])) or _HEX_ESCAPE.match(rest)
            out.append("\\\\" if ambiguous else "\\")
        else:
            out.append(c)
    return "".join(out)


_ESCAPES = re.compile(r"\\\\|(?:\\x[0-9a-fA-F]{2})+")


def _unescape(match: re.Match[str]) -> str:
    text = match.group()
    if text == "\\\\":
        return "\\"
    return bytes.fromhex(text.replace("\\x", "")).decode("utf-8", "surrogateescape")


def unescapeName(text: str) -> str:
    """
    The name that L{escapeName} wrote as C{text}: C{\\\\} is a backslash, a run
    of C{\\xHH} is those bytes (decoded as UTF-8, bytes that are not UTF-8
    kept surrogate-escaped); any other backslash stands for itself.
    """
    return _ESCAPES.sub(_unescape, text)


def pathSegments(current: Sequence[str], path: str) -> list[str]:
    """
    The segments of the path a client sent, each read with L{unescapeName}.

    @param current: the working directory's segments.
    @param path: the path, relative to C{current} or absolute.
    @raise InvalidPath: C{path} leaves the root, or a segment is C{.},
        C{..} or holds C{/} or NUL once unescaped.
    """
    shown = [escapeName(segment) for segment in current]
    segments = [unescapeName(segment) for segment in toSegments(shown, path)]
    for segment in segments:
        if "\0" in segment or "/" in segment or segment in ("", ".", ".."):
            raise InvalidPath(current, path)
    return segments


def displayPath(segments: Sequence[str]) -> str:
    """
    C{segments} as an absolute path for a reply, each escaped with
    L{escapeName}.
    """
    return "/" + "/".join(escapeName(segment) for segment in segments)


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
        size, directory, permissions, hardlinks, modified, owner, group = attrs
        mode = ("d" if directory else "-") + permissions.shorthand()
        lines.append(
            f"{mode} {hardlinks:3d} {str(owner)[:8]:<8} {str(group)[:8]:<8}"
            f" {size:12d} {_date(modified, now)} {escapeName(name)}\r\n"
        )
    return "".join(lines).encode("utf-8", "surrogateescape")


def formatNames(entries: Sequence[tuple[str, Sequence[Any]]]) -> bytes:
    """
    Format L{IFTPShell.list<twisted.protocols.ftp.IFTPShell.list>} results
    as NLST lines: one (escaped) name per line.
    """
    return "".join(f"{escapeName(name)}\r\n" for name, _ in entries).encode(
        "utf-8", "surrogateescape"
    )


def quotePath(path: str) -> str:
    """
    Quote a path for a 257 reply (RFC 959): embedded quotes doubled. The
    path is one that L{escapeName} wrote; any control character left is
    replaced by C{?} so that the reply stays one line whatever it is given.
    """
    safe = "".join("?" if _escaped(c) else c for c in path)
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
    for MLSD, one line per entry, names escaped.
    """
    return "".join(
        formatFacts(escapeName(name), attrs, facts, writable) + "\r\n" for name, attrs in entries
    ).encode("utf-8", "surrogateescape")
