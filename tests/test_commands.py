"""
The full command set of the real C{twistd -n ftps}, on loopback sockets, with
real clients (curl, lftp, ftplib and raw TLS control connections), comparing
bytes: REST STREAM, APPE, STOU, ABOR, STAT, MLST/MLSD, FEAT, MFMT, ALLO,
SITE, HOST, REIN, CDC, CCC, UTF-8 paths and listings of hostile names.

Each test starts its own server with user C{alice} (trial does not call
C{setUpClass}; a server starts in well under a second). Raw control
connections are L{support.ControlConnection}s, logged in over TLS with
C{PROT P}; their data connections resume the control connection's TLS
session, as C{--session-reuse required} (the default) demands.
"""

from __future__ import annotations

import calendar
import ftplib
import io
import os
import re
import socket

from tests import support
from tests.support import readFile, readTree, writeFile

USER = "alice"
PASSWORD = "secret"

#: Prefix of the server's hidden in-progress and partial uploads.
HIDDEN_PREFIX = ".txftps-upload-"


def sparseFile(path: str, size: int) -> str:
    """
    A sparse file of C{size} bytes (zeros): big downloads without disk or
    setup time.
    """
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def replyLines(text: bytes) -> list[str]:
    """
    The lines of a reply, without CRLF.
    """
    return text.decode("utf-8", "surrogateescape").split("\r\n")[:-1]


def replyBody(text: bytes) -> list[str]:
    """
    The inner lines of a multi-line reply (neither the first nor the last),
    without the leading space the server puts in front of them.
    """
    lines = replyLines(text)
    body = lines[1:-1]
    for line in body:
        if not line.startswith(" "):
            raise AssertionError(f"multi-line reply body line without a leading space: {line!r}")
    return [line[1:] for line in body]


class CommandTestCase(support.ServerLogTestCase):
    """
    Starts a server with user C{alice} (and anonymous access to the root)
    for each test; C{alice}'s home exists before the first login.
    """

    serverArgs: tuple[str, ...] = ()
    users: dict[str, str] = {USER: PASSWORD}

    def setUp(self) -> None:
        self.server = self.startServer(*self.serverArgs)
        self.home = self.server.userHome(USER)
        os.makedirs(self.home, mode=0o700, exist_ok=True)
        self.local = os.path.abspath(self.mktemp())
        os.makedirs(self.local)

    def startServer(self, *extraArgs: str) -> support.TwistdServer:
        server = support.TwistdServer(*extraArgs, users=dict(self.users))
        server.start()
        self.addCleanup(server.stop)
        return server

    # clients

    def session(
        self,
        user: str = USER,
        password: str = PASSWORD,
        server: support.TwistdServer | None = None,
    ) -> support.ControlConnection:
        """
        A raw control connection, logged in over TLS with C{PROT P}.
        """
        control = support.loggedInSession(server or self.server, user, password)
        self.addCleanup(control.close)
        return control

    def unauthenticated(self) -> support.ControlConnection:
        """
        A raw control connection after C{AUTH TLS}, not logged in.
        """
        control = support.ControlConnection(self.server)
        self.addCleanup(control.close)
        control.auth()
        return control

    def ftplib(self, user: str = USER, password: str = PASSWORD) -> ftplib.FTP_TLS:
        """
        A logged-in ftplib client (L{support.ReusingFTP_TLS}) with C{PROT P}.
        """
        client = support.ftplibClient(self.server, user, password)
        self.addCleanup(client.close)
        return client

    # assertions

    def serverLog(self, tail: int = 4000) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-tail:]

    def assertReply(self, reply: tuple[int, bytes], code: int, what: str = "") -> bytes:
        """
        C{reply} has C{code}; return its text.
        """
        if reply[0] != code:
            self.fail(f"{what}: expected {code}, got {reply[1]!r}" + self.serverLog())
        return reply[1]

    def visibleNames(self, directory: str | None = None) -> list[str]:
        """
        The names in a server directory (default: alice's home) that are not
        the server's hidden uploads.
        """
        names = os.listdir(directory or self.home)
        return sorted(n for n in names if not n.startswith(HIDDEN_PREFIX))

    def hiddenNames(self, directory: str | None = None) -> list[str]:
        return sorted(n for n in os.listdir(directory or self.home) if n.startswith(HIDDEN_PREFIX))

    def waitForHiddenBytes(self, count: int, directory: str | None = None) -> str:
        """
        Wait (at most 10 s) until a hidden upload file in C{directory} holds
        at least C{count} bytes on disk: the server has received what was
        sent so far (less what its file object still buffers; ask for 64 KiB
        less than was sent).

        @return: its name.
        """
        found: list[str] = []

        def written() -> bool:
            for name in self.hiddenNames(directory):
                try:
                    size = os.path.getsize(os.path.join(directory or self.home, name))
                except OSError:
                    continue
                if size >= count:
                    found.append(name)
                    return True
            return False

        if not support.waitUntil(written, 10):
            self.fail(
                f"the server never wrote {count} bytes into a hidden upload file;"
                f" directory holds {os.listdir(directory or self.home)}" + self.serverLog()
            )
        return found[0]


class RestartTests(CommandTestCase):
    """
    C{REST STREAM} (RFC 3659 section 5) for downloads, and resumption with
    curl.
    """

    def setUp(self) -> None:
        super().setUp()
        self.data = os.urandom(300_000 + 7)
        writeFile(os.path.join(self.home, "file.bin"), self.data)

    def test_retrFromOffset(self) -> None:
        """
        ftplib C{retrbinary(..., rest=N)} (REST N then RETR) returns exactly
        the bytes from offset N to the end, for N at the start, in the
        middle, one before the end and exactly at the end (empty tail, 226).
        """
        client = self.ftplib()
        for offset in (1, 65_537, len(self.data) - 1, len(self.data)):
            chunks: list[bytes] = []
            reply = client.retrbinary("RETR file.bin", chunks.append, rest=offset)
            self.assertTrue(reply.startswith("226"), reply)
            self.assertSameBytes(b"".join(chunks), self.data[offset:], f"RETR from {offset}")
        chunks = []
        client.retrbinary("RETR file.bin", chunks.append)
        self.assertSameBytes(b"".join(chunks), self.data, "RETR after the restarts (offset reset)")

    def test_restBeyondEnd(self) -> None:
        """
        No sparse holes: C{REST} one byte beyond the end of the file is accepted (350) but the
        following C{RETR} is refused with 554, sending no data; the session
        goes on and the next plain RETR returns the whole file.
        """
        client = self.ftplib()
        chunks: list[bytes] = []
        with self.assertRaises(ftplib.error_perm) as caught:
            client.retrbinary("RETR file.bin", chunks.append, rest=len(self.data) + 1)
        self.assertTrue(str(caught.exception).startswith("554"), str(caught.exception))
        self.assertEqual(chunks, [])
        client.retrbinary("RETR file.bin", chunks.append)
        self.assertSameBytes(b"".join(chunks), self.data, "RETR after the refused restart")

    def test_restBadValue(self) -> None:
        """
        C{REST} with a negative, missing, fractional, hexadecimal, non-ASCII
        digit or garbage argument gets 501 and sets no restart marker: the
        next RETR returns the whole file.
        """
        control = self.session()
        for argument in ("-1", "-100", "", "abc", "1.5", "0x10", "1e3", "\u0663", "12 34"):
            code, text = control.command(f"REST {argument}".rstrip())
            self.assertEqual(code, 501, f"REST {argument!r}: {text!r}")
        first, final, received = support.downloadOver(control, "RETR file.bin")
        self.assertReply(final, 226, "RETR")
        self.assertSameBytes(received, self.data, "RETR after bad REST arguments")

    def test_refusedRetrClearsRestart(self) -> None:
        """
        REST N followed by a RETR that is refused (425: no data connection
        prepared; 550: a path outside the root) ends that restart: the next
        plain RETR, after EPSV, returns the whole file, not its tail from N.
        """
        control = self.session()
        self.assertReply(control.command("REST 1000"), 350, "REST")
        self.assertReply(control.command("RETR file.bin"), 425, "RETR without EPSV")
        _, final, received = support.downloadOver(control, "RETR file.bin")
        self.assertReply(final, 226, "RETR")
        self.assertSameBytes(received, self.data, "plain RETR after a refused RETR (425)")
        self.assertReply(control.command("REST 1000"), 350, "REST")
        first, _, _ = support.downloadOver(control, "RETR ../../file.bin")
        self.assertReply(first, 550, "RETR outside the root")
        _, final, received = support.downloadOver(control, "RETR file.bin")
        self.assertSameBytes(received, self.data, "plain RETR after a refused RETR (550)")

    def test_curlResumeDownload(self) -> None:
        """
        C{curl -C -} continues an interrupted download: the local file holds
        the first K bytes; curl asks the size, sends REST K and RETR, and the
        local file ends up byte-identical to the server's.
        """
        keep = 123_457
        target = writeFile(os.path.join(self.local, "file.bin"), self.data[:keep])
        result = support.curl(
            self.server, "-C", "-", "-o", target, path="/file.bin", user=f"{USER}:{PASSWORD}"
        )
        self.assertSucceeded(result, "curl -C - download")
        self.assertSameBytes(readFile(target), self.data, "resumed download")
        self.assertIn("<- REST", self.server.log())

    def test_curlResumeUpload(self) -> None:
        """
        C{curl -C - -T} continues an interrupted upload: the server holds the
        first K bytes under the final name; curl asks its SIZE and APPEs the
        rest, and the server's file ends up byte-identical to the local one,
        with no hidden file left behind.
        """
        keep = 100_003
        writeFile(os.path.join(self.home, "up.bin"), self.data[:keep])
        source = writeFile(os.path.join(self.local, "up.bin"), self.data)
        result = support.curl(
            self.server, "-C", "-", "-T", source, path="/up.bin", user=f"{USER}:{PASSWORD}"
        )
        self.assertSucceeded(result, "curl -C - -T upload")
        self.assertSameBytes(readFile(os.path.join(self.home, "up.bin")), self.data, "resumed")
        log = self.server.log()
        self.assertIn("<- SIZE", log)
        self.assertIn("<- APPE", log)
        self.assertEqual(self.hiddenNames(), [])


class AppendAndUniqueTests(CommandTestCase):
    """
    C{APPE} and C{STOU}.
    """

    def test_append(self) -> None:
        """
        ftplib C{storbinary("APPE x")} creates C{x} when it does not exist and
        appends to it when it does; the result is the concatenation, byte for
        byte, and no hidden file is left behind.
        """
        client = self.ftplib()
        parts = [os.urandom(70_001), os.urandom(3), os.urandom(200_000)]
        for part in parts:
            reply = client.storbinary("APPE x.bin", io.BytesIO(part))
            self.assertTrue(reply.startswith("226"), reply)
        self.assertSameBytes(
            readFile(os.path.join(self.home, "x.bin")), b"".join(parts), "appended file"
        )
        self.assertEqual(os.listdir(self.home), ["x.bin"])

    def test_appendToExisting(self) -> None:
        """
        C{APPE} to a file that was put there by other means keeps its bytes
        and adds the new ones after them.
        """
        old = os.urandom(5000)
        writeFile(os.path.join(self.home, "log.txt"), old)
        new = b"appended line\r\n" * 100
        client = self.ftplib()
        client.storbinary("APPE log.txt", io.BytesIO(new))
        self.assertSameBytes(readFile(os.path.join(self.home, "log.txt")), old + new, "APPE")

    def storeUnique(self, control: support.ControlConnection, command: str, data: bytes) -> str:
        first, final = support.uploadOver(control, command, data)
        text = self.assertReply(first, 150, command).decode("utf-8")
        match = re.match(r"150 FILE: (.+)\r\n$", text)
        self.assertIsNotNone(match, f"{command}: 150 without 'FILE: name': {text!r}")
        assert match is not None
        name = match.group(1)
        final = (final[0], final[1])
        self.assertIn(name, self.assertReply(final, 226, command).decode("utf-8"))
        return name

    def test_storeUnique(self) -> None:
        """
        C{STOU base} answers C{150 FILE: name} and a 226 that names the file
        again; the data lands under that name. A second C{STOU} with the same
        base picks another name and leaves the first file alone; a file that
        already had the base name is never overwritten.
        """
        writeFile(os.path.join(self.home, "report.txt"), b"existing")
        control = self.session()
        one, two = os.urandom(1000), os.urandom(2000)
        first = self.storeUnique(control, "STOU report.txt", one)
        second = self.storeUnique(control, "STOU report.txt", two)
        self.assertNotEqual(first, second)
        self.assertNotIn("report.txt", (first, second))
        self.assertEqual(readFile(os.path.join(self.home, "report.txt")), b"existing")
        self.assertSameBytes(readFile(os.path.join(self.home, first)), one, "first STOU")
        self.assertSameBytes(readFile(os.path.join(self.home, second)), two, "second STOU")
        self.assertEqual(self.visibleNames(), sorted(["report.txt", first, second]))

    def test_storeUniqueWithoutName(self) -> None:
        """
        C{STOU} with no argument also stores under a fresh name it reports.
        """
        control = self.session()
        data = os.urandom(100)
        name = self.storeUnique(control, "STOU", data)
        self.assertSameBytes(readFile(os.path.join(self.home, name)), data, "STOU")

    def test_storeUniqueConcurrent(self) -> None:
        """
        Two sessions send C{STOU up} at the same time and both uploads are in
        progress together: they must get two different names, and both
        contents must survive (a unique name that is only checked at the
        start and then overwritten by C{os.replace} loses the first upload).
        """
        a, b = self.session(), self.session()
        firstA, dataA = support.startTransfer(a, "STOU up")
        firstB, dataB = support.startTransfer(b, "STOU up")
        self.assertIsNotNone(dataA, firstA)
        self.assertIsNotNone(dataB, firstB)
        assert dataA is not None and dataB is not None
        nameA = firstA[1].decode().partition("FILE: ")[2].strip()
        nameB = firstB[1].decode().partition("FILE: ")[2].strip()
        contentA, contentB = b"A" * 10_000, b"B" * 20_000
        dataA.sendall(contentA)
        support.finishUpload(dataA)
        self.assertReply(a.reply(10), 226, "STOU in session A")
        dataB.sendall(contentB)
        support.finishUpload(dataB)
        self.assertReply(b.reply(10), 226, "STOU in session B")
        stored = {n: readFile(os.path.join(self.home, n)) for n in self.visibleNames()}
        self.assertNotEqual(nameA, nameB, f"both STOU got the name {nameA!r}")
        self.assertEqual(sorted(stored.values()), [contentA, contentB], sorted(stored))


class AbortTests(CommandTestCase):
    """
    C{ABOR} when idle, during a download and during an upload.
    """

    def test_abortIdle(self) -> None:
        """
        ABOR with no transfer running: 225, and the session goes on.
        """
        control = self.session()
        self.assertReply(control.command("ABOR"), 225, "idle ABOR")
        control.epsv()
        self.assertReply(control.command("ABOR"), 225, "ABOR with a pending listener")
        self.assertReply(control.command("NOOP"), 200, "NOOP")

    def test_abortDownload(self) -> None:
        """
        SECURITY 27: During the RETR of a 50 MiB (sparse) file, after reading a little:
        ABOR makes the transfer end with 426, then ABOR itself gets 226, in
        that order; the data connection is closed well before the end of the
        file, and the session goes on.
        """
        size = 50 * 1024 * 1024
        sparseFile(os.path.join(self.home, "big.bin"), size)
        control = self.session()
        first, data = support.startTransfer(control, "RETR big.bin")
        self.assertReply(first, 150, "RETR")
        assert data is not None
        try:
            data.settimeout(5)
            self.assertTrue(data.recv(16384), "no data before ABOR")
            control.send("ABOR")
            self.assertReply(control.reply(10), 426, "transfer reply after ABOR")
            self.assertReply(control.reply(10), 226, "ABOR reply")
            received, closed = support.readUntilClosed(data, 10)
            self.assertTrue(closed, "data connection still open after ABOR")
            self.assertLess(len(received), size // 2)
        finally:
            data.close()
        self.assertReply(control.command("NOOP"), 200, "NOOP after ABOR")

    def test_abortWithTelnetPrefix(self) -> None:
        """
        SECURITY 27: ABOR preceded by Telnet IP and DM (IAC IP IAC DM, as RFC 959 clients
        send it, here inside TLS) during a download works like a plain ABOR:
        426 for the transfer, then 226.
        """
        sparseFile(os.path.join(self.home, "big.bin"), 50 * 1024 * 1024)
        control = self.session()
        first, data = support.startTransfer(control, "RETR big.bin")
        self.assertReply(first, 150, "RETR")
        assert data is not None
        try:
            data.settimeout(5)
            data.recv(16384)
            control.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
            self.assertReply(control.reply(10), 426, "transfer reply after IAC IP IAC DM ABOR")
            self.assertReply(control.reply(10), 226, "ABOR reply")
        finally:
            data.close()
        self.assertReply(control.command("NOOP"), 200, "NOOP after ABOR")

    def abortUpload(self, name: str) -> bytes:
        control = self.session()
        first, data = support.startTransfer(control, f"STOR {name}")
        self.assertReply(first, 150, "STOR")
        assert data is not None
        try:
            data.sendall(os.urandom(200_000))
            self.waitForHiddenBytes(200_000 - 65536)
            control.send("ABOR")
            text = self.assertReply(control.reply(10), 426, "transfer reply after ABOR")
            self.assertReply(control.reply(10), 226, "ABOR reply")
        finally:
            data.close()
        self.assertReply(control.command("NOOP"), 200, "NOOP after ABOR")
        return text

    def test_abortUploadNewFile(self) -> None:
        """
        SECURITY 27: ABOR in the middle of a STOR of a new file: 426 for the transfer, then
        226 for ABOR; no file is created under the final name.
        """
        self.abortUpload("new.bin")
        self.assertFalse(os.path.exists(os.path.join(self.home, "new.bin")))
        self.assertEqual(self.visibleNames(), [])

    def test_abortUploadExistingFile(self) -> None:
        """
        SECURITY 27: ABOR in the middle of a STOR over an existing file: 426 then 226, and
        the file keeps its previous content.
        """
        old = os.urandom(1234)
        writeFile(os.path.join(self.home, "old.bin"), old)
        self.abortUpload("old.bin")
        self.assertSameBytes(readFile(os.path.join(self.home, "old.bin")), old, "after ABOR")


class StatusTests(CommandTestCase):
    """
    C{STAT} without and with an argument, and during a transfer.
    """

    def setUp(self) -> None:
        super().setUp()
        writeFile(os.path.join(self.home, "one.txt"), b"1")
        writeFile(os.path.join(self.home, "two words.bin"), b"22")
        os.mkdir(os.path.join(self.home, "sub"))
        writeFile(os.path.join(self.home, "sub", "inner.txt"), b"333")

    def test_statSession(self) -> None:
        """
        STAT with no argument: a 211 multi-line reply (RFC 959) whose lines
        describe the session: the user, TLS on the control channel, the
        protection level, and that no transfer runs.
        """
        control = self.session()
        text = self.assertReply(control.command("STAT"), 211, "STAT")
        lines = replyLines(text)
        self.assertTrue(lines[0].startswith("211-"), lines)
        self.assertTrue(lines[-1].startswith("211 "), lines)
        body = "\n".join(replyBody(text))
        self.assertIn(USER, body)
        self.assertIn("TLS", body)
        self.assertIn("PROT P", body)
        self.assertIn("No transfer", body)

    def test_statPath(self) -> None:
        """
        C{STAT path} lists over the control channel: a 213 multi-line reply
        with one C{ls -l} line per entry (names with spaces intact), no data
        connection; C{STAT file} lists that one file; a missing path is 550.
        """
        control = self.session()
        text = self.assertReply(control.command("STAT /"), 213, "STAT /")
        entries = [line for line in replyBody(text) if re.match(r"^[-dl][-rwxsStT]{9} ", line)]
        self.assertEqual(len(entries), 3, replyLines(text))
        self.assertEqual(
            sorted(line.split(None, 8)[8] for line in entries), ["one.txt", "sub", "two words.bin"]
        )
        text = self.assertReply(control.command("STAT sub/inner.txt"), 213, "STAT file")
        entries = [line for line in replyBody(text) if line.endswith("inner.txt")]
        self.assertEqual(len(entries), 1, replyLines(text))
        self.assertEqual(entries[0].split()[4], "3")
        self.assertReply(control.command("STAT missing"), 550, "STAT missing")

    def test_statDuringTransfer(self) -> None:
        """
        While a download is running (the client does not read), STAT answers
        at once with a 211 that says a transfer is in progress, NOOP answers
        too; ABOR then ends the transfer (426, 226).
        """
        sparseFile(os.path.join(self.home, "big.bin"), 50 * 1024 * 1024)
        control = self.session()
        first, data = support.startTransfer(control, "RETR big.bin")
        self.assertReply(first, 150, "RETR")
        assert data is not None
        try:
            text = self.assertReply(control.command("STAT"), 211, "STAT during RETR")
            self.assertIn("Transfer in progress", text.decode())
            self.assertReply(control.command("NOOP"), 200, "NOOP during RETR")
            control.send("ABOR")
            self.assertReply(control.reply(10), 426, "RETR after ABOR")
            self.assertReply(control.reply(10), 226, "ABOR")
        finally:
            data.close()


class DuringTransferTests(CommandTestCase):
    """
    Commands while a transfer runs: C{ABOR}, C{STAT}, C{NOOP}, C{FEAT} and
    C{HELP} answer at once, C{QUIT} answers after the transfer's reply, and
    everything else is refused at once (425 for data-connection and transfer
    commands, 450 for file commands, 503 for the rest) without touching the
    running transfer, which ends byte-exact with its 226.
    """

    #: Commands refused during a transfer, with their codes (C{{port}} is a
    #: port number of the test's choice).
    refused = (
        ("PASV", 425),
        ("EPSV", 425),
        ("EPSV ALL", 425),
        ("PORT 127,0,0,1,{high},{low}", 425),
        ("EPRT |1|127.0.0.1|{port}|", 425),
        ("RETR big.bin", 425),
        ("STOR other.bin", 425),
        ("APPE big.bin", 425),
        ("STOU", 425),
        ("LIST", 425),
        ("NLST", 425),
        ("MLSD", 425),
        ("DELE big.bin", 450),
        ("RNFR big.bin", 450),
        ("RNTO renamed.bin", 450),
        ("MKD newdir", 450),
        ("RMD sub", 450),
        ("SIZE big.bin", 450),
        ("MDTM big.bin", 450),
        ("MLST big.bin", 450),
        ("MFMT 20200101000000 big.bin", 450),
        ("STAT big.bin", 450),
        ("REST 100", 503),
        ("TYPE A", 503),
        ("MODE S", 503),
        ("STRU F", 503),
        ("PBSZ 0", 503),
        ("PROT C", 503),
        ("CDC", 503),
        ("CCC", 503),
        ("AUTH TLS", 503),
        ("USER alice", 503),
        ("PASS secret", 503),
        ("REIN", 503),
        ("CWD sub", 503),
        ("CDUP", 503),
        ("PWD", 503),
        ("OPTS UTF8 ON", 503),
        ("SITE HELP", 503),
        ("ALLO 100", 503),
        ("SYST", 503),
        ("HOST example.org", 503),
    )

    #: Commands answered at once during a transfer, with their codes.
    answered = (("NOOP", 200), ("FEAT", 211), ("HELP", 214))

    def setUp(self) -> None:
        super().setUp()
        self.payload = os.urandom(16 * 1024 * 1024)
        writeFile(os.path.join(self.home, "big.bin"), self.payload)
        os.mkdir(os.path.join(self.home, "sub"))

    def slowDownload(self, control: support.ControlConnection, command: str) -> socket.socket:
        """
        Start C{command} over a data connection with a small receive buffer
        that the test does not read yet: the server's sends stall, so the
        transfer is really running.

        @return: the data socket (TLS).
        """
        port = control.epsv()
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        raw.settimeout(10)
        raw.connect((support.LOOPBACK, port))
        data = control.secureData(raw)
        control.send(command)
        self.assertReply(control.reply(), 150, command)
        return data

    def assertRefusedAndAnswered(self, control: support.ControlConnection, what: str) -> None:
        """
        Every command of L{refused} gets its refusal, every command of
        L{answered} its answer, one after the other while the transfer runs.
        """
        holder = socket.socket()
        holder.bind((support.LOOPBACK, 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        for line, code in self.refused:
            line = line.format(port=port, high=port >> 8, low=port & 0xFF)
            self.assertReply(control.command(line), code, f"{line} during {what}")
        for line, code in self.answered:
            self.assertReply(control.command(line), code, f"{line} during {what}")

    def assertSessionUnchanged(self, control: support.ControlConnection) -> None:
        """
        The refused commands changed nothing: the files and directories are
        as before, the working directory is C{/}, no restart offset is
        pending (a new RETR returns the whole file) and the session goes on.
        """
        self.assertEqual(sorted(os.listdir(self.home)), ["big.bin", "sub"])
        self.assertSameBytes(readFile(os.path.join(self.home, "big.bin")), self.payload, "file")
        self.assertIn(b'"/"', self.assertReply(control.command("PWD"), 257, "PWD"))
        writeFile(os.path.join(self.home, "small.bin"), b"0123456789" * 100)
        _, final, received = support.downloadOver(control, "RETR small.bin")
        self.assertReply(final, 226, "RETR after the transfer")
        self.assertSameBytes(received, b"0123456789" * 100, "RETR after the refused REST")

    def test_download(self) -> None:
        """
        During a 16 MiB RETR that the client does not read yet: every
        command of L{refused} gets its refusal at once and every command of
        L{answered} its answer; then the client reads the data: all 16 MiB
        byte-exact, and the RETR's 226 arrives. Nothing the refused commands
        would have done happened.
        """
        control = self.session()
        data = self.slowDownload(control, "RETR big.bin")
        try:
            self.assertRefusedAndAnswered(control, "RETR")
            received, closed = support.readUntilClosed(data, 30)
        finally:
            data.close()
        self.assertTrue(closed, "data connection not closed after the download")
        self.assertSameBytes(received, self.payload, "RETR with commands refused meanwhile")
        self.assertReply(control.reply(10), 226, "RETR")
        self.assertSessionUnchanged(control)

    def test_upload(self) -> None:
        """
        During a STOR that has received half of its 16 MiB: the same
        refusals and answers; then the client sends the rest and its
        close_notify: 226, and the file is the upload byte-exact.
        """
        upload = os.urandom(4 * 1024 * 1024)
        control = self.session()
        first, data = support.startTransfer(control, "STOR up.bin")
        self.assertReply(first, 150, "STOR")
        assert data is not None
        try:
            data.sendall(upload[: len(upload) // 2])
            self.waitForHiddenBytes(len(upload) // 2 - 65536)
            text = self.assertReply(control.command("STAT"), 211, "STAT during STOR")
            match = re.search(rb"Transfer in progress: (\d+) bytes received", text)
            self.assertIsNotNone(match, text)
            assert match is not None
            self.assertGreaterEqual(int(match.group(1)), len(upload) // 2 - 65536)
            self.assertRefusedAndAnswered(control, "STOR")
            data.sendall(upload[len(upload) // 2 :])
        finally:
            support.finishUpload(data)
        self.assertReply(control.reply(10), 226, "STOR")
        self.assertSameBytes(readFile(os.path.join(self.home, "up.bin")), upload, "STOR")
        os.remove(os.path.join(self.home, "up.bin"))
        self.assertSessionUnchanged(control)

    def test_statProgress(self) -> None:
        """
        STAT during a download answers at once with a 211 whose transfer line
        says how many bytes were sent so far: more than zero, less than the
        file.
        """
        control = self.session()
        data = self.slowDownload(control, "RETR big.bin")
        try:
            text = self.assertReply(control.command("STAT"), 211, "STAT during RETR")
            match = re.search(rb"Transfer in progress: (\d+) bytes sent", text)
            self.assertIsNotNone(match, text)
            assert match is not None
            self.assertGreater(int(match.group(1)), 0)
            self.assertLess(int(match.group(1)), len(self.payload))
            received, _ = support.readUntilClosed(data, 30)
        finally:
            data.close()
        self.assertSameBytes(received, self.payload, "RETR")
        self.assertReply(control.reply(10), 226, "RETR")

    def test_abortAfterRefusedCommands(self) -> None:
        """
        PASV, TYPE and ABOR pipelined in one write during a download: 425 and
        503 at once, then ABOR works as always (426 for the transfer, 226
        for ABOR); the refused commands never hold ABOR back.
        """
        control = self.session()
        data = self.slowDownload(control, "RETR big.bin")
        try:
            control.sock.sendall(b"PASV\r\nTYPE A\r\nABOR\r\n")
            self.assertReply(control.reply(), 425, "PASV during RETR")
            self.assertReply(control.reply(), 503, "TYPE during RETR")
            self.assertReply(control.reply(10), 426, "RETR after ABOR")
            self.assertReply(control.reply(10), 226, "ABOR")
        finally:
            data.close()
        self.assertReply(control.command("NOOP"), 200, "NOOP after ABOR")

    def test_quitAfterTransfer(self) -> None:
        """
        QUIT during a download does not cut it (RFC 959): the client reads
        all 16 MiB byte-exact, then gets the RETR's 226, then QUIT's 221,
        and the server closes the control connection.
        """
        control = self.session()
        data = self.slowDownload(control, "RETR big.bin")
        try:
            control.send("QUIT")
            received, closed = support.readUntilClosed(data, 30)
        finally:
            data.close()
        self.assertTrue(closed, "data connection not closed after the download")
        self.assertSameBytes(received, self.payload, "RETR with QUIT pending")
        self.assertReply(control.reply(10), 226, "RETR")
        self.assertReply(control.reply(10), 221, "QUIT")
        self.assertTrue(support.serverClosed(control), "control connection open after 221")


class MachineListingTests(CommandTestCase):
    """
    C{MLST}, C{MLSD}, C{OPTS MLST} (RFC 3659) and C{FEAT} (RFC 2389).
    """

    MTIME = calendar.timegm((2021, 5, 6, 7, 8, 9, 0, 0, 0))

    def setUp(self) -> None:
        super().setUp()
        self.files = {"data.bin": os.urandom(12_345), "empty": b"", "note.txt": b"note\n"}
        for name, data in self.files.items():
            path = writeFile(os.path.join(self.home, name), data)
            os.utime(path, (self.MTIME, self.MTIME))
        os.mkdir(os.path.join(self.home, "dir"))
        os.utime(os.path.join(self.home, "dir"), (self.MTIME + 60, self.MTIME + 60))

    def parseFacts(self, line: str) -> tuple[dict[str, str], str]:
        """
        Parse an RFC 3659 fact line: C{fact=value;...; name}.
        """
        facts, sep, name = line.partition("; ")
        self.assertTrue(sep, f"no '; ' before the name in {line!r}")
        parsed = {}
        for fact in facts.split(";"):
            key, eq, value = fact.partition("=")
            self.assertTrue(eq, f"malformed fact {fact!r} in {line!r}")
            parsed[key.lower()] = value
        return parsed, name

    def test_mlst(self) -> None:
        """
        C{MLST file}: a 250 multi-line reply whose one inner line is a space,
        the facts type/size/modify/perm/unique, a space and the path; the
        values are the file's. C{MLST dir} gives type=dir; a missing path
        is 550.
        """
        control = self.session()
        text = self.assertReply(control.command("MLST data.bin"), 250, "MLST")
        lines = replyLines(text)
        self.assertEqual(len(lines), 3, lines)
        self.assertTrue(lines[1].startswith(" ") and not lines[1].startswith("  "), lines)
        facts, name = self.parseFacts(lines[1][1:])
        self.assertEqual(name, "/data.bin")
        self.assertEqual(sorted(facts), ["modify", "perm", "size", "type", "unique"])
        self.assertEqual(facts["type"], "file")
        self.assertEqual(facts["size"], str(len(self.files["data.bin"])))
        self.assertEqual(facts["modify"], "20210506070809")
        self.assertIn("r", facts["perm"])
        self.assertIn("w", facts["perm"])
        text = self.assertReply(control.command("MLST dir"), 250, "MLST dir")
        facts, name = self.parseFacts(replyBody(text)[0])
        self.assertEqual((facts["type"], name), ("dir", "/dir"))
        self.assertEqual(facts["modify"], "20210506070909")
        self.assertReply(control.command("MLST missing"), 550, "MLST missing")

    def test_mlsdFtplib(self) -> None:
        """
        ftplib C{mlsd()}: one entry per file and directory, size equal to the
        file size, type file/dir, modify equal to the mtime (UTC), and a
        unique fact that differs between entries and matches MLST's.
        """
        client = self.ftplib()
        entries = dict(client.mlsd())
        self.assertEqual(sorted(entries), sorted([*self.files, "dir"]))
        for name, data in self.files.items():
            facts = entries[name]
            self.assertEqual(facts["type"], "file", facts)
            self.assertEqual(int(facts["size"]), len(data), facts)
            self.assertEqual(facts["modify"], "20210506070809", facts)
        self.assertEqual(entries["dir"]["type"], "dir")
        self.assertEqual(entries["dir"]["modify"], "20210506070909")
        uniques = [facts["unique"] for facts in entries.values()]
        self.assertEqual(len(set(uniques)), len(uniques), uniques)
        reply = client.sendcmd("MLST note.txt")
        self.assertIn(f"unique={entries['note.txt']['unique']};", reply)

    def test_permFacts(self) -> None:
        """
        The perm fact says what the user may do (RFC 3659 section 7.5.5):
        alice, in her home, may read, write, append, delete and rename her
        files (r, w, a, d, f) and create in and enter her directories (c, e,
        l, m); anonymous, in the read-only root, gets only r for files and
        e, l for directories.
        """
        client = self.ftplib()
        entries = dict(client.mlsd())
        self.assertEqual(set(entries["data.bin"]["perm"]), set("rawdf"))
        self.assertEqual(set(entries["dir"]["perm"]), set("elcmpdf"))
        writeFile(os.path.join(self.server.root, "pub.txt"), b"p")
        os.mkdir(os.path.join(self.server.root, "pubdir"))
        anonymous = self.ftplib("anonymous", "a@b")
        entries = dict(anonymous.mlsd())
        self.assertEqual(entries["pub.txt"]["perm"], "r")
        self.assertEqual(set(entries["pubdir"]["perm"]), set("el"))

    def test_optsMlst(self) -> None:
        """
        C{OPTS MLST type;size;} answers 200 with the facts now selected, and
        MLST and MLSD then show only those facts; unknown facts are ignored.
        """
        control = self.session()
        text = self.assertReply(control.command("OPTS MLST type;size;bogus;"), 200, "OPTS MLST")
        self.assertIn("type;size;", text.decode())
        facts, _ = self.parseFacts(replyBody(control.command("MLST data.bin")[1])[0])
        self.assertEqual(facts, {"type": "file", "size": str(len(self.files["data.bin"]))})
        first, final, received = support.downloadOver(control, "MLSD")
        self.assertReply(final, 226, "MLSD")
        lines = received.decode().split("\r\n")
        self.assertEqual(lines[-1], "")
        for line in lines[:-1]:
            facts, name = self.parseFacts(line)
            self.assertEqual(sorted(facts), ["size", "type"], line)

    def test_featMarksSelectedFacts(self) -> None:
        """
        RFC 3659 section 7.8: FEAT's MLST line marks with C{*} the facts that
        are currently selected; after C{OPTS MLST type;size;} only type and
        size carry the mark, the other facts are still offered.
        """
        control = self.session()
        self.assertReply(control.command("OPTS MLST type;size;"), 200, "OPTS MLST")
        features = replyBody(self.assertReply(control.command("FEAT"), 211, "FEAT"))
        mlst = [f for f in features if f.startswith("MLST ")]
        self.assertEqual(len(mlst), 1, features)
        facts = mlst[0][5:].rstrip(";").split(";")
        self.assertEqual(sorted(facts), ["modify", "perm", "size*", "type*", "unique"], mlst[0])

    def test_feat(self) -> None:
        """
        FEAT (before and after login, the same): a 211 multi-line reply, one
        feature a line with exactly one leading space, listing AUTH TLS,
        PBSZ, PROT, EPSV, EPRT, UTF8, SIZE, MDTM, MFMT, REST STREAM, MLST
        with the facts, TVFS and HOST; and every listed command is
        implemented (none answers 502).
        """
        before = self.unauthenticated().command("FEAT")
        control = self.session()
        after = control.command("FEAT")
        self.assertEqual(before, after)
        text = self.assertReply(after, 211, "FEAT")
        lines = replyLines(text)
        self.assertTrue(lines[0].startswith("211-") and lines[-1].startswith("211 "), lines)
        features = []
        for line in lines[1:-1]:
            self.assertTrue(line.startswith(" ") and line[1:2] not in (" ", ""), repr(line))
            features.append(line[1:])
        for expected in (
            "AUTH TLS",
            "PBSZ",
            "PROT",
            "EPSV",
            "EPRT",
            "UTF8",
            "SIZE",
            "MDTM",
            "MFMT",
            "REST STREAM",
            "TVFS",
            "HOST",
        ):
            self.assertIn(expected, features)
        mlst = [f for f in features if f.startswith("MLST ")]
        self.assertEqual(len(mlst), 1, features)
        self.assertEqual(
            sorted(f.rstrip("*") for f in mlst[0][5:].rstrip(";").split(";")),
            ["modify", "perm", "size", "type", "unique"],
        )
        self.assertEqual(len(features), len(set(features)), features)
        probes = {
            "AUTH": "AUTH TLS",
            "PBSZ": "PBSZ 0",
            "PROT": "PROT P",
            "EPSV": "EPSV",
            "EPRT": "EPRT |1|127.0.0.1|80|",
            "UTF8": "OPTS UTF8 ON",
            "SIZE": "SIZE data.bin",
            "MDTM": "MDTM data.bin",
            "MFMT": "MFMT 20200101000000 note.txt",
            "REST": "REST 0",
            "MLST": "MLST data.bin",
            "HOST": "HOST localhost",
        }
        for feature in features:
            probe = probes.get(feature.split()[0])
            if probe is None:
                continue
            code, reply = control.command(probe)
            self.assertNotIn(code, (500, 502), f"FEAT lists {feature!r} but {probe}: {reply!r}")


class MiscellaneousCommandTests(CommandTestCase):
    """
    MFMT, ALLO, SITE, HOST, REIN, CDC and CCC.
    """

    def test_mfmt(self) -> None:
        """
        C{MFMT 20200102030405 f} answers 213 with the new time, sets the
        file's mtime on disk to that UTC time, and MDTM reports it back; a
        malformed time is 501 and changes nothing; a missing file is 550.
        """
        path = writeFile(os.path.join(self.home, "f.txt"), b"x")
        control = self.session()
        text = self.assertReply(control.command("MFMT 20200102030405 f.txt"), 213, "MFMT")
        self.assertIn("20200102030405", text.decode())
        self.assertEqual(os.stat(path).st_mtime, calendar.timegm((2020, 1, 2, 3, 4, 5, 0, 0, 0)))
        self.assertEqual(control.command("MDTM f.txt"), (213, b"213 20200102030405\r\n"))
        for bad in ("MFMT 2020 f.txt", "MFMT f.txt", "MFMT 20201399999999 f.txt", "MFMT"):
            self.assertEqual(control.command(bad)[0], 501, bad)
        self.assertEqual(os.stat(path).st_mtime, calendar.timegm((2020, 1, 2, 3, 4, 5, 0, 0, 0)))
        self.assertReply(control.command("MFMT 20200102030405 missing"), 550, "MFMT missing")

    def test_allo(self) -> None:
        """
        ALLO (with or without a size) is 202: nothing to allocate.
        """
        control = self.session()
        self.assertReply(control.command("ALLO 1000000"), 202, "ALLO n")
        self.assertReply(control.command("ALLO"), 202, "ALLO")

    def test_site(self) -> None:
        """
        C{SITE HELP} is a 214 reply that lists HELP; an unknown or empty SITE
        command is 504.
        """
        control = self.session()
        text = self.assertReply(control.command("SITE HELP"), 214, "SITE HELP")
        self.assertIn("HELP", " ".join(replyBody(text)).split())
        self.assertReply(control.command("SITE CHMOD 777 x"), 504, "SITE CHMOD")
        self.assertReply(control.command("SITE BOGUS"), 504, "SITE BOGUS")
        self.assertReply(control.command("SITE"), 504, "SITE")

    def test_host(self) -> None:
        """
        SECURITY 11 (pre-login allow-list): HOST (RFC 7151) before USER is 220; after
        USER, or after login, 503; without a name, 501.
        """
        control = self.unauthenticated()
        self.assertReply(control.command("HOST"), 501, "HOST without a name")
        self.assertReply(control.command("HOST ftp.example.com"), 220, "HOST before USER")
        self.assertReply(control.command(f"USER {USER}"), 331, "USER")
        self.assertReply(control.command("HOST ftp.example.com"), 503, "HOST after USER")
        self.assertReply(control.command(f"PASS {PASSWORD}"), 230, "PASS")
        self.assertReply(control.command("HOST ftp.example.com"), 503, "HOST after login")

    def test_rein(self) -> None:
        """
        TLS is never downgraded: REIN logs the user out (220; a following PWD is 530)
        and keeps TLS on the control channel: the next replies still arrive over TLS,
        and the user can log in again over it.
        """
        control = self.session()
        self.assertReply(control.command("REIN"), 220, "REIN")
        self.assertReply(control.command("PWD"), 530, "PWD after REIN")
        self.assertReply(control.command("STOR x"), 530, "STOR after REIN")
        self.assertIsNotNone(control.sock.version())  # type: ignore[attr-defined]
        self.assertReply(control.command("NOOP"), 200, "NOOP over TLS after REIN")
        control.login(USER, PASSWORD)
        self.assertReply(control.command("PWD"), 257, "PWD after logging in again")

    def test_cdc(self) -> None:
        """
        CDC clears the data channel like C{PROT C}: 200, STAT shows PROT C,
        and with data TLS required (the default) the next transfer is 521,
        exactly as after C{PROT C}; C{PROT P} restores transfers.
        """
        writeFile(os.path.join(self.home, "f.txt"), b"f")
        control = self.session()
        self.assertReply(control.command("CDC"), 200, "CDC")
        self.assertIn("PROT C", control.command("STAT")[1].decode())
        cdc = control.command("NLST")
        self.assertReply(control.command("PROT P"), 200, "PROT P")
        self.assertReply(control.command("PROT C"), 200, "PROT C")
        protC = control.command("NLST")
        self.assertEqual(cdc[0], 521, cdc)
        self.assertEqual(cdc, protC)
        self.assertReply(control.command("PROT P"), 200, "PROT P")
        first, final, received = support.downloadOver(control, "NLST")
        self.assertReply(final, 226, "NLST after PROT P")
        self.assertEqual(received, b"f.txt\r\n")

    def test_cdcClearTransfer(self) -> None:
        """
        On a server that requires TLS only on the control channel
        (C{--tls-required control}), a transfer after CDC runs in clear on
        the data connection.
        """
        server = self.startServer("--tls-required", "control")
        writeFile(os.path.join(server.userHome(USER), "f.txt"), b"clear bytes")
        control = self.session(server=server)
        self.assertReply(control.command("CDC"), 200, "CDC")
        port = control.epsv()
        data = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            control.send("RETR f.txt")
            self.assertReply(control.reply(), 150, "RETR")
            received, _ = support.readUntilClosed(data, 5)
        finally:
            data.close()
        self.assertReply(control.reply(), 226, "RETR after CDC")
        self.assertEqual(received, b"clear bytes")

    def test_ccc(self) -> None:
        """
        SECURITY 8: CCC after login is refused by the default policy (534)
        and TLS stays on: NOOP over TLS still works. CCC before login is 530.
        """
        control = self.session()
        self.assertReply(control.command("CCC"), 534, "CCC")
        self.assertReply(control.command("NOOP"), 200, "NOOP over TLS after CCC")
        self.assertIsNotNone(control.sock.version())  # type: ignore[attr-defined]
        self.assertReply(control.command("PWD"), 257, "PWD over TLS after CCC")
        fresh = self.unauthenticated()
        self.assertReply(fresh.command("CCC"), 530, "CCC before login")
        self.assertReply(fresh.command("NOOP"), 200, "NOOP over TLS after CCC before login")


class UTF8Tests(CommandTestCase):
    """
    UTF-8 paths (RFC 2640) and quoting in 257 replies.
    """

    NAME = "\u00fcn\u00efc\u00f8d\u00e9 \u2713.txt"

    def test_optsUtf8(self) -> None:
        """
        C{OPTS UTF8 ON} is 200 (before and after login).
        """
        self.assertReply(self.unauthenticated().command("OPTS UTF8 ON"), 200, "before login")
        self.assertReply(self.session().command("OPTS UTF8 ON"), 200, "after login")

    def test_utf8Names(self) -> None:
        """
        ftplib (encoding utf-8) uploads a file named with non-ASCII letters,
        a space and a check mark: it is stored on disk under the UTF-8 bytes
        of that name, NLST and MLSD list it, SIZE finds it, and RETR returns
        the same bytes.
        """
        client = self.ftplib()
        self.assertEqual(client.encoding, "utf-8")
        self.assertTrue(client.sendcmd("OPTS UTF8 ON").startswith("200"))
        data = os.urandom(40_000)
        client.storbinary(f"STOR {self.NAME}", io.BytesIO(data))
        self.assertEqual(os.listdir(os.fsencode(self.home)), [self.NAME.encode("utf-8")])
        self.assertEqual(client.nlst(), [self.NAME])
        self.assertEqual([name for name, _ in client.mlsd()], [self.NAME])
        self.assertEqual(client.size(self.NAME), len(data))
        lines: list[str] = []
        client.retrlines("LIST", lines.append)
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].endswith(" " + self.NAME), lines)
        chunks: list[bytes] = []
        client.retrbinary(f"RETR {self.NAME}", chunks.append)
        self.assertSameBytes(b"".join(chunks), data, "RETR of the UTF-8 name")

    def test_mkdQuote(self) -> None:
        """
        MKD of a directory named C{a"b} answers 257 with the quote doubled
        (RFC 959 appendix II), ftplib's parser gets the name back, and PWD
        inside it quotes it the same way.
        """
        control = self.session()
        code, text = control.command('MKD a"b')
        self.assertEqual((code, text), (257, b'257 "/a""b" created.\r\n'))
        self.assertTrue(os.path.isdir(os.path.join(self.home, 'a"b')))
        self.assertEqual(ftplib.parse257(text.decode().rstrip("\r\n")), '/a"b')
        self.assertReply(control.command('CWD a"b'), 250, "CWD")
        self.assertEqual(ftplib.parse257(control.command("PWD")[1].decode().rstrip()), '/a"b')


class HostileNameTests(CommandTestCase):
    """
    Listings never break the protocol, and hide nothing: names with CR, LF
    and other control characters, created directly on disk, are shown in
    LIST, NLST, MLSD, STAT and MLST exactly once, on one line, with each
    control character (and each byte that is not UTF-8) written as C{\\xHH};
    the escaped name works in every command, so the user can fetch, rename
    and delete such files.
    """

    GOOD = ["also good", "dir", "good.txt", "\u00e9t\u00e9.txt", "back\\slash"]
    #: Hostile names on disk and how listings show them.
    BAD = {
        b"cr\rname": "cr\\x0dname",
        b"lf\nname": "lf\\x0aname",
        b"crlf\r\n226 fake": "crlf\\x0d\\x0a226 fake",
        b"tab\tname": "tab\\x09name",
        b"esc\x1b[31mname": "esc\\x1b[31mname",
        b"del\x7fname": "del\\x7fname",
        b"bell\x07": "bell\\x07",
        b"nel\xc2\x85name": "nel\\xc2\\x85name",
        b"ls\xe2\x80\xa8name": "ls\\xe2\\x80\\xa8name",
        b"latin1-\xe9t\xe9": "latin1-\\xe9t\\xe9",
        b"fake\\x41": "fake\\\\x41",
        b"dir-\nwith-lf": "dir-\\x0awith-lf",
    }

    def setUp(self) -> None:
        super().setUp()
        self.base = os.fsencode(self.home)
        for name in self.GOOD:
            if name == "dir":
                os.mkdir(os.path.join(self.home, name))
            else:
                writeFile(os.path.join(self.home, name), name.encode())
        for raw in self.BAD:
            if raw.startswith(b"dir-"):
                os.mkdir(os.path.join(self.base, raw))
            else:
                with open(os.path.join(self.base, raw), "wb") as f:
                    f.write(b"bad " + raw)
        self.assertEqual(len(os.listdir(self.base)), len(self.GOOD) + len(self.BAD))
        self.shown = sorted(self.GOOD + list(self.BAD.values()))

    def listing(self, control: support.ControlConnection, command: str) -> list[str]:
        first, final, received = support.downloadOver(control, command)
        self.assertReply(final, 226, command)
        self.assertTrue(received.endswith(b"\r\n"), received)
        lines = received[:-2].split(b"\r\n")
        for line in lines:
            self.assertNotIn(b"\r", line, f"{command}: bare CR in {line!r}")
            self.assertNotIn(b"\n", line, f"{command}: bare LF in {line!r}")
            self.assertFalse(any(b < 0x20 or b == 0x7F for b in line), line)
        return [line.decode("utf-8") for line in lines]

    def assertOneLineReply(self, reply: tuple[int, bytes], code: int, what: str) -> str:
        """
        C{reply} has C{code}, only CRLF line ends and no other control
        character; return its text.
        """
        text = self.assertReply(reply, code, what)
        self.assertEqual(text.count(b"\n"), text.count(b"\r\n"), text)
        self.assertEqual(text.count(b"\r"), text.count(b"\r\n"), text)
        self.assertFalse(any(b < 0x20 and b not in b"\r\n" or b == 0x7F for b in text), text)
        return text.decode("utf-8")

    def test_nlst(self) -> None:
        """
        NLST: every name exactly once, one per CRLF line, control characters
        escaped.
        """
        names = self.listing(self.session(), "NLST")
        self.assertEqual(sorted(names), self.shown)

    def test_list(self) -> None:
        """
        LIST: one C{ls -l} line per entry, each ending in its (escaped) name.
        """
        lines = self.listing(self.session(), "LIST")
        self.assertEqual(sorted(line.split(None, 8)[8] for line in lines), self.shown)

    def test_mlsd(self) -> None:
        """
        MLSD: one fact line per entry, with its (escaped) name.
        """
        lines = self.listing(self.session(), "MLSD")
        self.assertEqual(sorted(line.partition("; ")[2] for line in lines), self.shown)

    def test_stat(self) -> None:
        """
        STAT / over the control channel: a well-formed 213 multi-line reply
        with one listing line per entry, and the session goes on (the next
        command's reply is not confused with listing lines).
        """
        control = self.session()
        text = self.assertOneLineReply(control.command("STAT /"), 213, "STAT /")
        body = replyBody(text.encode())
        entries = [line for line in body if re.match(r"^[-d][-rwxsStT]{9} ", line)]
        self.assertEqual(len(entries), len(body), body)
        self.assertEqual(sorted(line.split(None, 8)[8] for line in entries), self.shown)
        self.assertEqual(control.command("NOOP"), (200, b"200 NOOP ok.\r\n"))

    def test_mlst(self) -> None:
        """
        MLST of each hostile name, given as listings show it, is a
        well-formed 250 reply naming the path escaped.
        """
        control = self.session()
        for shown in self.BAD.values():
            text = self.assertOneLineReply(control.command(f"MLST {shown}"), 250, shown)
            lines = replyLines(text.encode())
            self.assertEqual(len(lines), 3, lines)
            self.assertEqual(lines[1].partition("; ")[2], "/" + shown)

    def test_retrieveRenameDelete(self) -> None:
        """
        The escaped names work in commands: RETR gets the file's bytes, RNFR
        (350, one line) and RNTO rename it, DELE removes it; the other files
        are untouched.
        """
        control = self.session()
        raw, shown = b"crlf\r\n226 fake", self.BAD[b"crlf\r\n226 fake"]
        _, final, received = support.downloadOver(control, f"RETR {shown}")
        self.assertReply(final, 226, "RETR")
        self.assertEqual(received, b"bad " + raw)
        self.assertOneLineReply(control.command(f"RNFR {shown}"), 350, "RNFR")
        self.assertReply(control.command("RNTO cleaned.txt"), 250, "RNTO")
        self.assertEqual(readFile(os.path.join(self.home, "cleaned.txt")), b"bad " + raw)
        for raw, shown in self.BAD.items():
            if raw == b"crlf\r\n226 fake":
                continue
            command = "RMD" if raw.startswith(b"dir-") else "DELE"
            self.assertReply(control.command(f"{command} {shown}"), 250, f"{command} {shown}")
        self.assertEqual(sorted(os.listdir(self.home)), sorted(self.GOOD + ["cleaned.txt"]))
        self.assertEqual(readFile(os.path.join(self.home, "back\\slash")), b"back\\slash")

    def test_ftplibDeletes(self) -> None:
        """
        ftplib, a real client, lists the hostile names and deletes each with
        the name it listed.
        """
        client = self.ftplib()
        names = client.nlst()
        self.assertEqual(sorted(names), self.shown)
        for raw, shown in self.BAD.items():
            if raw.startswith(b"dir-"):
                client.rmd(shown)
            else:
                client.delete(shown)
        self.assertEqual(sorted(os.listdir(self.home)), sorted(self.GOOD))

    def test_lftpMirror(self) -> None:
        """
        lftp, a real client, mirrors the directory: it lists it (MLSD) and
        fetches every file by the name it listed, the hostile ones included;
        each arrives with its bytes under its escaped name.
        """
        target = os.path.join(self.local, "down")
        result = support.lftp(self.server, f"mirror / {target}", user=f"{USER},{PASSWORD}")
        self.assertSucceeded(result, "lftp mirror")
        self.assertEqual(sorted(os.listdir(target)), self.shown)
        for raw, shown in self.BAD.items():
            if not raw.startswith(b"dir-"):
                self.assertEqual(readFile(os.path.join(target, shown)), b"bad " + raw, shown)

    def test_pwd(self) -> None:
        """
        CWD into a directory with a LF in its name (given escaped); PWD's 257
        is one line, the path escaped, and ftplib's 257 parser gets it back.
        """
        control = self.session()
        self.assertReply(control.command("CWD dir-\\x0awith-lf"), 250, "CWD")
        text = self.assertOneLineReply(control.command("PWD"), 257, "PWD")
        self.assertEqual(ftplib.parse257(text.rstrip("\r\n")), "/dir-\\x0awith-lf")

    def test_newNamesRefused(self) -> None:
        """
        A name with a control character (sent raw, as C0 characters other
        than CR and LF can be, or escaped) is not allowed for a new file or
        directory: MKD, STOR and RNTO get 553 and nothing is created.
        """
        control = self.session()
        before = sorted(os.listdir(self.base))
        for line in [b"MKD new\x01dir", b"MKD new\\x0ddir", b"MKD new\x1bdir"]:
            code, text = control.command(line)
            self.assertEqual(code, 553, text)
            self.assertOneLineReply((code, text), 553, repr(line))
        first, data = support.startTransfer(control, "STOR new\\x0a226 fake")
        self.assertEqual(first[0], 553, first)
        self.assertReply(control.command("RNFR good.txt"), 350, "RNFR")
        self.assertEqual(control.command(b"RNTO bad\x07name")[0], 553)
        self.assertEqual(sorted(os.listdir(self.base)), before)

    def test_goodFilesIntact(self) -> None:
        """
        The printable files next to the hostile ones download intact, and the
        hostile ones are untouched on disk.
        """
        client = self.ftplib()
        for name in self.GOOD:
            if name == "dir":
                continue
            chunks: list[bytes] = []
            client.retrbinary(f"RETR {name}", chunks.append)
            self.assertEqual(b"".join(chunks), name.encode())
        for raw in self.BAD:
            if not raw.startswith(b"dir-"):
                with open(os.path.join(self.base, raw), "rb") as f:
                    self.assertEqual(f.read(), b"bad " + raw, raw)


class InteropTests(CommandTestCase):
    """
    lftp C{mirror} (over MLSD) and C{mirror -R}, curl C{--ftp-create-dirs}.
    """

    TREE: dict[str, bytes | None] = {
        "readme.txt": b"hello\n",
        "nested": None,
        "nested/data.bin": b"\x00\xff" * 40_000 + b"tail",
        "nested/deeper": None,
        "nested/deeper/empty.dat": b"",
        "space name.txt": b"spaces",
    }

    def test_lftpMirror(self) -> None:
        """
        lftp C{mirror} of a tree in alice's home brings it down
        byte-identical; lftp listed the directories with MLSD (the server log
        shows MLSD, not LIST), since FEAT lists MLST.
        """
        for relative, data in self.TREE.items():
            path = os.path.join(self.home, "tree", *relative.split("/"))
            if data is None:
                os.makedirs(path, exist_ok=True)
            else:
                writeFile(path, data)
        target = os.path.join(self.local, "down")
        result = support.lftp(self.server, f"mirror tree {target}", user=f"{USER},{PASSWORD}")
        self.assertSucceeded(result, "lftp mirror")
        self.assertEqual(readTree(target), self.TREE)
        log = self.server.log()
        self.assertIn("<- MLSD", log)
        self.assertNotIn("<- LIST", log)

    def test_lftpMirrorReverse(self) -> None:
        """
        lftp C{mirror -R} uploads a tree into alice's home byte-identical
        (directories created with MKD, files stored through hidden temporary
        files, none of which is left behind), and C{mirror} brings it back.
        """
        source = os.path.join(self.local, "up")
        for relative, data in self.TREE.items():
            path = os.path.join(source, *relative.split("/"))
            if data is None:
                os.makedirs(path, exist_ok=True)
            else:
                writeFile(path, data)
        login = f"{USER},{PASSWORD}"
        result = support.lftp(self.server, f"mirror -R {source} up", user=login)
        self.assertSucceeded(result, "lftp mirror -R")
        remote = os.path.join(self.home, "up")
        self.assertEqual(readTree(remote), self.TREE)
        back = os.path.join(self.local, "back")
        self.assertSucceeded(support.lftp(self.server, f"mirror up {back}", user=login), "mirror")
        self.assertEqual(readTree(back), self.TREE)

    def test_curlCreateDirs(self) -> None:
        """
        C{curl --ftp-create-dirs -T file ftp://.../a/b/c/file} creates the
        missing directories a, a/b, a/b/c and stores the file there.
        """
        data = os.urandom(50_000)
        source = writeFile(os.path.join(self.local, "file.bin"), data)
        result = support.curl(
            self.server,
            "--ftp-create-dirs",
            "-T",
            source,
            path="/a/b/c/file.bin",
            user=f"{USER}:{PASSWORD}",
        )
        self.assertSucceeded(result, "curl --ftp-create-dirs")
        self.assertSameBytes(
            readFile(os.path.join(self.home, "a", "b", "c", "file.bin")), data, "created"
        )
        self.assertEqual(self.visibleNames(), ["a"])


class FilesystemErrorTests(CommandTestCase):
    """
    Every command that touches the filesystem answers its failure with the
    reply RFC 959 means: C{550} for what will not change by itself (missing,
    not empty, exists, is or is not a directory, a symlink loop), C{553} for
    a name the server does not allow, C{552} when the storage is full; never
    the C{451} that tells clients to try again later.
    """

    def setUp(self) -> None:
        super().setUp()
        writeFile(os.path.join(self.home, "file.txt"), b"file")
        os.mkdir(os.path.join(self.home, "dir"))
        writeFile(os.path.join(self.home, "dir", "inner.txt"), b"inner")
        os.mkdir(os.path.join(self.home, "empty"))
        os.symlink("loop", os.path.join(self.home, "loop"))
        self.before = support.snapshotTree(self.home)

    def failures(self, control: support.ControlConnection) -> dict[str, int]:
        """
        Run each failing command on C{control}; the reply code of each.
        """
        codes: dict[str, int] = {}
        plain = [
            "CWD missing",
            "CWD file.txt",
            "MKD dir",
            "MKD file.txt",
            f"MKD {HIDDEN_PREFIX}x",
            "RMD dir",
            "RMD missing",
            "RMD file.txt",
            "DELE missing",
            "DELE dir",
            "RNFR missing",
            "SIZE missing",
            "SIZE dir",
            "MDTM missing",
            "MFMT 20200101000000 missing",
            "MLST missing",
            "STAT missing",
        ]
        for line in plain:
            codes[line] = control.command(line)[0]
        for source, target in [
            ("file.txt", "missing/x.txt"),
            ("file.txt", f"{HIDDEN_PREFIX}x"),
            ("empty", "dir"),
        ]:
            self.assertReply(control.command(f"RNFR {source}"), 350, f"RNFR {source}")
            codes[f"RNFR {source}, RNTO {target}"] = control.command(f"RNTO {target}")[0]
        transfers = [
            "RETR missing",
            "RETR dir",
            "RETR loop",
            "STOR missing/x",
            "STOR dir",
            f"STOR {HIDDEN_PREFIX}x",
            "STOR " + "n" * 300,
            "APPE missing/x",
            "APPE dir",
            "STOU missing/x",
            "LIST missing",
            "NLST missing",
            "MLSD missing",
        ]
        for line in transfers:
            first, data = support.startTransfer(control, line)
            if data is not None:
                data.close()
            codes[line] = first[0]
        self.assertReply(control.command("NOOP"), 200, "NOOP after the failures")
        return codes

    def test_rmdNotEmpty(self) -> None:
        """
        RMD of a directory that is not empty is C{550} (a non-empty
        directory will not empty itself; C{451} made clients retry), and the
        directory and its file stay.
        """
        code, text = self.session().command("RMD dir")
        self.assertEqual((code, text), (550, b"550 Directory not empty.\r\n"))
        self.assertEqual(readFile(os.path.join(self.home, "dir", "inner.txt")), b"inner")

    def test_everyCommand(self) -> None:
        """
        Each command that touches the filesystem, against its failure:
        C{550} for a missing path, a directory that is not empty, a name that
        exists, a file where a directory is needed and back, a symlink loop;
        C{553} for a reserved or too long name; nothing on disk changes.
        """
        codes = self.failures(self.session())
        expected = {line: 550 for line in codes}
        for line in [
            f"MKD {HIDDEN_PREFIX}x",
            f"RNFR file.txt, RNTO {HIDDEN_PREFIX}x",
            f"STOR {HIDDEN_PREFIX}x",
            "STOR " + "n" * 300,
        ]:
            expected[line] = 553
        self.assertEqual(codes, expected, self.serverLog())
        self.assertEqual(support.snapshotTree(self.home), self.before)

    def test_storageFull(self) -> None:
        """
        MKD, STOR and STOU in a directory whose file system has no inode left
        (a tmpfs with C{nr_inodes=1}: C{ENOSPC}) are C{552}, not C{451}.
        """
        full = os.path.join(self.home, "full")
        os.mkdir(full)
        self.addCleanup(support.mountTmpfs(full, "1m,nr_inodes=1"))
        control = self.session()
        self.assertEqual(control.command("MKD full/sub")[0], 552, self.serverLog())
        for line in ["STOR full/x", "STOU full/x"]:
            first, data = support.startTransfer(control, line)
            if data is not None:
                data.close()
            self.assertEqual(first[0], 552, f"{line}: {first!r}")
        self.assertEqual(os.listdir(full), [])


class FailedTransferCommandTests(CommandTestCase):
    """
    A transfer command refused before its 150 (a missing file or directory)
    ends the data connection set up for it at once, so the client is not
    left holding an open data connection until the data timeout.
    """

    def test_dataConnectionClosedAfterRefusal(self) -> None:
        """
        EPSV, a protected data connection that resumed the session, then
        C{MLSD /missing} and C{RETR missing}: each gets 550, and the server
        closes the data connection right away (within 5 s, while the data
        timeout is 30 s) with no byte; the session goes on.
        """
        control = self.session()
        for command in ("MLSD /missing", "RETR missing"):
            port = control.epsv()
            data = control.openData(port)
            self.addCleanup(data.close)
            code, text = control.command(command)
            self.assertEqual(code, 550, text)
            received, closed = support.readUntilClosed(data, 5)
            self.assertTrue(closed, f"{command}: the data connection stayed open")
            self.assertEqual(received, b"")
        control.expect("NOOP", 200)
