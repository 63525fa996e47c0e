"""
Tests for txftps.client against real servers: the real C{twistd ftps}
(explicit, implicit, session reuse required, client certificates),
pyftpdlib, Debian's vsftpd (C{require_ssl_reuse=YES}), and a small server
that truncates downloads.
"""

from __future__ import annotations

import datetime
import io
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IConsumer
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests import clientsupport, support
from txftps import client as api
from txftps._clientdata import parseEPSV, parsePASV, passiveHost
from txftps.client import (
    CertificateError,
    ClientTLS,
    FTPCommandError,
    FTPSClient,
    FTPTimeoutError,
    TransferTruncated,
    connect,
)


def inReactor(
    method: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Deferred[None]]:
    """
    Run an C{async def} test method as a Deferred.
    """

    def run(self: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(method(self))

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


@implementer(IConsumer)
class Collector:
    """
    A consumer that keeps what it gets, and may call C{onFirst} on its first
    write.
    """

    def __init__(self, onFirst: Callable[[], None] | None = None) -> None:
        self.data = bytearray()
        self.onFirst = onFirst

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        first = not self.data
        self.data += data
        if first and self.onFirst is not None:
            onFirst, self.onFirst = self.onFirst, None
            onFirst()


async def retrieved(client: FTPSClient, path: str) -> bytes:
    """
    The bytes C{client} downloads from C{path}.
    """
    collector = Collector()
    await client.retrieve(path, collector)
    return bytes(collector.data)


class TwistdClientTests(TestCase):
    """
    The client against the real C{twistd ftps} with its default
    C{--session-reuse required}: every transfer proves the data connection
    resumed the control connection's TLS session.
    """

    extraArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = support.TwistdServer(*self.extraArgs, users={"alice": "secret"}).start()
        self.addCleanup(self.server.stop)
        self.tls = ClientTLS(caFile=self.server.ca.caFile)
        self.payload = os.urandom(300_000)
        support.writeFile(os.path.join(self.server.root, "file.bin"), self.payload)
        self.home = self.server.userHome("alice")
        support.writeFile(os.path.join(self.home, "file.bin"), self.payload)

    def url(
        self, implicit: bool = False, user: str = "alice:secret", host: str = "127.0.0.1"
    ) -> str:
        if implicit:
            return f"ftps://{user}@{host}:{self.server.implicitPort}/"
        return f"ftp://{user}@{host}:{self.server.explicitPort}/"

    async def login(self, **kwargs: Any) -> FTPSClient:
        client = await connect(
            reactor, kwargs.pop("url", None) or self.url(), kwargs.pop("tls", self.tls), **kwargs
        )
        self.addCleanup(
            lambda: client.protocol.transport and client.protocol.transport.abortConnection()
        )
        return client

    @inReactor
    async def test_explicitDownloadTLS13(self) -> None:
        """
        Explicit FTPS (C{ftp://}): AUTH TLS, TLS 1.3, a download whose bytes
        are the file's, over a data connection the server accepted only
        because it resumed the control session.
        """
        client = await connect(reactor, f"ftp://127.0.0.1:{self.server.explicitPort}/", self.tls)
        assert client.session.control is not None
        self.assertEqual(client.session.control.get_protocol_version_name(), "TLSv1.3")
        collector = Collector()
        count = await client.retrieve("file.bin", collector)
        self.assertEqual(count, len(self.payload))
        self.assertEqual(bytes(collector.data), self.payload)
        await client.quit()

    @inReactor
    async def test_explicitDownloadTLS12(self) -> None:
        """
        The same with TLS 1.2 (session IDs or tickets instead of TLS 1.3
        tickets): still resumed, still accepted.
        """
        tls = ClientTLS(caFile=self.server.ca.caFile, maximumVersion=SSL.TLS1_2_VERSION)
        client = await self.login(tls=tls)
        assert client.session.control is not None
        self.assertEqual(client.session.control.get_protocol_version_name(), "TLSv1.2")
        for _ in range(2):
            self.assertEqual(await retrieved(client, "/file.bin"), self.payload)
        await client.quit()

    @inReactor
    async def test_implicit(self) -> None:
        """
        C{ftps://} is implicit FTPS: TLS from the first byte; listings and
        downloads work, the certificate checked against C{localhost}.
        """
        client = await self.login(url=self.url(implicit=True, user="anonymous", host="localhost"))
        entries = await client.list()
        self.assertEqual(
            [(e.name, e.type, e.size) for e in entries], [("file.bin", "file", len(self.payload))]
        )
        self.assertEqual(await client.names(), ["file.bin"])
        self.assertEqual(await retrieved(client, "file.bin"), self.payload)

    @inReactor
    async def test_endpoint(self) -> None:
        """
        C{connectEndpoint} runs over any client stream endpoint (implicit TLS
        here), checking the certificate against the host name it is given.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.server.implicitPort)
        client = await api.connectEndpoint(
            reactor, endpoint, "localhost", implicit=True, tls=self.tls
        )
        self.assertEqual(await retrieved(client, "file.bin"), self.payload)
        await client.quit()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.server.explicitPort)
        with self.assertRaises(CertificateError):
            await api.connectEndpoint(reactor, endpoint, "ftp.example.org", tls=self.tls)

    @inReactor
    async def test_uploadAndFileCommands(self) -> None:
        """
        Upload from a file, then SIZE, MDTM, MFMT, MKD, CWD, PWD, RNFR/RNTO,
        DELE, RMD and a raw command do what they say on the server's disk.
        """
        client = await self.login()
        local = support.writeFile(
            os.path.join(self.server.directory, "local", "up.bin"), self.payload
        )
        self.assertEqual(await client.storeFile(local, "up.bin"), len(self.payload))
        self.assertEqual(support.readFile(os.path.join(self.home, "up.bin")), self.payload)
        self.assertEqual(await client.size("up.bin"), len(self.payload))
        when = datetime.datetime(2020, 2, 29, 12, 34, 56, tzinfo=datetime.UTC)
        await client.setModificationTime("up.bin", when)
        self.assertEqual(await client.modificationTime("up.bin"), when)
        self.assertEqual(os.stat(os.path.join(self.home, "up.bin")).st_mtime, when.timestamp())
        self.assertEqual(await client.makeDirectory("sub"), "/sub")
        await client.cwd("sub")
        self.assertEqual(await client.pwd(), "/sub")
        await client.rename("/up.bin", "moved.bin")
        self.assertTrue(os.path.exists(os.path.join(self.home, "sub", "moved.bin")))
        await client.delete("moved.bin")
        await client.cwd("/")
        await client.removeDirectory("sub")
        self.assertEqual(os.listdir(self.home), ["file.bin"])
        reply = await client.quote("NOOP")
        self.assertEqual(reply.code, 200)
        with self.assertRaises(FTPCommandError) as caught:
            await client.site("NOSUCHTHING")
        self.assertEqual(caught.exception.code // 100, 5)

    @inReactor
    async def test_missingFile(self) -> None:
        """
        A failure reply is an L{FTPCommandError} with its code and text;
        retrieveFile then leaves nothing under the final local name, and the
        session goes on.
        """
        client = await self.login()
        local = os.path.join(self.server.directory, "missing.bin")
        with self.assertRaises(FTPCommandError) as caught:
            await client.retrieveFile("missing.bin", local)
        self.assertEqual(caught.exception.code, 550)
        self.assertIn("550", str(caught.exception))
        self.assertFalse(os.path.exists(local))
        self.assertEqual((await client.quote("NOOP")).code, 200)

    @inReactor
    async def test_resumableAfterFailedTransfers(self) -> None:
        """
        A data connection that dies in its handshake (a listing of a missing
        directory: the server's 550 comes first and the client drops the
        connection) leaves the control session resumable: the next transfer
        is still accepted by a server that requires session reuse. (Sharing
        the control connection's C{SSL_SESSION} with data connections made
        this fail about every other time.)
        """
        for _ in range(8):
            client = await self.login()
            with self.assertRaises(FTPCommandError):
                await client.list("no-such-directory")
            self.assertEqual(await retrieved(client, "file.bin"), self.payload)
            await client.quit()

    @inReactor
    async def test_copySession(self) -> None:
        """
        L{copySession} (built on pyOpenSSL's private bindings) still works:
        the copy of the control session is another C{SSL_SESSION} that a new
        connection of the same context accepts.
        """
        from txftps._internals import copySession

        client = await self.login()
        original = client.session.currentSession()
        assert original is not None
        copy = copySession(original)
        self.assertIsNot(copy._session, original._session)
        SSL.Connection(client.session.context, None).set_session(copy)
        await client.quit()

    @inReactor
    async def test_resume(self) -> None:
        """
        C{retrieveFile(resume=True)} asks only for the missing bytes (REST)
        and the result is the whole file; C{storeFile(resume=True)} sends
        only what the remote file lacks.
        """
        client = await self.login(url=self.url(user="anonymous"))
        local = os.path.join(self.server.directory, "resumed.bin")
        support.writeFile(local, self.payload[:100_000])
        count = await client.retrieveFile("file.bin", local, resume=True)
        self.assertEqual(count, len(self.payload) - 100_000)
        self.assertEqual(support.readFile(local), self.payload)
        self.assertFalse(os.path.exists(local + ".part"))
        alice = await self.login()
        support.writeFile(os.path.join(self.home, "partial.bin"), self.payload[:12345])
        sent = await alice.storeFile(local, "partial.bin", resume=True)
        self.assertEqual(sent, len(self.payload) - 12345)
        self.assertEqual(support.readFile(os.path.join(self.home, "partial.bin")), self.payload)

    @inReactor
    async def test_appendAndProducer(self) -> None:
        """
        C{store} takes any C{IBodyProducer}; C{append=True} is APPE.
        """
        client = await self.login()
        path = support.writeFile(os.path.join(self.server.directory, "part1"), b"one,")
        with open(path, "rb") as f:
            await client.store("log.txt", api.FileProducer(f))
        with open(path, "rb") as f:
            await client.store("log.txt", api.FileProducer(f), append=True)
        self.assertEqual(support.readFile(os.path.join(self.home, "log.txt")), b"one,one,")

    @inReactor
    async def test_active(self) -> None:
        """
        Active mode (PORT): the server connects to us; we are still the TLS
        client and still resume the session, downloads and uploads both.
        """
        client = await self.login(active=True)
        collector = Collector()
        watch = support.LogWatch(self.server)
        await client.retrieve("/file.bin", collector)
        self.assertEqual(bytes(collector.data), self.payload)
        local = support.writeFile(os.path.join(self.server.directory, "a.bin"), b"active upload")
        await client.storeFile(local, "a.bin")
        self.assertEqual(support.readFile(os.path.join(self.home, "a.bin")), b"active upload")
        self.assertIn("<- PORT", watch.since())
        self.assertNotIn("<- EPSV", watch.since())

    @inReactor
    async def test_cancelAborts(self) -> None:
        """
        Cancelling a download's Deferred sends ABOR, closes the data
        connection, fails with C{CancelledError}, and leaves the session in
        step: the next command gets its own reply.
        """
        support.writeFile(os.path.join(self.server.root, "big.bin"), b"\0" * (64 * 2**20))
        client = await self.login(url=self.url(user="anonymous"))
        watch = support.LogWatch(self.server)
        holder: list[Deferred[int]] = []
        collector = Collector(onFirst=lambda: holder[0].cancel())
        holder.append(client.retrieve("big.bin", collector))
        with self.assertRaises(CancelledError):
            await holder[0]
        self.assertLess(len(collector.data), 64 * 2**20)
        self.assertEqual(await client.pwd(), "/")
        self.assertIn("<- ABOR", watch.since())

    @inReactor
    async def test_cancelUploadAborts(self) -> None:
        """
        Cancelling an upload's Deferred sends ABOR and fails with
        C{CancelledError}; the server stores nothing under the final name
        and the session stays in step.
        """
        from twisted.web.client import FileBodyProducer

        client = await self.login()
        watch = support.LogWatch(self.server)
        holder: list[Deferred[int]] = []
        sent: list[int] = []

        def progress(count: int) -> None:
            sent.append(count)
            if len(sent) == 1:
                holder[0].cancel()

        producer = FileBodyProducer(io.BytesIO(b"\1" * (64 * 2**20)))
        holder.append(client.store("up.bin", producer, onProgress=progress))
        with self.assertRaises(CancelledError):
            await holder[0]
        self.assertTrue(sent, "no progress was reported before the cancel")
        self.assertEqual(await client.pwd(), "/")
        self.assertIn("<- ABOR", watch.since())
        self.assertFalse(os.path.exists(os.path.join(self.home, "up.bin")))

    @inReactor
    async def test_stalledData(self) -> None:
        """
        A data connection that stops moving (the server stopped with
        SIGSTOP) fails the transfer with L{FTPTimeoutError} after the stall
        timeout.
        """
        support.writeFile(os.path.join(self.server.root, "big.bin"), b"\0" * (64 * 2**20))
        client = await self.login(url=self.url(user="anonymous"), stallTimeout=1.0)
        process = self.server.process
        assert process is not None
        self.addCleanup(lambda: process.send_signal(signal.SIGCONT))
        collector = Collector(onFirst=lambda: process.send_signal(signal.SIGSTOP))
        with self.assertRaises(FTPTimeoutError) as caught:
            await client.retrieve("big.bin", collector)
        self.assertIn("stalled", str(caught.exception))

    @inReactor
    async def test_insecureWarns(self) -> None:
        """
        C{ClientTLS(insecure=True)} accepts an untrusted certificate and logs
        a warning saying so.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        client = await self.login(tls=ClientTLS(insecure=True))
        self.assertEqual((await client.quote("NOOP")).code, 200)
        warnings = [e for e in events if "not verified" in str(e.get("log_format", ""))]
        self.assertEqual(len(warnings), 1)


class TrustTests(TestCase):
    """
    Certificate and host-name verification, pinning and client
    certificates, against the real C{twistd ftps}.
    """

    def startServer(self, *args: str, onlyFor: str | None = None) -> support.TwistdServer:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = support.ThrowawayCA(directory)
        if onlyFor is not None:
            ca.certFile, ca.keyFile = clientsupport.certificateOnlyFor(directory, ca, onlyFor)
        server = support.TwistdServer(*args, ca=ca).start()
        self.addCleanup(server.stop)
        return server

    async def failure(self, url: str, tls: ClientTLS) -> Exception:
        try:
            client = await connect(reactor, url, tls)
        except Exception as e:
            return e
        await client.quit()
        self.fail("the connection was accepted")

    @inReactor
    async def test_untrustedByDefault(self) -> None:
        """
        By default only the system's roots are trusted: the throwaway CA's
        certificate is refused, explicit and implicit.
        """
        server = self.startServer()
        for url in (
            f"ftp://127.0.0.1:{server.explicitPort}/",
            f"ftps://127.0.0.1:{server.implicitPort}/",
        ):
            error = await self.failure(url, ClientTLS())
            self.assertIsInstance(error, CertificateError)
            self.assertIn("certificate not trusted", str(error))

    @inReactor
    async def test_hostnameMismatch(self) -> None:
        """
        A certificate from a trusted CA but only for C{localhost} is refused
        on a connection to 127.0.0.1 (and accepted for C{localhost}).
        """
        server = self.startServer(onlyFor="localhost")
        tls = ClientTLS(caFile=server.ca.caFile)
        error = await self.failure(f"ftp://127.0.0.1:{server.explicitPort}/", tls)
        self.assertIsInstance(error, CertificateError)
        self.assertEqual(
            str(error), "host name mismatch: the certificate is not valid for 127.0.0.1"
        )
        client = await connect(reactor, f"ftp://localhost:{server.explicitPort}/", tls)
        await client.quit()

    @inReactor
    async def test_pin(self) -> None:
        """
        A matching pin alone is trust enough (no CA, no host-name check);
        a wrong pin is refused; with a CA file both must hold.
        """
        server = self.startServer(onlyFor="localhost")
        pin = clientsupport.fingerprintOf(server.ca.certFile)
        url = f"ftp://127.0.0.1:{server.explicitPort}/"
        client = await connect(reactor, url, ClientTLS(pin=pin.lower().replace(":", "")))
        await client.quit()
        wrong = "00" + pin[2:]
        error = await self.failure(url, ClientTLS(pin=wrong))
        self.assertEqual(str(error), "certificate does not match the pinned SHA-256 fingerprint")
        otherDirectory = os.path.abspath(self.mktemp())
        os.makedirs(otherDirectory)
        other = support.ThrowawayCA(otherDirectory)
        error = await self.failure(
            url.replace("127.0.0.1", "localhost"), ClientTLS(pin=pin, caFile=other.caFile)
        )
        self.assertIn("certificate not trusted", str(error))
        error = await self.failure(url, ClientTLS(pin=pin, caFile=server.ca.caFile))
        self.assertIn("host name mismatch", str(error))
        client = await connect(
            reactor,
            url.replace("127.0.0.1", "localhost"),
            ClientTLS(pin=pin, caFile=server.ca.caFile),
        )
        await client.quit()

    @inReactor
    async def test_clientCertificate(self) -> None:
        """
        With C{--client-cert required}, a client certificate from the
        client CA logs in and transfers (the data connections present it
        too); without one the server refuses.
        """
        pki, server = support.certificateRequiringServer(self, "f.txt", b"for certificate holders")
        url = f"ftp://127.0.0.1:{server.explicitPort}/"
        tls = ClientTLS(caFile=pki.caFile, certFile=pki.alice.certFile, keyFile=pki.alice.keyFile)
        client = await connect(reactor, url, tls)
        self.assertEqual(await retrieved(client, "f.txt"), b"for certificate holders")
        await client.quit()
        with self.assertRaises(api.FTPClientError) as caught:
            await connect(reactor, url, ClientTLS(caFile=pki.caFile), replyTimeout=10)
        self.assertNotIsInstance(caught.exception, CertificateError)

    def test_badFiles(self) -> None:
        """
        Unreadable TLS files and malformed pins are errors when the settings
        are made, not at connection time.
        """
        with self.assertRaises(ValueError):
            ClientTLS(caFile="/nonexistent/ca.pem")
        with self.assertRaises(ValueError):
            ClientTLS(pin="AB:CD")


class TruncationTests(TestCase):
    """
    A download whose data connection ends without a TLS close_notify is an
    error even when the server then says 226.
    """

    @inReactor
    async def test_truncated(self) -> None:
        """
        L{TransferTruncated}, and no file under the final local name.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = support.ThrowawayCA(directory)
        server = clientsupport.TruncatingServer(ca)
        self.addCleanup(server.stop)
        client = await connect(
            reactor, f"ftps://127.0.0.1:{server.port}/", ClientTLS(caFile=ca.caFile)
        )
        local = os.path.join(directory, "out.bin")
        with self.assertRaises(TransferTruncated):
            await client.retrieveFile("x.bin", local)
        self.assertFalse(os.path.exists(local))
        client.protocol.transport.abortConnection()  # type: ignore[union-attr]

    @inReactor
    async def test_activeNeverConnects(self) -> None:
        """
        In active mode, a server that answers 150 and never connects fails
        the transfer with L{FTPTimeoutError} after the stall timeout.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = support.ThrowawayCA(directory)
        server = clientsupport.TruncatingServer(ca)
        self.addCleanup(server.stop)
        client = await connect(
            reactor,
            f"ftps://127.0.0.1:{server.port}/",
            ClientTLS(caFile=ca.caFile),
            active=True,
            stallTimeout=0.5,
        )
        self.addCleanup(client.protocol.transport.abortConnection)  # type: ignore[union-attr]
        with self.assertRaises(FTPTimeoutError) as caught:
            await client.retrieve("x.bin", Collector())
        self.assertIn("did not open the data connection", str(caught.exception))

    @inReactor
    async def test_replyTimeout(self) -> None:
        """
        A server that accepts and never says anything fails the connection
        with L{FTPTimeoutError} after the reply timeout.
        """
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        with self.assertRaises(FTPTimeoutError):
            await connect(
                reactor, f"ftp://127.0.0.1:{port}/", ClientTLS(insecure=True), replyTimeout=0.5
            )


class PassiveAddressTests(TestCase):
    """
    Parsing of PASV/EPSV replies and the choice of the passive address.
    """

    def test_parse(self) -> None:
        """
        PASV's six numbers and EPSV's delimited port are found in their
        replies; garbage raises.
        """
        self.assertEqual(
            parsePASV("Entering Passive Mode (192,168,1,2,195,80)."), ("192.168.1.2", 50000)
        )
        self.assertEqual(parseEPSV("Entering Extended Passive Mode (|||6446|)"), 6446)
        with self.assertRaises(api.FTPClientError):
            parsePASV("Entering Passive Mode (1,2,3)")
        with self.assertRaises(api.FTPClientError):
            parseEPSV("Entering Extended Passive Mode (|||0|)")

    def test_natFix(self) -> None:
        """
        A private, loopback or unspecified PASV address other than the
        control peer is replaced by the control peer (a NAT'd server); a
        public one, or the control peer itself, is kept.
        """
        self.assertEqual(passiveHost("192.168.0.10", "203.0.113.5"), "203.0.113.5")
        self.assertEqual(passiveHost("10.0.0.1", "203.0.113.5"), "203.0.113.5")
        self.assertEqual(passiveHost("0.0.0.0", "203.0.113.5"), "203.0.113.5")
        self.assertEqual(passiveHost("127.0.0.1", "127.0.0.1"), "127.0.0.1")
        self.assertEqual(passiveHost("8.8.8.8", "1.1.1.1"), "8.8.8.8")


class VsftpdTests(TestCase):
    """
    The client against Debian's vsftpd with C{require_ssl_reuse=YES},
    C{force_local_data_ssl=YES} and C{force_local_logins_ssl=YES}: the
    server Python's ftplib cannot download from.
    """

    def setUp(self) -> None:
        self.server = clientsupport.VsftpdServer().start()
        self.addCleanup(self.server.stop)
        self.payload = os.urandom(200_000)
        support.writeFile(os.path.join(self.server.home, "file.bin"), self.payload)
        self.url = f"ftp://{self.server.user}:{self.server.password}@127.0.0.1:{self.server.port}/"
        self.tls = ClientTLS(caFile=self.server.ca.caFile)

    def test_ftplibRefused(self) -> None:
        """
        The server really requires session reuse: plain C{ftplib.FTP_TLS}
        (CPython gh-63699) gets 522 on a download.
        """
        import ftplib

        ftp = ftplib.FTP_TLS(context=self.server.ca.clientContext(), timeout=10)
        ftp.connect("127.0.0.1", self.server.port)
        ftp.auth()
        ftp.login(self.server.user, self.server.password)
        ftp.prot_p()
        with self.assertRaises(ftplib.error_perm) as caught:
            ftp.retrbinary("RETR file.bin", lambda data: None)
        self.assertTrue(str(caught.exception).startswith("522"), str(caught.exception))
        ftp.close()

    @inReactor
    async def test_transfers(self) -> None:
        """
        Downloads (twice, each resuming the session), an upload, a resumed
        download, and a LIST listing (vsftpd has no MLSD) parsed to entries.
        """
        client = await connect(reactor, self.url, self.tls)
        self.addCleanup(
            lambda: client.protocol.transport and client.protocol.transport.abortConnection()
        )
        self.assertNotIn("MLST", client.features)
        for _ in range(2):
            self.assertEqual(await retrieved(client, "file.bin"), self.payload)
        local = os.path.join(self.server.directory, "local.bin")
        support.writeFile(local, self.payload[:5000])
        await client.retrieveFile("file.bin", local, resume=True)
        self.assertEqual(support.readFile(local), self.payload)
        await client.storeFile(local, "copy.bin")
        self.assertEqual(
            support.readFile(os.path.join(self.server.home, "copy.bin")), self.payload
        )
        entries = {e.name: e for e in await client.list()}
        self.assertEqual(entries["copy.bin"].size, len(self.payload))
        self.assertEqual(entries["copy.bin"].type, "file")
        await client.makeDirectory("dir")
        entries = {e.name: e for e in await client.list()}
        self.assertTrue(entries["dir"].isDirectory)
        await client.quit()

    @inReactor
    async def test_active(self) -> None:
        """
        Active mode (PORT) against vsftpd: it connects to us, we are the TLS
        client and resume the session.
        """
        client = await connect(reactor, self.url, self.tls, active=True)
        self.assertEqual(await retrieved(client, "file.bin"), self.payload)
        await client.quit()
        self.assertIn('"PORT ', self.server.log())


class PyftpdlibTests(TestCase):
    """
    The client against pyftpdlib's C{TLS_FTPHandler} (TLS required on
    control and data).
    """

    @inReactor
    async def test_transfers(self) -> None:
        """
        MLSD listing, download, upload, resume and rename.
        """
        server = clientsupport.PyftpdlibServer().start()
        self.addCleanup(server.stop)
        payload = os.urandom(150_000)
        support.writeFile(os.path.join(server.home, "file.bin"), payload)
        client = await connect(
            reactor,
            f"ftp://alice:secret@127.0.0.1:{server.port}/",
            ClientTLS(caFile=server.ca.caFile),
        )
        self.assertIn("MLST", client.features)
        entries = await client.list()
        self.assertEqual([(e.name, e.size) for e in entries], [("file.bin", len(payload))])
        local = support.writeFile(os.path.join(server.directory, "l.bin"), payload[:777])
        await client.retrieveFile("file.bin", local, resume=True)
        self.assertEqual(support.readFile(local), payload)
        await client.storeFile(local, "up.bin")
        await client.rename("up.bin", "renamed.bin")
        self.assertEqual(support.readFile(os.path.join(server.home, "renamed.bin")), payload)
        await client.quit()

    @inReactor
    async def test_pasvFallbackBehindNAT(self) -> None:
        """
        A server without EPSV whose PASV replies announce a private address
        (10.255.0.1, as behind NAT): the client falls back to PASV and
        connects to the control connection's address instead.
        """
        server = clientsupport.PyftpdlibServer("nat-no-epsv").start()
        self.addCleanup(server.stop)
        support.writeFile(os.path.join(server.home, "file.bin"), b"through NAT")
        client = await connect(
            reactor,
            f"ftp://alice:secret@127.0.0.1:{server.port}/",
            ClientTLS(caFile=server.ca.caFile),
        )
        self.assertNotIn("EPSV", client.features)
        with self.assertRaises(FTPCommandError):
            await client.quote("EPSV")
        for _ in range(2):
            self.assertEqual(await retrieved(client, "file.bin"), b"through NAT")
        self.assertIs(client._epsv, False)
        await client.quit()
