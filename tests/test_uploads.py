"""
Uploads that never lose or corrupt data, and the SECURITY.md cases about
writing: safe (hidden temporary) uploads, interrupted uploads kept for
C{REST} + C{STOR}, anonymous read-only access (20), disk full and write
errors (26), ABOR and QUIT during transfers and file descriptors (27), and
path checks of the new commands (22, 24, 25).

Everything runs against the real C{twistd -n ftps} on loopback, with raw TLS
control and data connections (L{support.ControlConnection}) so that the
tests decide byte by byte what the server gets, and when.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import time
from collections.abc import Callable

from tests import support
from tests.test_commands import (
    HIDDEN_PREFIX,
    PASSWORD,
    USER,
    CommandTestCase,
    readFile,
    sparseFile,
    writeFile,
)

#: The 426 text of an interrupted upload: how many bytes are kept, and how to
#: resume.
KEPT = re.compile(rb"(\d+) bytes kept: resume with REST (\d+) and STOR (\S.*?)\.\r\n")


def commandWithData(control: support.ControlConnection, line: str | bytes) -> tuple[int, bytes]:
    """
    Send C{line}, after C{EPSV} when it is a command that needs a data
    connection; return its reply.
    """
    verb = (line if isinstance(line, str) else line.decode("utf-8", "replace")).split(" ")[0]
    if verb.upper() in ("RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"):
        control.epsv()
    return control.command(line)


class BIOUpload:
    """
    The client side of a TLS data connection built on memory BIOs over a
    real socket: the test decides exactly which TLS records reach the
    server, and whether a close_notify ever does.
    """

    def __init__(self, control: support.ControlConnection, port: int) -> None:
        self.sock = socket.create_connection((support.LOOPBACK, port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = control.context.wrap_bio(
            self.incoming,
            self.outgoing,
            server_hostname=support.LOOPBACK,
            session=control.sock.session,  # type: ignore[attr-defined]
        )
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                received = self.sock.recv(65536)
                if not received:
                    raise AssertionError("data connection closed during the TLS handshake")
                self.incoming.write(received)
        self.sock.sendall(self.outgoing.read())
        self.sent = 0

    def send(self, data: bytes) -> None:
        """
        Encrypt C{data} and put every resulting record on the wire.
        """
        for start in range(0, len(data), 65536):
            self.tls.write(data[start : start + 65536])
            self.sock.sendall(self.outgoing.read())
        self.sent += len(data)

    def finish(self) -> None:
        """
        A complete upload: our close_notify, then the TCP close.
        """
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        try:
            self.sock.sendall(self.outgoing.read())
        finally:
            self.sock.close()

    def abandon(self) -> None:
        """
        The client dies: the TCP connection closes (FIN) with no close_notify.
        """
        self.sock.close()

    def sendCut(self, data: bytes, withhold: int) -> None:
        """
        Encrypt C{data} and put its records on the wire but for their last
        C{withhold} bytes: the stream then ends inside a record.
        """
        self.tls.write(data)
        wire = self.outgoing.read()
        self.sock.sendall(wire[:-withhold])


class UploadTestCase(CommandTestCase):
    """
    Helpers to run uploads that the test interrupts.
    """

    def startUpload(
        self, control: support.ControlConnection, command: str
    ) -> tuple[tuple[int, bytes], BIOUpload]:
        port = control.epsv()
        upload = BIOUpload(control, port)
        control.send(command)
        first = control.reply()
        if first[0] != 150:
            upload.abandon()
            self.fail(f"{command}: expected 150, got {first[1]!r}" + self.serverLog())
        return first, upload

    def interruptedUpload(
        self, control: support.ControlConnection, command: str, data: bytes
    ) -> tuple[int, bytes]:
        """
        Send C{data} for C{command}, then close the data connection without a
        close_notify.

        @return: the number of bytes the 426 says are kept, and its text.
        """
        _, upload = self.startUpload(control, command)
        upload.send(data)
        upload.abandon()
        text = self.assertReply(control.reply(10), 426, f"{command} closed without close_notify")
        match = KEPT.search(text)
        self.assertIsNotNone(match, f"426 does not say what is kept and how to resume: {text!r}")
        assert match is not None
        self.assertEqual(match.group(1), match.group(2), text)
        return int(match.group(1)), text


class SafeUploadTests(UploadTestCase):
    """
    STOR, APPE and STOU write to a hidden temporary file and move it into
    place only when the upload completes.
    """

    def slowUpload(self, command: str, name: str, old: bytes | None, expected: bytes) -> None:
        """
        Start C{command}, send part of its data and pause: a second session's
        NLST and LIST show no temporary file and C{name} still has its
        previous content (or does not exist); on disk the bytes are in a
        hidden file. After the rest and a clean close, C{name} holds
        C{expected}.
        """
        if old is not None:
            writeFile(os.path.join(self.home, name), old)
        writer, reader = self.session(), self.session()
        first, upload = self.startUpload(writer, command)
        if command.startswith("STOU"):
            self.assertIn(f"FILE: {name}".encode(), first[1])
        payload = os.urandom(600_000)
        upload.send(payload[:400_000])
        hidden = self.waitForHiddenBytes(400_000 - 65536)
        self.assertTrue(hidden.startswith(HIDDEN_PREFIX))
        _, final, names = support.downloadOver(reader, "NLST")
        self.assertReply(final, 226, "NLST during the upload")
        self.assertEqual(
            sorted(names.decode().split("\r\n")[:-1]), [name] if old is not None else []
        )
        _, final, listing = support.downloadOver(reader, "LIST")
        self.assertNotIn(HIDDEN_PREFIX.encode(), listing)
        self.assertEqual(len(listing.split(b"\r\n")) - 1, 1 if old is not None else 0, listing)
        if old is None:
            self.assertFalse(os.path.exists(os.path.join(self.home, name)))
            self.assertReply(reader.command(f"SIZE {name}"), 550, "SIZE during the upload")
        else:
            self.assertEqual(readFile(os.path.join(self.home, name)), old)
            _, final, current = support.downloadOver(reader, f"RETR {name}")
            self.assertSameBytes(current, old, "RETR during the upload")
        upload.send(payload[400_000:])
        upload.finish()
        self.assertReply(writer.reply(10), 226, command)
        self.assertSameBytes(
            readFile(os.path.join(self.home, name)),
            expected + payload,
            f"{name} after {command}",
        )
        self.assertEqual(self.hiddenNames(), [])

    def test_stor(self) -> None:
        """
        Safe uploads (SECURITY 16, 26): STOR over an existing file: the old
        content is served until the new one is complete, then replaced at once.
        """
        self.slowUpload("STOR f.bin", "f.bin", os.urandom(5000), b"")

    def test_storNew(self) -> None:
        """
        Safe uploads (SECURITY 16, 26): STOR of a new file: the name does not
        exist (not even empty) until the upload is complete.
        """
        self.slowUpload("STOR n.bin", "n.bin", None, b"")

    def test_appe(self) -> None:
        """
        Safe uploads (SECURITY 16, 26): APPE: the file keeps its old content,
        with nothing appended yet, until the upload is complete; then it is old + new.
        """
        old = os.urandom(7000)
        self.slowUpload("APPE a.bin", "a.bin", old, old)

    def test_stou(self) -> None:
        """
        Safe uploads (SECURITY 16, 26): STOU: the unique name announced in the
        150 does not exist until the upload is complete.
        """
        self.slowUpload("STOU u.bin", "u.bin", None, b"")


class RestartMarkerTests(UploadTestCase):
    """
    A REST marker belongs to the transfer command that follows it: it must
    never leak into a later, plain upload.
    """

    def test_refusedStorClearsRestart(self) -> None:
        """
        Uploads never corrupt data: REST 1000 (350), then a STOR that is refused (550
        for a path outside the root), then a plain STOR of new content over a
        5000-byte file: the file must be exactly the new content. A marker that
        survives the refused STOR makes the plain STOR a resumption that keeps 1000
        old bytes in front of the new ones, and still answers 226.
        """
        writeFile(os.path.join(self.home, "f.bin"), b"o" * 5000)
        control = self.session()
        self.assertReply(control.command("REST 1000"), 350, "REST")
        first, _ = support.uploadOver(control, "STOR ../../x", b"refused")
        self.assertReply(first, 550, "STOR outside the root")
        data = os.urandom(3000)
        _, final = support.uploadOver(control, "STOR f.bin", data)
        self.assertReply(final, 226, "plain STOR")
        self.assertSameBytes(readFile(os.path.join(self.home, "f.bin")), data, "plain STOR")


class ConcurrentAppendTests(UploadTestCase):
    """
    Two sessions appending to the same file at the same time.
    """

    def test_concurrentAppendsKeepBoth(self) -> None:
        """
        Uploads never lose data: while one APPE to a file runs, a second
        upload to the same file from another session is refused with 450
        before any byte is taken (not accepted and silently dropped); the
        first completes, and the second, retried afterwards, appends too.
        """
        old = b"old line\n" * 100
        writeFile(os.path.join(self.home, "log.txt"), old)
        a, b = self.session(), self.session()
        _, uploadA = self.startUpload(a, "APPE log.txt")
        self.assertReply(b.command("EPSV"), 229, "EPSV in session B")
        self.assertReply(b.command("APPE log.txt"), 450, "APPE in session B during A")
        partA, partB = b"A" * 50_000, b"B" * 70_000
        uploadA.send(partA)
        uploadA.finish()
        self.assertReply(a.reply(10), 226, "APPE in session A")
        self.assertEqual(readFile(os.path.join(self.home, "log.txt")), old + partA)
        _, uploadB = self.startUpload(b, "APPE log.txt")
        uploadB.send(partB)
        uploadB.finish()
        self.assertReply(b.reply(10), 226, "APPE in session B, retried")
        self.assertEqual(readFile(os.path.join(self.home, "log.txt")), old + partA + partB)


class InterruptedUploadTests(UploadTestCase):
    """
    A client that dies in the middle of a large STOR (TLS, no close_notify):
    426, the previous file intact, the received bytes kept in a hidden
    partial file for C{REST n} + C{STOR}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.old = os.urandom(1000)
        writeFile(os.path.join(self.home, "big.bin"), self.old)
        self.new = os.urandom(8 * 1024 * 1024 + 5)
        self.cut = 5 * 1024 * 1024

    def interrupt(self, control: support.ControlConnection) -> int:
        kept, text = self.interruptedUpload(control, "STOR big.bin", self.new[: self.cut])
        self.assertEqual(kept, self.cut, f"the server received all {self.cut} bytes: {text!r}")
        self.assertEqual(readFile(os.path.join(self.home, "big.bin")), self.old)
        self.assertEqual(self.visibleNames(), ["big.bin"])
        return kept

    def resume(self, control: support.ControlConnection, offset: int) -> tuple[int, bytes]:
        self.assertReply(control.command(f"REST {offset}"), 350, "REST")
        first, final = support.uploadOver(control, "STOR big.bin", self.new[offset:])
        return final

    def test_killedClient(self) -> None:
        """
        SECURITY 16: 5 MiB sent, then the TCP connection closes without close_notify: 426
        saying that 5 MiB are kept and to resume with REST 5242880; the old
        file is intact. REST beyond what was kept (and beyond the old file)
        is 554 on STOR and keeps the partial; REST M for an M below what was
        kept, then STOR of the rest from M, completes the file exactly; the
        hidden partial is gone afterwards.
        """
        control = self.session()
        kept = self.interrupt(control)
        self.assertReply(self.resume(control, kept + 1), 554, "STOR beyond what was kept")
        self.assertEqual(readFile(os.path.join(self.home, "big.bin")), self.old)
        offset = kept // 2 + 13
        self.assertReply(self.resume(control, offset), 226, f"REST {offset} + STOR")
        self.assertSameBytes(readFile(os.path.join(self.home, "big.bin")), self.new, "resumed")
        self.assertEqual(self.hiddenNames(), [])

    def test_resumeAtKeptOffset(self) -> None:
        """
        SECURITY 16: After the same interruption, REST N + STOR of the rest from N (N taken
        from the 426 text), on a new control connection, completes the file
        exactly.
        """
        kept = self.interrupt(self.session())
        control = self.session()
        self.assertReply(self.resume(control, kept), 226, f"REST {kept} + STOR")
        self.assertSameBytes(readFile(os.path.join(self.home, "big.bin")), self.new, "resumed")
        self.assertEqual(self.hiddenNames(), [])

    def test_plainStorStartsAfresh(self) -> None:
        """
        SECURITY 16: A plain STOR after an interruption starts afresh: the file becomes
        exactly the new upload, with nothing of the kept partial in front.
        """
        self.interrupt(self.session())
        control = self.session()
        data = os.urandom(3000)
        _, final = support.uploadOver(control, "STOR big.bin", data)
        self.assertReply(final, 226, "STOR")
        self.assertSameBytes(readFile(os.path.join(self.home, "big.bin")), data, "fresh STOR")
        self.assertEqual(self.hiddenNames(), [])

    def test_resumeInstructionFromSubdirectory(self) -> None:
        """
        SECURITY 16: The 426 instruction works as written in the client's working
        directory: after C{CWD sub} an interrupted C{STOR k.bin} says to
        resume with C{REST N and STOR <path>}; sending exactly that (still in
        C{sub}) completes C{sub/k.bin}.
        """
        os.mkdir(os.path.join(self.home, "sub"))
        control = self.session()
        self.assertReply(control.command("CWD sub"), 250, "CWD")
        data = os.urandom(300_000)
        kept, text = self.interruptedUpload(control, "STOR k.bin", data[:200_000])
        match = KEPT.search(text)
        assert match is not None
        path = match.group(3).decode()
        self.assertReply(control.command(f"REST {kept}"), 350, "REST")
        _, final = support.uploadOver(control, f"STOR {path}", data[kept:])
        self.assertReply(final, 226, f"STOR {path} as the 426 {text!r} says")
        self.assertSameBytes(readFile(os.path.join(self.home, "sub", "k.bin")), data, "resumed")


class AnonymousReadOnlyTests(UploadTestCase):
    """
    SECURITY 20: anonymous users are read-only, and nobody reaches another
    user's home.
    """

    def startServer(self, *extraArgs: str) -> support.TwistdServer:
        # One memory checker for both users; UserCheckerTests covers one
        # --auth per user.
        server = support.TwistdServer(
            "--auth", f"memory:{USER}:{PASSWORD}:bob:bobpass", "--auth", "anonymous"
        )
        server.start()
        self.addCleanup(server.stop)
        return server

    def setUp(self) -> None:
        super().setUp()
        writeFile(os.path.join(self.server.root, "file.txt"), b"public")
        writeFile(os.path.join(self.server.root, "pub", "readme.txt"), b"readme")
        os.mkdir(os.path.join(self.server.root, "empty"))
        writeFile(os.path.join(self.home, "mine.txt"), b"alice's")
        self.bobHome = self.server.userHome("bob")
        os.makedirs(self.bobHome, mode=0o700)
        writeFile(os.path.join(self.bobHome, "secret.txt"), b"bob's secret")

    def snapshot(self) -> dict[str, object]:
        return {
            "root": support.snapshotTree(self.server.root),
            "home": support.snapshotTree(self.server.home),
        }

    def assertRefused(self, control: support.ControlConnection, line: str) -> None:
        """
        C{line} gets a 5xx reply and no transfer starts (a data command gets
        a passive data connection first, so that it is not refused for the
        lack of one).
        """
        code, text = commandWithData(control, line)
        if code == 150:
            control.close()
            self.fail(f"{line!r} started a transfer: {text!r}" + self.serverLog())
        self.assertTrue(500 <= code < 600, f"{line!r} was not refused: {text!r}")

    def assertTransferRefused(self, control: support.ControlConnection, line: str) -> None:
        first, final = support.uploadOver(control, line, b"written by anonymous")
        self.assertTrue(500 <= first[0] < 600, f"{line!r} was not refused: {first!r}")

    def test_anonymousWritesRefused(self) -> None:
        """
        SECURITY 20: As anonymous: STOR (new and existing), APPE, STOU, REST + STOR, MKD,
        RMD, DELE, RNFR/RNTO, SITE (HELP, CHMOD) and MFMT are all refused,
        and nothing changes on disk (the root tree and the homes, hidden
        files and mtimes included, are the same before and after).
        """
        before = self.snapshot()
        control = self.session("anonymous", "a@b")
        for line in (
            "STOR new.txt",
            "STOR file.txt",
            "APPE file.txt",
            "APPE pub/new.txt",
            "STOU",
            "STOU file.txt",
        ):
            self.assertTransferRefused(control, line)
        self.assertReply(control.command("REST 2"), 350, "REST")
        self.assertTransferRefused(control, "STOR file.txt")
        for line in (
            "MKD newdir",
            "MKD pub/newdir",
            "RMD empty",
            "DELE file.txt",
            "DELE pub/readme.txt",
            "SITE HELP",
            "SITE CHMOD 777 file.txt",
            "MFMT 20000101000000 file.txt",
        ):
            self.assertRefused(control, line)
        code, text = control.command("RNFR file.txt")
        if code == 350:
            self.assertRefused(control, "RNTO renamed.txt")
        else:
            self.assertTrue(500 <= code < 600, text)
        self.assertRefused(control, "RNTO renamed.txt")
        self.assertEqual(self.snapshot(), before)
        _, final, data = support.downloadOver(control, "RETR file.txt")
        self.assertEqual((final[0], data), (226, b"public"), "anonymous can still read")

    def test_anonymousCannotReachHomes(self) -> None:
        """
        SECURITY 20 and 22: The anonymous root does not contain the homes, and no path leads
        there: C{..}, C{/..}, backslashes and absolute paths give 550 for
        CWD, RETR, SIZE, MLST, STAT and LIST, and the root listing shows only
        the root's entries.
        """
        control = self.session("anonymous", "a@b")
        _, final, names = support.downloadOver(control, "NLST")
        self.assertEqual(sorted(names.decode().split("\r\n")[:-1]), ["empty", "file.txt", "pub"])
        for line in (
            "CWD ../home",
            "CWD /../home/alice",
            "CWD ..\\home",
            "RETR ../home/alice/mine.txt",
            "RETR /../home/bob/secret.txt",
            "RETR ..\\home\\bob\\secret.txt",
            f"RETR {self.bobHome}/secret.txt",
            "SIZE ../home/bob/secret.txt",
            "MLST ../home/bob",
            "STAT ../home",
        ):
            self.assertRefused(control, line)
        for line in ("LIST ../home", "NLST /../home/bob", "MLSD ../home"):
            first, final, data = support.downloadOver(control, line)
            self.assertEqual(data, b"", f"{line} listed {data!r}")
            self.assertTrue(500 <= final[0] < 600, f"{line}: {final!r}")
        self.assertEqual(control.command("PWD"), (257, b'257 "/" is the current directory.\r\n'))

    def test_userCannotReachOtherHomes(self) -> None:
        """
        SECURITY 20, 22 and 24: alice cannot read, list, write, append to, rename into or change
        bob's home through C{../bob}, C{/../bob}, backslashes or bob's
        absolute path; bob's home is unchanged.
        """
        before = support.snapshotTree(self.bobHome)
        control = self.session()
        for line in (
            "CWD ../bob",
            "CWD /../bob",
            "CWD ..\\bob",
            "RETR ../bob/secret.txt",
            "RETR /../bob/secret.txt",
            "RETR ..\\bob\\secret.txt",
            f"RETR {self.bobHome}/secret.txt",
            "SIZE ../bob/secret.txt",
            "MDTM ../bob/secret.txt",
            "MLST ../bob/secret.txt",
            "STAT ../bob",
            "MFMT 20000101000000 ../bob/secret.txt",
            "DELE ../bob/secret.txt",
            "MKD ../bob/dir",
            "RNFR ../bob/secret.txt",
        ):
            self.assertRefused(control, line)
        for line in ("STOR ../bob/x", "APPE ../bob/secret.txt", "STOU ../bob/x"):
            first, final = support.uploadOver(control, line, b"from alice")
            self.assertTrue(500 <= first[0] < 600, f"{line}: {first!r}")
        self.assertReply(control.command("RNFR mine.txt"), 350, "RNFR")
        self.assertRefused(control, "RNTO ../bob/mine.txt")
        self.assertEqual(support.snapshotTree(self.bobHome), before)
        self.assertEqual(readFile(os.path.join(self.home, "mine.txt")), b"alice's")


class UserCheckerTests(CommandTestCase):
    """
    C{--auth} is repeatable (docs/design.md, public contract): every checker
    given is used.
    """

    users = {USER: PASSWORD, "bob": "bobpass"}

    def test_oneMemoryCheckerPerUser(self) -> None:
        """
        docs/design.md, public contract (--auth): With C{--auth memory:alice:secret --auth
        memory:bob:bobpass} (what L{support.TwistdServer} passes for C{users={...}}),
        both alice and bob log in, each into their own home.
        """
        for user, password in ((USER, PASSWORD), ("bob", "bobpass")):
            control = self.unauthenticated()
            self.assertReply(control.command(f"USER {user}"), 331, f"USER {user}")
            self.assertReply(control.command(f"PASS {password}"), 230, f"PASS for {user}")
            self.assertTrue(os.path.isdir(self.server.userHome(user)))


class DiskFullTests(UploadTestCase):
    """
    SECURITY 26: a disk that fills up, or a write that fails, in the middle
    of an upload.
    """

    def setUp(self) -> None:
        # Each test starts its own, unusual server.
        pass

    def uploadTooMuch(self, name: str, size: int) -> tuple[int, bytes]:
        """
        Upload C{size} random bytes as C{name}, ending cleanly if the server
        lets the client get that far.

        @return: the final reply.
        """
        control = self.session()
        self.control = control
        first, data = support.startTransfer(control, f"STOR {name}")
        self.assertReply(first, 150, "STOR")
        assert data is not None
        try:
            data.sendall(os.urandom(size))
            support.finishUpload(data)
        except OSError:
            data.close()
        return control.reply(15)

    def checkFailedUpload(self, reply: tuple[int, bytes]) -> None:
        self.assertIn(reply[0], (452, 552), f"upload that could not be written: {reply!r}")
        self.assertEqual(readFile(os.path.join(self.home, "keep.bin")), self.keep)
        self.assertFalse(os.path.exists(os.path.join(self.home, "new.bin")))
        self.assertEqual(self.visibleNames(), ["keep.bin"])
        self.assertReply(self.control.command("NOOP"), 200, "NOOP after the failed upload")

    def test_diskFull(self) -> None:
        """
        SECURITY 26: The users' homes are on a 2 MiB tmpfs (mounted for the test: a real
        file system that fills up with ENOSPC, which neither rlimits nor
        monkeypatching give a subprocess); a 4 MiB STOR over an existing
        file gets 452 or 552, the existing file is intact, nothing is
        visible under the final name, the session goes on (NOOP), and the
        space is given back: a small STOR works afterwards.
        """
        self.server = support.TwistdServer(users={USER: PASSWORD})
        self.addCleanup(shutil.rmtree, self.server.directory, True)
        self.addCleanup(support.mountTmpfs(self.server.home, "2m"))
        self.server.start()
        self.addCleanup(self.server.stop)
        self.home = self.server.userHome(USER)
        os.makedirs(self.home, mode=0o700)
        self.keep = os.urandom(10_000)
        writeFile(os.path.join(self.home, "keep.bin"), self.keep)
        self.checkFailedUpload(self.uploadTooMuch("keep.bin", 4 * 1024 * 1024))
        self.checkFailedUpload(self.uploadTooMuch("new.bin", 4 * 1024 * 1024))
        self.assertEqual(self.hiddenNames(), [])
        _, final = support.uploadOver(self.control, "STOR small.bin", b"fits")
        self.assertReply(final, 226, "small STOR after the disk was full")

    def test_writeError(self) -> None:
        """
        SECURITY 26: A write error that is not ENOSPC: the server runs with
        C{RLIMIT_FSIZE} of 1 MiB (SIGXFSZ ignored), so writing a 3 MiB upload
        fails with EFBIG ("file too large": storage allocation exceeded);
        the reply is 452 or 552, the existing file is intact, nothing is
        visible under the final name, and the session goes on.
        """
        self.server = support.FileSizeLimitedServer(users={USER: PASSWORD}, limit=1024 * 1024)
        self.addCleanup(self.server.stop)
        self.server.start()
        self.home = self.server.userHome(USER)
        os.makedirs(self.home, mode=0o700)
        self.keep = os.urandom(10_000)
        writeFile(os.path.join(self.home, "keep.bin"), self.keep)
        self.checkFailedUpload(self.uploadTooMuch("keep.bin", 3 * 1024 * 1024))
        self.checkFailedUpload(self.uploadTooMuch("new.bin", 3 * 1024 * 1024))


class AbortAndQuitTests(UploadTestCase):
    """
    SECURITY 27: ABOR and QUIT during transfers.
    """

    def test_abortUploadNotComplete(self) -> None:
        """
        SECURITY 27: ABOR during an upload: the transfer's reply is 426 (never 226), then
        ABOR's 226; the file under the final name is neither created nor
        replaced, and data the client keeps sending is not stored.
        """
        old = os.urandom(3000)
        writeFile(os.path.join(self.home, "old.bin"), old)
        control = self.session()
        for name in ("old.bin", "new.bin"):
            _, upload = self.startUpload(control, f"STOR {name}")
            upload.send(os.urandom(300_000))
            self.waitForHiddenBytes(300_000 - 65536)
            control.send("ABOR")
            self.assertReply(control.reply(10), 426, f"STOR {name} after ABOR")
            self.assertReply(control.reply(10), 226, "ABOR")
            try:
                upload.send(os.urandom(100_000))
                upload.finish()
            except OSError:
                upload.abandon()
            self.assertEqual(readFile(os.path.join(self.home, "old.bin")), old)
            self.assertEqual(self.visibleNames(), ["old.bin"])
            self.assertReply(control.command("NOOP"), 200, "NOOP")

    def test_quitDuringUpload(self) -> None:
        """
        SECURITY 27: QUIT during an upload waits for the transfer's end (RFC
        959); when the client then drops the data connection without a
        close_notify, the upload's reply is 426 (never 226), then QUIT's 221,
        the connection closes, and nothing appears under the final name.
        """
        control = self.session()
        _, upload = self.startUpload(control, "STOR q.bin")
        upload.send(os.urandom(300_000))
        self.waitForHiddenBytes(300_000 - 65536)
        control.send("QUIT")
        upload.abandon()
        self.assertReply(control.reply(10), 426, "STOR after QUIT and a dropped upload")
        self.assertReply(control.reply(10), 221, "QUIT")
        self.assertTrue(support.serverClosed(control), "control connection open after 221")
        self.assertEqual(self.visibleNames(), [])

    def test_quitDuringUploadCompletes(self) -> None:
        """
        QUIT during an upload does not cut it: the client sends the rest and
        its close_notify, gets the upload's 226 and then QUIT's 221; the
        file is the upload byte-exact.
        """
        payload = os.urandom(600_000)
        control = self.session()
        _, upload = self.startUpload(control, "STOR q.bin")
        upload.send(payload[:300_000])
        self.waitForHiddenBytes(300_000 - 65536)
        control.send("QUIT")
        upload.send(payload[300_000:])
        upload.finish()
        self.assertReply(control.reply(10), 226, "STOR with QUIT pending")
        self.assertReply(control.reply(10), 221, "QUIT")
        self.assertSameBytes(readFile(os.path.join(self.home, "q.bin")), payload, "STOR")

    def test_fileDescriptorsReturnToBaseline(self) -> None:
        """
        SECURITY 27 (and 29): 20 sessions each start a transfer (a 50 MiB sparse download or an
        upload) and then QUIT, or just close both sockets, in the middle of
        it: afterwards the server's open file descriptors (/proc/PID/fd)
        return to what they were before (polled with a 15 s deadline), and
        the server still serves.
        """
        sparseFile(os.path.join(self.home, "big.bin"), 50 * 1024 * 1024)
        assert self.server.process is not None
        pid = self.server.process.pid
        warm = self.session()
        support.downloadOver(warm, "NLST")
        warm.command("QUIT")
        warm.close()

        def stable() -> bool:
            first = support.openFileDescriptors(pid)
            time.sleep(0.2)
            return support.openFileDescriptors(pid) == first

        support.waitUntil(stable, 5)
        baseline = support.openFileDescriptors(pid)
        for i in range(20):
            control = support.loggedInSession(self.server, USER, PASSWORD)
            closeData: Callable[[], None]
            if i % 2 == 0:
                first, data = support.startTransfer(control, "RETR big.bin")
                self.assertReply(first, 150, "RETR")
                assert data is not None
                data.recv(16384)
                closeData = data.close
            else:
                _, upload = self.startUpload(control, f"STOR up{i}.bin")
                upload.send(os.urandom(100_000))
                closeData = upload.abandon
            if i % 4 < 2:
                # QUIT mid-transfer (it waits for the transfer's end), then
                # the data connection closes, ending the transfer.
                control.send("QUIT")
                closeData()
                support.readUntilClosed(control.sock, 5)
            else:
                # The client just goes away mid-transfer.
                closeData()
            control.close()
        counts: list[int] = []

        def back() -> bool:
            counts.append(support.openFileDescriptors(pid))
            return counts[-1] <= baseline

        if not support.waitUntil(back, 15, 0.2):
            self.fail(
                f"server fds did not return to {baseline}: now {counts[-1]};"
                f" open: {sorted(os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd'))}"
                + self.serverLog()
            )
        control = self.session()
        self.assertReply(control.command("NOOP"), 200, "server still serves")


class PathSpotChecks(UploadTestCase):
    """
    SECURITY 22, 24 and 25 for the new commands (APPE, STOU, MFMT, MLST,
    REST + STOR), and the hidden upload files that no command may reach.
    """

    def setUp(self) -> None:
        super().setUp()
        self.file = writeFile(os.path.join(self.home, "f.txt"), b"f content")
        os.utime(self.file, (1_000_000_000, 1_000_000_000))
        control = self.session()
        self.kept, _ = self.interruptedUpload(control, "STOR part.bin", os.urandom(100_000))
        self.partial = HIDDEN_PREFIX + "partial-part.bin"
        self.temporary = HIDDEN_PREFIX + "0123456789abcdef"
        writeFile(os.path.join(self.home, self.temporary), b"someone else's upload")
        self.assertEqual(sorted(self.hiddenNames()), sorted([self.partial, self.temporary]))

    def snapshot(self) -> dict[str, object]:
        tree: dict[str, object] = dict(support.snapshotTree(self.server.directory))
        tree.pop("twistd.log", None)
        return tree

    def assertRefused(self, control: support.ControlConnection, line: str | bytes) -> None:
        code, text = commandWithData(control, line)
        if code == 150:
            control.close()
            self.fail(f"{line!r} started a transfer: {text!r}" + self.serverLog())
        self.assertTrue(500 <= code < 600, f"{line!r} was not refused: {text!r}")

    def assertUploadRefused(self, control: support.ControlConnection, line: str | bytes) -> None:
        port = control.epsv()
        data = control.openData(port)
        try:
            control.send(line)
            code, text = control.reply()
        finally:
            data.close()
        if code == 150:
            self.fail(f"{line!r} started an upload: {text!r}" + self.serverLog())
        self.assertTrue(500 <= code < 600, f"{line!r} was not refused: {text!r}")

    def test_hiddenFilesUnreachable(self) -> None:
        """
        SECURITY 22 (hidden uploads): The hidden temporary and partial upload files
        cannot be reached by name: RETR, DELE, RNFR, SIZE give 550, and so do MDTM,
        MLST, STAT, CWD, MFMT, MKD, RNTO onto such a name, STOR/APPE/STOU to it and
        REST + RETR of it; nothing on disk changes.
        """
        before = self.snapshot()
        control = self.session()
        for name in (self.partial, self.temporary, HIDDEN_PREFIX + "new", HIDDEN_PREFIX):
            for command in ("RETR", "DELE", "RNFR", "SIZE"):
                if command == "RETR":
                    control.epsv()
                self.assertReply(control.command(f"{command} {name}"), 550, f"{command} {name}")
            for line in (f"MDTM {name}", f"MLST {name}", f"STAT {name}", f"CWD {name}"):
                self.assertRefused(control, line)
            for line in (f"MFMT 20000101000000 {name}", f"MKD {name}", f"MKD {name}/x"):
                self.assertRefused(control, line)
            self.assertReply(control.command("RNFR f.txt"), 350, "RNFR")
            self.assertRefused(control, f"RNTO {name}")
            for line in (f"STOR {name}", f"APPE {name}", f"STOU {name}"):
                self.assertUploadRefused(control, line)
            self.assertReply(control.command("REST 1"), 350, "REST")
            self.assertUploadRefused(control, f"RETR {name}")
        self.assertEqual(self.snapshot(), before)

    def test_traversalAndNul(self) -> None:
        """
        SECURITY 22, 24 and 25: APPE, STOU, MFMT, MLST and REST + STOR with C{../../x}, absolute
        paths leaving the root, and NUL bytes in the path (C{f.txt\\0.jpg}
        must not act on C{f.txt}) are refused (5xx); nothing on disk changes
        anywhere in the server's directory, f.txt keeps its content and mtime.
        """
        before = self.snapshot()
        control = self.session()
        outside = [
            "../../x",
            "../x",
            "/../../x",
            "sub/../../x",
            self.server.directory + "/x",
        ]
        for path in outside:
            for command in ("APPE", "STOU"):
                self.assertUploadRefused(control, f"{command} {path}")
            self.assertReply(control.command("REST 1"), 350, "REST")
            self.assertUploadRefused(control, f"STOR {path}")
            self.assertRefused(control, f"MFMT 20000101000000 {path}")
            self.assertRefused(control, f"MLST {path}")
        for raw in (b"f.txt\x00.jpg", b"f.txt\x00", b"\x00", b"../\x00x"):
            for verb in (b"APPE", b"STOU"):
                self.assertUploadRefused(control, verb + b" " + raw)
            self.assertReply(control.command("REST 1"), 350, "REST")
            self.assertUploadRefused(control, b"STOR " + raw)
            self.assertRefused(control, b"MFMT 20000101000000 " + raw)
            self.assertRefused(control, b"MLST " + raw)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(readFile(self.file), b"f content")
        self.assertEqual(os.stat(self.file).st_mtime, 1_000_000_000)

    def test_backslashesStayInside(self) -> None:
        """
        SECURITY 22: Backslashes are not separators: APPE, STOU, STOR and MFMT of
        C{..\\..\\..\\x} act, at most, on one plainly named file inside
        alice's home; nothing appears or changes anywhere else in the
        server's directory.
        """
        before = self.snapshot()
        control = self.session()
        name = "..\\..\\..\\x"
        for command in ("APPE", "STOU", "STOR"):
            support.uploadOver(control, f"{command} {name}", b"backslash")
        control.command(f"MFMT 20000101000000 {name}")
        after = self.snapshot()
        homeDir = os.path.join("home", USER)
        for relative in set(after) | set(before):
            if relative.startswith(homeDir + os.sep) and "\\" in relative:
                self.assertNotIn(os.sep, relative[len(homeDir) + 1 :], relative)
                continue
            if relative == homeDir:
                continue  # its mtime changes with the new entries
            self.assertEqual(after.get(relative), before.get(relative), relative)


class UploadCloseNotifyTests(UploadTestCase):
    """
    C{--upload-close-notify required} (the default): a TLS upload that ends
    with a clean TCP close but no close_notify is truncated (426, partial
    kept), and the log says that C{optional} would accept it.
    """

    def test_cleanCloseRefused(self) -> None:
        """
        50,000 bytes in complete records, then a clean TCP close without a
        close_notify: 426 with all 50,000 bytes kept, nothing under the
        final name, and a log line saying the upload ended without
        close_notify and that C{--upload-close-notify optional} would accept
        it.
        """
        watch = support.LogWatch(self.server)
        watch.mark()
        kept, _ = self.interruptedUpload(self.session(), "STOR up.bin", os.urandom(50_000))
        self.assertEqual(kept, 50_000)
        self.assertEqual(self.visibleNames(), [])
        self.assertTrue(
            watch.waitFor("ended without close_notify"), "no log line" + self.serverLog()
        )
        self.assertIn("--upload-close-notify optional would accept it", watch.since())

    def test_netkitFtpSsl(self) -> None:
        """
        Debian's netkit C{ftp-ssl} closes its TLS data connection without a
        close_notify: with the default, its upload of 50,000 bytes gets 426
        and is kept as a hidden partial, never stored under its name.
        """
        local = writeFile(os.path.join(self.local, "up.bin"), os.urandom(50_000))
        result = support.netkitFtp(self.server, f"put {local} up.bin", USER, PASSWORD)
        output = result.stdout.decode("utf-8", "replace")
        self.assertIn("\n426 ", "\n" + output, output + self.serverLog())
        self.assertNotIn("\n226 ", "\n" + output)
        self.assertEqual(self.visibleNames(), [])
        self.assertEqual(len(self.hiddenNames()), 1)


class OptionalUploadCloseNotifyTests(UploadTestCase):
    """
    C{--upload-close-notify optional}: a TLS upload whose stream ends with a
    clean TCP close after its last complete record is stored (226) and
    logged as ending without close_notify; a stream cut inside a record or
    by a reset is still truncated (426, partial kept).
    """

    serverArgs = ("--upload-close-notify", "optional")

    def test_cleanCloseAccepted(self) -> None:
        """
        5 MiB and 5 bytes in complete records, then a clean TCP close
        without a close_notify: 226, the file is the upload byte-exact, no
        hidden file is left, and the log says the upload ended without
        close_notify and was accepted.
        """
        watch = support.LogWatch(self.server)
        watch.mark()
        payload = os.urandom(5 * 1024 * 1024 + 5)
        control = self.session()
        _, upload = self.startUpload(control, "STOR up.bin")
        upload.send(payload)
        upload.abandon()
        self.assertReply(control.reply(10), 226, "STOR ended by a clean TCP close")
        self.assertSameBytes(readFile(os.path.join(self.home, "up.bin")), payload, "STOR")
        self.assertEqual(self.hiddenNames(), [])
        self.assertTrue(
            watch.waitFor("ended without close_notify"), "no log line" + self.serverLog()
        )
        self.assertIn(f"after {len(payload)} bytes: accepted", watch.since())

    def test_closeNotifyStillWorks(self) -> None:
        """
        An upload that ends with the client's close_notify completes as
        always: 226 and the exact bytes.
        """
        payload = os.urandom(300_000)
        _, final = support.uploadOver(self.session(), "STOR up.bin", payload)
        self.assertReply(final, 226, "STOR with close_notify")
        self.assertSameBytes(readFile(os.path.join(self.home, "up.bin")), payload, "STOR")

    def test_cutInsideRecord(self) -> None:
        """
        A stream that ends inside a TLS record (its last 3 bytes never sent,
        or only 3 bytes of a further record's 5-byte header sent) followed by
        a clean TCP close is still truncated: 426, the bytes of the complete
        records kept in a hidden partial, nothing under the final name, and
        the log says it ended inside a TLS record.
        """
        watch = support.LogWatch(self.server)
        control = self.session()
        for name, withhold in (("a.bin", 3), ("b.bin", None)):
            watch.mark()
            _, upload = self.startUpload(control, f"STOR {name}")
            upload.send(os.urandom(100_000))
            if withhold is None:
                # A complete further record, of which only 3 header bytes go out.
                upload.tls.write(b"tail")
                upload.sock.sendall(upload.outgoing.read()[:3])
            else:
                upload.sendCut(b"tail" * 1000, withhold)
            upload.abandon()
            text = self.assertReply(control.reply(10), 426, f"STOR {name} cut inside a record")
            match = KEPT.search(text)
            self.assertIsNotNone(match, text)
            assert match is not None
            self.assertEqual(int(match.group(1)), 100_000, text)
            self.assertTrue(
                watch.waitFor("ended inside a TLS record"), "no log line" + self.serverLog()
            )
        self.assertEqual(self.visibleNames(), [])
        self.assertEqual(len(self.hiddenNames()), 2)

    def test_resetStillTruncated(self) -> None:
        """
        A stream that ends with a TCP reset after complete records is still
        truncated: 426 with the bytes kept, nothing under the final name.
        """
        control = self.session()
        _, upload = self.startUpload(control, "STOR up.bin")
        upload.send(os.urandom(100_000))
        self.waitForHiddenBytes(100_000 - 65536)
        support.abortiveClose(upload.sock)
        text = self.assertReply(control.reply(10), 426, "STOR ended by a reset")
        self.assertIsNotNone(KEPT.search(text), text)
        self.assertEqual(self.visibleNames(), [])

    def test_netkitFtpSsl(self) -> None:
        """
        Debian's netkit C{ftp-ssl}, which closes its TLS data connection
        without a close_notify, uploads 50,000 bytes: 226 and the file is
        byte-exact; its download of the file back is byte-exact too.
        """
        payload = os.urandom(50_000)
        local = writeFile(os.path.join(self.local, "up.bin"), payload)
        back = os.path.join(self.local, "back.bin")
        result = support.netkitFtp(
            self.server, f"put {local} up.bin\nget up.bin {back}", USER, PASSWORD
        )
        output = result.stdout.decode("utf-8", "replace")
        self.assertEqual(output.count("\n226 "), 2, output + self.serverLog())
        self.assertSameBytes(readFile(os.path.join(self.home, "up.bin")), payload, "put")
        self.assertSameBytes(readFile(back), payload, "get")
        self.assertEqual(self.hiddenNames(), [])
