"""
C{--xferlog PATH}: the wu-ftpd/ProFTPD xferlog line of each file transfer,
written for real curl, lftp and raw-socket transfers against the real
C{twistd -n ftps}, parsed field by field; the file is appended to, reopened
on C{SIGUSR1} (after twistd's own log rotation, which still runs) and a bad
path stops the start with one line.

No xferlog reader exists on PyPI (nor in Debian's packages) to cross-check
with; L{parseXferlog} splits a line the way the common readers do (Perl's
C{Net::FTPServer::XferLog}: white space, five words of date, thirteen
fields).
"""

from __future__ import annotations

import os
import signal
import stat
import time
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests import support
from txftps._xferlog import ReopenOnSignal, TransferLog, xferlogField, xferlogLine

USER = "alice"
PASSWORD = "secret"

FIELDS = (
    "current_time",
    "transfer_time",
    "remote_host",
    "file_size",
    "filename",
    "transfer_type",
    "special_action_flag",
    "direction",
    "access_mode",
    "username",
    "service_name",
    "authentication_method",
    "authenticated_user_id",
    "completion_status",
)


def parseXferlog(line: str) -> dict[str, str]:
    """
    The 14 fields of an xferlog line, checked for their form; raise
    C{AssertionError} for a malformed line.
    """
    if not line.endswith("\n") or "\n" in line[:-1]:
        raise AssertionError(f"not one line: {line!r}")
    words = line.split()
    if len(words) != 18 or " ".join(words) + "\n" != line.replace("  ", " "):
        raise AssertionError(f"not 18 space-separated words: {line!r}")
    record = dict(zip(FIELDS, [" ".join(words[:5]), *words[5:]], strict=True))
    time.strptime(record["current_time"], "%a %b %d %H:%M:%S %Y")
    checks = {
        "transfer_time": str.isdigit,
        "file_size": str.isdigit,
        "transfer_type": lambda v: v in ("a", "b"),
        "special_action_flag": lambda v: v == "_",
        "direction": lambda v: v in ("o", "i", "d"),
        "access_mode": lambda v: v in ("a", "g", "r"),
        "service_name": lambda v: v == "ftps",
        "authentication_method": lambda v: v in ("0", "1"),
        "authenticated_user_id": lambda v: v == "*",
        "completion_status": lambda v: v in ("c", "i"),
    }
    for name, check in checks.items():
        if not check(record[name]):
            raise AssertionError(f"bad {name} {record[name]!r} in {line!r}")
    return record


PEER = IPv4Address("TCP", "192.0.2.7", 50123)


class FormatTests(unittest.SynchronousTestCase):
    """
    The fields and lines of the xferlog format.
    """

    def test_field(self) -> None:
        """
        Spaces, tabs, line breaks, other control characters, Unicode white
        space and lone surrogates (names that are not UTF-8) become C{_};
        other characters, non-ASCII letters among them, stay; an empty
        field is C{_}.
        """
        self.assertEqual(xferlogField("/a b\tc\nd\re\x7ff\x85g"), "/a_b_c_d_e_f_g")
        self.assertEqual(xferlogField("x\u2028y\u00a0z\udcff"), "x_y_z_")
        self.assertEqual(xferlogField("/café/日本.txt"), "/café/日本.txt")
        self.assertEqual(xferlogField(""), "_")

    def test_line(self) -> None:
        """
        A line has the ctime of its end, whole seconds, host, bytes, the
        escaped name, type, C{_}, direction, access mode, user, C{ftps},
        C{0}, C{*} and the completion status.
        """
        now = 1_700_000_000.0
        line = xferlogLine(now, 2.6, "192.0.2.7", 1234, "/a b.txt", True, "o", True, "ftp", True)
        self.assertEqual(
            line, f"{time.ctime(now)} 3 192.0.2.7 1234 /a_b.txt b _ o a ftp ftps 0 * c\n"
        )
        parseXferlog(line)
        line = xferlogLine(now, 0.2, "::1", 0, "/u", False, "i", False, "bob smith", False)
        self.assertTrue(line.endswith(" 0 ::1 0 /u a _ i r bob_smith ftps 0 * i\n"), line)
        parseXferlog(line)


class TransferLogTests(unittest.TestCase):
    """
    L{TransferLog} as an observer, on a fake clock and a temporary file.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.mkdir(self.directory)
        self.path = os.path.join(self.directory, "xferlog")
        self.clock = Clock()

    def lines(self, path: str | None = None) -> list[str]:
        with open(path or self.path, encoding="utf-8") as f:
            return f.readlines()

    def transfer(self, log: TransferLog, command: str, path: str, **kwargs: Any) -> None:
        log.transferStarted(PEER, command, path, kwargs.get("user", "bob"), False, True)
        self.clock.advance(kwargs.get("seconds", 1))
        log.transferEnded(
            PEER, command, path, kwargs.get("sent", 0), kwargs.get("received", 0), kwargs["code"]
        )

    def test_transfers(self) -> None:
        """
        Downloads and uploads are logged (bytes of their direction,
        seconds from the 150 on the clock, C{c} for 226 and C{i} for any
        other final reply); listings are not.
        """
        log = TransferLog(self.path, self.clock)
        self.transfer(log, "RETR", "/f", sent=10, received=3, code=226, seconds=4)
        self.transfer(log, "STOR", "/g h", sent=3, received=20, code=426)
        self.transfer(log, "LIST", "/", sent=100, code=226)
        self.transfer(log, "STOU", "/g.1", received=5, code=226)
        log.close()
        records = [parseXferlog(line) for line in self.lines()]
        self.assertEqual(
            [(r["transfer_time"], r["file_size"], r["filename"], r["direction"]) for r in records],
            [("4", "10", "/f", "o"), ("1", "20", "/g_h", "i"), ("1", "5", "/g.1", "i")],
        )
        self.assertEqual([r["completion_status"] for r in records], ["c", "i", "c"])
        self.assertEqual({r["remote_host"] for r in records}, {"192.0.2.7"})

    def test_appendsNeverTruncates(self) -> None:
        """
        An existing file keeps its lines; a new one is created mode 0640.
        """
        TransferLog(self.path, self.clock).close()
        # Group may read at most; others nothing.
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode) & 0o037, 0)
        with open(self.path, "a") as f:
            f.write("earlier line\n")
        log = TransferLog(self.path, self.clock)
        self.transfer(log, "RETR", "/f", sent=1, code=226)
        log.close()
        lines = self.lines()
        self.assertEqual(lines[0], "earlier line\n")
        self.assertEqual(len(lines), 2)

    def test_reopen(self) -> None:
        """
        After the file is moved away, L{TransferLog.reopen} starts a new
        file at the path; the moved file has the earlier lines.
        """
        log = TransferLog(self.path, self.clock)
        self.transfer(log, "RETR", "/before", sent=1, code=226)
        os.rename(self.path, self.path + ".1")
        self.transfer(log, "RETR", "/moved", sent=1, code=226)
        log.reopen()
        self.transfer(log, "RETR", "/after", sent=1, code=226)
        log.close()
        self.assertEqual(
            [parseXferlog(x)["filename"] for x in self.lines(self.path + ".1")],
            ["/before", "/moved"],
        )
        self.assertEqual([parseXferlog(x)["filename"] for x in self.lines()], ["/after"])

    def test_reopenFails(self) -> None:
        """
        When the path cannot be opened again, lines keep going to the old
        file and the failure is logged.
        """
        log = TransferLog(self.path, self.clock)
        os.rename(self.path, os.path.join(self.directory, "kept"))
        log.path = os.path.join(self.directory, "missing", "xferlog")
        log.reopen()
        self.transfer(log, "RETR", "/still", sent=1, code=226)
        log.close()
        self.assertEqual(
            [
                parseXferlog(x)["filename"]
                for x in self.lines(os.path.join(self.directory, "kept"))
            ],
            ["/still"],
        )


class _FakeReactor:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def callFromThread(self, f: Any, *args: Any) -> None:
        self.calls.append(f)


class SignalTests(unittest.SynchronousTestCase):
    """
    L{ReopenOnSignal} chains C{SIGUSR1} handlers.
    """

    def test_chained(self) -> None:
        """
        While the service runs, C{SIGUSR1} schedules a reopen in the
        reactor thread and calls the handler installed before; stopping
        puts that handler back.
        """
        previous: list[int] = []

        def before(signum: int, frame: Any) -> None:
            previous.append(signum)

        original = signal.signal(signal.SIGUSR1, before)
        self.addCleanup(signal.signal, signal.SIGUSR1, original)
        directory = self.mktemp()
        os.mkdir(directory)
        log = TransferLog(os.path.join(directory, "x"), Clock())
        reactor = _FakeReactor()
        service = ReopenOnSignal(log, reactor)
        service.startService()
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertEqual(previous, [signal.SIGUSR1])
        self.assertEqual(reactor.calls, [log.reopen])
        service.stopService()
        self.assertIs(signal.getsignal(signal.SIGUSR1), before)


class XferlogServerCase(support.ServerLogTestCase):
    """
    Runs the real server with C{--xferlog} (and with twistd's own
    C{--logfile} when C{twistdLogFile} is set).
    """

    twistdLogFile = False

    def setUp(self) -> None:
        self.logDirectory = os.path.abspath(self.mktemp())
        os.mkdir(self.logDirectory)
        self.path = os.path.join(self.logDirectory, "xferlog")
        self.server = support.TwistdServer("--xferlog", self.path, users={USER: PASSWORD})
        if self.twistdLogFile:
            # twistd then logs to the file the test reads, and rotates it
            # on SIGUSR1.
            self.server.args.insert(
                self.server.args.index("-n") + 1, f"--logfile={self.server.logFile}"
            )
        self.server.start()
        self.addCleanup(self.server.stop)

    def serverLog(self, tail: int = 4000) -> str:
        return "\n--- server log ---\n" + self.server.log()[-tail:]

    def records(self, count: int, path: str | None = None) -> list[dict[str, str]]:
        """
        Wait for C{count} lines, and parse them.
        """

        def lines() -> list[str]:
            try:
                with open(path or self.path, encoding="utf-8") as f:
                    return f.readlines()
            except FileNotFoundError:
                return []

        support.waitUntil(lambda: len(lines()) >= count, 10)
        found = lines()
        self.assertEqual(len(found), count, "".join(found) + self.serverLog())
        return [parseXferlog(line) for line in found]

    def assertFields(self, record: dict[str, str], **expected: str) -> None:
        got = {name: record[name] for name in expected}
        self.assertEqual(got, expected)
        self.assertLess(
            abs(
                time.mktime(time.strptime(record["current_time"], "%a %b %d %H:%M:%S %Y"))
                - time.time()
            ),
            300,
        )


class XferlogServerTests(XferlogServerCase):
    """
    The real server with C{--xferlog}, real clients.
    """

    def test_curl(self) -> None:
        """
        curl: an anonymous binary download of a name with a space, an
        ASCII-mode download, and an upload by a real user over implicit
        FTPS, each one line with its bytes, type, direction, access mode and
        user, complete.
        """
        content = os.urandom(70_000)
        support.writeFile(os.path.join(self.server.root, "with space.bin"), content)
        result = support.curl(self.server, "-o", "-", path="/with%20space.bin")
        self.assertSucceeded(result, "curl download")
        self.assertSameBytes(result.stdout, content, "download")
        result = support.curl(self.server, "-B", "-o", "-", path="/with%20space.bin")
        self.assertSucceeded(result, "curl ASCII download")
        upload = os.path.join(self.server.directory, "up.bin")
        support.writeFile(upload, b"u" * 12345)
        result = support.curl(
            self.server,
            "-T",
            upload,
            "--ftp-create-dirs",
            implicit=True,
            path="/dir%20x/up.bin",
            user=f"{USER}:{PASSWORD}",
        )
        self.assertSucceeded(result, "curl upload")
        down, ascii, up = self.records(3)
        self.assertFields(
            down,
            remote_host="127.0.0.1",
            file_size=str(len(content)),
            filename="/with_space.bin",
            transfer_type="b",
            direction="o",
            access_mode="a",
            username="anonymous",
            completion_status="c",
        )
        self.assertFields(ascii, transfer_type="a", direction="o", completion_status="c")
        self.assertFields(
            up,
            file_size="12345",
            filename="/dir_x/up.bin",
            transfer_type="b",
            direction="i",
            access_mode="r",
            username=USER,
            completion_status="c",
        )

    def test_lftp(self) -> None:
        """
        lftp: a real user's upload and download, then an anonymous
        download over implicit FTPS; listings lftp runs on the way are not logged.
        """
        local = os.path.join(self.server.directory, "local.bin")
        support.writeFile(local, os.urandom(200_000))
        back = os.path.join(self.server.directory, "back.bin")
        result = support.lftp(
            self.server,
            f"put {local} -o remote.bin; ls; get remote.bin -o {back}",
            user=f"{USER},{PASSWORD}",
        )
        self.assertSucceeded(result, "lftp")
        support.writeFile(os.path.join(self.server.root, "pub.txt"), b"public\n")
        result = support.lftp(
            self.server,
            f"get pub.txt -o {os.path.join(self.server.directory, 'pub')}",
            # lftp sends no AUTH TLS for anonymous logins: implicit FTPS.
            implicit=True,
        )
        self.assertSucceeded(result, "lftp anonymous")
        put, get, anon = self.records(3)
        self.assertFields(
            put,
            file_size="200000",
            filename="/remote.bin",
            direction="i",
            access_mode="r",
            username=USER,
            completion_status="c",
        )
        self.assertFields(
            get,
            file_size="200000",
            filename="/remote.bin",
            direction="o",
            access_mode="r",
            username=USER,
            completion_status="c",
        )
        self.assertFields(
            anon,
            file_size="7",
            filename="/pub.txt",
            direction="o",
            access_mode="a",
            completion_status="c",
        )

    def test_aborted(self) -> None:
        """
        A download stopped by ABOR after its 150 is logged incomplete
        (C{i}) with the bytes that were sent; an upload whose TLS data
        connection was cut without close_notify is logged incomplete too.
        """
        size = 50 * 1024 * 1024
        with open(os.path.join(self.server.root, "big.bin"), "wb") as f:
            f.truncate(size)
        control = support.loggedInSession(self.server)
        self.addCleanup(control.close)
        first, data = support.startTransfer(control, "RETR big.bin")
        self.assertEqual(first[0], 150)
        assert data is not None
        data.recv(16384)
        control.send("ABOR")
        self.assertEqual(control.reply(10)[0], 426)
        self.assertEqual(control.reply(10)[0], 226)
        data.close()
        alice = support.loggedInSession(self.server, USER, PASSWORD)
        self.addCleanup(alice.close)
        first, data = support.startTransfer(alice, "STOR cut.bin")
        self.assertEqual(first[0], 150)
        assert data is not None
        data.sendall(b"x" * 100_000)
        support.abortiveClose(data)
        self.assertGreaterEqual(alice.reply(10)[0], 400)
        aborted, cut = self.records(2)
        self.assertFields(aborted, direction="o", completion_status="i", access_mode="a")
        self.assertLess(int(aborted["file_size"]), size)
        self.assertFields(
            cut, filename="/cut.bin", direction="i", completion_status="i", username=USER
        )


class XferlogRotationTests(XferlogServerCase):
    """
    C{SIGUSR1} with twistd logging to standard output.
    """

    def test_reopenOnSIGUSR1(self) -> None:
        """
        logrotate style: the file is moved away and the server gets
        C{SIGUSR1}; the next transfer is logged in a new file at the path,
        and the moved file has the earlier lines.
        """
        support.writeFile(os.path.join(self.server.root, "f.txt"), b"12345")
        self.assertSucceeded(support.curl(self.server, "-o", "-", path="/f.txt"), "before")
        self.records(1)
        os.rename(self.path, self.path + ".1")
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGUSR1)
        self.assertTrue(
            support.waitUntil(lambda: os.path.exists(self.path), 10),
            "no new file" + self.serverLog(),
        )
        self.assertSucceeded(support.curl(self.server, "-o", "-", path="/f.txt"), "after")
        self.assertEqual(len(self.records(1)), 1)
        self.assertEqual(len(self.records(1, self.path + ".1")), 1)
        if self.twistdLogFile:
            self.assertTrue(
                os.path.exists(self.server.logFile + ".1"), "twistd's log did not rotate"
            )


class XferlogRotationWithLogFileTests(XferlogRotationTests):
    """
    The same with twistd writing its own log to a file (C{--logfile}),
    which rotates on C{SIGUSR1} too: both happen.
    """

    twistdLogFile = True


class RefusedTests(unittest.TestCase):
    """
    A bad C{--xferlog} stops the start with one line.
    """

    def test_missingDirectory(self) -> None:
        """
        A path whose directory does not exist.
        """
        line = support.refusedStart("--xferlog", "/nonexistent/dir/x")
        self.assertIn("cannot open --xferlog /nonexistent/dir/x", line)

    def test_insideServedTree(self) -> None:
        """
        A path inside the tree served to anonymous users, who could then
        download everybody's transfers.
        """
        root = os.path.abspath(self.mktemp())
        os.mkdir(root)
        line = support.refusedStart("--root", root, "--xferlog", os.path.join(root, "x"))
        self.assertIn("inside a served tree", line)
