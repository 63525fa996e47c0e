"""
Resource limits of the real C{twistd -n ftps} under abuse, on loopback
sockets: passive port exhaustion, stalled transfers, file descriptors after
many abandoned sessions, connection caps, the idle timeout, over-long lines
and connect/reset floods (SECURITY.md cases 17, 27, 28, 29 and 30).

The server process is observed from outside through Linux's C{/proc}: its
open file descriptors (C{/proc/PID/fd}), its resident memory
(C{/proc/PID/status}) and the TCP listeners of the namespace
(C{/proc/net/tcp}), so that a listener can be seen without connecting to it.
Timeouts are set to 2 s and every wait polls against a deadline.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any

from twisted.trial import unittest

from tests import support
from txftps.storage import PARTIAL_PREFIX

USER = "alice"
PASSWORD = "secret"
LOOPBACK = support.LOOPBACK

#: The size of the file that stalled and abandoned downloads read: big enough
#: to fill every socket buffer on the way (created sparse).
HUGE = 64 * 1024 * 1024


def sparseFile(path: str, size: int = HUGE) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def describeDescriptors(pid: int) -> list[str]:
    """
    What the open file descriptors of C{pid} point to, for failure messages.
    """
    directory = f"/proc/{pid}/fd"
    described = []
    for name in sorted(os.listdir(directory), key=int):
        try:
            described.append(f"{name} -> {os.readlink(os.path.join(directory, name))}")
        except OSError:
            continue
    return described


def trySend(sock: socket.socket, data: bytes) -> bool:
    """
    Send C{data}; C{False} when the peer has gone away.
    """
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


class LimitsTestCase(unittest.TestCase):
    """
    Starts a L{support.TwistdServer} with user C{alice} (and anonymous
    access) and C{serverArgs} for each test, and observes it from outside.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = self.startServer(*self.serverArgs)

    def startServer(self, *args: str) -> support.TwistdServer:
        server = support.TwistdServer(*args, users={USER: PASSWORD})
        server.start()
        self.addCleanup(server.stop)
        os.makedirs(server.userHome(USER), exist_ok=True)
        return server

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def serverLog(self, tail: int = 4000) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-tail:]

    def session(self, user: str = "anonymous", **kwargs: Any) -> support.ControlConnection:
        password = PASSWORD if user == USER else "a@b"
        control = support.loggedInSession(self.server, user, password, **kwargs)
        self.addCleanup(control.close)
        return control

    def connect(self, **kwargs: Any) -> support.ControlConnection:
        control = support.ControlConnection(self.server, **kwargs)
        self.addCleanup(control.close)
        return control

    def assertServerRunning(self) -> None:
        assert self.server.process is not None
        self.assertIsNone(self.server.process.poll(), "twistd exited" + self.serverLog())
        log = self.server.log()
        self.assertNotIn("Traceback", log, self.serverLog(8000))
        self.assertNotIn("Unhandled", log, self.serverLog(8000))

    def stableDescriptorCount(self, settle: float = 0.3, timeout: float = 5.0) -> int:
        """
        The server's descriptor count once it stopped changing for C{settle}
        seconds.
        """
        deadline = time.monotonic() + timeout
        count = support.openFileDescriptors(self.pid)
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = support.openFileDescriptors(self.pid)
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                break
        return count

    def assertDescriptorsBackTo(self, baseline: int, before: list[str], timeout: float) -> None:
        """
        The server's descriptor count comes back to C{baseline} within
        C{timeout} seconds; otherwise fail, listing what stayed open.
        """
        if support.waitUntil(lambda: support.openFileDescriptors(self.pid) <= baseline, timeout):
            return
        now = describeDescriptors(self.pid)
        extra = sorted(set(now) - set(before))
        self.fail(
            f"server holds {len(now)} file descriptors {timeout} s later, baseline"
            f" {baseline}; new ones: {extra}" + self.serverLog()
        )

    def workingLogin(self, timeout: float = 5.0) -> support.ControlConnection:
        """
        A normal session (AUTH, login, PROT P) that lists the root over a
        passive data connection, retried until C{timeout} (a connection cap
        may still count connections the server has not yet seen close).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                control = self.session()
                port = control.pasv()
                data = control.openData(port)
                control.send("NLST")
                code, text = control.reply()
                self.assertEqual(code, 150, text)
                listing = support.receiveAll(data)
                data.close()
                _, (code, text) = control.finalReply()
                self.assertEqual(code, 226, text)
                self.assertEqual(
                    sorted(listing.decode().split()), sorted(os.listdir(self.server.root))
                )
                return control
            except (support.PeerClosed, OSError, AssertionError) as e:
                if time.monotonic() > deadline:
                    self.fail(f"no working session: {e!r}" + self.serverLog())
                time.sleep(0.1)


class PassivePortTests(LimitsTestCase):
    """
    SECURITY.md case 17: C{--passive-ports} with two ports and
    C{--data-timeout 2}.
    """

    def setUp(self) -> None:
        self.low = support.freePortRange(2)
        self.ports = {self.low, self.low + 1}
        self.server = self.startServer(
            "--passive-ports", f"{self.low}-{self.low + 1}", "--data-timeout", "2"
        )

    def exhaustedLines(self) -> list[str]:
        return [
            line
            for line in self.server.log().splitlines()
            if "exhausted" in line and f"{self.low}-{self.low + 1}" in line
        ]

    def test_exhaustedRange(self) -> None:
        """
        Two sessions take the two ports; the third session's PASV gets 425
        and the server logs one line naming the exhausted range; the server
        does not crash, and once a session quits, the third gets a port.
        """
        first, second, third = self.session(), self.session(), self.session()
        firstPort, secondPort = first.pasv(), second.pasv()
        self.assertEqual({firstPort, secondPort}, self.ports)
        code, text = third.command("PASV")
        self.assertEqual(code, 425, text)
        self.assertTrue(
            support.waitUntil(lambda: len(self.exhaustedLines()) >= 1, 2),
            "no log line about the exhausted range" + self.serverLog(),
        )
        self.assertEqual(len(self.exhaustedLines()), 1, self.exhaustedLines())
        self.assertServerRunning()

        self.assertEqual(first.command("QUIT")[0], 221)
        first.close()
        self.assertTrue(
            support.waitUntil(lambda: third.command("PASV")[0] == 227, 1, 0.1),
            "no port within 1 s after a session quit" + self.serverLog(),
        )
        # The port came free because of the QUIT, not the data timeout.
        self.assertIn(secondPort, support.listeningPorts())
        self.assertServerRunning()

    def test_pasvTwiceHoldsOneListener(self) -> None:
        """
        A session that sends PASV twice holds one listener: the first port
        is closed (nothing listens, connecting is refused) and another
        session can take it.
        """
        control = self.session()
        first = control.pasv()
        second = control.pasv()
        self.assertEqual({first, second}, self.ports)
        self.assertTrue(
            support.waitUntil(lambda: first not in support.listeningPorts(), 2),
            f"port {first} still listens after the second PASV",
        )
        self.assertTrue(support.connectionRefused(first))
        self.assertIn(second, support.listeningPorts())
        other = self.session()
        self.assertEqual(other.pasv(), first)

    def test_unconnectedListenerTimesOut(self) -> None:
        """
        With C{--data-timeout 2} a passive listener nobody connects to closes
        after about 2 s (not much earlier, not much later); connecting is
        refused afterwards, a LIST then gets 425, and the session goes on.
        """
        control = self.session()
        port = control.pasv()
        start = time.monotonic()
        self.assertIn(port, support.listeningPorts())
        self.assertTrue(
            support.waitUntil(lambda: port not in support.listeningPorts(), 6),
            f"port {port} still listens 6 s after PASV",
        )
        elapsed = time.monotonic() - start
        self.assertTrue(1.5 <= elapsed <= 4.0, f"listener closed after {elapsed:.1f} s")
        self.assertTrue(support.connectionRefused(port))
        control.send("LIST")
        preliminary, (code, text) = control.finalReply()
        self.assertIn(preliminary, ([], [150]))
        self.assertEqual(code, 425, text)
        self.assertEqual(control.command("NOOP")[0], 200)

    def test_portsFreeAfterSessionsEnd(self) -> None:
        """
        Two sessions each complete a transfer over a passive port, open
        another listener and quit; then nothing listens on the range, we
        can bind both ports ourselves, and two new sessions get both ports
        again.
        """
        sessions = [self.session(), self.session()]
        for control in sessions:
            data = control.openData(control.pasv())
            control.send("NLST")
            self.assertEqual(control.reply()[0], 150)
            support.receiveAll(data)
            data.close()
            self.assertEqual(control.finalReply()[1][0], 226)
        self.assertEqual({control.pasv() for control in sessions}, self.ports)
        for control in sessions:
            self.assertEqual(control.command("QUIT")[0], 221)
            control.close()
        self.assertTrue(
            support.waitUntil(lambda: not self.ports & support.listeningPorts(), 3),
            "passive ports still listen after their sessions ended",
        )
        for port in sorted(self.ports):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
                sock.listen(1)
            finally:
                sock.close()
        self.assertEqual({self.session().pasv() for _ in range(2)}, self.ports)


class StalledTransferTests(LimitsTestCase):
    """
    SECURITY.md case 29: data connections that stop moving bytes are
    aborted after C{--data-timeout} (2 s) and free their sockets and files.
    """

    serverArgs = ("--data-timeout", "2")

    def setUp(self) -> None:
        super().setUp()
        sparseFile(os.path.join(self.server.root, "huge.bin"))

    def test_stalledDownload(self) -> None:
        """
        A client that connects (TLS, resumed session), sends RETR of a 64 MiB
        file and never reads: once the socket buffers are full, the control
        connection gets 426 within a few seconds, the server's descriptor
        count returns to what it was before the PASV (socket and file
        closed), and the session goes on.
        """
        control = self.session()
        before = describeDescriptors(self.pid)
        baseline = self.stableDescriptorCount()
        data = control.openData(control.pasv())
        self.addCleanup(data.close)
        control.send("RETR huge.bin")
        code, text = control.reply()
        self.assertEqual(code, 150, text)
        start = time.monotonic()
        try:
            code, text = control.reply(timeout=15)
        except TimeoutError:
            self.fail("no reply 15 s after a download stalled" + self.serverLog())
        elapsed = time.monotonic() - start
        self.assertEqual(code, 426, text)
        self.assertLess(elapsed, 10, f"426 came {elapsed:.1f} s after the download started")
        self.assertDescriptorsBackTo(baseline, before, 5)
        self.assertEqual(control.command("NOOP")[0], 200)

    def test_stalledUpload(self) -> None:
        """
        An upload whose client sends 100 KB and then goes silent without
        closing gets 426 a few seconds later; no file appears under the
        final name (at most the hidden partial file kept for a REST
        resumption, with no more than the bytes sent, and no temporary file),
        a listing does not show any of it, and the server's descriptor count
        returns to what it was before the PASV.
        """
        control = self.session(USER)
        home = self.server.userHome(USER)
        before = describeDescriptors(self.pid)
        baseline = self.stableDescriptorCount()
        data = control.openData(control.pasv())
        self.addCleanup(data.close)
        control.send("STOR stalled.bin")
        code, text = control.reply()
        self.assertEqual(code, 150, text)
        sent = 100 * 1024
        data.sendall(os.urandom(sent))
        start = time.monotonic()
        try:
            code, text = control.reply(timeout=15)
        except TimeoutError:
            self.fail("no reply 15 s after an upload stalled" + self.serverLog())
        elapsed = time.monotonic() - start
        self.assertEqual(code, 426, text)
        self.assertTrue(1.5 <= elapsed < 6, f"426 came {elapsed:.1f} s after the last byte")
        self.assertFalse(os.path.exists(os.path.join(home, "stalled.bin")))
        partial = PARTIAL_PREFIX + "stalled.bin"
        self.assertTrue(
            support.waitUntil(lambda: set(os.listdir(home)) <= {partial}, 2),
            f"left in the home: {os.listdir(home)}",
        )
        if os.path.exists(os.path.join(home, partial)):
            self.assertLessEqual(os.path.getsize(os.path.join(home, partial)), sent)
        self.assertDescriptorsBackTo(baseline, before, 5)
        listing = control.openData(control.pasv())
        control.send("NLST")
        self.assertEqual(control.reply()[0], 150)
        self.assertEqual(support.receiveAll(listing), b"")
        listing.close()
        self.assertEqual(control.finalReply()[1][0], 226)

    def test_connectedButUnused(self) -> None:
        """
        A data connection that connects and completes its TLS handshake but
        is never used (no transfer command follows) is pending like an
        unconnected listener: the server closes it about C{--data-timeout}
        (2 s) later, a LIST afterwards gets 425, and the session goes on.
        """
        control = self.session()
        data = control.openData(control.pasv())
        self.addCleanup(data.close)
        start = time.monotonic()
        closed = support.tcpClosedByPeer(data, 5)
        elapsed = time.monotonic() - start
        self.assertTrue(closed, "the server kept an unused data connection open for 5 s")
        self.assertTrue(1.5 <= elapsed <= 4.0, f"closed after {elapsed:.1f} s")
        control.send("LIST")
        preliminary, (code, text) = control.finalReply()
        self.assertEqual(code, 425, text)
        self.assertEqual(control.command("NOOP")[0], 200)


class DescriptorBaselineTests(LimitsTestCase):
    """
    Issue 3's acceptance test (SECURITY.md cases 17, 27 and 29): many
    abandoned sessions leave no file descriptor behind.
    """

    serverArgs = ("--data-timeout", "2", "--max-clients-per-ip", "100")

    def test_abandonedSessions(self) -> None:
        """
        After a warm-up session, 30 sessions that log in and PASV but never
        connect, 5 that send RETR of a 64 MiB file on an unconnected PASV and
        leave, and 10 that start that download, read some of it and QUIT (5)
        or drop both connections (5) mid-transfer: once they are all gone and
        the data timeout passed, the server's descriptor count is back at its
        baseline.
        """
        sparseFile(os.path.join(self.server.root, "huge.bin"))
        warmUp = self.workingLogin()
        warmUp.command("QUIT")
        warmUp.close()
        baseline = self.stableDescriptorCount()
        before = describeDescriptors(self.pid)

        pending = [self.session() for _ in range(30)]
        for control in pending:
            control.pasv()

        unconnected = []
        for _ in range(5):
            control = self.session()
            control.pasv()
            control.send("RETR huge.bin")
            self.assertEqual(control.reply()[0], 150)
            unconnected.append(control)

        transferring = []
        for _ in range(10):
            control = self.session()
            data = control.openData(control.pasv())
            self.addCleanup(data.close)
            control.send("RETR huge.bin")
            self.assertEqual(control.reply()[0], 150)
            received = 0
            while received < 256 * 1024:
                chunk = data.recv(65536)
                self.assertTrue(chunk, "download ended early")
                received += len(chunk)
            transferring.append((control, data))
        self.assertGreater(support.openFileDescriptors(self.pid), baseline + 45)

        for index, (control, data) in enumerate(transferring):
            if index % 2:
                control.send("QUIT")
                control.close()
                data.close()
            else:
                support.abortiveClose(data)
                support.abortiveClose(control.sock)
        for control in unconnected:
            control.close()
        for index, control in enumerate(pending):
            if index % 2:
                control.send("QUIT")
            control.close()

        self.assertDescriptorsBackTo(baseline, before, 10)
        self.assertServerRunning()
        self.workingLogin()


class ConnectionLimitTests(LimitsTestCase):
    """
    SECURITY.md case 29: C{--max-clients-per-ip} and C{--max-clients}
    answer 421 and close; the implicit port closes without a plaintext byte.
    """

    def setUp(self) -> None:
        pass

    def assertRefused421(self, source: str | None = None, implicit: bool = False) -> bytes:
        """
        A new connection (from C{source}) is closed by the server; return
        what it sent first.
        """
        port = self.server.implicitPort if implicit else self.server.explicitPort
        sock = socket.create_connection(
            (LOOPBACK, port), timeout=5, source_address=(source, 0) if source else None
        )
        self.addCleanup(sock.close)
        received, closed = support.readUntilClosed(sock, 5)
        self.assertTrue(closed, f"an over-cap connection stayed open: {received!r}")
        return received

    def test_perAddressCap(self) -> None:
        """
        With C{--max-clients-per-ip 3}, three connections from 127.0.0.1 get
        220; the fourth gets 421 and is closed; 127.0.0.2 still gets 220;
        once one of the three quits, 127.0.0.1 is accepted again.
        """
        self.server = self.startServer("--max-clients-per-ip", "3")
        held = [self.connect() for _ in range(3)]
        self.assertEqual([c.greeting[0] for c in held], [220] * 3)
        received = self.assertRefused421()
        self.assertTrue(received.startswith(b"421 "), received)
        other = self.connect(source="127.0.0.2")
        self.assertEqual(other.greeting[0], 220)
        self.assertEqual(other.command("NOOP")[0], 200)
        self.assertEqual(held[0].command("QUIT")[0], 221)
        held[0].close()

        def accepted() -> bool:
            try:
                control = support.ControlConnection(self.server)
            except (support.PeerClosed, OSError):
                return False
            self.addCleanup(control.close)
            return control.greeting[0] == 220

        self.assertTrue(support.waitUntil(accepted, 3, 0.1), "127.0.0.1 refused after a quit")

    def test_totalCap(self) -> None:
        """
        With C{--max-clients 2}, two connections (from two addresses) get
        220, a third from yet another address gets 421 and is closed; after
        one quits, a new one is accepted.
        """
        self.server = self.startServer("--max-clients", "2")
        held = [self.connect(), self.connect(source="127.0.0.2")]
        self.assertEqual([c.greeting[0] for c in held], [220, 220])
        received = self.assertRefused421(source="127.0.0.3")
        self.assertTrue(received.startswith(b"421 "), received)
        self.assertEqual(held[1].command("QUIT")[0], 221)
        held[1].close()

        def accepted() -> bool:
            try:
                control = support.ControlConnection(self.server, source="127.0.0.3")
            except (support.PeerClosed, OSError):
                return False
            self.addCleanup(control.close)
            return control.greeting[0] == 220

        self.assertTrue(support.waitUntil(accepted, 3, 0.1), "no new connection after a quit")
        self.assertEqual(held[0].command("NOOP")[0], 200)

    def test_implicitOverCapSilent(self) -> None:
        """
        On the implicit port an over-cap connection is closed without any
        byte (no plaintext 421 where TLS is expected), and a TLS client
        there fails its handshake; from 127.0.0.2 the implicit port still
        answers 220 over TLS.
        """
        self.server = self.startServer("--max-clients-per-ip", "3")
        for _ in range(3):
            self.connect()
        received = self.assertRefused421(implicit=True)
        self.assertEqual(received, b"")
        with self.assertRaises((ssl.SSLError, OSError, support.PeerClosed)):
            self.connect(implicit=True)
        other = self.connect(implicit=True, source="127.0.0.2")
        self.assertEqual(other.greeting[0], 220)


class IdleTimeoutTests(LimitsTestCase):
    """
    SECURITY.md case 29: C{--idle-timeout 2}; the idle timer restarts only
    on complete commands.
    """

    serverArgs = ("--idle-timeout", "2")

    def waitFor421(
        self,
        control: support.ControlConnection,
        keepBusy: Any = None,
        limit: float = 6.0,
        closeTCP: bool = False,
    ) -> float:
        """
        Wait for the 421 and the end of the TLS stream, calling C{keepBusy}
        every 0.5 s meanwhile; with C{closeTCP}, the server must also close
        the TCP connection although we never answer its close_notify.

        @return: seconds until the 421 arrived.
        """
        start = time.monotonic()
        while time.monotonic() - start < limit:
            try:
                code, text = control.reply(timeout=0.5)
            except TimeoutError:
                if keepBusy is not None:
                    keepBusy()
                continue
            self.assertEqual(code, 421, text)
            elapsed = time.monotonic() - start
            _, closed = support.readUntilClosed(control.sock, 3)
            self.assertTrue(closed, "connection still open after the 421")
            if closeTCP:
                # We never answer the server's TLS close_notify, as a hostile
                # client would not: the server must still close the connection.
                self.assertTrue(
                    support.tcpClosedByPeer(control.sock, 3),
                    "after the 421 and its close_notify the server kept the TCP"
                    " connection open for 3 s (waiting for our close_notify)" + self.serverLog(),
                )
            return elapsed
        self.fail(f"no 421 within {limit} s" + self.serverLog())

    def test_idleSessionClosed(self) -> None:
        """
        A logged-in session that sends nothing gets 421 about 2 s after its
        last command, and is closed: TLS close_notify and TCP close, even
        though the client never answers the close_notify (a client must not
        keep its connection, and the connection's slot under the caps, by
        ignoring the close).
        """
        control = self.session()
        elapsed = self.waitFor421(control, closeTCP=True)
        self.assertTrue(1.5 <= elapsed <= 4.0, f"421 after {elapsed:.1f} s")

    def test_partialLineDoesNotKeepAlive(self) -> None:
        """
        Sending one byte of a command line every 0.5 s, never a line end,
        does not restart the idle timer: 421 still comes about 2 s after the
        last complete command.
        """
        control = self.session()
        partial = iter(b"NOOPNOOPNOOPNOOPNOOPNOOP")

        def dribble() -> None:
            try:
                control.sock.sendall(bytes([next(partial)]))
            except (OSError, StopIteration):
                pass

        elapsed = self.waitFor421(control, dribble)
        self.assertTrue(1.5 <= elapsed <= 3.5, f"421 after {elapsed:.1f} s")

    def test_noopKeepsAlive(self) -> None:
        """
        NOOP every 0.5 s for 4 s (twice the idle timeout) keeps the session
        open, every NOOP answered 200; after the last one the 421 comes
        about 2 s later.
        """
        control = self.session()
        start = time.monotonic()
        while time.monotonic() - start < 4:
            self.assertEqual(control.command("NOOP")[0], 200)
            time.sleep(0.5)
        self.assertEqual(control.command("PWD")[0], 257)
        elapsed = self.waitFor421(control)
        self.assertTrue(1.5 <= elapsed <= 4.0, f"421 after {elapsed:.1f} s")

    def test_idleSessionFreesPassiveListener(self) -> None:
        """
        An idle session with a pending PASV listener gets 421 and is closed,
        and its listener closes with it.
        """
        control = self.session()
        port = control.pasv()
        self.waitFor421(control)
        self.assertTrue(
            support.waitUntil(lambda: port not in support.listeningPorts(), 2),
            f"port {port} still listens after the idle session was closed",
        )

    def test_runningTransferKeepsAlive(self) -> None:
        """
        An upload that runs longer than the idle timeout (64 KB every 0.5 s
        for 3.5 s) is not cut by it: it ends with 226, stored byte-identical;
        and the client then has a full idle timeout for its next command: a
        NOOP 1 s after the 226 gets 200, not 421.
        """
        control = self.session(USER)
        data = control.openData(control.pasv())
        self.addCleanup(data.close)
        control.send("STOR slow.bin")
        self.assertEqual(control.reply()[0], 150)
        sent = b""
        for _ in range(7):
            chunk = os.urandom(65536)
            data.sendall(chunk)
            sent += chunk
            time.sleep(0.5)
        data.unwrap().close()
        _, (code, text) = control.finalReply()
        self.assertEqual(code, 226, text)
        with open(os.path.join(self.server.userHome(USER), "slow.bin"), "rb") as f:
            self.assertTrue(f.read() == sent, "stored bytes differ")
        time.sleep(1)
        try:
            code, text = control.command("NOOP")
        except support.PeerClosed as e:
            self.fail(f"session closed 1 s after its transfer ended: {e}" + self.serverLog())
        self.assertEqual(code, 200, f"1 s after the 226: {text!r}")


class LongLineTests(LimitsTestCase):
    """
    SECURITY.md case 28: over-long command lines.
    """

    def overlong(self, tls: bool) -> tuple[bytes, bool]:
        """
        Connect (explicit; with AUTH TLS when C{tls}), send a 100 KB line
        without a line end, then keep sending up to 2 MB more while the
        server accepts bytes.

        @return: everything the server sent after the greeting (and the
            234), and whether it closed the connection.
        """
        control = self.connect()
        if tls:
            control.auth()
        sock = control.sock
        sock.settimeout(2)
        sent = trySend(sock, b"A" * 100 * 1024)
        for _ in range(32):
            if not sent:
                break
            sent = trySend(sock, b"B" * 65536)
        received, closed = support.readUntilClosed(sock, 5)
        return control.buffer + received, closed and support.tcpClosedByPeer(sock, 3)

    def test_overlongLines(self) -> None:
        """
        A 100 KB line without a line end gets 500 and the connection is
        closed (TCP closed, even though the client never answers a TLS
        close_notify), in plaintext before AUTH and over TLS; after 20 such
        connections (each trying to push 2 MB more) the server's resident
        memory grew by less than 20 MB, and a session opened before them
        still answers and transfers.
        """
        bystander = self.session()
        self.workingLogin().close()
        rssBefore = support.residentKiB(self.pid)
        problems = []
        for index in range(20):
            tls = index % 10 == 0
            received, closed = self.overlong(tls=tls)
            if not received.startswith(b"500 "):
                problems.append(f"connection {index} (TLS: {tls}) got {received[:100]!r}")
            if not closed:
                problems.append(f"connection {index} (TLS: {tls}) stayed open 3 s after the 500")
        self.assertEqual(problems, [], self.serverLog())
        grown = support.residentKiB(self.pid) - rssBefore
        self.assertLess(grown, 20 * 1024, f"server memory grew by {grown} KiB")
        self.assertEqual(bystander.command("NOOP")[0], 200)
        data = bystander.openData(bystander.pasv())
        bystander.send("NLST")
        self.assertEqual(bystander.reply()[0], 150)
        support.receiveAll(data)
        data.close()
        self.assertEqual(bystander.finalReply()[1][0], 226)
        self.assertServerRunning()


class FloodTests(LimitsTestCase):
    """
    SECURITY.md case 30: connect/close and connect/reset floods on the
    explicit port, the implicit port and a passive data port.
    """

    serverArgs = ("--data-timeout", "2")

    def flood(self, port: int, closes: int = 200, resets: int = 100) -> None:
        for index in range(closes + resets):
            try:
                sock = socket.create_connection((LOOPBACK, port), timeout=2)
            except ConnectionRefusedError:
                continue
            if index < closes:
                sock.close()
            else:
                support.abortiveClose(sock)

    def test_floods(self) -> None:
        """
        200 connect/close and 100 connect/reset on the explicit port, the
        same on the implicit port, and the same on a passive data port (a
        PASV before each connection): the server still serves a normal login
        and listing, logs no traceback, and its descriptor count returns to
        its baseline.
        """
        with open(os.path.join(self.server.root, "listed.txt"), "wb") as f:
            f.write(b"x")
        self.workingLogin().close()
        baseline = self.stableDescriptorCount()
        before = describeDescriptors(self.pid)
        start = time.monotonic()
        self.flood(self.server.explicitPort)
        self.flood(self.server.implicitPort)
        # A session that works (retried while the per-address cap still
        # counts flood connections the server has not yet seen close).
        control = self.workingLogin()
        for index in range(300):
            port = control.pasv()
            sock = socket.create_connection((LOOPBACK, port), timeout=2)
            if index < 200:
                sock.close()
            else:
                support.abortiveClose(sock)
        control.command("QUIT")
        control.close()
        self.assertLess(time.monotonic() - start, 30, "the floods took too long")
        self.assertServerRunning()
        self.workingLogin().close()
        self.assertDescriptorsBackTo(baseline, before, 5)
        self.assertServerRunning()
