"""
Security cases of SECURITY.md, pinned with raw bytes on real loopback sockets
against the real C{twistd -n ftps} (L{support.TwistdServer}).

Clients are plain C{socket} + C{ssl} with certificate verification on (the
throwaway CA of the server), or C{ssl.SSLObject} over memory BIOs where the
test needs to control exactly which TLS bytes go out (truncation, bytes before
the ClientHello) or to see whether a stream ended with a close_notify.

Each class shares one server; classes that need other options start their own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time
import warnings
from typing import Any, ClassVar

from twisted.trial import unittest

import txftps.server
from tests import support
from tests.support import PeerClosed, readUntilClosed
from txftps._policy import TRANSFER_COMMANDS
from txftps.storage import TEMPORARY_PREFIX

HOST = "127.0.0.1"

#: The pre-login allow-list of SECURITY.md case 11.
ALLOWED_BEFORE_LOGIN = frozenset(
    "USER PASS AUTH PBSZ PROT FEAT SYST HELP NOOP OPTS HOST QUIT".split()
)

#: Commands that take a path and answer on the control connection.
PATH_COMMANDS = (
    *"CWD SIZE MDTM MLST STAT MKD RMD DELE RNFR".split(),
    "MFMT 20000101000000",
)

#: Commands that take a path and use a data connection.
TRANSFER_PATH_COMMANDS = ("RETR", "LIST", "NLST", "MLSD", "STOR", "APPE", "STOU")

#: Content of a file a thief or a traversal must never see.
SECRET = b"TOP-SECRET-FILE-CONTENT\n" * 512


# raw socket helpers


def sendIgnoringClose(sock: socket.socket, data: bytes) -> None:
    """
    Send C{data}, ignoring that the peer may have closed already.
    """
    try:
        sock.sendall(data)
    except OSError:
        pass


def legacyClientHello(version: int = 0x0302, signatureAlgorithms: bool = False) -> bytes:
    """
    A hand-built ClientHello record with legacy version C{version} and no
    supported_versions extension (so it offers nothing newer than
    C{version}).
    """
    suites = bytes.fromhex("c02bc02fc009c013c00ac014009c002f0035")
    groups = bytes.fromhex("00170018001d")
    extensions = struct.pack("!HHH", 0x000A, len(groups) + 2, len(groups)) + groups
    extensions += struct.pack("!HHB", 0x000B, 2, 1) + b"\x00"
    if signatureAlgorithms:
        algorithms = bytes.fromhex("040305030804080508060401050106010201")
        extensions += (
            struct.pack("!HHH", 0x000D, len(algorithms) + 2, len(algorithms)) + algorithms
        )
    body = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"
        + struct.pack("!H", len(suites))
        + suites
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def clientContext(
    server: support.TwistdServer, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """
    A verifying client context for C{server}, limited to TLS C{version} if
    given.
    """
    context = server.ca.clientContext()
    if version is not None:
        context.minimum_version = version
        context.maximum_version = version
    return context


class BIOClient:
    """
    A TLS client as an C{ssl.SSLObject} over memory BIOs on a raw socket: the
    test sees every raw byte the server sends and decides what goes out.

    @ivar received: every raw byte received from the server.
    @ivar closed: the server closed the TCP connection.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, session: Any = None) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=HOST, session=session
        )
        self.received = b""
        self.closed = False

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def fill(self, timeout: float = 5.0) -> None:
        if self.closed:
            raise PeerClosed("TLS wants more bytes but the peer closed")
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionError:
            data = b""
        if data:
            self.received += data
            self.incoming.write(data)
        else:
            self.closed = True
            self.incoming.write_eof()

    def handshake(self) -> None:
        """
        Run the handshake; raise C{ssl.SSLError} (or C{OSError}) on failure.
        """
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
            else:
                self.flush()
                return

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    def readToEnd(self) -> tuple[bytes, bool]:
        """
        Read application data until the stream ends.

        @return: the data, and C{True} when it ended with a close_notify
            (C{b""} or C{SSLZeroReturnError}), C{False} for a TCP EOF without
            one (C{SSLEOFError}).
        """
        data = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
                continue
            except ssl.SSLZeroReturnError:
                return data, True
            except ssl.SSLEOFError:
                return data, False
            if not chunk:
                # CPython reports a received close_notify as b"" (older
                # versions as SSLZeroReturnError); a TCP EOF without one is
                # SSLEOFError.
                return data, True
            data += chunk

    def closeNotify(self) -> None:
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()


class Control(support.ControlConnection):
    """
    A L{support.ControlConnection} that insists on a 220 greeting and on
    nothing after the 234 of C{AUTH TLS}, and runs whole transfers
    (L{transfer}).
    """

    def __init__(
        self,
        server: support.TwistdServer,
        context: ssl.SSLContext | None = None,
        implicit: bool = False,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(server, implicit=implicit, context=context, timeout=timeout)
        if self.greeting[0] != 220:
            raise AssertionError(f"no 220 greeting: {self.greeting!r}")

    def auth(self) -> None:
        self.expect("AUTH TLS", 234)
        assert not self.buffer, self.buffer
        self.sock = self.context.wrap_socket(self.raw, server_hostname=HOST)
        self.protected = True

    # data connections

    def dataSocket(self, port: int, source: str | None = None) -> socket.socket:
        return socket.create_connection(
            (HOST, port), timeout=5, source_address=(source, 0) if source else None
        )

    def transfer(
        self, line: str | bytes, upload: bytes | None = None
    ) -> tuple[list[int], int, bytes]:
        """
        PASV, a (TLS, session-resuming) data connection, then C{line}.

        @return: the preliminary codes, the final code, and the bytes received
            on the data connection.
        """
        port = self.pasv()
        data: Any = self.dataSocket(port)
        if self.protected:
            data = self.context.wrap_socket(data, server_hostname=HOST, session=self.sock.session)
        self.send(line)
        code, text = self.reply()
        if code >= 200:
            data.close()
            return [], code, b""
        received = b""
        if upload is not None:
            data.sendall(upload)
            if self.protected:
                data = data.unwrap()
            data.shutdown(socket.SHUT_WR)
            readUntilClosed(data)
        else:
            received = support.receiveAll(data)
        data.close()
        preliminary, (final, _) = self.finalReply()
        return [code, *preliminary], final, received


#: Classes whose server runs; stopped at exit when a run skipped their last test.
_servers: list[type[ServerTestCase]] = []


@atexit.register
def _stopServers() -> None:
    for cls in list(_servers):
        cls.stopServer()


class ServerTestCase(unittest.TestCase):
    """
    One L{support.TwistdServer} per class.
    """

    serverArgs: ClassVar[tuple[str, ...]] = ()
    users: ClassVar[dict[str, str]] = {"alice": "secret"}
    server: ClassVar[support.TwistdServer]
    _remaining: ClassVar[int]

    def setUp(self) -> None:
        # trial has no setUpClass: start the class's server for its first
        # test and stop it after its last one (or at exit).
        cls = type(self)
        if "server" not in cls.__dict__:
            # One memory checker for all users: with one --auth memory: per
            # user (what TwistdServer(users=...) passes) only the last one
            # can log in.
            credentials = ":".join(f"{u}:{p}" for u, p in cls.users.items())
            server = support.TwistdServer(
                *cls.serverArgs, "--auth", f"memory:{credentials}", "--auth", "anonymous"
            )
            for user in cls.users:
                os.makedirs(server.userHome(user), exist_ok=True)
            cls.server = server.start()
            _servers.append(cls)
            cls._remaining = len([n for n in dir(cls) if n.startswith("test_")])
            cls.prepareServer()
        self.addCleanup(self._testDone)

    @classmethod
    def _testDone(cls) -> None:
        cls._remaining -= 1
        if cls._remaining <= 0:
            cls.stopServer()

    @classmethod
    def prepareServer(cls) -> None:
        """
        Create what the class's tests need, once the server runs.
        """

    @classmethod
    def stopServer(cls) -> None:
        if "server" in cls.__dict__:
            server = cls.server
            del cls.server
            _servers.remove(cls)
            server.stop()

    def connect(self, **kwargs: Any) -> Control:
        control = Control(self.server, **kwargs)
        self.addCleanup(control.close)
        return control

    def loggedIn(self, user: str = "alice", context: ssl.SSLContext | None = None) -> Control:
        """
        An explicit FTPS session: AUTH TLS, login, PBSZ 0, PROT P.
        """
        control = self.connect(context=context)
        control.auth()
        control.login(user, self.users[user])
        control.protect()
        return control

    def rawConnection(self, implicit: bool = False) -> socket.socket:
        port = self.server.implicitPort if implicit else self.server.explicitPort
        sock = socket.create_connection((HOST, port), timeout=5)
        self.addCleanup(sock.close)
        return sock

    def explicitAfterAuth(self) -> socket.socket:
        """
        A raw connection on which AUTH TLS was answered with 234: the server
        now waits for a ClientHello.
        """
        sock = self.rawConnection()
        greeting = support.readReply(sock)
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        sock.sendall(b"AUTH TLS\r\n")
        self.assertTrue(support.readReply(sock).startswith(b"234 "))
        return sock

    def assertClosedWithoutPlaintext(self, sock: socket.socket, received: bytes = b"") -> None:
        """
        The server closes C{sock}, and nothing it sent (C{received} plus what
        comes now) is a plaintext FTP reply: at most TLS alert records.
        """
        more, closed = readUntilClosed(sock)
        received += more
        self.assertTrue(closed, f"connection still open; received {received!r}")
        self.assertNotRegex(received, rb"\d{3}[ -]")
        self.assertNotIn(b"220", received)
        if received:
            self.assertEqual(received[:1], b"\x15", f"not a TLS alert: {received!r}")

    def logLines(self, word: str) -> list[str]:
        return [line for line in self.server.log().splitlines() if word in line]


class ControlChannelTests(ServerTestCase):
    """
    Control channel and TLS cases (1, 2, 4, 5, 9, 10, 11) with the default
    policy (C{--tls-required all}).
    """

    users: ClassVar[dict[str, str]] = {
        "alice": "secret",
        "bob": "pw-bob",
        "carol": "pw-carol",
    }

    @classmethod
    def prepareServer(cls) -> None:
        with open(os.path.join(cls.server.userHome("carol"), "f.txt"), "wb") as f:
            f.write(SECRET)

    def test_pipelinedCredentialsAfterAuthNeverRun(self) -> None:
        """
        Case 1: one write of C{AUTH TLS}, C{USER alice}, C{PASS secret}: after
        the handshake nothing pipelined ran, C{PWD} over TLS gets 530, and the
        checker was never called (no "logged in" / "failed login" line for
        alice in the log, while a real login of carol is logged).
        """
        control = self.connect()
        control.send(b"AUTH TLS\r\nUSER alice\r\nPASS secret")
        code, text = control.reply()
        self.assertEqual(code, 234, text)
        self.assertEqual(control.buffer, b"")
        control.sock = control.context.wrap_socket(control.raw, server_hostname=HOST)
        self.assertEqual(control.command("PWD")[0], 530)
        # The pipelined PASS did not leave a pending USER either.
        self.assertEqual(control.command("PASS secret")[0], 503)
        self.assertEqual(control.command("NOOP")[0], 200)
        other = self.loggedIn("carol")
        self.assertEqual(other.command("NOOP")[0], 200)
        self.assertTrue(self.logLines("carol logged in"), "log check is blind")
        self.assertEqual(self.logLines("alice logged in"), [])
        self.assertEqual(self.logLines("failed login for 'alice'"), [])

    def test_bytesBeforeClientHelloBreakHandshake(self) -> None:
        """
        Case 1: plaintext bytes sent after the 234 but before the ClientHello
        are fed to TLS: the handshake fails, the connection closes and the
        plaintext command is never answered.
        """
        sock = self.explicitAfterAuth()
        sock.sendall(b"NOOP\r\n")
        client = BIOClient(sock, clientContext(self.server))
        with self.assertRaises((ssl.SSLError, OSError)):
            client.handshake()
        self.assertClosedWithoutPlaintext(sock, client.received)

    def test_secondAuthOnTLSChannel(self) -> None:
        """
        Case 2: C{AUTH TLS} (and C{AUTH SSL}) on a channel that is already
        TLS gets 503 and the TLS channel keeps working (C{NOOP} → 200).
        """
        control = self.connect()
        control.auth()
        self.assertEqual(control.command("AUTH TLS")[0], 503)
        self.assertEqual(control.command("AUTH SSL")[0], 503)
        self.assertEqual(control.command("NOOP")[0], 200)
        self.assertEqual(control.sock.version(), "TLSv1.3")

    def test_authOnImplicitConnection(self) -> None:
        """
        Case 2: C{AUTH TLS} on the implicit port (TLS from the first byte)
        gets 503; TLS stays intact.
        """
        control = self.connect(implicit=True)
        self.assertEqual(control.command("AUTH TLS")[0], 503)
        self.assertEqual(control.command("NOOP")[0], 200)

    def test_tls11ClientRefused(self) -> None:
        """
        Case 4: a client limited to TLS 1.0/1.1 (Python C{ssl}) fails the
        handshake after AUTH TLS; the connection closes with nothing in
        plaintext after it (no fallback).
        """
        sock = self.explicitAfterAuth()
        context = clientContext(self.server)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        client = BIOClient(sock, context)
        with self.assertRaises((ssl.SSLError, OSError)):
            client.handshake()
        self.assertClosedWithoutPlaintext(sock, client.received)

    def test_legacyClientHelloRefused(self) -> None:
        """
        Case 4: a hand-built ClientHello offering at most TLS 1.1 (legacy
        version 0x0302, no supported_versions) is refused with at most an
        alert and a close, on the explicit and the implicit port; the same
        hello with version 0x0303 gets a ServerHello (the hello is
        well-formed).
        """
        sock = self.explicitAfterAuth()
        sock.sendall(legacyClientHello(0x0302))
        self.assertClosedWithoutPlaintext(sock)
        sock = self.rawConnection(implicit=True)
        sock.sendall(legacyClientHello(0x0301))
        self.assertClosedWithoutPlaintext(sock)
        sock = self.rawConnection(implicit=True)
        sock.sendall(legacyClientHello(0x0303, signatureAlgorithms=True))
        sock.settimeout(5)
        self.assertEqual(sock.recv(1), b"\x16")

    def test_garbageHandshakeAfterAuth(self) -> None:
        """
        Case 4: garbage instead of a ClientHello after the 234 closes the
        connection; the FTP command after the garbage is never answered.
        """
        sock = self.explicitAfterAuth()
        sendIgnoringClose(sock, b"\x16\x03\x03\x00\x10" + b"\xaa" * 16 + b"\r\nNOOP\r\n")
        self.assertClosedWithoutPlaintext(sock)
        sock = self.explicitAfterAuth()
        sendIgnoringClose(sock, os.urandom(300))
        self.assertClosedWithoutPlaintext(sock)

    def test_implicitPortPlaintext(self) -> None:
        """
        Case 5: plaintext C{USER x} on the implicit port closes the
        connection; no 220 (nor any reply) is ever sent in clear.
        """
        sock = self.rawConnection(implicit=True)
        sock.sendall(b"USER x\r\n")
        self.assertClosedWithoutPlaintext(sock)

    def test_implicitPortHTTP(self) -> None:
        """
        Case 5: an HTTP request on the implicit port closes the connection
        with no 220 in clear.
        """
        sock = self.rawConnection(implicit=True)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.assertClosedWithoutPlaintext(sock)

    def test_credentialsBeforeTLS(self) -> None:
        """
        Case 9: with control TLS required (default), USER and PASS before AUTH
        get 530 and the password is never evaluated: no "failed login" or
        "logged in" line for bob, no session, no failed-login delay, no
        close after 12 attempts; bob then logs in over TLS normally (no
        lockout or ban side effect, and the log check is not blind).
        """
        control = self.connect()
        self.assertEqual(control.command("USER bob")[0], 530)
        self.assertEqual(control.command("PASS pw-bob")[0], 530)
        self.assertEqual(control.command("PASS wrong")[0], 530)
        self.assertEqual(control.command("PWD")[0], 530)
        # More refused attempts than --max-login-attempts (3) and --ban-after
        # (10): no delay, no close, no ban.
        started = time.monotonic()
        for attempt in range(12):
            self.assertEqual(control.command("USER bob")[0], 530)
            self.assertEqual(control.command(f"PASS wrong{attempt}")[0], 530)
        self.assertLess(time.monotonic() - started, 1.0, "refused PASS was delayed")
        self.assertEqual(control.command("NOOP")[0], 200)
        self.assertEqual(self.logLines("failed login for 'bob'"), [])
        self.assertEqual(self.logLines("bob logged in"), [])
        # The plaintext USER does not carry into TLS either.
        control.auth()
        self.assertEqual(control.command("PASS pw-bob")[0], 503)
        control.login("bob", "pw-bob")
        self.assertTrue(self.logLines("bob logged in"))
        self.assertEqual(self.logLines("failed login for 'bob'"), [])

    def test_clearDataRefused(self) -> None:
        """
        Case 10: under C{--tls-required all}, after C{PBSZ 0} and C{PROT C}
        (or C{CDC}), every transfer command (LIST NLST MLSD RETR STOR STOU
        APPE) gets 521 with no 150 before it, not one byte moves on an open
        clear data connection, and STOR/STOU/APPE create nothing.
        """
        control = self.connect()
        control.auth()
        control.login("carol", "pw-carol")
        control.expect("PBSZ 0", 200)
        home = self.server.userHome("carol")
        before = sorted(os.listdir(home))
        commands = sorted(
            TRANSFER_COMMANDS | {"LIST", "NLST", "MLSD", "RETR", "STOR", "STOU", "APPE"}
        )
        for clear in ("PROT C", "CDC"):
            control.expect(clear, 200)
            port = control.pasv()
            data = control.dataSocket(port)
            self.addCleanup(data.close)
            for verb in commands:
                for argument in ("", " f.txt", " /", " new.txt"):
                    code, text = control.command(verb + argument)
                    self.assertEqual(code, 521, f"{clear}: {verb}{argument}: {text!r}")
            self.assertEqual(control.command("NOOP")[0], 200)
            received, closed = readUntilClosed(data, timeout=0.3)
            self.assertEqual(received, b"")
            self.assertEqual(sorted(os.listdir(home)), before)

    def test_protectionDroppedAfterPasv(self) -> None:
        """
        Case 10: a data connection opened by a PASV under C{PROT C} is never
        used for a transfer after C{PROT P}, whether it connects before or
        after the RETR: the RETR fails (425/522) and the clear socket gets
        zero bytes.
        """
        control = self.loggedIn("carol")
        # The clear connection is there before the RETR.
        control.expect("PROT C", 200)
        port = control.pasv()
        control.expect("PROT P", 200)
        data = control.dataSocket(port)
        self.addCleanup(data.close)
        control.send("RETR f.txt")
        preliminary, (code, text) = control.finalReply()
        self.assertIn(code, (425, 522), text)
        received, closed = readUntilClosed(data, timeout=2)
        self.assertEqual(received, b"")
        # The RETR is waiting when the clear connection arrives.
        control.expect("PROT C", 200)
        port = control.pasv()
        control.expect("PROT P", 200)
        control.send("RETR f.txt")
        self.assertEqual(control.reply()[0], 150)
        data = control.dataSocket(port)
        self.addCleanup(data.close)
        received, closed = readUntilClosed(data, timeout=2)
        self.assertEqual(received, b"")
        preliminary, (code, text) = control.finalReply()
        self.assertIn(code, (425, 522), text)
        # The session goes on with a protected transfer (control).
        preliminary, code, data = control.transfer("RETR f.txt")
        self.assertEqual((code, data), (226, SECRET))

    def test_preLoginAllowList(self) -> None:
        """
        Case 11: before login every command outside the allow-list, taken
        from the handler registry of L{txftps.server.FTPSProtocol} (so new
        commands are covered), gets 530, in plaintext, over TLS and after
        REIN, in upper and lower case, with and without an argument; allowed
        informational commands still answer.
        """
        registry = [n[4:] for n in dir(txftps.server.FTPSProtocol) if n.startswith("ftp_")]
        refused = sorted(set(registry) - ALLOWED_BEFORE_LOGIN)
        self.assertIn("RETR", refused)
        self.assertIn("CWD", refused)
        rootBefore = sorted(os.listdir(self.server.root))
        control = self.connect()

        def assertAllRefused(phase: str) -> None:
            for command in refused:
                for line in (f"{command} x", f"{command.lower()} x", command):
                    code, text = control.command(line)
                    self.assertEqual(code, 530, f"{line} ({phase}): {text!r}")
            for command in ("FEAT", "SYST", "HELP", "NOOP"):
                code, text = control.command(command)
                self.assertEqual(code // 100, 2, f"{command} ({phase}): {text!r}")

        assertAllRefused("plaintext")
        control.auth()
        assertAllRefused("TLS")
        # After a login, REIN ends it: back to the allow-list.
        control.login("carol", "pw-carol")
        control.expect("REIN", 220)
        assertAllRefused("after REIN")
        self.assertEqual(sorted(os.listdir(self.server.root)), rootBefore)


class PlaintextLoginTests(ServerTestCase):
    """
    Case 3, with C{--tls-required none} so that a plaintext login is possible.
    """

    serverArgs = ("--tls-required", "none")
    users: ClassVar[dict[str, str]] = {"alice": "secret", "dave": "pw-dave"}

    def test_authAfterPlaintextLogin(self) -> None:
        """
        Case 3: after a plaintext USER/PASS login, AUTH TLS gets 534 and no
        TLS starts: the next reply arrives in plaintext on the same socket.
        """
        control = self.connect()
        control.login("alice", "secret")
        code, text = control.command("AUTH TLS")
        self.assertEqual(code, 534, text)
        code, text = control.command("NOOP")
        self.assertEqual(code, 200, text)
        self.assertEqual(control.command("PWD")[0], 257)
        self.assertIsNot(type(control.sock), ssl.SSLSocket)
        # Pipelined in one write: still 534, still plaintext.
        other = self.connect()
        other.send(b"USER alice\r\nPASS secret\r\nAUTH TLS\r\nNOOP")
        self.assertEqual([other.reply()[0] for _ in range(4)], [331, 230, 534, 200])

    def test_plaintextUserDoesNotCarryIntoTLS(self) -> None:
        """
        Case 3: a USER sent in plaintext is forgotten by AUTH TLS: PASS over
        TLS then gets 503 and no login happens.
        """
        control = self.connect()
        self.assertEqual(control.command("USER alice")[0], 331)
        control.auth()
        self.assertEqual(control.command("PASS secret")[0], 503)
        self.assertEqual(control.command("PWD")[0], 530)

    def test_authQueuedBehindFailedLogin(self) -> None:
        """
        Cases 1 and 3: C{USER dave}, a wrong C{PASS} (which keeps the
        interpreter busy for the failed-login delay), then C{AUTH TLS},
        C{USER dave}, C{PASS <right>} all in one write: the queued AUTH gets
        234 after the 530 and the credentials queued behind it never run
        (PWD over TLS is 530, no "dave logged in", one failed login only).
        """
        control = self.connect()
        control.send(b"USER dave\r\nPASS wrong\r\nAUTH TLS\r\nUSER dave\r\nPASS pw-dave")
        codes = [control.reply(timeout=10)[0] for _ in range(3)]
        self.assertEqual(codes, [331, 530, 234])
        self.assertEqual(control.buffer, b"")
        control.sock = control.context.wrap_socket(control.raw, server_hostname=HOST)
        self.assertEqual(control.command("PWD")[0], 530)
        self.assertEqual(control.command("PASS pw-dave")[0], 503)
        self.assertEqual(self.logLines("dave logged in"), [])
        self.assertEqual(len(self.logLines("failed login for 'dave'")), 1)


class HandshakeTimeoutTests(ServerTestCase):
    """
    Case 6 with C{--handshake-timeout 2}.
    """

    serverArgs = ("--handshake-timeout", "2")

    def test_handshakeNeverFinishes(self) -> None:
        """
        Case 6: after AUTH TLS with nothing sent, on the implicit port with
        nothing sent, with part of a ClientHello, or with a ClientHello
        trickled one byte every 0.3 s, the server closes the connection after
        the 2 s handshake timeout (within 1.5-6 s), with nothing in
        plaintext; another client is served normally meanwhile.
        """
        started = time.monotonic()
        stalled = [self.explicitAfterAuth(), self.rawConnection(implicit=True)]
        partial = self.rawConnection(implicit=True)
        partial.sendall(legacyClientHello(0x0303, signatureAlgorithms=True)[:20])
        stalled.append(partial)
        trickle = self.rawConnection(implicit=True)

        other = self.connect()
        other.auth()
        other.login("alice", "secret")
        other.protect()
        self.assertEqual(other.command("PWD")[0], 257)
        self.assertEqual(other.transfer("LIST")[1], 226)
        self.assertLess(time.monotonic() - started, 1.8, "served client was slow")

        # A client trickling its ClientHello one byte every 0.3 s does not
        # extend the timeout.
        hello = legacyClientHello(0x0303, signatureAlgorithms=True)
        for byte in hello:
            received, closed = readUntilClosed(trickle, timeout=0.3)
            if closed or time.monotonic() - started > 8:
                break
            sendIgnoringClose(trickle, bytes([byte]))
        stalled.append(trickle)

        for sock in stalled:
            received, closed = readUntilClosed(sock, timeout=started + 8 - time.monotonic())
            elapsed = time.monotonic() - started
            self.assertTrue(closed, "stalled handshake not closed")
            self.assertGreater(elapsed, 1.5)
            self.assertLess(elapsed, 6)
            self.assertNotIn(b"220", received)
            self.assertNotRegex(received, rb"\d{3}[ -]")
        self.assertTrue(self.logLines("TLS handshake with 127.0.0.1 timed out"))
        # The server still serves after the timeouts.
        self.assertEqual(other.command("NOOP")[0], 200)


class DataChannelTests(ServerTestCase):
    """
    Data channel cases 12, 13 and 16 (default C{--session-reuse required}).
    """

    @classmethod
    def prepareServer(cls) -> None:
        cls.home = cls.server.userHome("alice")
        with open(os.path.join(cls.home, "secret.txt"), "wb") as f:
            f.write(SECRET)

    def homeFiles(self) -> dict[str, bytes]:
        files = {}
        for name in os.listdir(self.home):
            path = os.path.join(self.home, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[name] = f.read()
        return files

    def assertThiefRefused(self, thief: socket.socket, tls: bool) -> None:
        """
        The thief's data connection is closed and receives zero bytes, even
        after sending bytes or trying a TLS handshake.
        """
        if tls:
            client = BIOClient(thief, clientContext(self.server))
            try:
                client.handshake()
            except (ssl.SSLError, OSError):
                pass
            else:
                self.fail("thief completed a TLS handshake")
            received = client.received
        else:
            sendIgnoringClose(thief, b"STOLEN-UPLOAD-BYTES\r\n" * 100)
            received = b""
        more, closed = readUntilClosed(thief)
        self.assertTrue(closed, "thief connection left open")
        self.assertEqual(received + more, b"")

    def test_pasvTheftFromOtherAddressDownload(self) -> None:
        """
        Case 12: after PASV (or EPSV) a connection to the data port from
        127.0.0.3 (the control peer is 127.0.0.1) is closed with zero bytes,
        raw or with a TLS handshake, and the following RETR gets 425 with no
        data; a legitimate RETR afterwards works.
        """
        control = self.loggedIn()
        for command, tls in [("PASV", False), ("PASV", True), ("EPSV", False), ("EPSV", True)]:
            port = control.pasv() if command == "PASV" else control.epsv()
            thief = control.dataSocket(port, source="127.0.0.3")
            self.addCleanup(thief.close)
            self.assertEqual(thief.getsockname()[0], "127.0.0.3")
            self.assertThiefRefused(thief, tls)
            control.send("RETR secret.txt")
            preliminary, (code, text) = control.finalReply()
            self.assertEqual(code, 425, text)
            self.assertIn(preliminary, ([], [150]))
        self.assertTrue(self.logLines("refused data connection from 127.0.0.3"))
        preliminary, code, received = control.transfer("RETR secret.txt")
        self.assertEqual((code, received), (226, SECRET))

    def test_pasvTheftFromOtherAddressUpload(self) -> None:
        """
        Case 12: a STOR waiting for its data connection gets 425 when a
        connection from 127.0.0.3 arrives; the thief's bytes are never stored
        (no file, no temporary file, nothing containing them).
        """
        control = self.loggedIn()
        port = control.pasv()
        control.send("STOR stolen.txt")
        self.assertEqual(control.reply()[0], 150)
        thief = control.dataSocket(port, source="127.0.0.3")
        self.addCleanup(thief.close)
        self.assertThiefRefused(thief, tls=False)
        preliminary, (code, text) = control.finalReply()
        self.assertEqual(code, 425, text)
        files = self.homeFiles()
        self.assertNotIn("stolen.txt", files)
        for name, content in files.items():
            self.assertNotIn(b"STOLEN", content, name)
        self.assertEqual(sorted(files), ["secret.txt"])

    def sameAddressTheft(
        self, version: ssl.TLSVersion, foreignSession: bool, tickets: bool = True
    ) -> None:
        """
        PASV + RETR, then a data connection from the control peer's address
        with a fresh TLS session, or one resumed from another control
        connection: 522 and zero file bytes. Without C{tickets}, TLS 1.2
        resumption goes by session ID.
        """
        context = clientContext(self.server, version)
        if not tickets:
            context.options |= ssl.OP_NO_TICKET
        control = self.loggedIn(context=context)
        session = None
        if foreignSession:
            other = self.loggedIn(context=context)
            session = other.sock.session
            self.assertIsNotNone(session)
        port = control.pasv()
        control.send("RETR secret.txt")
        self.assertEqual(control.reply()[0], 150)
        client = BIOClient(control.dataSocket(port), context, session=session)
        self.addCleanup(client.sock.close)
        received = b""
        try:
            client.handshake()
            self.assertEqual(client.tls.version(), version.name.replace("v1_", "v1."))
            self.assertFalse(client.tls.session_reused)
            received, _ = client.readToEnd()
        except (ssl.SSLError, OSError):
            pass
        preliminary, (code, text) = control.finalReply()
        self.assertEqual(code, 522, text)
        self.assertEqual(received, b"")
        self.assertNotIn(SECRET[:64], client.received)
        # The control connection is intact and a legitimate transfer works.
        preliminary, code, data = control.transfer("RETR secret.txt")
        self.assertEqual((code, data), (226, SECRET))

    def test_sameAddressFreshSessionTLS12(self) -> None:
        """
        Case 13: TLS 1.2, a data connection from the control peer's address
        with a fresh TLS session (no resumption) gets the RETR a 522 and zero
        file bytes.
        """
        self.sameAddressTheft(ssl.TLSVersion.TLSv1_2, foreignSession=False)

    def test_sameAddressFreshSessionTLS13(self) -> None:
        """
        Case 13: as above with TLS 1.3.
        """
        self.sameAddressTheft(ssl.TLSVersion.TLSv1_3, foreignSession=False)

    def test_sameAddressForeignSessionTLS12(self) -> None:
        """
        Case 13: TLS 1.2, a data connection resuming the session of ANOTHER
        control connection (same client context) is not resumed by the
        server: 522 and zero file bytes.
        """
        self.sameAddressTheft(ssl.TLSVersion.TLSv1_2, foreignSession=True)

    def test_sameAddressForeignSessionTLS13(self) -> None:
        """
        Case 13: as above with TLS 1.3.
        """
        self.sameAddressTheft(ssl.TLSVersion.TLSv1_3, foreignSession=True)

    def test_sameAddressForeignSessionIDTLS12(self) -> None:
        """
        Case 13: TLS 1.2 without session tickets (resumption by session ID),
        a data connection offering the session ID of ANOTHER control
        connection is not resumed: 522 and zero file bytes.
        """
        self.sameAddressTheft(ssl.TLSVersion.TLSv1_2, foreignSession=True, tickets=False)

    def test_foreignSessionOpenedAfterPassive(self) -> None:
        """
        Case 13, in the order that defeats a shared TLS context whose
        session-ID context is set when a connection is made: PASV and RETR
        on one control connection, then a second control connection
        completes its TLS handshake (the last connection made), then a data
        connection offering the second's session (TLS 1.2 ticket, TLS 1.2
        session ID, TLS 1.3 ticket): 522 and zero file bytes, every time.
        """
        cases = [
            (ssl.TLSVersion.TLSv1_2, True),
            (ssl.TLSVersion.TLSv1_2, False),
            (ssl.TLSVersion.TLSv1_3, True),
        ]
        for version, tickets in cases:
            context = clientContext(self.server, version)
            if not tickets:
                context.options |= ssl.OP_NO_TICKET
            control = self.loggedIn(context=context)
            port = control.pasv()
            control.send("RETR secret.txt")
            self.assertEqual(control.reply()[0], 150)
            other = self.loggedIn(context=context)
            client = BIOClient(control.dataSocket(port), context, session=other.sock.session)
            self.addCleanup(client.sock.close)
            received = b""
            try:
                client.handshake()
                self.assertFalse(client.tls.session_reused, (version, tickets))
                received, _ = client.readToEnd()
            except (ssl.SSLError, OSError):
                pass
            preliminary, (code, text) = control.finalReply()
            self.assertEqual((code, received), (522, b""), (version, tickets, text))
            self.assertNotIn(SECRET[:64], client.received)

    def test_legitimateResumptionSessionID(self) -> None:
        """
        Case 13 (positive control): TLS 1.2 without session tickets, a data
        connection resuming its own control connection's session by session
        ID is resumed and transfers.
        """
        context = clientContext(self.server, ssl.TLSVersion.TLSv1_2)
        context.options |= ssl.OP_NO_TICKET
        control = self.loggedIn(context=context)
        port = control.pasv()
        data = context.wrap_socket(
            control.dataSocket(port), server_hostname=HOST, session=control.sock.session
        )
        self.addCleanup(data.close)
        self.assertTrue(data.session_reused)
        control.send("RETR secret.txt")
        received = support.receiveAll(data)
        preliminary, (code, text) = control.finalReply()
        self.assertEqual((preliminary, code), ([150], 226), text)
        self.assertEqual(received, SECRET)

    def test_legitimateResumption(self) -> None:
        """
        Case 13 (positive control): a data connection resuming its own control
        connection's session is resumed and transfers, in TLS 1.2 and 1.3.
        """
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = clientContext(self.server, version)
            control = self.loggedIn(context=context)
            port = control.pasv()
            data = context.wrap_socket(
                control.dataSocket(port), server_hostname=HOST, session=control.sock.session
            )
            self.addCleanup(data.close)
            self.assertTrue(data.session_reused, version)
            control.send("RETR secret.txt")
            received = support.receiveAll(data)
            preliminary, (code, text) = control.finalReply()
            self.assertEqual((preliminary, code), ([150], 226), text)
            self.assertEqual(received, SECRET)

    def truncatedUpload(
        self,
        version: ssl.TLSVersion,
        name: str,
        original: bytes | None,
        reset: bool,
        command: str = "STOR",
        rest: int | None = None,
    ) -> None:
        """
        C{command} (after C{REST rest}) C{name} over TLS C{version}, send some
        bytes, then end the TCP
        connection without a close_notify (FIN, or RST when C{reset}): 426,
        the final name untouched (still C{original}, or absent), no listing
        shows a temporary or partial file, and nothing hidden can be fetched.
        """
        path = os.path.join(self.home, name)
        if original is not None:
            with open(path, "wb") as f:
                f.write(original)
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        context = clientContext(self.server, version)
        control = self.loggedIn(context=context)
        port = control.pasv()
        if rest is not None:
            control.expect(f"REST {rest}", 350)
        control.send(f"{command} {name}")
        self.assertEqual(control.reply()[0], 150)
        client = BIOClient(control.dataSocket(port), context, control.sock.session)
        self.addCleanup(client.sock.close)
        client.handshake()
        self.assertTrue(client.tls.session_reused)
        self.assertEqual(client.tls.version(), version.name.replace("v1_", "v1."))
        client.write(b"TRUNCATED UPLOAD " * 4096)
        if reset:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sock.close()
        else:
            # End the TCP stream (FIN) without a close_notify.
            client.sock.shutdown(socket.SHUT_WR)
            readUntilClosed(client.sock)
        preliminary, (code, text) = control.finalReply()
        self.assertEqual(code, 426, text)
        if original is None:
            self.assertFalse(os.path.exists(path))
        else:
            with open(path, "rb") as f:
                self.assertEqual(f.read(), original)
        # Only hidden files (the kept partial upload) may be left on disk, and
        # no listing shows them nor can anyone fetch them.
        leftovers = [n for n in os.listdir(self.home) if n not in (name, "secret.txt")]
        for leftover in leftovers:
            self.assertTrue(leftover.startswith(TEMPORARY_PREFIX), leftover)
            self.addCleanup(
                lambda p: os.path.exists(p) and os.remove(p),
                os.path.join(self.home, leftover),
            )
        for line in ("LIST -a", "LIST", "NLST", "NLST -a", "MLSD"):
            preliminary, code, listing = control.transfer(line)
            self.assertEqual(code, 226, line)
            self.assertIn(b"secret.txt", listing)
            self.assertNotIn(b".txftps", listing)
            self.assertEqual(name.encode() in listing, original is not None, line)
        for leftover in leftovers:
            preliminary, code, data = control.transfer(f"RETR {leftover}")
            self.assertEqual((code, data), (550, b""), leftover)
            self.assertEqual(control.command(f"SIZE {leftover}")[0], 550)

        # Control: the same upload with a close_notify is complete.
        port = control.pasv()
        control.send(f"STOR {name}")
        self.assertEqual(control.reply()[0], 150)
        client = BIOClient(control.dataSocket(port), context, control.sock.session)
        self.addCleanup(client.sock.close)
        client.handshake()
        client.write(b"NEW CONTENT\n")
        client.closeNotify()
        data, clean = client.readToEnd()
        self.assertTrue(clean)
        preliminary, (code, text) = control.finalReply()
        self.assertEqual(code, 226, text)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"NEW CONTENT\n")
        self.assertEqual(sorted(os.listdir(self.home)), sorted([name, "secret.txt"]))

    def test_truncatedUploadTLS13(self) -> None:
        """
        Case 16: TLS 1.3, an upload over an existing file ended by a TCP FIN
        without close_notify: 426, the existing file keeps its content, no
        temporary file visible; an upload with close_notify then replaces it.
        """
        self.truncatedUpload(ssl.TLSVersion.TLSv1_3, "keep.txt", b"ORIGINAL\n", reset=False)

    def test_truncatedUploadTLS12(self) -> None:
        """
        Case 16: as above with TLS 1.2.
        """
        self.truncatedUpload(ssl.TLSVersion.TLSv1_2, "keep.txt", b"ORIGINAL\n", reset=False)

    def test_truncatedUploadReset(self) -> None:
        """
        Case 16: an upload ended by a TCP RST: 426, the existing file keeps
        its content.
        """
        self.truncatedUpload(ssl.TLSVersion.TLSv1_3, "keep.txt", b"ORIGINAL\n", reset=True)

    def test_truncatedAppend(self) -> None:
        """
        Case 16: a truncated APPE leaves the existing file as it was (426).
        """
        self.truncatedUpload(
            ssl.TLSVersion.TLSv1_3, "keep.txt", b"ORIGINAL\n", reset=False, command="APPE"
        )

    def test_truncatedRestartedUpload(self) -> None:
        """
        Case 16: a truncated C{REST 4} + STOR leaves the existing file as it
        was (426).
        """
        self.truncatedUpload(ssl.TLSVersion.TLSv1_2, "keep.txt", b"ORIGINAL\n", False, rest=4)

    def test_truncatedUploadNewFile(self) -> None:
        """
        Case 16: a truncated upload of a new name leaves no file under that
        name.
        """
        self.truncatedUpload(ssl.TLSVersion.TLSv1_3, "new.txt", None, reset=False)

    def test_downloadEndsWithCloseNotify(self) -> None:
        """
        Case 16: a download (RETR of a file and of an empty file, NLST,
        LIST) ends with the server's close_notify (a clean TLS EOF: C{b""} or
        C{SSLZeroReturnError} from C{SSLObject.read}), not a ragged TCP EOF
        (C{SSLEOFError}), in TLS 1.2 and 1.3.
        """
        empty = os.path.join(self.home, "empty.txt")
        open(empty, "wb").close()
        self.addCleanup(os.remove, empty)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = clientContext(self.server, version)
            context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
            control = self.loggedIn(context=context)
            for line, expected in (
                ("RETR secret.txt", SECRET),
                ("RETR empty.txt", b""),
                ("NLST", None),
                ("LIST", None),
            ):
                port = control.pasv()
                client = BIOClient(control.dataSocket(port), context, control.sock.session)
                self.addCleanup(client.sock.close)
                client.handshake()
                control.send(line)
                data, clean = client.readToEnd()
                preliminary, (code, text) = control.finalReply()
                self.assertEqual(code, 226, text)
                self.assertTrue(clean, f"{line} over {version.name}: no close_notify")
                if expected is not None:
                    self.assertEqual(data, expected)
                else:
                    self.assertIn(b"secret.txt", data)


class FilesystemTests(ServerTestCase):
    """
    Filesystem cases 22-25: traversal, symlinks, rename, NUL.
    """

    @classmethod
    def prepareServer(cls) -> None:
        cls.home = cls.server.userHome("alice")
        cls.outside = tempfile.mkdtemp(prefix="txftps-outside-")
        cls.outsideFile = os.path.join(cls.outside, "outside.txt")
        with open(cls.outsideFile, "wb") as f:
            f.write(SECRET)
        os.mkdir(os.path.join(cls.outside, "dir"))
        with open(os.path.join(cls.outside, "dir", "inner.txt"), "wb") as f:
            f.write(SECRET)
        # Next to the server's home directory, reachable with "../..".
        cls.besideFile = os.path.join(cls.server.directory, "beside.txt")
        with open(cls.besideFile, "wb") as f:
            f.write(SECRET)
        with open(os.path.join(cls.home, "f.txt"), "wb") as f:
            f.write(b"file f\n")
        os.mkdir(os.path.join(cls.home, "sub"))
        with open(os.path.join(cls.home, "sub", "g.txt"), "wb") as f:
            f.write(b"file g\n")
        os.symlink(cls.outsideFile, os.path.join(cls.home, "link-file"))
        os.symlink(os.path.join(cls.outside, "dir"), os.path.join(cls.home, "link-dir"))
        os.symlink(cls.outside, os.path.join(cls.home, "link-outside"))
        os.symlink(os.path.join(cls.outside, "not-yet.txt"), os.path.join(cls.home, "dangling"))
        os.symlink("..", os.path.join(cls.home, "sub", "up"))
        os.symlink("../..", os.path.join(cls.home, "link-parent"))
        os.symlink("f.txt", os.path.join(cls.home, "inside-file"))
        os.symlink("sub", os.path.join(cls.home, "inside-dir"))
        cls.homeNames = os.listdir(cls.home)

    @classmethod
    def stopServer(cls) -> None:
        super().stopServer()
        shutil.rmtree(cls.outside, ignore_errors=True)

    def outsideState(self) -> list[tuple[str, Any]]:
        """
        Every file and directory outside the root that a test could reach:
        names, contents and modification times.
        """
        state: list[tuple[str, Any]] = []
        for directory, dirs, names in os.walk(self.outside):
            state.append((directory, sorted(dirs), os.stat(directory).st_mtime_ns))
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    state.append((path, f.read(), os.stat(path).st_mtime_ns))
        state.sort()
        with open(self.besideFile, "rb") as f:
            state.append((self.besideFile, f.read(), os.stat(self.besideFile).st_mtime_ns))
        state.append(("server dir", sorted(os.listdir(self.server.directory)), 0))
        state.append(("home dir", sorted(os.listdir(self.server.home)), 0))
        return state

    def setUp(self) -> None:
        super().setUp()
        # A cleanup, not tearDown: trial runs cleanups (which may stop the
        # server and remove its directory) before tearDown.
        self.addCleanup(self.assertOutsideUnchanged, self.outsideState())
        self.addCleanup(self.assertHomeUnchanged)
        self.homeBefore = self.homeState()
        self.control = self.loggedIn()

    def homeState(self) -> list[tuple[str, bool]]:
        return sorted(
            (name, os.path.islink(os.path.join(self.home, name))) for name in os.listdir(self.home)
        )

    def assertHomeUnchanged(self) -> None:
        self.assertEqual(self.homeState(), self.homeBefore, "the home changed")

    def assertOutsideUnchanged(self, before: list[tuple[str, Any]]) -> None:
        self.assertEqual(self.outsideState(), before, "something outside the root changed")

    def assertRefused(self, line: str | bytes, codes: tuple[int, ...] = (550,)) -> None:
        code, text = self.control.command(line)
        self.assertIn(code, codes, f"{line!r}: {text!r}")

    def assertNotLeaked(self, line: str | bytes) -> None:
        """
        A transfer command is refused (550 before any 150) or, if it ran,
        delivered nothing from outside the root.
        """
        preliminary, code, data = self.control.transfer(line)
        self.assertNotIn(SECRET[:64], data, line)
        self.assertNotIn(b"root:", data, line)
        self.assertEqual((preliminary, code), ([], 550), f"{line!r}")

    def assertEscapeRefused(self, path: str, skip: tuple[str, ...] = ()) -> None:
        """
        Every command that takes a path (but C{skip}) refuses C{path} (a 5xx
        reply, no 1xx, no data from outside), and the working directory
        stays C{/}.
        """
        for verb in PATH_COMMANDS:
            if verb in skip:
                continue
            code, text = self.control.command(f"{verb} {path}")
            self.assertEqual(code // 100, 5, f"{verb} {path}: {text!r}")
            self.assertNotIn(b"inner.txt", text)
            self.assertNotIn(b"outside.txt", text)
            self.assertNotIn(b"beside.txt", text.replace(path.encode(), b""))
        for verb in TRANSFER_PATH_COMMANDS:
            upload = b"EVIL" if verb in ("STOR", "APPE", "STOU") else None
            preliminary, code, data = self.control.transfer(f"{verb} {path}", upload=upload)
            self.assertNotIn(SECRET[:64], data, f"{verb} {path}")
            self.assertNotIn(b"root:", data, f"{verb} {path}")
            self.assertEqual((preliminary, code // 100), ([], 5), f"{verb} {path}")
        self.assertIn(b'"/"', self.control.expect("PWD", 257))

    def test_traversal(self) -> None:
        """
        Case 22: C{..}, absolute paths and backslashes never reach outside the
        user's root: every command that takes a path (control: CWD SIZE MDTM
        MLST STAT MKD RMD DELE RNFR MFMT; data: RETR LIST NLST MLSD STOR APPE
        STOU) refuses such paths, and nothing outside changes.
        """
        for path in [
            "..",
            "../..",
            "../../etc/passwd",
            "/../etc/passwd",
            "/../../../../../../etc/passwd",
            "../../beside.txt",
            "/../../beside.txt",
            "sub/../../../beside.txt",
            "sub/../..",
            "./../../beside.txt",
            "//..//..//beside.txt",
        ]:
            self.assertEscapeRefused(path)
        # Absolute paths name files under the root: nothing there, so refused
        # (MKD aside, which creates the directory inside the root).
        for path in ["/etc/passwd", self.besideFile, self.outsideFile, self.outside]:
            self.assertEscapeRefused(path, skip=("MKD",))
        self.control.expect("MKD /etc/passwd", 257)
        self.assertTrue(os.path.isdir(os.path.join(self.home, "etc", "passwd")))
        self.control.expect("RMD /etc/passwd", 250)
        self.control.expect("RMD /etc", 250)
        self.assertEqual(sorted(os.listdir(self.home)), sorted(self.homeNames))
        for path in ["..\\..\\etc\\passwd", "..\\..\\beside.txt", "..\\.."]:
            self.assertNotLeaked(f"RETR {path}")
            self.assertNotLeaked(f"LIST {path}")
            self.assertRefused(f"SIZE {path}")
            self.assertRefused(f"CWD {path}")
        self.assertNotLeaked("STOR ../../beside.txt")
        self.assertNotLeaked("STOR ../../evil.txt")
        # Backslashes are no separators: either refused, or a file of that
        # odd name inside the root.
        preliminary, code, _ = self.control.transfer("STOR ..\\..\\evil.txt", upload=b"EVIL")
        self.assertIn(code, (226, 550, 553))
        if code == 226:
            odd = os.path.join(self.home, "..\\..\\evil.txt")
            with open(odd, "rb") as f:
                self.assertEqual(f.read(), b"EVIL")
            os.remove(odd)
        self.assertRefused("MKD ../../evil")
        self.assertRefused("DELE ../../beside.txt")
        self.assertRefused("RMD ../../home")
        self.assertFalse(os.path.exists(os.path.join(self.server.directory, "evil.txt")))
        self.assertEqual([n for n in os.listdir(self.home) if "evil" in n], [])

    def test_cwdAboveRoot(self) -> None:
        """
        Case 22: C{CWD ..} at the root, C{CDUP} at the root and C{CWD ../..}
        from a subdirectory are refused or stay at C{/}; C{/} is the user's
        root: C{CWD /} then PWD is C{"/"} and LIST / shows the home's files.
        """
        for line in ["CWD ..", "CDUP", "CWD /..", "CWD ..\\..", "CWD ../../.."]:
            code, text = self.control.command(line)
            self.assertIn(code, (250, 550), f"{line}: {text!r}")
            self.assertIn(b'"/"', self.control.expect("PWD", 257), line)
        self.control.expect("CWD sub", 250)
        self.assertIn(b'"/sub"', self.control.expect("PWD", 257))
        self.assertRefused("CWD ../..")
        self.assertIn(b'"/sub"', self.control.expect("PWD", 257))
        self.assertNotLeaked("RETR ../../../beside.txt")
        self.control.expect("CWD /", 250)
        self.assertIn(b'"/"', self.control.expect("PWD", 257))
        preliminary, code, listing = self.control.transfer("LIST /")
        self.assertEqual(code, 226)
        self.assertIn(b"f.txt", listing)
        self.assertIn(b"sub", listing)
        preliminary, code, data = self.control.transfer("RETR /f.txt")
        self.assertEqual((code, data), (226, b"file f\n"))
        self.control.expect("CWD sub", 250)
        preliminary, code, data = self.control.transfer("RETR /sub/g.txt")
        self.assertEqual((code, data), (226, b"file g\n"))
        preliminary, code, data = self.control.transfer("RETR ../f.txt")
        self.assertEqual((code, data), (226, b"file f\n"))

    def test_symlinksOutsideRefused(self) -> None:
        """
        Case 23: symlinks in the home pointing outside the root (to a file, to
        a directory, to the parent, a dangling one, reached directly or
        through inside links) are refused by every command that takes a path
        (CWD SIZE MDTM MLST STAT MKD RMD DELE RNFR MFMT RETR LIST NLST MLSD
        STOR APPE STOU); nothing outside changes and no link is removed.
        """
        for path in [
            "link-file",
            "link-dir",
            "link-dir/inner.txt",
            "link-dir/new.txt",
            "link-outside",
            "link-outside/outside.txt",
            "link-outside/dir/inner.txt",
            "link-parent",
            "link-parent/beside.txt",
            "sub/up/link-parent/beside.txt",
            "inside-dir/up/link-file",
            "dangling",
        ]:
            self.assertEscapeRefused(path)
        self.assertRefused("RNTO stolen.txt", (503,))
        self.assertFalse(os.path.exists(os.path.join(self.outside, "not-yet.txt")))
        for name in ["link-file", "link-dir", "link-outside", "dangling", "link-parent"]:
            self.assertTrue(os.path.islink(os.path.join(self.home, name)), name)
        self.assertFalse(os.path.exists(os.path.join(self.home, "stolen.txt")))

    def test_listingHidesOutsideLinks(self) -> None:
        """
        Case 23: listings of the home (LIST, NLST, MLSD, STAT over the control
        connection) read nothing through outside links: no content, no names
        and no size of their targets.
        """
        size = str(len(SECRET)).encode()
        for line in ("LIST", "LIST -a", "NLST", "MLSD", "LIST /", "LIST sub/up"):
            preliminary, code, listing = self.control.transfer(line)
            self.assertEqual(code, 226, line)
            self.assertIn(b"f.txt", listing, line)
            for leak in (SECRET[:64], b"inner.txt", b"outside.txt", b"beside.txt", size):
                self.assertNotIn(leak, listing, line)
        code, text = self.control.command("STAT /")
        self.assertEqual(code, 213, text)
        self.assertIn(b"f.txt", text)
        for leak in (b"inner.txt", b"outside.txt", b"beside.txt", size):
            self.assertNotIn(leak, text)

    def test_symlinksInsideWork(self) -> None:
        """
        Case 23 (positive control): symlinks that stay inside the root work for
        RETR, SIZE, CWD and LIST.
        """
        preliminary, code, data = self.control.transfer("RETR inside-file")
        self.assertEqual((code, data), (226, b"file f\n"))
        self.assertEqual(self.control.command("SIZE inside-file"), (213, b"213 7\r\n"))
        preliminary, code, data = self.control.transfer("RETR inside-dir/g.txt")
        self.assertEqual((code, data), (226, b"file g\n"))
        preliminary, code, data = self.control.transfer("RETR sub/up/f.txt")
        self.assertEqual((code, data), (226, b"file f\n"))
        self.control.expect("CWD inside-dir", 250)
        preliminary, code, listing = self.control.transfer("NLST")
        self.assertEqual(code, 226)
        self.assertIn(b"g.txt", listing)

    def test_renameOutOfRoot(self) -> None:
        """
        Case 24: RNFR of a file then RNTO C{../../escape} (and other ways out:
        absolute above root, backslashes, through an outside symlink) is
        refused and nothing moves; RNTO without RNFR is 503, and a refused
        RNTO clears the pending RNFR.
        """
        path = os.path.join(self.home, "mover.txt")
        with open(path, "wb") as f:
            f.write(b"move me\n")
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        for target in [
            "../../escape",
            "/../../escape",
            "../escape",
            "link-dir/escape",
            "link-outside/escape",
            "link-parent/escape",
            "dangling",
            "link-file",
            "sub/up/link-parent/escape",
            self.outside + "/escape",
        ]:
            self.control.expect("RNFR mover.txt", 350)
            self.assertRefused(f"RNTO {target}")
            self.assertRefused(f"RNTO {target}", (503,))
            self.assertTrue(os.path.exists(path), target)
        self.assertFalse(os.path.exists(os.path.join(self.server.directory, "escape")))
        self.assertFalse(os.path.exists(os.path.join(self.server.home, "escape")))
        self.assertRefused("RNTO anything", (503,))
        # Control: a rename inside the root works.
        self.control.expect("RNFR mover.txt", 350)
        self.control.expect("RNTO sub/moved.txt", 250)
        self.assertTrue(os.path.exists(os.path.join(self.home, "sub", "moved.txt")))
        os.remove(os.path.join(self.home, "sub", "moved.txt"))

    def test_nulInPath(self) -> None:
        """
        Case 25: C{RETR f.txt\\0.jpg} does not return f.txt (no truncation at
        the NUL); nor do SIZE, CWD, STOR, DELE, RNFR with a NUL reach the
        truncated name.
        """
        preliminary, code, data = self.control.transfer(b"RETR f.txt\x00.jpg")
        self.assertNotIn(b"file f", data)
        self.assertNotEqual(code, 226)
        self.assertRefused(b"SIZE f.txt\x00.jpg", (550, 501))
        self.assertRefused(b"MDTM f.txt\x00.jpg", (550, 501))
        self.assertRefused(b"CWD sub\x00x", (550, 501))
        self.assertRefused(b"DELE f.txt\x00.jpg", (550, 501))
        self.assertRefused(b"RNFR f.txt\x00.jpg", (550, 501))
        preliminary, code, data = self.control.transfer(b"STOR f.txt\x00.jpg", upload=b"NUL!")
        self.assertNotEqual(code, 226)
        with open(os.path.join(self.home, "f.txt"), "rb") as f:
            self.assertEqual(f.read(), b"file f\n")
        self.assertEqual([n for n in os.listdir(self.home) if "jpg" in n], [])
        self.assertIn(b'"/"', self.control.expect("PWD", 257))
