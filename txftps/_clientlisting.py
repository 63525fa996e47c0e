# -*- test-case-name: tests.test_clientlisting -*-
"""
Directory listings for the FTPS client: C{MLSD} facts (RFC 3659) parsed to
typed L{RemoteEntry} objects, and the C{LIST} fallback in the two formats
servers really send: Unix C{ls -l} and Windows/IIS (a date, a time with
AM/PM, then a size or the directory marker, then the name).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

_UTC = datetime.UTC


@dataclass(frozen=True)
class RemoteEntry:
    """
    One entry of a remote directory.

    @ivar name: the entry's name (no directory part).
    @ivar type: C{"file"}, C{"dir"}, C{"link"} or C{"other"}.
    @ivar size: the size in bytes, or C{None} when the server did not say.
    @ivar modified: the modification time (UTC when from MLSD), or C{None}.
    @ivar permissions: the MLSD C{perm} fact or the Unix mode string, or
        C{None}.
    @ivar facts: every MLSD fact (lower-case names), empty for LIST.
    """

    name: str
    type: str
    size: int | None = None
    modified: datetime.datetime | None = None
    permissions: str | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def isDirectory(self) -> bool:
        """
        Whether this entry is a directory.
        """
        return self.type == "dir"

    @property
    def isFile(self) -> bool:
        """
        Whether this entry is a regular file.
        """
        return self.type == "file"


def parseMLSxTime(value: str) -> datetime.datetime | None:
    """
    An RFC 3659 time value (C{YYYYMMDDHHMMSS[.sss]}, UTC), or C{None} when
    it is malformed.
    """
    match = re.fullmatch(r"(\d{14})(?:\.(\d{1,6}))?", value.strip())
    if match is None:
        return None
    try:
        moment = datetime.datetime.strptime(match.group(1), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    fraction = match.group(2)
    if fraction:
        moment = moment.replace(microsecond=int(fraction.ljust(6, "0")))
    return moment.replace(tzinfo=_UTC)


def parseMLSDLine(line: str) -> RemoteEntry | None:
    """
    One line of an C{MLSD} listing (C{fact=value;...; name}), or C{None}
    for a blank line or the C{cdir}/C{pdir} entries (C{.} and C{..}).
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if " " not in line:
        return None
    factText, name = line.split(" ", 1)
    facts: dict[str, str] = {}
    for fact in factText.split(";"):
        if "=" in fact:
            key, value = fact.split("=", 1)
            facts[key.lower()] = value
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir") or name in (".", ".."):
        return None
    if kind == "dir":
        entryType = "dir"
    elif kind == "file":
        entryType = "file"
    elif kind.startswith("os.unix=slink") or kind.startswith("os.unix=symlink"):
        entryType = "link"
    else:
        entryType = "other"
    size: int | None = None
    for key in ("size", "sizd"):
        if facts.get(key, "").isdigit():
            size = int(facts[key])
            break
    modified = parseMLSxTime(facts["modify"]) if "modify" in facts else None
    return RemoteEntry(name, entryType, size, modified, facts.get("perm"), facts)


def parseMLSD(text: str) -> list[RemoteEntry]:
    """
    A whole C{MLSD} listing, without C{.} and C{..}.
    """
    entries = []
    for line in text.splitlines():
        entry = parseMLSDLine(line)
        if entry is not None:
            entries.append(entry)
    return entries


_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}

_UNIX = re.compile(
    r"^(?P<mode>[-dlbcpsD][-rwxsStTlL+.@]{9,10})\s+\d+\s+(?:\S+\s+){1,2}?"
    r"(?P<size>\d+)\s+(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+"
    r"(?P<timeOrYear>\d{1,2}:\d{2}|\d{4})\s(?P<name>.+)$"
)

_WINDOWS = re.compile(
    r"^(?P<month>\d{2})-(?P<day>\d{2})-(?P<year>\d{2}|\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?P<ampm>[AaPp][Mm])?\s+"
    r"(?:(?P<dir><DIR>)|(?P<size>\d+))\s+(?P<name>.+)$"
)


def parseUnixLine(line: str, now: datetime.datetime | None = None) -> RemoteEntry | None:
    """
    One line of a Unix C{ls -l} style C{LIST}, or C{None} when it is not
    one (a C{total} line, blank, C{.} or C{..}).

    @param now: today, to place dates without a year (C{Dec 5 10:00}) in
        the past six months as C{ls} does.
    """
    match = _UNIX.match(line.rstrip("\r\n"))
    if match is None:
        return None
    mode = match.group("mode")
    name = match.group("name")
    kind = {"d": "dir", "-": "file", "l": "link"}.get(mode[0], "other")
    if kind == "link" and " -> " in name:
        name = name.split(" -> ", 1)[0]
    if name in (".", ".."):
        return None
    month = _MONTHS.get(match.group("month").lower())
    modified = None
    if month is not None:
        day = int(match.group("day"))
        timeOrYear = match.group("timeOrYear")
        today = now or datetime.datetime.now(_UTC)
        try:
            if ":" in timeOrYear:
                hour, minute = (int(n) for n in timeOrYear.split(":"))
                modified = datetime.datetime(today.year, month, day, hour, minute)
                if modified > today.replace(tzinfo=None) + datetime.timedelta(days=1):
                    modified = modified.replace(year=today.year - 1)
            else:
                modified = datetime.datetime(int(timeOrYear), month, day)
        except ValueError:
            modified = None
    return RemoteEntry(name, kind, int(match.group("size")), modified, mode)


def parseWindowsLine(line: str) -> RemoteEntry | None:
    """
    One line of a Windows/IIS C{LIST} (C{12-05-26 09:41AM}, then a size or
    the directory marker, then the name), or C{None}.
    """
    match = _WINDOWS.match(line.rstrip("\r\n"))
    if match is None:
        return None
    year = int(match.group("year"))
    if year < 100:
        year += 2000 if year < 70 else 1900
    hour = int(match.group("hour"))
    ampm = (match.group("ampm") or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    try:
        modified: datetime.datetime | None = datetime.datetime(
            year,
            int(match.group("month")),
            int(match.group("day")),
            hour,
            int(match.group("minute")),
        )
    except ValueError:
        modified = None
    if match.group("dir"):
        return RemoteEntry(match.group("name"), "dir", None, modified)
    return RemoteEntry(match.group("name"), "file", int(match.group("size")), modified)


def parseLIST(text: str, now: datetime.datetime | None = None) -> list[RemoteEntry]:
    """
    A whole C{LIST} listing in Unix or Windows format (line by line, so a
    mixed listing parses too); lines in neither format are skipped.
    """
    entries = []
    for line in text.splitlines():
        entry = parseUnixLine(line, now) or parseWindowsLine(line)
        if entry is not None:
            entries.append(entry)
    return entries
