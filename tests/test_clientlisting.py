"""
Tests for txftps._clientlisting: MLSD facts and LIST lines (Unix and Windows
formats) parsed to typed entries.
"""

from __future__ import annotations

import datetime

from twisted.trial.unittest import SynchronousTestCase

from txftps.client import RemoteEntry, parseLIST, parseMLSD

UTC = datetime.UTC


class MLSDTests(SynchronousTestCase):
    """
    L{parseMLSD} turns RFC 3659 fact lines into L{RemoteEntry} objects.
    """

    def test_typedEntries(self) -> None:
        """
        Files, directories and symlinks get their type, size, UTC
        modification time, permissions and all facts; C{cdir} and C{pdir}
        are left out; a name may contain spaces and semicolons.
        """
        text = (
            "type=cdir;modify=20240101000000; .\r\n"
            "type=pdir;modify=20240101000000; ..\r\n"
            "type=file;size=1234;modify=20241205094130;perm=r;unique=fe01; report 2024;v2.pdf\r\n"
            "Type=dir;Modify=20230102030405.123;Perm=elc; photos\r\n"
            "type=OS.unix=slink:/etc;size=4; link\r\n"
            "type=file;sizd=9; weird-size\r\n"
        )
        entries = parseMLSD(text)
        self.assertEqual(
            [e.name for e in entries], ["report 2024;v2.pdf", "photos", "link", "weird-size"]
        )
        report, photos, link, weird = entries
        self.assertEqual(report.type, "file")
        self.assertTrue(report.isFile)
        self.assertEqual(report.size, 1234)
        self.assertEqual(report.modified, datetime.datetime(2024, 12, 5, 9, 41, 30, tzinfo=UTC))
        self.assertEqual(report.permissions, "r")
        self.assertEqual(report.facts["unique"], "fe01")
        self.assertTrue(photos.isDirectory)
        self.assertEqual(
            photos.modified, datetime.datetime(2023, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
        )
        self.assertEqual(photos.size, None)
        self.assertEqual(link.type, "link")
        self.assertEqual(weird.size, 9)

    def test_malformed(self) -> None:
        """
        Lines without a space, blank lines and malformed times do not raise:
        the first two are skipped, the time becomes C{None}.
        """
        entries = parseMLSD("garbage\r\n\r\ntype=file;modify=2024; odd\r\n")
        self.assertEqual(entries, [RemoteEntry("odd", "file", None, None, None, entries[0].facts)])


class UnixLISTTests(SynchronousTestCase):
    """
    L{parseLIST} reads C{ls -l} style listings.
    """

    now = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def test_unix(self) -> None:
        """
        Mode, size, date (with a year, or with a time in the last six
        months), names with spaces, symlink targets dropped, C{total} and
        C{.}/C{..} lines skipped, numeric owners.
        """
        text = (
            "total 12\r\n"
            "drwxr-xr-x    2 ftp      ftp          4096 Dec 01 10:15 .\r\n"
            "drwxr-xr-x    2 ftp      ftp          4096 Dec 01 10:15 ..\r\n"
            "-rw-r--r--    1 1000     1000     12345678 Nov 30 23:59 my file.txt\r\n"
            "drwxr-xr-x+   3 root     root         4096 Jan  5  2021 archive\r\n"
            "lrwxrwxrwx    1 root     root            7 Dec  4 08:00 latest -> archive\r\n"
            "-rw-r--r--    1 owner  group             0 Dec 24 18:00 future-means-last-year\r\n"
        )
        entries = parseLIST(text, self.now)
        self.assertEqual(
            [(e.name, e.type, e.size) for e in entries],
            [
                ("my file.txt", "file", 12345678),
                ("archive", "dir", 4096),
                ("latest", "link", 7),
                ("future-means-last-year", "file", 0),
            ],
        )
        self.assertEqual(entries[0].modified, datetime.datetime(2026, 11, 30, 23, 59))
        self.assertEqual(entries[1].modified, datetime.datetime(2021, 1, 5))
        self.assertEqual(entries[3].modified, datetime.datetime(2025, 12, 24, 18, 0))
        self.assertEqual(entries[0].permissions, "-rw-r--r--")


class WindowsLISTTests(SynchronousTestCase):
    """
    L{parseLIST} reads Windows/IIS listings.
    """

    def test_windows(self) -> None:
        """
        C{<DIR>} entries are directories; others are files with a size;
        12-hour times with AM/PM, 2- and 4-digit years, names with spaces.
        """
        text = (
            "12-05-26  09:41AM       <DIR>          Program Files\r\n"
            "01-31-2024  12:05PM             123456 setup log.txt\r\n"
            "07-04-99  12:00AM                  1 y2k.txt\r\n"
        )
        entries = parseLIST(text)
        self.assertEqual(
            [(e.name, e.type, e.size, e.modified) for e in entries],
            [
                ("Program Files", "dir", None, datetime.datetime(2026, 12, 5, 9, 41)),
                ("setup log.txt", "file", 123456, datetime.datetime(2024, 1, 31, 12, 5)),
                ("y2k.txt", "file", 1, datetime.datetime(1999, 7, 4, 0, 0)),
            ],
        )

    def test_unknown(self) -> None:
        """
        Lines in neither format are skipped, not guessed.
        """
        self.assertEqual(parseLIST("hello world\r\n+i8388621.29609,m824255902,/,\tdev\r\n"), [])
