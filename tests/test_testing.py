"""
L{txftps.testing}, used only through its public names, as a user would: the
test server on loopback, its throwaway CA, users with passwords and client
certificates, the session record, and every misbehaviour switch, each shown
to be real with ftplib, raw TLS sockets or curl.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import socket
import ssl
import subprocess
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from tests.support import ReusingFTP_TLS, requireProgram
from txftps.testing import (
    Command,
    FTPSTestServer,
    Login,
    Misbehaviour,
    Reply,
    Transfer,
)

_BLOB = os.urandom(200_000)


def _client(
    server: FTPSTestServer, user: str = "alice", password: str = "secret", **kwargs: Any
) -> ftplib.FTP_TLS:
    client = ReusingFTP_TLS(context=server.clientContext(**kwargs), timeout=10)
    client.connect(server.host, server.port)
    client.auth()
    client.login(user, password)
    client.prot_p()
    return client


def _dataSocket(client: ftplib.FTP_TLS, command: str) -> tuple[ssl.SSLSocket, str]:
    """
    Open the data connection of C{command} by hand, wrapped so that an end
    without close_notify raises instead of looking like a clean end.
    """
    client.voidcmd("TYPE I")
    host, port = client.makepasv()
    raw = socket.create_connection((host, port), timeout=10)
    client.putcmd(command)
    preliminary = client.getresp()
    # Some Pythons (Debian's) set OP_IGNORE_UNEXPECTED_EOF by default, which
    # would make a missing close_notify look like a clean end.
    client.context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    data = client.context.wrap_socket(
        raw,
        server_hostname=client.host,
        session=client.sock.session,  # type: ignore[attr-defined]
        suppress_ragged_eofs=False,
    )
    return data, preliminary


def _readToEnd(data: ssl.SSLSocket) -> tuple[bytes, bool]:
    """
    Everything the server sends, and whether it ended with a close_notify.
    """
    chunks = []
    while True:
        try:
            chunk = data.recv(65536)
        except ssl.SSLError as e:
            # SSLEOFError, or a bare SSLError with UNEXPECTED_EOF on some
            # Python builds: the stream ended without a close_notify.
            if not isinstance(e, ssl.SSLEOFError) and "UNEXPECTED_EOF" not in str(e):
                raise
            data.close()
            return b"".join(chunks), False
        if not chunk:
            data.close()
            return b"".join(chunks), True
        chunks.append(chunk)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ServerTestCase(TestCase):
    """
    A test case with an L{FTPSTestServer} started in C{setUp}.
    """

    serverArguments: dict[str, Any] = {}

    def setUp(self) -> Any:
        self.server = FTPSTestServer(
            reactor,
            users={"alice": "secret"},
            files={"pub/hello.txt": b"hello\n", "pub/blob.bin": _BLOB, "empty/": b""},
            **self.serverArguments,
        )
        self.addCleanup(self.server.stop)
        return self.server.start()

    def inThread(self, function: Callable[[], Any]) -> Any:
        return threads.deferToThread(function)


class ServerTests(ServerTestCase):
    """
    The server, its certificates and its users.
    """

    serverArguments = {"certificateUsers": ["carol"], "anonymous": True}

    def test_downloadAndUpload(self) -> None:
        """
        A user downloads the files given to the server and uploads a file
        that lands in L{FTPSTestServer.root}.
        """

        def session() -> bytes:
            client = _client(self.server)
            out: list[bytes] = []
            client.retrbinary("RETR pub/blob.bin", out.append)
            client.storbinary("STOR pub/new.bin", io.BytesIO(b"new\n" * 1000))
            client.quit()
            return b"".join(out)

        def check(data: bytes) -> None:
            self.assertEqual(_sha(data), _sha(_BLOB))
            self.assertEqual(self.server.path("pub/new.bin").getContent(), b"new\n" * 1000)
            self.assertTrue(self.server.path("empty").isdir())

        return self.inThread(session).addCallback(check)

    def test_certificateTrust(self) -> None:
        """
        The server's certificate verifies for C{127.0.0.1} and C{localhost}
        against the throwaway CA (and only against it), and its fingerprint
        is L{FTPSTestServer.fingerprint}.
        """

        def handshake(context: ssl.SSLContext, name: str) -> str:
            with socket.create_connection((self.server.host, self.server.implicitPort)) as raw:
                with context.wrap_socket(raw, server_hostname=name) as tls:
                    der = tls.getpeercert(binary_form=True)
                    assert der is not None
                    digest = hashlib.sha256(der).hexdigest().upper()
                    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

        def session() -> list[Any]:
            results: list[Any] = [
                handshake(self.server.clientContext(), "127.0.0.1"),
                handshake(self.server.clientContext(), "localhost"),
            ]
            fromFile = ssl.create_default_context(cafile=self.server.caCertificatePath.path)
            results.append(handshake(fromFile, "localhost"))
            try:
                handshake(ssl.create_default_context(), "127.0.0.1")
            except ssl.SSLCertVerificationError as e:
                results.append(e)
            return results

        def check(results: list[Any]) -> None:
            first, second, third, refused = results
            self.assertEqual({first, second, third}, {self.server.fingerprint})
            self.assertIsInstance(refused, ssl.SSLCertVerificationError)

        return self.inThread(session).addCallback(check)

    def test_logins(self) -> None:
        """
        A wrong password gets 530, the right one 230, anonymous logins work
        read-only, and the record holds each attempt with C{PASS} masked.
        """

        def session() -> list[str]:
            results = []
            try:
                _client(self.server, password="wrong")
            except ftplib.error_perm as e:
                results.append(str(e))
            _client(self.server).quit()
            anonymous = _client(self.server, "anonymous", "a@b")
            try:
                anonymous.storbinary("STOR pub/x.txt", io.BytesIO(b"x"))
            except ftplib.error_perm as e:
                results.append(str(e))
            anonymous.quit()
            return results

        def check(results: list[str]) -> None:
            wrong, refused = results
            self.assertTrue(wrong.startswith("530"), wrong)
            self.assertTrue(refused.startswith("550"), refused)
            self.assertFalse(self.server.path("pub/x.txt").exists())
            logins = self.server.record.logins
            self.assertEqual(
                [(login.user, login.succeeded) for login in logins],
                [("alice", False), ("alice", True), ("anonymous", True)],
            )
            passes = [c for c in self.server.record.commands if c.command == "PASS"]
            self.assertEqual({c.argument for c in passes}, {"***"})
            self.assertNotIn("wrong", repr(self.server.record.events))

        return self.inThread(session).addCallback(check)

    def test_clientCertificate(self) -> None:
        """
        A certificate user presenting their certificate logs in with 232 and
        no password; without it they get 331 and no login.
        """

        def login(context: ssl.SSLContext) -> str:
            client = ReusingFTP_TLS(context=context, timeout=10)
            client.connect(self.server.host, self.server.port)
            client.auth()
            reply = client.sendcmd("USER carol")
            client.close()
            return reply

        def session() -> list[str]:
            return [
                login(self.server.clientContext("carol")),
                login(self.server.clientContext()),
            ]

        def check(results: list[str]) -> None:
            withCertificate, without = results
            self.assertTrue(withCertificate.startswith("232"), withCertificate)
            self.assertTrue(without.startswith("331"), without)
            self.assertEqual(self.server.record.logins, [self.server.record.logins[0]])
            self.assertEqual(self.server.record.logins[0].user, "carol")
            self.assertEqual(
                self.server.clientCertificate("carol").certificate.subject.rfc4514_string(),
                "CN=carol",
            )

        return self.inThread(session).addCallback(check)

    def test_curlExplicitAndImplicit(self) -> None:
        """
        curl trusts the server with C{--cacert caCertificatePath} and
        downloads over explicit (C{url()}) and implicit (C{url(implicit=True)})
        FTPS.
        """
        curl = requireProgram("curl")
        ca = self.server.caCertificatePath.path

        def session() -> list[subprocess.CompletedProcess[bytes]]:
            return [
                subprocess.run(
                    [curl, "-sS", "--ssl-reqd", "--cacert", ca, url],
                    capture_output=True,
                    timeout=30,
                )
                for url in (
                    self.server.url("pub/blob.bin", "alice"),
                    self.server.url("pub/blob.bin", "alice", implicit=True),
                )
            ]

        def check(results: list[subprocess.CompletedProcess[bytes]]) -> None:
            for result in results:
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(_sha(result.stdout), _sha(_BLOB))

        return self.inThread(session).addCallback(check)

    def test_stop(self) -> None:
        """
        L{FTPSTestServer.stop} closes open sessions, stops listening and
        removes the server's directory.
        """
        client: list[ftplib.FTP_TLS] = []

        def connect() -> None:
            client.append(_client(self.server))

        def stopped(_: object) -> Any:
            def probe() -> list[Any]:
                try:
                    tail = client[0].sock.recv(100)
                except OSError as e:
                    tail = repr(e).encode()
                refused = False
                try:
                    socket.create_connection((self.server.host, self.server.port), timeout=5)
                except ConnectionRefusedError:
                    refused = True
                return [tail, refused]

            return self.inThread(probe)

        def check(results: list[Any]) -> None:
            tail, refused = results
            self.assertNotIn(b"220", tail)
            self.assertTrue(refused)
            self.assertFalse(self.server.directory.exists())

        d = self.inThread(connect)
        d.addCallback(lambda _: self.server.stop())
        d.addCallback(stopped)
        return d.addCallback(check)


class RecordTests(ServerTestCase):
    """
    L{SessionRecord}: commands, replies and transfers, with byte counts.
    """

    def test_transfers(self) -> None:
        """
        A download, an upload, a listing and a failed download are recorded
        with their direction, path, bytes and final reply.
        """

        def session() -> None:
            client = _client(self.server)
            client.cwd("pub")
            client.retrbinary("RETR blob.bin", lambda _: None)
            client.storbinary("STOR up.txt", io.BytesIO(b"12345"))
            client.nlst()
            try:
                client.retrbinary("RETR missing", lambda _: None)
            except ftplib.error_perm:
                pass
            client.quit()

        def check(_: object) -> None:
            self.assertEqual(
                [
                    (t.command, t.path, t.direction, t.bytes, t.code, t.completed)
                    for t in self.server.record.transfers
                ],
                [
                    ("RETR", "/pub/blob.bin", "download", len(_BLOB), 226, True),
                    ("STOR", "/pub/up.txt", "upload", 5, 226, True),
                    (
                        "NLST",
                        "/pub",
                        "listing",
                        len(b"blob.bin\r\nhello.txt\r\nup.txt\r\n"),
                        226,
                        True,
                    ),
                ],
            )
            session = self.server.record.transfers[0].session
            self.assertIn(Command(session, "RETR", "missing"), self.server.record.commands)
            codes = [(r.code, r.text) for r in self.server.record.replies]
            self.assertIn((550, "No such file or directory."), codes)
            self.assertEqual(self.server.record.events[0], Reply(session, 220, "txftps ready."))
            self.assertEqual(self.server.record.logins, [Login(session, "alice", True)])

        return self.inThread(session).addCallback(check)

    def test_waitForAndClear(self) -> None:
        """
        L{SessionRecord.waitFor} fires once an event makes its predicate
        true; L{SessionRecord.clear} forgets what happened.
        """
        waited = self.server.record.waitFor(lambda r: any(c.command == "NOOP" for c in r.commands))
        self.assertNoResult(waited)

        def session() -> None:
            client = _client(self.server)
            client.voidcmd("NOOP")
            client.quit()

        def check(_: object) -> None:
            self.successResultOf(waited)
            self.server.record.clear()
            self.assertEqual(self.server.record.events, [])

        return self.inThread(session).addCallback(check)


class MisbehaviourTests(ServerTestCase):
    """
    Each misbehaviour switch does what it says, seen from a real client.
    """

    def test_noSessionResumption(self) -> None:
        """
        Without session resumption, data connections are full handshakes
        (and still accepted); by default they resume.
        """

        def reused() -> tuple[bool, bytes]:
            client = _client(self.server)
            data, _ = _dataSocket(client, "RETR pub/hello.txt")
            resumed = data.session_reused
            content, _ = _readToEnd(data)
            client.voidresp()
            client.quit()
            return resumed, content

        def session() -> list[Any]:
            first = reused()
            reactorCall(self.server, Misbehaviour(sessionResumption=False))
            return [first, reused()]

        def check(results: list[Any]) -> None:
            (before, content1), (after, content2) = results
            self.assertTrue(before)
            self.assertFalse(after)
            self.assertEqual(content1, b"hello\n")
            self.assertEqual(content2, b"hello\n")

        return self.inThread(session).addCallback(check)

    def test_truncatedDownload(self) -> None:
        """
        A truncated download stops at the given byte with no close_notify,
        and the server still says 226.
        """
        self.server.misbehaviour = Misbehaviour(truncateDownloadsAt=70_000)

        def session() -> list[Any]:
            client = _client(self.server)
            data, _ = _dataSocket(client, "RETR pub/blob.bin")
            content, clean = _readToEnd(data)
            reply = client.voidresp()
            client.quit()
            return [content, clean, reply]

        def check(results: list[Any]) -> None:
            content, clean, reply = results
            self.assertEqual(_sha(content), _sha(_BLOB[:70_000]))
            self.assertFalse(clean)
            self.assertTrue(reply.startswith("226"), reply)
            [transfer] = self.server.record.transfers
            self.assertEqual((transfer.bytes, transfer.code), (70_000, 226))

        return self.inThread(session).addCallback(check)

    def test_truncatedUpload(self) -> None:
        """
        A truncated upload keeps the first bytes, closes the data connection
        without close_notify and is answered 226.
        """
        self.server.misbehaviour = Misbehaviour(truncateUploadsAt=1000)

        def session() -> list[Any]:
            client = _client(self.server)
            data, _ = _dataSocket(client, "STOR pub/up.bin")
            clean = True
            try:
                data.sendall(_BLOB)
                data.unwrap()
            except (ssl.SSLError, OSError):
                clean = False
            data.close()
            reply = client.voidresp()
            client.quit()
            return [clean, reply]

        def check(results: list[Any]) -> None:
            clean, reply = results
            self.assertFalse(clean)
            self.assertTrue(reply.startswith("226"), reply)
            self.assertEqual(_sha(self.server.path("pub/up.bin").getContent()), _sha(_BLOB[:1000]))
            [transfer] = self.server.record.transfers
            self.assertEqual(
                (transfer.direction, transfer.bytes, transfer.code), ("upload", 1000, 226)
            )

        return self.inThread(session).addCallback(check)

    def test_slowDataHoldsBack(self) -> None:
        """
        A slow data connection sends one piece, then waits: when the client
        aborts, the server has sent exactly one piece of the file.
        """
        self.server.misbehaviour = Misbehaviour(slowDataChunk=5000, slowDataInterval=3600)

        def session() -> list[Any]:
            client = _client(self.server)
            data, _ = _dataSocket(client, "RETR pub/blob.bin")
            received = b""
            while len(received) < 5000:
                received += data.recv(65536)
            replies = [client.sendcmd("NOOP")]
            client.putcmd("ABOR")
            replies.append(client.getmultiline())
            replies.append(client.getmultiline())
            data.close()
            client.quit()
            return [received, replies]

        def check(results: list[Any]) -> None:
            received, replies = results
            self.assertEqual(received, _BLOB[:5000])
            self.assertTrue(replies[0].startswith("200"), replies)
            [transfer] = self.server.record.transfers
            self.assertEqual((transfer.bytes, transfer.code), (5000, 426))

        return self.inThread(session).addCallback(check)

    def test_slowDataCompletes(self) -> None:
        """
        A slow download and a slow listing still arrive whole.
        """
        self.server.misbehaviour = Misbehaviour(slowDataChunk=20_000, slowDataInterval=0.001)

        def session() -> list[Any]:
            client = _client(self.server)
            out: list[bytes] = []
            client.retrbinary("RETR pub/blob.bin", out.append)
            names = client.nlst("pub")
            client.quit()
            return [b"".join(out), names]

        def check(results: list[Any]) -> None:
            content, names = results
            self.assertEqual(_sha(content), _sha(_BLOB))
            self.assertEqual(names, ["blob.bin", "hello.txt"])

        return self.inThread(session).addCallback(check)

    def test_closeAfterCommands(self) -> None:
        """
        After the given number of commands the next one gets 421 and the
        control connection closes.
        """
        self.server.misbehaviour = Misbehaviour(closeAfterCommands=5)

        def session() -> list[Any]:
            client = _client(self.server)
            results: list[Any] = []
            try:
                client.sendcmd("PWD")
            except ftplib.error_temp as e:
                results.append(str(e))
            results.append(client.sock.recv(100))
            return results

        def check(results: list[Any]) -> None:
            reply, tail = results
            self.assertTrue(reply.startswith("421"), reply)
            self.assertEqual(tail, b"")
            self.assertEqual(
                [c.command for c in self.server.record.commands],
                ["AUTH", "USER", "PASS", "PBSZ", "PROT", "PWD"],
            )
            self.assertEqual(self.server.record.replies[-1].code, 421)

        return self.inThread(session).addCallback(check)

    def test_refusePassive(self) -> None:
        """
        PASV and EPSV are answered 425, so no transfer can start.
        """
        self.server.misbehaviour = Misbehaviour(refusePassive=True)

        def session() -> list[str]:
            client = _client(self.server)
            results = []
            for command in ("PASV", "EPSV"):
                try:
                    client.sendcmd(command)
                except ftplib.error_temp as e:
                    results.append(str(e))
            try:
                client.retrbinary("RETR pub/hello.txt", lambda _: None)
            except ftplib.error_temp as e:
                results.append(str(e))
            client.quit()
            return results

        def check(results: list[str]) -> None:
            self.assertEqual([r[:3] for r in results], ["425", "425", "425"])
            self.assertEqual(self.server.record.transfers, [])

        return self.inThread(session).addCallback(check)


def reactorCall(server: FTPSTestServer, misbehaviour: Misbehaviour) -> None:
    """
    Switch C{server} to C{misbehaviour} from a client thread, in the reactor
    thread.
    """
    threads.blockingCallFromThread(reactor, setattr, server, "misbehaviour", misbehaviour)


class TransferTypeTests(TestCase):
    """
    L{Transfer} reports completion from its reply code.
    """

    def test_completed(self) -> None:
        """
        Only 226 is a completed transfer.
        """
        self.assertTrue(Transfer("s", "RETR", "/a", "download", 1, 226).completed)
        self.assertFalse(Transfer("s", "RETR", "/a", "download", 1, 426).completed)
