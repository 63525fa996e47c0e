"""
Tests for the bulk path of downloads on a L{DataConnection}: while the
transport's write buffer is empty, a pull producer's pieces go straight to
the socket, several per reactor iteration up to a bound; whatever the socket
refuses waits in the transport, in order, and the transport resumes the
download once it wrote it.

L{PumpTests} drive it with a fake socket under a L{StringTransport};
L{LoopbackPumpTests} use real sockets on 127.0.0.1, the real reactor and a
TLS client over memory BIOs.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error, protocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import drainBIO, memoryClient, memoryClientContext, memoryServerTLS
from tests.test_datachannel import _ListeningReactor
from txftps import _dataconnection
from txftps._datachannel import DataChannel
from txftps._dataconnection import DataConnection, TransferAborted
from txftps.storage import _ChunkedFileSender, _FileReader

_PIECE = _ChunkedFileSender.CHUNK_SIZE


class _Wire:
    """
    The bytes that left, in the order they left: sent on the socket, or
    written out by the transport when it drained.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def value(self) -> bytes:
        return b"".join(self.chunks)


class _Socket:
    """
    A socket whose C{send} takes at most C{room} bytes in all (C{None}:
    any amount), onto the wire; with no room left it raises C{EAGAIN}.

    @ivar sends: how many C{send} calls took bytes.
    """

    def __init__(self, wire: _Wire) -> None:
        self.wire = wire
        self.room: int | None = None
        self.sends = 0
        self.taken = 0

    def send(self, data: Any) -> int:
        count = len(data) if self.room is None else min(self.room, len(data))
        if data and not count:
            raise BlockingIOError(errno.EAGAIN, "send buffer full")
        if self.room is not None:
            self.room -= count
        self.wire.chunks.append(bytes(data[:count]))
        self.sends += 1
        self.taken += count
        return count


class _PullTransport(StringTransport):
    """
    A L{StringTransport} that resumes a pull producer as Twisted's TCP
    transport does: when it is registered, and whenever L{drain} emptied
    the write buffer.
    """

    def __init__(self, wire: _Wire) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 50001))
        self.wire = wire
        self.aborted = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        if not streaming:
            producer.resumeProducing()

    def abortConnection(self) -> None:
        self.aborted = True

    def drain(self) -> int:
        """
        Write out the buffer (onto the wire), then resume a pull producer.

        @return: how many bytes were written out.
        """
        data = self.value()
        self.clear()
        if data:
            self.wire.chunks.append(data)
        if self.producer is not None and not self.streaming:
            self.producer.resumeProducing()
        return len(data)


class PumpTests(SynchronousTestCase):
    """
    A clear download on a L{DataConnection} whose transport lets it send on
    its socket (a fake one).
    """

    def setUp(self) -> None:
        self.reactor = _ListeningReactor()
        self.channel = DataChannel(self.reactor, "127.0.0.1")
        self.channel.listenPassive("127.0.0.1", None)
        connection = self.reactor.tcpServers[-1][1].buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 50001)
        )
        assert isinstance(connection, DataConnection)
        self.connection = connection
        self.wire = _Wire()
        self.socket = _Socket(self.wire)
        self.transport = _PullTransport(self.wire)
        self.patch(
            _dataconnection,
            "directSocket",
            lambda transport, protocol: self.socket if transport is self.transport else None,
        )
        connection.makeConnection(self.transport)

    def _send(self, size: int) -> tuple[bytes, defer.Deferred[None]]:
        blob = os.urandom(size)
        return blob, self.connection.sendFile(_FileReader(io.BytesIO(blob)))

    def _finish(self, d: defer.Deferred[None]) -> None:
        self.assertTrue(self.transport.disconnecting)
        self.connection.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))

    def test_straightToTheSocket(self) -> None:
        """
        The first piece waits in the transport (what the buffer held before
        is unknown); once the transport wrote it, every further piece goes
        to the socket in one C{send} each, all in the same call, and the
        connection closes after the last: the wire carries the file
        byte-exact.
        """
        blob, d = self._send(3 * _PIECE + 5)
        self.assertEqual(self.transport.value(), blob[:_PIECE])
        self.assertEqual(self.socket.sends, 0)
        self.assertEqual(self.transport.drain(), _PIECE)
        self.assertEqual(self.socket.sends, 3)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.wire.value(), blob)
        self.assertEqual(self.connection.bytesSent, len(blob))
        self._finish(d)

    def test_burstBounded(self) -> None:
        """
        One resumption sends at most C{_BURST} bytes on the socket; the next
        piece waits in the transport, so the reactor runs (other
        connections get their turn) before more goes out; the download goes
        on each time the transport drained, and ends byte-exact.
        """
        burst = _dataconnection._BURST
        blob, d = self._send(2 * burst + 3 * _PIECE)
        self.transport.drain()
        self.assertEqual(self.socket.taken, burst)
        self.assertEqual(len(self.transport.value()), _PIECE)
        self.assertEqual(self.transport.drain(), _PIECE)
        self.assertEqual(self.socket.taken, 2 * burst)
        self.assertEqual(len(self.transport.value()), _PIECE)
        self.transport.drain()
        self.assertEqual(self.wire.value(), blob)
        self._finish(d)

    def test_socketTakesPart(self) -> None:
        """
        What the socket refuses of a piece waits in the transport and
        nothing more is produced or sent on the socket until the transport
        drained: bytes leave in order.
        """
        blob, d = self._send(4 * _PIECE)
        self.socket.room = _PIECE + 1000
        self.transport.drain()
        self.assertEqual(self.socket.taken, _PIECE + 1000)
        self.assertEqual(self.transport.value(), blob[2 * _PIECE + 1000 : 3 * _PIECE])
        self.assertEqual(self.connection.bytesSent, 3 * _PIECE)
        self.socket.room = None
        self.transport.drain()
        self.assertEqual(self.wire.value(), blob)
        self._finish(d)

    def test_socketFull(self) -> None:
        """
        A socket that takes nothing (C{EAGAIN}) leaves the whole piece to
        the transport.
        """
        blob, d = self._send(3 * _PIECE)
        self.socket.room = 0
        self.transport.drain()
        self.assertEqual(self.transport.value(), blob[_PIECE : 2 * _PIECE])
        self.socket.room = None
        self.transport.drain()
        self.assertEqual(self.wire.value(), blob)
        self._finish(d)

    def test_brokenSocket(self) -> None:
        """
        A socket C{send} that fails (the peer reset) leaves the piece to
        the transport, which meets the error itself.
        """

        def broken(data: Any) -> int:
            raise ConnectionResetError(errno.ECONNRESET, "reset")

        blob, d = self._send(3 * _PIECE)
        self.socket.send = broken  # type: ignore[method-assign]
        self.transport.drain()
        self.assertEqual(self.transport.value(), blob[_PIECE : 2 * _PIECE])
        self.connection.connectionLost(Failure(error.ConnectionLost()))
        self.failureResultOf(d, TransferAborted)

    def test_nothingDirectAfterAbort(self) -> None:
        """
        After C{abort} (an C{ABOR}, a stall), nothing more goes to the
        socket, even if the download is resumed before the connection is
        gone.
        """
        self._send(3 * _PIECE)
        self.connection.abort()
        self.assertTrue(self.transport.aborted)
        self.transport.drain()
        self.assertEqual(self.socket.sends, 0)

    def test_streamingProducerUntouched(self) -> None:
        """
        A streaming producer is registered with the transport itself.
        """
        producer = object()
        self.connection.registerProducer(producer, True)
        self.assertIs(self.transport.producer, producer)
        self.connection.unregisterProducer()
        self.assertIsNone(self.transport.producer)

    def test_noSocket(self) -> None:
        """
        Without a socket to send on (another transport, a wrapped
        protocol), a download goes through the transport only.
        """
        self.socket = None  # type: ignore[assignment]
        blob, d = self._send(3 * _PIECE)
        sent = b""
        for _ in range(4):
            sent += self.transport.value()
            self.transport.drain()
        self.assertEqual(sent, blob)
        self._finish(d)


class _TLSReader(protocol.Protocol):
    """
    A TLS client (pyOpenSSL over memory BIOs) that reads a download.

    @ivar received: the plaintext so far.
    @ivar closeNotify: the server's close_notify arrived.
    @ivar closed: fires when the TCP connection is gone.
    @ivar onData: called after each piece of raw data was processed.
    """

    def __init__(self) -> None:
        self.tls = memoryClient(memoryClientContext())
        self.received = bytearray()
        self.closeNotify = False
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.onData: Any = None

    def connectionMade(self) -> None:
        self._step()

    def dataReceived(self, data: bytes) -> None:
        self.tls.bio_write(data)
        self._step()
        if self.onData is not None:
            self.onData()

    def _step(self) -> None:
        try:
            while True:
                self.received += self.tls.recv(1 << 20)
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self.closeNotify = True
        out = drainBIO(self.tls)
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.closed.callback(None)


class LoopbackPumpTests(TestCase):
    """
    TLS downloads over real sockets on 127.0.0.1.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.tls, _ = memoryServerTLS()

    @defer.inlineCallbacks
    def _connect(self) -> Any:
        """
        A TLS data connection and the client reading it.

        @return: C{(connection, client)}, the handshake done.
        """
        channel = DataChannel(self.reactor, "127.0.0.1", requireResumption=False, timeout=60)
        self.addCleanup(channel.reset)
        port = channel.listenPassive("127.0.0.1", self.tls.optionsForConnection())
        ready = channel.whenReady(True)
        client = _TLSReader()
        yield protocol.ClientCreator(self.reactor, lambda: client).connectTCP("127.0.0.1", port)
        connection = yield ready
        return connection, client

    @defer.inlineCallbacks
    def test_slowReader(self) -> Any:
        """
        A download much larger than the sockets' buffers to a client that
        stops reading after its first bytes: the server's socket refuses
        part of a piece, which waits in the transport; once the client
        reads again, everything arrives byte-exact, followed by the
        server's close_notify, and the transfer completes.
        """
        # No bound on a burst: only a full socket makes the pump write to
        # the transport again.
        self.patch(_dataconnection, "_BURST", 1 << 40)
        connection, client = yield self._connect()
        transport = connection.transport
        queued: list[int] = []
        write = transport.write

        def spy(data: bytes) -> None:
            queued.append(len(data))
            if len(queued) == 2:
                # The first piece always goes through the transport; a
                # second write is what the full socket refused.
                client.transport.resumeProducing()
            write(data)

        transport.write = spy

        def pauseOnce() -> None:
            client.onData = None
            client.transport.pauseProducing()

        client.onData = pauseOnce
        blob = os.urandom(32 * 1024 * 1024 + 12345)
        done = connection.sendFile(_FileReader(io.BytesIO(blob)))
        yield done
        yield client.closed
        self.assertGreaterEqual(len(queued), 2)
        self.assertEqual(len(client.received), len(blob))
        self.assertTrue(bytes(client.received) == blob, "the download arrived altered")
        self.assertTrue(client.closeNotify, "no close_notify after the last byte")

    @defer.inlineCallbacks
    def test_concurrentDownloads(self) -> Any:
        """
        Two downloads at once both progress: each client has received
        bytes before either download completed, and both arrive
        byte-exact, each ended by a close_notify.
        """
        (first, firstClient), (second, secondClient) = yield defer.gatherResults(
            [self._connect(), self._connect()]
        )
        blobs = [os.urandom(16 * 1024 * 1024), os.urandom(16 * 1024 * 1024 + 7)]
        seen: list[tuple[int, int]] = []

        def finished(_: object) -> None:
            seen.append((len(firstClient.received), len(secondClient.received)))

        downloads = [
            connection.sendFile(_FileReader(io.BytesIO(blob))).addCallback(finished)
            for connection, blob in zip((first, second), blobs, strict=True)
        ]
        yield defer.gatherResults(downloads)
        yield defer.gatherResults([firstClient.closed, secondClient.closed])
        self.assertEqual(len(seen), 2)
        self.assertTrue(all(seen[0]), f"one download starved the other: {seen[0]}")
        for client, blob in ((firstClient, blobs[0]), (secondClient, blobs[1])):
            self.assertTrue(bytes(client.received) == blob, "a download arrived altered")
            self.assertTrue(client.closeNotify)
