"""
Tests for L{txftps.listing}: C{ls -l} lines for LIST, names for NLST, and
quoting of paths in 257 replies; no name can break a line.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from twisted.python.filepath import Permissions
from twisted.trial.unittest import SynchronousTestCase

from txftps.listing import formatList, formatNames, printableName, quotePath

NOW = calendar.timegm((2024, 6, 15, 12, 0, 0))
RECENT = calendar.timegm((2024, 6, 10, 8, 5, 0))
OLD = calendar.timegm((2022, 1, 3, 23, 59, 0))
FUTURE = calendar.timegm((2025, 3, 1, 10, 0, 0))

#: What FTP clients' C{ls -l} parsers expect.
LS_LINE = re.compile(
    rb"^[d-][rwx-]{9} +\d+ +\S+ +\S+ +\d+ +[A-Z][a-z]{2} +\d{1,2} +(\d{2}:\d{2}|\d{4}) (.+)$"
)

#: Names that must never appear in a listing.
UNSAFE = [
    "evil\r\n226 Transfer complete.",
    "line\nfeed",
    "carriage\rreturn",
    "escape\x1b[31m",
    "nul\x00byte",
    "tab\there",
    "del\x7f",
    "sep\u2028arator",
]


def _entry(
    name: str,
    size: int = 1234,
    directory: bool = False,
    mode: int = 0o644,
    links: int = 1,
    modified: float = RECENT,
    owner: str = "alice",
    group: str = "staff",
) -> tuple[str, list[Any]]:
    return (name, [size, directory, Permissions(mode), links, modified, owner, group])


class FormatListTests(SynchronousTestCase):
    """
    L{formatList} makes one C{ls -l} line per entry.
    """

    def test_fileLine(self) -> None:
        """
        A recent regular file: C{-} flag, permission shorthand, link count,
        owner, group, size, month/day/time, name, CRLF.
        """
        self.assertEqual(
            formatList([_entry("report.txt")], NOW),
            b"-rw-r--r--   1 alice    staff            1234 Jun 10 08:05 report.txt\r\n",
        )

    def test_directoryLine(self) -> None:
        """
        A directory gets the C{d} flag.
        """
        line = formatList([_entry("docs", 4096, True, 0o755, 2)], NOW)
        self.assertEqual(
            line, b"drwxr-xr-x   2 alice    staff            4096 Jun 10 08:05 docs\r\n"
        )

    def test_oldFileShowsYear(self) -> None:
        """
        A file older than about six months shows the year instead of the time.
        """
        line = formatList([_entry("old.txt", modified=OLD)], NOW)
        self.assertIn(b" Jan  3  2022 old.txt\r\n", line)

    def test_futureFileShowsYear(self) -> None:
        """
        A file dated more than about six months ahead shows the year too.
        """
        line = formatList([_entry("future.txt", modified=FUTURE)], NOW)
        self.assertIn(b" Mar  1  2025 future.txt\r\n", line)

    def test_oneLinePerEntry(self) -> None:
        """
        Several entries give as many CRLF-terminated lines, in order, each one
        parseable as C{ls -l} and ending in its name (spaces and non-ASCII
        names included, UTF-8 encoded).
        """
        names = ["a.txt", "with space.txt", "caf\u00e9", "\u65e5\u672c"]
        entries = [_entry(name) for name in names]
        data = formatList(entries, NOW)
        self.assertTrue(data.endswith(b"\r\n"))
        lines = data.split(b"\r\n")[:-1]
        self.assertEqual(len(lines), len(names))
        for line, name in zip(lines, names, strict=True):
            match = LS_LINE.match(line)
            assert match is not None, line
            self.assertEqual(match.group(2), name.encode("utf-8"))

    def test_longOwnerTruncated(self) -> None:
        """
        Owner and group names are cut to eight characters so the columns stay
        aligned.
        """
        line = formatList([_entry("f", owner="averylongowner", group="averylonggroup")], NOW)
        self.assertIn(b" averylon averylon ", line)
        self.assertIsNotNone(LS_LINE.match(line[:-2]))

    def test_unsafeNamesLeftOut(self) -> None:
        """
        Names with CR, LF or another control character are left out; the
        other entries remain, one line each.
        """
        entries = [_entry("good.txt")] + [_entry(name) for name in UNSAFE]
        data = formatList(entries, NOW)
        self.assertEqual(data.count(b"\r\n"), 1)
        self.assertTrue(data.endswith(b" good.txt\r\n"))
        self.assertNotIn(b"226", data)

    def test_empty(self) -> None:
        """
        No entries, no bytes.
        """
        self.assertEqual(formatList([], NOW), b"")


class FormatNamesTests(SynchronousTestCase):
    """
    L{formatNames} makes NLST output: one name per CRLF-terminated line.
    """

    def test_names(self) -> None:
        """
        Each name on its own line, in order, UTF-8 encoded.
        """
        entries = [("a.txt", []), ("with space", []), ("caf\u00e9", [])]
        self.assertEqual(formatNames(entries), "a.txt\r\nwith space\r\ncaf\u00e9\r\n".encode())

    def test_unsafeNamesLeftOut(self) -> None:
        """
        Names with CR, LF or another control character are left out.
        """
        entries = [("good", [])] + [(name, []) for name in UNSAFE]
        self.assertEqual(formatNames(entries), b"good\r\n")


class PrintableNameTests(SynchronousTestCase):
    """
    L{printableName} accepts what fits on one line.
    """

    def test_printable(self) -> None:
        """
        Letters, digits, spaces, punctuation and non-ASCII letters are fine.
        """
        for name in ["a", "a b", "x-y_z.txt", "caf\u00e9", '"quoted"']:
            self.assertTrue(printableName(name), name)

    def test_controlCharacters(self) -> None:
        """
        Any control character makes a name unprintable.
        """
        for name in UNSAFE:
            self.assertFalse(printableName(name), repr(name))


class QuotePathTests(SynchronousTestCase):
    """
    L{quotePath} quotes a path for a 257 reply.
    """

    def test_plain(self) -> None:
        """
        A plain path is wrapped in double quotes.
        """
        self.assertEqual(quotePath("/home/alice"), '"/home/alice"')

    def test_quotesDoubled(self) -> None:
        """
        Embedded double quotes are doubled (RFC 959 appendix II).
        """
        self.assertEqual(quotePath('/say "hi"'), '"/say ""hi"""')

    def test_controlCharactersReplaced(self) -> None:
        """
        CR, LF and other control characters are replaced, so the reply stays
        one line.
        """
        quoted = quotePath("/a\r\nb\x00c\x1bd")
        self.assertEqual(quoted, '"/a??b?c?d"')
        self.assertNotIn("\r", quoted)
        self.assertNotIn("\n", quoted)

    def test_nonASCIIKept(self) -> None:
        """
        Printable non-ASCII characters are kept.
        """
        self.assertEqual(quotePath("/caf\u00e9"), '"/caf\u00e9"')
