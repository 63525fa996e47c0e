"""
Tests for L{txftps._listing}: C{ls -l} lines for LIST, names for NLST, fact
lines for MLSD, the escaping of names and the quoting of paths in 257
replies; no name can break a line, and every name is shown.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from twisted.python.filepath import Permissions
from twisted.trial.unittest import SynchronousTestCase

from txftps._listing import (
    escapeName,
    formatList,
    formatMLSD,
    formatNames,
    hasControlCharacters,
    printableName,
    quotePath,
    unescapeName,
)

NOW = calendar.timegm((2024, 6, 15, 12, 0, 0))
RECENT = calendar.timegm((2024, 6, 10, 8, 5, 0))
OLD = calendar.timegm((2022, 1, 3, 23, 59, 0))
FUTURE = calendar.timegm((2025, 3, 1, 10, 0, 0))

#: What FTP clients' C{ls -l} parsers expect.
LS_LINE = re.compile(
    rb"^[d-][rwx-]{9} +\d+ +\S+ +\S+ +\d+ +[A-Z][a-z]{2} +\d{1,2} +(\d{2}:\d{2}|\d{4}) (.+)$"
)

#: Names that must never appear raw in a listing, and how they are shown.
UNSAFE = {
    "evil\r\n226 Transfer complete.": "evil\\x0d\\x0a226 Transfer complete.",
    "line\nfeed": "line\\x0afeed",
    "carriage\rreturn": "carriage\\x0dreturn",
    "escape\x1b[31m": "escape\\x1b[31m",
    "nul\x00byte": "nul\\x00byte",
    "tab\there": "tab\\x09here",
    "del\x7f": "del\\x7f",
    "c1\x85next\x9b": "c1\\xc2\\x85next\\xc2\\x9b",
    "sep\u2028arator\u2029": "sep\\xe2\\x80\\xa8arator\\xe2\\x80\\xa9",
    "latin1-\udce9t\udce9": "latin1-\\xe9t\\xe9",
}

#: Names with backslashes, and how they are shown: doubled only where the
#: backslash would begin an escape.
BACKSLASHES = {
    "back\\slash": "back\\slash",
    "C:\\temp\\": "C:\\temp\\",
    "fake\\x41": "fake\\\\x41",
    "fake\\xag": "fake\\xag",
    "two\\\\": "two\\\\\\",
    "three\\\\\\x0d": "three\\\\\\\\\\\\x0d",
    "before\\\rcr": "before\\\\\\x0dcr",
    "\\x0d\r": "\\\\x0d\\x0d",
}


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

    def test_unsafeNamesEscaped(self) -> None:
        """
        Names with CR, LF or another control character are shown escaped,
        one C{ls -l} line each, no raw control character anywhere.
        """
        entries = [_entry("good.txt")] + [_entry(name) for name in UNSAFE]
        data = formatList(entries, NOW)
        lines = data.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines) - 1, len(entries))
        shown = []
        for line in lines[:-1]:
            self.assertFalse(any(b < 0x20 or b == 0x7F for b in line), line)
            match = LS_LINE.match(line)
            assert match is not None, line
            shown.append(match.group(2).decode("utf-8"))
        self.assertEqual(shown, ["good.txt", *UNSAFE.values()])

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

    def test_unsafeNamesEscaped(self) -> None:
        """
        Names with CR, LF or another control character are shown escaped,
        one per line, as valid UTF-8.
        """
        entries = [("good", [])] + [(name, []) for name in UNSAFE]
        expected = "".join(f"{name}\r\n" for name in ["good", *UNSAFE.values()])
        self.assertEqual(formatNames(entries), expected.encode("utf-8"))


class FormatMLSDTests(SynchronousTestCase):
    """
    L{formatMLSD} makes one fact line per entry.
    """

    def test_unsafeNamesEscaped(self) -> None:
        """
        Names with CR, LF or another control character are shown escaped
        after the facts, one line each.
        """
        attrs = [3, False, RECENT, Permissions(0o644)]
        entries = [(name, attrs) for name in ["good", *UNSAFE]]
        lines = formatMLSD(entries, ["type", "size"], True).decode("utf-8").split("\r\n")
        self.assertEqual(
            lines, [f"type=file;size=3; {n}" for n in ["good", *UNSAFE.values()]] + [""]
        )


class EscapeNameTests(SynchronousTestCase):
    """
    L{escapeName} writes a name on one line, L{unescapeName} reads it back.
    """

    def test_everyCharacter(self) -> None:
        """
        For every Unicode code point: L{hasControlCharacters} is true exactly
        for C0, DEL, C1, U+2028 and U+2029; L{escapeName} writes exactly
        those and the surrogate-escaped bytes as C{\\xHH}, keeps every other
        character (a backslash before C{b} too), and L{unescapeName} reads
        each back.
        """
        control = {*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029}
        escaped = control | set(range(0xDC80, 0xDD00))
        wrong = []
        for code in range(0x110000):
            c = chr(code)
            if hasControlCharacters(c) != (code in control):
                wrong.append((hex(code), "hasControlCharacters"))
            shown = escapeName(f"a{c}b")
            if (shown != f"a{c}b") != (code in escaped):
                wrong.append((hex(code), shown))
            if code in escaped and not shown.startswith("a\\x"):
                wrong.append((hex(code), shown))
            if unescapeName(shown) != f"a{c}b":
                wrong.append((hex(code), "unescapeName"))
        self.assertEqual(wrong, [])

    def test_plainNamesUnchanged(self) -> None:
        """
        Printable names, non-ASCII letters, spaces, quotes and emoji joined by
        U+200D are shown as they are.
        """
        for name in ["a", "a b", "caf\u00e9", '"q"', "\U0001f468\u200d\U0001f469", "x41"]:
            self.assertEqual(escapeName(name), name)
            self.assertEqual(unescapeName(name), name)

    def test_controlCharacters(self) -> None:
        """
        Each control character, line separator and byte that is not UTF-8 is
        C{\\xHH} per byte of the name on disk; nothing else changes.
        """
        for name, shown in UNSAFE.items():
            self.assertEqual(escapeName(name), shown)

    def test_backslashes(self) -> None:
        """
        A backslash is doubled only where it would otherwise begin an escape.
        """
        for name, shown in BACKSLASHES.items():
            self.assertEqual(escapeName(name), shown, repr(name))

    def test_roundTrip(self) -> None:
        """
        L{unescapeName} gives back every name L{escapeName} wrote, including
        every single character below U+0100 and every byte that is not
        UTF-8.
        """
        names = [*UNSAFE, *BACKSLASHES]
        names += [chr(n) for n in range(0x100)] + [chr(0xDC80 + n) for n in range(0x80)]
        names += ["\\" + chr(n) + "x41" for n in range(0x100)]
        names += ["\\" * n + "x0d" for n in range(5)] + ["\\" * n + "\r" for n in range(5)]
        for name in names:
            shown = escapeName(name)
            self.assertFalse(hasControlCharacters(shown), repr(shown))
            self.assertEqual(unescapeName(shown), name, repr(name))

    def test_unescapeEscapesAnyCase(self) -> None:
        """
        A client may write the hex digits in either case; a backslash that
        begins no escape stands for itself.
        """
        self.assertEqual(unescapeName("a\\x0D\\x0Ab"), "a\r\nb")
        self.assertEqual(unescapeName("\\xC2\\x85"), "\x85")
        self.assertEqual(unescapeName("a\\b\\x4"), "a\\b\\x4")

    def test_hasControlCharacters(self) -> None:
        """
        Control characters and line separators count; bytes that are not
        UTF-8 and printable characters do not.
        """
        for name in UNSAFE:
            if name.startswith("latin1"):
                self.assertFalse(hasControlCharacters(name))
            else:
                self.assertTrue(hasControlCharacters(name), repr(name))
        self.assertFalse(hasControlCharacters("caf\u00e9 \u200d"))


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
            if not name.startswith("latin1"):
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
