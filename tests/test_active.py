"""
Active mode (C{PORT}/C{EPRT}), bounce protection, stale data targets and
C{EPSV ALL}, against the real C{twistd -n ftps} on loopback.

Real clients (curl, Python's ftplib) prove that active mode works over TLS
data connections, explicit and implicit; raw control connections
(L{support.ControlConnection}) pin SECURITY.md cases 14 (FTP bounce) and 15
(malformed PORT/EPRT/EPSV leave no stale target) with "third party"
listeners that must never see a connection.

In active mode the server connects to the client and is still the TLS server
of the data connection (RFC 4217 section 7): the client side accepts, then
runs a TLS client handshake that resumes the control session.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import time
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from tests import support
from tests.test_interop import randomBytes, readFile, writeFile
from txftps._datachannel import DataChannel
from txftps.errors import FTPReplyError

USER = "alice"
PASSWORD = "secret"
LOOPBACK = support.LOOPBACK
THIRD_PARTY = "127.0.0.2"


class ImplicitReusingFTP_TLS(support.ReusingFTP_TLS):
    """
    ftplib has no implicit FTPS: this client wraps the control socket in TLS
    right after connecting, before the greeting is read, and resumes the
    control session on data connections (L{support.ReusingFTP_TLS}).
    """

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: Any = None,
    ) -> str:
        if host:
            self.host = host
        if port > 0:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        if source_address is not None:
            self.source_address = source_address
        raw = socket.create_connection(
            (self.host, self.port), self.timeout, source_address=self.source_address
        )
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class RecordingMixin:
    """
    Remembers every command line an ftplib client sent (verb and argument).

    @ivar sent: the lines, passwords included.
    """

    sent: list[str]

    def putcmd(self, line: str) -> None:
        self.__dict__.setdefault("sent", []).append(line)
        super().putcmd(line)  # type: ignore[misc]

    def verbs(self) -> list[str]:
        return [line.split(" ", 1)[0].upper() for line in self.__dict__.get("sent", [])]


class RecordingExplicit(RecordingMixin, support.ReusingFTP_TLS):
    pass


class RecordingImplicit(RecordingMixin, ImplicitReusingFTP_TLS):
    pass


def openListener(host: str, family: int = socket.AF_INET) -> socket.socket:
    """
    A non-blocking listening socket on a free port of C{host}: the target of
    a PORT/EPRT, or a "third party" the server must never connect to.
    """
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(5)
    listener.setblocking(False)
    return listener


def lowPortListener(host: str = LOOPBACK) -> socket.socket | None:
    """
    A listener on a free port below 1024, or C{None} when this process may
    not bind one (not root).
    """
    for port in range(1023, 900, -1):
        listener = socket.socket()
        try:
            listener.bind((host, port))
        except PermissionError:
            listener.close()
            return None
        except OSError:
            listener.close()
            continue
        listener.listen(5)
        listener.setblocking(False)
        return listener
    return None


def sawConnection(listener: socket.socket, timeout: float = 0.5) -> bool:
    """
    Whether anyone connected to C{listener} (within C{timeout}); accepted
    connections are closed.
    """
    readable, _, _ = select.select([listener], [], [], timeout)
    if not readable:
        return False
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


class ActiveTestCase(unittest.TestCase):
    """
    Starts a server with user C{alice} (and anonymous access to a root with
    a 2 MiB random file) for each test.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = support.TwistdServer(*self.serverArgs, users={USER: PASSWORD})
        self.server.start()
        self.addCleanup(self.server.stop)
        os.makedirs(self.server.userHome(USER), exist_ok=True)
        self.data = randomBytes(2 * 1024 * 1024 + 13)
        writeFile(os.path.join(self.server.root, "file.bin"), self.data)
        writeFile(os.path.join(self.server.userHome(USER), "file.bin"), self.data)

    def serverLog(self, tail: int = 4000) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-tail:]

    def session(self, **kwargs: Any) -> support.ControlConnection:
        control = support.loggedInSession(self.server, USER, PASSWORD, **kwargs)
        self.addCleanup(control.close)
        return control

    def listener(self, host: str = LOOPBACK, family: int = socket.AF_INET) -> socket.socket:
        listener = openListener(host, family)
        self.addCleanup(listener.close)
        return listener

    def lowPortTarget(self) -> tuple[socket.socket, int]:
        """
        A listener on 127.0.0.1 below port 1024 and its port; where this
        process may not bind one (not root), a listener elsewhere and port
        1021 (then only the log shows whether a connection was attempted).
        """
        low = lowPortListener()
        if low is None:
            return self.listener(), 1021
        self.addCleanup(low.close)
        return low, low.getsockname()[1]

    def activeTransfer(
        self, control: support.ControlConnection, listener: socket.socket, line: str
    ) -> tuple[list[int], int, bytes]:
        """
        Send C{line} after a C{PORT}/C{EPRT} to C{listener}, accept the
        server's data connection, run TLS on it and read it to the end.

        @return: the preliminary codes, the final code, and the data.
        """
        control.send(line)
        code, text = control.reply()
        if code >= 200:
            return [], code, b""
        readable, _, _ = select.select([listener], [], [], 5)
        self.assertTrue(readable, f"{line}: the server never connected" + self.serverLog())
        conn, _ = listener.accept()
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            secured = control.secureData(conn)
            received = support.receiveAll(secured)
        finally:
            conn.close()
        preliminary, (final, _) = control.finalReply()
        return [code, *preliminary], final, received

    def passiveTransfer(
        self, control: support.ControlConnection, port: int, line: str
    ) -> tuple[list[int], int, bytes]:
        """
        Connect to passive C{port}, send C{line}, read the data connection to
        the end.
        """
        data = control.openData(port)
        try:
            control.send(line)
            code, _ = control.reply()
            received = support.receiveAll(data) if code < 200 else b""
        finally:
            data.close()
        if code >= 200:
            return [], code, b""
        preliminary, (final, _) = control.finalReply()
        return [code, *preliminary], final, received

    def assertNoTransfer(
        self, control: support.ControlConnection, listener: socket.socket, why: str
    ) -> None:
        """
        LIST and RETR now get 425 (no data connection is set up) without a
        150, and C{listener} never sees a connection.
        """
        for line in ("LIST", "RETR file.bin"):
            code, text = control.command(line)
            if code < 200:
                connected = sawConnection(listener)
                self.fail(
                    f"{why}: {line} afterwards got {text!r} instead of 425: the server used"
                    f" a stale data target (connection to our earlier target: {connected})"
                    + self.serverLog()
                )
            self.assertEqual(code, 425, f"{why}: {line} afterwards got {text!r}")
        self.assertFalse(
            sawConnection(listener),
            f"{why}: the server connected to the target" + self.serverLog(),
        )


class CurlActiveTests(ActiveTestCase):
    """
    curl in active mode (C{--ftp-port}) with C{--ssl-reqd}: explicit FTPS,
    PROT P, the server connecting to curl and running TLS as the server.
    """

    implicit = False

    def curl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return support.curl(self.server, "-v", *args, implicit=self.implicit, **kwargs)

    def assertSucceeded(self, result: subprocess.CompletedProcess[bytes], what: str) -> None:
        if result.returncode != 0:
            self.fail(
                f"{what}: curl exit status {result.returncode}\nstderr:"
                f" {result.stderr.decode('utf-8', 'replace')[-3000:]}" + self.serverLog()
            )

    def assertActive(self, result: subprocess.CompletedProcess[bytes], command: bytes) -> None:
        """
        curl's verbose output shows that it set up the data connection with
        C{command} (PORT or EPRT) and never asked for a passive one.
        """
        sent = re.findall(rb"^> ([A-Z]+)", result.stderr, re.M)
        self.assertIn(command, sent, result.stderr[-2000:])
        self.assertNotIn(b"PASV", sent)
        self.assertNotIn(b"EPSV", sent)
        self.assertIn(b"PROT", sent)

    def roundTrip(self, portArgs: tuple[str, ...], command: bytes) -> None:
        result = self.curl(*portArgs, path="/file.bin")
        self.assertSucceeded(result, "active download")
        self.assertActive(result, command)
        self.assertEqual(len(result.stdout), len(self.data), "downloaded size")
        self.assertTrue(result.stdout == self.data, "downloaded bytes differ" + self.serverLog())

        upload = randomBytes(2 * 1024 * 1024 + 7)
        source = writeFile(os.path.abspath(os.path.join(self.mktemp(), "up.bin")), upload)
        result = self.curl(*portArgs, "-T", source, path="/up.bin", user=f"{USER}:{PASSWORD}")
        self.assertSucceeded(result, "active upload")
        self.assertActive(result, command)
        stored = readFile(os.path.join(self.server.userHome(USER), "up.bin"))
        self.assertEqual(len(stored), len(upload), "uploaded size")
        self.assertTrue(stored == upload, "uploaded bytes differ" + self.serverLog())

    def test_ftpPortDash(self) -> None:
        """
        C{--ftp-port -} (the control connection's address): curl sends EPRT;
        a 2 MiB random download and a 2 MiB random upload arrive
        byte-identical.
        """
        self.roundTrip(("--ftp-port", "-"), b"EPRT")

    def test_ftpPortAddress(self) -> None:
        """
        C{--ftp-port 127.0.0.1}: the same download and upload, byte-identical.
        """
        self.roundTrip(("--ftp-port", LOOPBACK), b"EPRT")

    def test_ftpPortWithoutEPRT(self) -> None:
        """
        C{--ftp-port 127.0.0.1 --disable-eprt}: curl sends PORT; download and
        upload byte-identical.
        """
        self.roundTrip(("--ftp-port", LOOPBACK, "--disable-eprt"), b"PORT")


class CurlActiveImplicitTests(CurlActiveTests):
    """
    The same with C{ftps://}: implicit FTPS, PROT P by default.
    """

    implicit = True


class FtplibActiveTests(ActiveTestCase):
    """
    Python's ftplib with C{set_pasv(False)} (it sends PORT on IPv4) and
    session-resuming data connections.
    """

    implicit = False

    def client(self, user: str = USER, password: str = PASSWORD) -> Any:
        if self.implicit:
            client: Any = RecordingImplicit(context=self.server.ca.clientContext(), timeout=10)
            client.connect(LOOPBACK, self.server.implicitPort)
        else:
            client = RecordingExplicit(context=self.server.ca.clientContext(), timeout=10)
            client.connect(LOOPBACK, self.server.explicitPort)
            client.auth()
        self.addCleanup(client.close)
        client.login(user, password)
        client.prot_p()
        client.set_pasv(False)
        return client

    def assertOnlyActive(self, client: Any) -> None:
        verbs = client.verbs()
        self.assertIn("PORT", verbs)
        self.assertNotIn("PASV", verbs)
        self.assertNotIn("EPSV", verbs)
        self.assertEqual("AUTH" in verbs, not self.implicit, verbs)

    def test_nlst(self) -> None:
        """
        C{nlst()} over an active, protected data connection returns exactly
        the root's names.
        """
        client = self.client("anonymous", "a@b")
        self.assertEqual(client.nlst(), ["file.bin"])
        self.assertOnlyActive(client)

    def test_retrbinary(self) -> None:
        """
        C{retrbinary} of a 2 MiB random file over an active data connection
        delivers exactly its bytes and ends with 226.
        """
        client = self.client()
        chunks: list[bytes] = []
        reply = client.retrbinary("RETR /file.bin", chunks.append)
        self.assertTrue(reply.startswith("226"), reply)
        received = b"".join(chunks)
        self.assertEqual(len(received), len(self.data))
        self.assertTrue(received == self.data, "downloaded bytes differ")
        self.assertOnlyActive(client)

    def test_storbinary(self) -> None:
        """
        C{storbinary} of a 2 MiB random file over an active data connection
        stores it byte-identical; C{retrbinary} on the same control
        connection (a second active connection) brings the same bytes back.
        """
        client = self.client()
        upload = randomBytes(2 * 1024 * 1024 + 5)
        source = writeFile(os.path.abspath(os.path.join(self.mktemp(), "up.bin")), upload)
        with open(source, "rb") as f:
            reply = client.storbinary("STOR up.bin", f)
        self.assertTrue(reply.startswith("226"), reply)
        stored = readFile(os.path.join(self.server.userHome(USER), "up.bin"))
        self.assertTrue(stored == upload, f"stored {len(stored)} bytes differ" + self.serverLog())
        chunks: list[bytes] = []
        client.retrbinary("RETR up.bin", chunks.append)
        self.assertTrue(b"".join(chunks) == upload, "read back differs")
        self.assertOnlyActive(client)


class FtplibActiveImplicitTests(FtplibActiveTests):
    """
    The same over implicit FTPS, with L{ImplicitReusingFTP_TLS}.
    """

    implicit = True


class BounceTests(ActiveTestCase):
    """
    SECURITY.md case 14, FTP bounce: PORT/EPRT to another host or to a port
    below 1024 is refused with 501 and the server never connects there.
    """

    def test_portToOtherHost(self) -> None:
        """
        C{PORT} naming 127.0.0.2, where a "third party" listens, gets 501;
        a LIST and a RETR afterwards get 425 and the third party never sees
        a connection; the server logs the refusal.
        """
        control = self.session()
        victim = self.listener(THIRD_PARTY)
        port = victim.getsockname()[1]
        code, text = control.command(f"PORT {support.portArgument(THIRD_PARTY, port)}")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, victim, "PORT to 127.0.0.2")
        self.assertIn("refused active data connection to 127.0.0.2", self.server.log())

    def test_portBelow1024(self) -> None:
        """
        C{PORT} to the control peer's own address on a port below 1024 gets
        501, and nothing connects there (nor is a connection attempted: the
        server logs no failed active connection).
        """
        control = self.session()
        victim, port = self.lowPortTarget()
        code, text = control.command(f"PORT {support.portArgument(LOOPBACK, port)}")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, victim, f"PORT to port {port}")
        self.assertNotIn("active data connection failed", self.server.log())

    def test_eprtToOtherHost(self) -> None:
        """
        C{EPRT |1|127.0.0.2|p|} gets 501; LIST and RETR get 425 and the third
        party never sees a connection.
        """
        control = self.session()
        victim = self.listener(THIRD_PARTY)
        port = victim.getsockname()[1]
        code, text = control.command(f"EPRT |1|{THIRD_PARTY}|{port}|")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, victim, "EPRT to 127.0.0.2")

    def test_eprtBelow1024(self) -> None:
        """
        C{EPRT |1|127.0.0.1|p|} with p below 1024 gets 501; nothing connects
        there and no connection is attempted.
        """
        control = self.session()
        victim, port = self.lowPortTarget()
        code, text = control.command(f"EPRT |1|{LOOPBACK}|{port}|")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, victim, f"EPRT to port {port}")
        self.assertNotIn("active data connection failed", self.server.log())

    def test_eprtIPv6FromIPv4(self) -> None:
        """
        C{EPRT |2|::1|p|} on an IPv4 control connection (::1 is another
        address than 127.0.0.1) is refused with a 5xx; a listener on
        [::1]:p never sees a connection.
        """
        control = self.session()
        victim = self.listener("::1", socket.AF_INET6)
        port = victim.getsockname()[1]
        code, text = control.command(f"EPRT |2|::1|{port}|")
        self.assertIn(code, (501, 504, 522), text)
        self.assertNoTransfer(control, victim, "EPRT to ::1")

    def test_mappedAddressesOfOtherHosts(self) -> None:
        """
        An IPv4-mapped spelling of another host, C{EPRT |2|::ffff:127.0.0.2|p|},
        is refused too, and nothing connects to 127.0.0.2.
        """
        control = self.session()
        victim = self.listener(THIRD_PARTY)
        port = victim.getsockname()[1]
        code, text = control.command(f"EPRT |2|::ffff:{THIRD_PARTY}|{port}|")
        self.assertIn(code, (501, 504, 522), text)
        self.assertNoTransfer(control, victim, "EPRT to ::ffff:127.0.0.2")


class DualStackActiveTests(ActiveTestCase):
    """
    A dual-stack control endpoint (C{tcp6} on C{::}) reached over IPv4: the
    control peer is C{::ffff:127.0.0.1}, which must compare equal to
    C{127.0.0.1} (SECURITY.md case 14). Needs IPv6 on the loopback interface;
    L{MappedPeerUnitTests} pins the same comparison without sockets.
    """

    serverArgs = ("--listen", r"tcp6:0:interface=\:\:")

    def setUp(self) -> None:
        super().setUp()
        # TwistdServer.start reads the 127.0.0.1 ports; find the second one.
        pattern = re.compile(r"explicit FTPS listening on :: port (\d+)")
        self.assertTrue(
            support.waitUntil(lambda: pattern.search(self.server.log()) is not None, 5),
            "no dual-stack listener" + self.serverLog(),
        )
        match = pattern.search(self.server.log())
        assert match is not None
        self.dualPort = int(match.group(1))

    def mappedSession(self) -> support.ControlConnection:
        control = self.session(port=self.dualPort)
        # The premise: the server sees this IPv4 client as ::ffff:127.0.0.1.
        self.assertTrue(
            support.waitUntil(
                lambda: f"{USER} logged in from ::ffff:127.0.0.1" in self.server.log(), 2
            ),
            "the control peer is not IPv4-mapped" + self.serverLog(),
        )
        return control

    def test_eprtToMappedPeer(self) -> None:
        """
        From a control peer seen as C{::ffff:127.0.0.1}, C{EPRT |1|127.0.0.1|p|}
        is accepted (200), and an NLST over it delivers the listing over TLS
        and ends with 226.
        """
        control = self.mappedSession()
        listener = self.listener()
        code, text = control.command(f"EPRT |1|{LOOPBACK}|{listener.getsockname()[1]}|")
        self.assertEqual(code, 200, f"{text!r}" + self.serverLog())
        preliminary, final, data = self.activeTransfer(control, listener, "NLST /")
        self.assertEqual((preliminary, final), ([150], 226), self.serverLog())
        self.assertEqual(data.decode().split(), ["file.bin"])

    def test_portToMappedPeer(self) -> None:
        """
        From the same mapped peer, C{PORT 127,0,0,1,...} is accepted and RETR
        of a 2 MiB random file over it delivers exact bytes.
        """
        control = self.mappedSession()
        listener = self.listener()
        port = listener.getsockname()[1]
        code, text = control.command(f"PORT {support.portArgument(LOOPBACK, port)}")
        self.assertEqual(code, 200, text)
        preliminary, final, data = self.activeTransfer(control, listener, "RETR /file.bin")
        self.assertEqual((preliminary, final), ([150], 226), self.serverLog())
        self.assertEqual(len(data), len(self.data))
        self.assertTrue(data == self.data, "downloaded bytes differ")

    def test_mappedPeerStillRefusesOtherHosts(self) -> None:
        """
        The mapping opens nothing else: from C{::ffff:127.0.0.1},
        C{EPRT |1|127.0.0.2|p|} and C{EPRT |2|::ffff:127.0.0.2|p|} get 501 and
        nothing connects to 127.0.0.2.
        """
        control = self.mappedSession()
        victim = self.listener(THIRD_PARTY)
        port = victim.getsockname()[1]
        for line in (f"EPRT |1|{THIRD_PARTY}|{port}|", f"EPRT |2|::ffff:{THIRD_PARTY}|{port}|"):
            code, text = control.command(line)
            self.assertIn(code, (501, 504, 522), f"{line}: {text!r}")
            self.assertNoTransfer(control, victim, line)


class MappedPeerUnitTests(unittest.SynchronousTestCase):
    """
    The IPv4-mapped comparison of L{DataChannel.connectActive} without
    sockets (it holds where the machine has no IPv6 for
    L{DualStackActiveTests}): C{reactor.tcpClients} records each connection
    attempt.
    """

    def test_mappedPeerConnects(self) -> None:
        """
        With the control peer C{::ffff:127.0.0.1}, a target of C{127.0.0.1}
        is accepted and the transfer connects there; with the control peer
        C{127.0.0.1}, a target of C{::ffff:127.0.0.1} is accepted too.
        """
        for peer, target in (("::ffff:127.0.0.1", LOOPBACK), (LOOPBACK, "::ffff:127.0.0.1")):
            reactor = MemoryReactorClock()
            channel = DataChannel(reactor, peer, timeout=2)
            channel.connectActive(target, 4097, None)
            self.assertEqual(reactor.tcpClients, [])
            channel.whenReady(False).addErrback(lambda _: None)
            self.assertEqual([(c[0], c[1]) for c in reactor.tcpClients], [(target, 4097)])

    def test_mappedPeerRefusesOthers(self) -> None:
        """
        With the control peer C{::ffff:127.0.0.1}, targets C{127.0.0.2},
        C{::ffff:127.0.0.2} and C{::1} are refused with 501 and no
        connection is attempted, not even when a transfer waits.
        """
        for target in (THIRD_PARTY, f"::ffff:{THIRD_PARTY}", "::1"):
            reactor = MemoryReactorClock()
            channel = DataChannel(reactor, "::ffff:127.0.0.1", timeout=2)
            error = self.assertRaises(FTPReplyError, channel.connectActive, target, 4097, None)
            self.assertEqual(error.code, 501)
            self.failureResultOf(channel.whenReady(False), FTPReplyError)
            self.assertEqual(reactor.tcpClients, [])


class StaleTargetTests(ActiveTestCase):
    """
    SECURITY.md case 15: a malformed or refused PORT/EPRT/EPSV leaves no data
    target behind. A LIST afterwards gets 425 ("Use PASV...") and never
    connects to the earlier PORT target or uses the earlier PASV listener.
    """

    def validPort(self, control: support.ControlConnection) -> socket.socket:
        """
        A listener of ours, set as the data target with a valid PORT (200).
        """
        listener = self.listener()
        port = listener.getsockname()[1]
        code, text = control.command(f"PORT {support.portArgument(LOOPBACK, port)}")
        self.assertEqual(code, 200, text)
        return listener

    def test_malformedPORT(self) -> None:
        """
        A valid PORT, then C{PORT 1,2,3} (501): LIST and RETR get 425 and the
        earlier target never sees a connection.
        """
        control = self.session()
        listener = self.validPort(control)
        code, text = control.command("PORT 1,2,3")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, listener, "PORT 1,2,3")

    def test_malformedEPRTPort(self) -> None:
        """
        A valid EPRT, then C{EPRT |1|127.0.0.1|notaport|} (501): LIST and RETR
        get 425 and the earlier target never sees a connection.
        """
        control = self.session()
        listener = self.listener()
        code, text = control.command(f"EPRT |1|{LOOPBACK}|{listener.getsockname()[1]}|")
        self.assertEqual(code, 200, text)
        code, text = control.command(f"EPRT |1|{LOOPBACK}|notaport|")
        self.assertEqual(code, 501, text)
        self.assertNoTransfer(control, listener, "EPRT with a bad port")

    def test_unknownEPRTProtocol(self) -> None:
        """
        A valid PORT, then C{EPRT |3|x|1|} (501 or 522): no stale target.
        """
        control = self.session()
        listener = self.validPort(control)
        code, text = control.command("EPRT |3|x|1|")
        self.assertIn(code, (501, 522), text)
        self.assertNoTransfer(control, listener, "EPRT |3|x|1|")

    def test_otherMalformedTargets(self) -> None:
        """
        Each of a list of malformed or refused PORT/EPRT arguments (out-of-range
        numbers, missing fields, empty, port 0 or above 65535, a protocol
        that does not match the address, a bad delimiter) gets a 5xx after a
        valid PORT, and leaves no target: LIST gets 425, nothing connects.
        """
        lines = [
            "PORT",
            "PORT 127,0,0,1,300,1",
            "PORT 127,0,0,1,4,-1",
            "PORT 127,0,0,1,0,0",
            "PORT 127,0,0,1,4,1,7",
            "PORT 127.0.0.1,4,1",
            "EPRT",
            "EPRT |1|127.0.0.1|",
            "EPRT |1|127.0.0.1|99999|",
            "EPRT |1|127.0.0.1|0|",
            "EPRT |2|127.0.0.1|4097|",
            "EPRT |1|::1|4097|",
            "EPRT |1|127.0.0.1|4097",
            "EPRT |1|localhost|4097|",
        ]
        control = self.session()
        for line in lines:
            listener = self.validPort(control)
            code, text = control.command(line)
            self.assertTrue(500 <= code < 600, f"{line}: {text!r}")
            self.assertNoTransfer(control, listener, line)

    def test_pasvThenMalformedEPRT(self) -> None:
        """
        PASV opens a listener; a malformed EPRT afterwards (501) closes it:
        nothing listens on that port any more, connecting is refused, and
        LIST gets 425.
        """
        control = self.session()
        port = control.pasv()
        self.assertIn(port, support.listeningPorts())
        code, text = control.command(f"EPRT |1|{LOOPBACK}|notaport|")
        self.assertEqual(code, 501, text)
        self.assertTrue(
            support.waitUntil(lambda: port not in support.listeningPorts(), 2),
            "the PASV listener survived a malformed EPRT",
        )
        self.assertTrue(support.connectionRefused(port))
        control.send("LIST")
        preliminary, (code, text) = control.finalReply()
        self.assertEqual((preliminary, code), ([], 425), text)

    def test_malformedEPSVAfterPORT(self) -> None:
        """
        A valid PORT, then a malformed C{EPSV garbage} and an C{EPSV 2} (IPv6
        on an IPv4 connection), each refused: LIST and RETR get 425 and the
        earlier PORT target never sees a connection.
        """
        control = self.session()
        for line in ("EPSV garbage", "EPSV 2"):
            listener = self.validPort(control)
            code, text = control.command(line)
            self.assertTrue(500 <= code < 600, f"{line}: {text!r}")
            self.assertNoTransfer(control, listener, line)

    def test_malformedEPSVAfterPASV(self) -> None:
        """
        PASV opens a listener; a malformed C{EPSV garbage} afterwards is
        refused and closes it: nothing listens on that port any more.
        """
        control = self.session()
        port = control.pasv()
        code, text = control.command("EPSV garbage")
        self.assertTrue(500 <= code < 600, text)
        self.assertTrue(
            support.waitUntil(lambda: port not in support.listeningPorts(), 2),
            "the PASV listener survived a malformed EPSV",
        )
        control.send("LIST")
        preliminary, (code, text) = control.finalReply()
        self.assertEqual((preliminary, code), ([], 425), text)


class ActiveFailureTests(ActiveTestCase):
    """
    Active data connections that cannot be made, or that are made but never
    start TLS, fail the transfer with 425 within the data timeout (2 s) and
    leave the session usable.
    """

    serverArgs = ("--data-timeout", "2")

    def test_nothingListens(self) -> None:
        """
        PORT to a port of the control peer where nothing listens: PORT gets
        200, RETR gets 150 and then 425 within a few seconds; a passive
        transfer on the same session works afterwards.
        """
        control = self.session()
        closed = socket.socket()
        closed.bind((LOOPBACK, 0))
        port = closed.getsockname()[1]
        closed.close()
        code, text = control.command(f"PORT {support.portArgument(LOOPBACK, port)}")
        self.assertEqual(code, 200, text)
        control.send("RETR file.bin")
        preliminary, (code, text) = control.finalReply(timeout=6)
        self.assertEqual((preliminary, code), ([150], 425), text)
        preliminary, final, data = self.passiveTransfer(control, control.pasv(), "NLST")
        self.assertEqual((preliminary, final), ([150], 226))
        self.assertEqual(data.decode().split(), ["file.bin"])

    def test_acceptedButNoHandshake(self) -> None:
        """
        PORT to a listener that accepts the server's connection but never
        starts TLS: RETR gets 150, then 425 about 2 s later, the server
        closes that data connection without sending a byte of the file, and
        the session goes on.
        """
        control = self.session()
        listener = self.listener()
        code, text = control.command(
            f"PORT {support.portArgument(LOOPBACK, listener.getsockname()[1])}"
        )
        self.assertEqual(code, 200, text)
        control.send("RETR file.bin")
        self.assertEqual(control.reply()[0], 150)
        readable, _, _ = select.select([listener], [], [], 5)
        self.assertTrue(readable, "the server never connected")
        conn, _ = listener.accept()
        self.addCleanup(conn.close)
        start = time.monotonic()
        _, (code, text) = control.finalReply(timeout=6)
        elapsed = time.monotonic() - start
        self.assertEqual(code, 425, text)
        self.assertTrue(1.0 <= elapsed <= 4.0, f"425 after {elapsed:.1f} s")
        received, closed = support.readUntilClosed(conn, 3)
        self.assertTrue(closed, "the server kept the data connection open")
        self.assertNotIn(self.data[:64], received)
        self.assertLess(len(received), 4096, "the server sent more than a TLS alert")
        self.assertEqual(control.command("NOOP")[0], 200)


class EPSVAllTests(ActiveTestCase):
    """
    C{EPSV ALL} (RFC 2428): after it, PORT, PASV and EPRT are refused for the
    rest of the session while EPSV and transfers keep working.
    """

    def assertRefusedAfterEPSVAll(self, control: support.ControlConnection) -> None:
        victim = self.listener()
        port = victim.getsockname()[1]
        for line in (
            f"PORT {support.portArgument(LOOPBACK, port)}",
            "PASV",
            f"EPRT |1|{LOOPBACK}|{port}|",
        ):
            code, text = control.command(line)
            self.assertTrue(500 <= code < 600, f"{line} after EPSV ALL: {text!r}")
            self.assertNoTransfer(control, victim, f"{line} after EPSV ALL")

    def test_epsvAll(self) -> None:
        """
        C{EPSV ALL} gets 200; then PORT, PASV and EPRT get a 5xx and set up
        nothing (LIST gets 425, no connection to the PORT target); EPSV gets
        229 and an NLST and a 2 MiB RETR over it work; PORT, PASV and EPRT are
        still refused after those transfers; another session is not
        affected.
        """
        control = self.session()
        code, text = control.command("EPSV ALL")
        self.assertEqual(code, 200, text)
        self.assertRefusedAfterEPSVAll(control)

        preliminary, final, data = self.passiveTransfer(control, control.epsv(), "NLST /")
        self.assertEqual((preliminary, final), ([150], 226), self.serverLog())
        self.assertEqual(data.decode().split(), ["file.bin"])
        preliminary, final, data = self.passiveTransfer(control, control.epsv(), "RETR /file.bin")
        self.assertEqual((preliminary, final), ([150], 226), self.serverLog())
        self.assertTrue(data == self.data, f"{len(data)} bytes differ from the file")

        self.assertRefusedAfterEPSVAll(control)
        self.assertIsInstance(control.epsv(), int)

        other = self.session()
        other.pasv()
        listener = self.listener()
        code, text = other.command(f"EPRT |1|{LOOPBACK}|{listener.getsockname()[1]}|")
        self.assertEqual(code, 200, text)
        preliminary, final, data = self.activeTransfer(other, listener, "NLST /")
        self.assertEqual((preliminary, final), ([150], 226))
