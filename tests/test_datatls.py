"""
Tests for L{txftps._datatls.DataTLS}, driven in memory against a pyOpenSSL
client over memory BIOs; bytes are shuttled by hand so that every flight is
visible.
"""

from __future__ import annotations

import socket

from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    drainBIO,
    memoryClient,
    memoryClientContext,
    memoryServerTLS,
    readTLS,
    stepTLS,
)
from txftps._datatls import DataTLS
from txftps.tls import ConnectionTLS


class _Server:
    """
    A L{DataTLS} with everything it writes and every handshake callback
    recorded in one event log.

    @ivar events: C{("handshake",)} for each callback, C{("data", bytes)} for
        each non-empty C{dataReceived} result, in order.
    @ivar written: raw chunks passed to C{write}, not yet given to the client.
    @ivar writes: how many times C{write} was called.
    """

    def __init__(self, context: ConnectionTLS, accept: bool = True) -> None:
        self.events: list[tuple[object, ...]] = []
        self.written: list[bytes] = []
        self.writes = 0
        self.accept = accept
        self.unreadAtHandshake: bytes | None = None
        self.tls = DataTLS(context, self._write, self._onHandshake)

    def _write(self, data: bytes | memoryview) -> None:
        self.writes += 1
        # Only valid during the call (DataTLS reuses the buffer).
        self.written.append(bytes(data))

    def _onHandshake(self, tls: DataTLS) -> bool:
        self.events.append(("handshake", tls.handshakeDone))
        # What application data is still unread inside TLS at this moment
        # (peeked, not consumed).
        try:
            self.unreadAtHandshake = tls.connection.recv(1 << 20, socket.MSG_PEEK)
        except SSL.WantReadError:
            self.unreadAtHandshake = b""
        return self.accept

    def receive(self, data: bytes) -> bytes:
        plain = self.tls.dataReceived(data)
        if plain:
            self.events.append(("data", plain))
        return plain

    def takeWritten(self) -> bytes:
        data = b"".join(self.written)
        self.written = []
        return data


def _handshake(server: _Server, client: SSL.Connection, clientData: bytes = b"") -> bytes:
    """
    Run the handshake; C{clientData} is sent by the client as soon as its own
    handshake is done, in the same flight as its last handshake message.

    @return: the application data the server got.
    """
    received = b""
    sent = False
    for _ in range(10):
        clientDone = stepTLS(client)
        if clientDone and clientData and not sent:
            client.send(clientData)
            sent = True
        toServer = drainBIO(client)
        if toServer:
            received += server.receive(toServer)
        toClient = server.takeWritten()
        if toClient:
            client.bio_write(toClient)
        if clientDone and server.tls.handshakeDone:
            return received
    raise AssertionError("handshake did not complete")


class DataTLSTests(SynchronousTestCase):
    """
    L{DataTLS}: the gate callback, TLS 1.3 ticket hold-back, close_notify.
    """

    def setUp(self) -> None:
        tls, _ = memoryServerTLS()
        self.context = tls.optionsForConnection()
        # Connections kept alive so that their sessions stay resumable.
        self.keep: list[object] = []

    def _client(self, maxVersion: int, session: SSL.Session | None = None) -> SSL.Connection:
        if session is None:
            self.clientContext = memoryClientContext(maxVersion=maxVersion)
        client = memoryClient(self.clientContext, session)
        self.keep.append(client)
        return client

    def _sessionFor(self, maxVersion: int) -> SSL.Session:
        """
        A session of C{self.context} held by the client context, from a full
        handshake with a L{DataTLS} that then closed (releasing any tickets).
        """
        server = _Server(self.context)
        client = self._client(maxVersion)
        _handshake(server, client)
        server.tls.close()
        client.bio_write(server.takeWritten())
        self.assertRaises(SSL.ZeroReturnError, readTLS, client)
        self.keep.append(server)
        return client.get_session()

    def test_serverNeedsItsConnectionTLS(self) -> None:
        """
        A server-side L{DataTLS} made from a bare context is refused: it
        would take whichever session-ID context the shared context had last,
        so another control connection's session could resume on it.
        """
        self.assertRaises(
            TypeError, DataTLS, self.context.getContext(), lambda data: None, lambda tls: True
        )

    def test_handshakeCompletes(self) -> None:
        """
        The handshake completes against a TLS 1.3 client; C{handshakeDone}
        and C{version} say so.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        self.assertFalse(server.tls.handshakeDone)
        _handshake(server, client)
        self.assertTrue(server.tls.handshakeDone)
        self.assertEqual(server.tls.version, "TLSv1.3")

    def test_callbackBeforeDataTLS13(self) -> None:
        """
        When a TLS 1.3 client sends application data in the same flight as
        its Finished, the callback runs once, with the handshake done, while
        that data is still unread inside TLS (the callback can peek at it),
        before it is handed out; later data does not call it again.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        received = _handshake(server, client, b"first upload bytes")
        self.assertEqual(received, b"first upload bytes")
        self.assertEqual(server.unreadAtHandshake, b"first upload bytes")
        client.send(b"more")
        self.assertEqual(server.receive(drainBIO(client)), b"more")
        self.assertEqual(
            server.events,
            [("handshake", True), ("data", b"first upload bytes"), ("data", b"more")],
        )

    def test_callbackBeforeDataTLS12Resumed(self) -> None:
        """
        In a resumed TLS 1.2 handshake the client's Finished and its first
        application data arrive together: the callback still runs first
        (the data still unread), exactly once.
        """
        session = self._sessionFor(SSL.TLS1_2_VERSION)
        server = _Server(self.context)
        client = self._client(SSL.TLS1_2_VERSION, session)
        received = _handshake(server, client, b"upload")
        self.assertTrue(server.tls.resumed)
        self.assertEqual(received, b"upload")
        self.assertEqual(server.unreadAtHandshake, b"upload")
        self.assertEqual(server.events, [("handshake", True), ("data", b"upload")])

    def test_refusedReturnsNoData(self) -> None:
        """
        When the callback returns C{False}, the application data that came
        with the client's Finished is not returned, nor is any later data.
        """
        server = _Server(self.context, accept=False)
        client = self._client(SSL.TLS1_3_VERSION)
        received = _handshake(server, client, b"must not be seen")
        self.assertEqual(received, b"")
        client.send(b"nor this")
        self.assertEqual(server.receive(drainBIO(client)), b"")
        self.assertEqual(server.events, [("handshake", True)])

    def test_tls13TicketsHeldBack(self) -> None:
        """
        After a TLS 1.3 handshake nothing is written (the NewSessionTicket
        records are held), not even while upload data keeps arriving.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        # ClientHello -> server flight.
        stepTLS(client)
        server.receive(drainBIO(client))
        self.assertGreater(server.writes, 0)
        client.bio_write(server.takeWritten())
        self.assertTrue(stepTLS(client))
        before = server.writes
        client.send(b"upload")
        self.assertEqual(server.receive(drainBIO(client)), b"upload")
        self.assertTrue(server.tls.handshakeDone)
        for chunk in (b"a" * 1000, b"b" * 70000):
            client.sendall(chunk)
            self.assertEqual(server.receive(drainBIO(client)), chunk)
        self.assertEqual(server.writes, before)
        self.assertEqual(server.written, [])

    def test_tls13TicketsReleasedBySend(self) -> None:
        """
        The held TLS 1.3 tickets come out with the first C{send}, ahead of
        the data: the client reads the data and holds a resumable session.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        self.assertEqual(readTLS(client), b"")
        sessionBefore = client.get_session()
        held = server.writes
        server.tls.send(b"listing\r\n")
        self.assertEqual(server.writes, held + 1)
        client.bio_write(server.takeWritten())
        self.assertEqual(readTLS(client), b"listing\r\n")
        sessionAfter = client.get_session()

        withoutTicket = _Server(self.context)
        _handshake(withoutTicket, self._client(SSL.TLS1_3_VERSION, sessionBefore))
        self.assertIs(withoutTicket.tls.resumed, False)
        withTicket = _Server(self.context)
        _handshake(withTicket, self._client(SSL.TLS1_3_VERSION, sessionAfter))
        self.assertIs(withTicket.tls.resumed, True)

    def test_tls13TicketsReleasedByClose(self) -> None:
        """
        The held TLS 1.3 tickets come out with C{close}, followed by a
        close_notify the client reads as a clean end of stream, and the
        session is resumable.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        held = server.writes
        server.tls.close()
        self.assertEqual(server.writes, held + 1)
        client.bio_write(server.takeWritten())
        self.assertRaises(SSL.ZeroReturnError, readTLS, client)
        session = client.get_session()

        resumedServer = _Server(self.context)
        _handshake(resumedServer, self._client(SSL.TLS1_3_VERSION, session))
        self.assertTrue(resumedServer.tls.resumed)

    def test_tls12NothingHeld(self) -> None:
        """
        After a full TLS 1.2 handshake the server's last flight (its Finished)
        is written at once, so the client completes its handshake without any
        C{send} or C{close}.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_2_VERSION)
        stepTLS(client)
        server.receive(drainBIO(client))
        client.bio_write(server.takeWritten())
        self.assertFalse(stepTLS(client))
        server.receive(drainBIO(client))
        self.assertTrue(server.tls.handshakeDone)
        self.assertEqual(server.tls.version, "TLSv1.2")
        self.assertNotEqual(server.written, [])
        client.bio_write(server.takeWritten())
        self.assertTrue(stepTLS(client))

    def test_closeNotifyReceived(self) -> None:
        """
        C{closeNotifyReceived} becomes C{True} when the client shuts TLS down,
        and data sent before the close_notify is still returned.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        self.assertFalse(server.tls.closeNotifyReceived)
        client.send(b"last bytes")
        client.shutdown()
        self.assertEqual(server.receive(drainBIO(client)), b"last bytes")
        self.assertTrue(server.tls.closeNotifyReceived)

    def test_noCloseNotifyWhenBytesStop(self) -> None:
        """
        A client whose bytes simply stop (no close_notify) leaves
        C{closeNotifyReceived} C{False}, even after our own close.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        client.send(b"partial upload")
        self.assertEqual(server.receive(drainBIO(client)), b"partial upload")
        self.assertFalse(server.tls.closeNotifyReceived)
        server.tls.close()
        self.assertFalse(server.tls.closeNotifyReceived)

    def test_recordBoundary(self) -> None:
        """
        C{atRecordBoundary} is C{True} after the handshake and after every
        complete record, however the raw bytes are split (here: one byte at
        a time, so every split inside a header and inside a body occurs),
        and C{False} whenever the bytes so far end inside a record: it turns
        C{True} exactly when a byte makes TLS deliver a record's data.
        """
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):
            server = _Server(self.context)
            client = self._client(version)
            _handshake(server, client)
            self.assertTrue(server.tls.atRecordBoundary, version)
            for size in (1, 300, 40_000):
                client.sendall(b"x" * size)
                wire = drainBIO(client)
                received = b""
                for index in range(len(wire)):
                    plain = server.receive(wire[index : index + 1])
                    received += plain
                    self.assertEqual(
                        server.tls.atRecordBoundary, bool(plain), (version, size, index)
                    )
                self.assertEqual(received, b"x" * size)
                self.assertTrue(server.tls.atRecordBoundary, (version, size))

    def test_recordBoundaryTwoRecordsInOneChunk(self) -> None:
        """
        Two records and the first 3 bytes of a third in one chunk leave
        C{atRecordBoundary} C{False}; the rest of the third makes it C{True}.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        records = []
        for data in (b"one", b"two", b"three"):
            client.send(data)
            records.append(drainBIO(client))
        wire = b"".join(records)
        cut = len(records[0]) + len(records[1]) + 3
        self.assertEqual(server.receive(wire[:cut]), b"onetwo")
        self.assertFalse(server.tls.atRecordBoundary)
        self.assertEqual(server.receive(wire[cut:]), b"three")
        self.assertTrue(server.tls.atRecordBoundary)

    def test_closeIdempotent(self) -> None:
        """
        C{close} writes a close_notify once; a second C{close}, or a C{send}
        after it, writes nothing.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_2_VERSION)
        _handshake(server, client)
        before = server.writes
        server.tls.close()
        self.assertEqual(server.writes, before + 1)
        client.bio_write(server.takeWritten())
        self.assertRaises(SSL.ZeroReturnError, readTLS, client)
        server.tls.close()
        server.tls.send(b"too late")
        self.assertEqual(server.writes, before + 1)

    def test_sendDelivers(self) -> None:
        """
        C{send} encrypts data (large ones too) that the client decrypts.
        """
        server = _Server(self.context)
        client = self._client(SSL.TLS1_3_VERSION)
        _handshake(server, client)
        payload = bytes(range(256)) * 2000
        server.tls.send(payload)
        client.bio_write(server.takeWritten())
        self.assertEqual(readTLS(client), payload)

    def test_garbageClientHello(self) -> None:
        """
        Bytes that are not a TLS ClientHello raise L{SSL.Error}, and the
        callback does not run.
        """
        server = _Server(self.context)
        self.assertRaises(SSL.Error, server.receive, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(server.tls.handshakeDone)
        self.assertEqual(server.events, [])

    def test_resumedFalseOnFullHandshake(self) -> None:
        """
        C{resumed} is C{False} after a full handshake.
        """
        server = _Server(self.context)
        _handshake(server, self._client(SSL.TLS1_3_VERSION))
        self.assertIs(server.tls.resumed, False)

    def test_resumedTLS12(self) -> None:
        """
        C{resumed} is C{True} when a TLS 1.2 client resumes a session of the
        same context.
        """
        session = self._sessionFor(SSL.TLS1_2_VERSION)
        server = _Server(self.context)
        _handshake(server, self._client(SSL.TLS1_2_VERSION, session))
        self.assertEqual(server.tls.version, "TLSv1.2")
        self.assertIs(server.tls.resumed, True)

    def test_resumedTLS13(self) -> None:
        """
        C{resumed} is C{True} when a TLS 1.3 client resumes a ticket of the
        same context.
        """
        session = self._sessionFor(SSL.TLS1_3_VERSION)
        server = _Server(self.context)
        _handshake(server, self._client(SSL.TLS1_3_VERSION, session))
        self.assertEqual(server.tls.version, "TLSv1.3")
        self.assertIs(server.tls.resumed, True)

    def test_handshakeFailureSendsAlert(self) -> None:
        """
        A failed handshake (here a client offering ALPN without C{ftp}) raises
        C{SSL.Error} only after writing the server's alert, so that the
        client learns why (C{no_application_protocol}) instead of seeing a
        bare close; the gate callback never runs.
        """
        clientContext = memoryClientContext()
        clientContext.set_alpn_protos([b"http/1.1"])
        client = memoryClient(clientContext)
        server = _Server(self.context)
        self.assertFalse(stepTLS(client))
        self.assertRaises(SSL.Error, server.receive, drainBIO(client))
        self.assertFalse(server.tls.handshakeDone)
        self.assertEqual(server.events, [])
        client.bio_write(server.takeWritten())
        error = self.assertRaises(SSL.Error, client.do_handshake)
        self.assertIn("no application protocol", str(error))
