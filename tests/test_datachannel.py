"""
Tests for L{txftps._datachannel}: passive port ranges, the passive listener and
its gate, and transfers over L{DataConnection}.

Timer and gate logic runs on L{MemoryReactorClock} with L{StringTransport};
TLS data connections are driven by a pyOpenSSL client over memory BIOs. Only
L{LoopbackTests} uses real sockets (127.0.0.1).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error, interfaces, protocol
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from tests.support import (
    drainBIO,
    memoryClient,
    memoryClientContext,
    memoryHandshake,
    memoryServerTLS,
    readTLS,
    stepTLS,
)
from txftps._datachannel import DataChannel, PassivePortRange, sameHost
from txftps._dataconnection import DataConnection, TransferAborted
from txftps.errors import DataChannelRefused, FTPReplyError
from txftps.tls import ConnectionTLS


class _Port:
    """
    A listening port that remembers whether it was stopped.
    """

    def __init__(self, port: int, factory: protocol.Factory) -> None:
        self.port = port
        self.factory = factory
        self.stopped = False

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", self.port)

    def startListening(self) -> None:
        pass

    def stopListening(self) -> None:
        self.stopped = True


class _ListeningReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} whose listening ports record C{stopListening},
    and on which some ports are busy.

    @ivar ports: every L{_Port} handed out, in order.
    @ivar busy: port numbers whose C{listenTCP} raises L{CannotListenError}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[_Port] = []
        self.busy: set[int] = set()

    def listenTCP(  # type: ignore[override]
        self, port: int, factory: protocol.Factory, backlog: int = 50, interface: str = ""
    ) -> _Port:
        if port in self.busy:
            raise error.CannotListenError(interface, port, OSError("in use"))
        super().listenTCP(port, factory, backlog, interface)
        listening = _Port(port or 40000 + len(self.ports), factory)
        self.ports.append(listening)
        return listening


@implementer(interfaces.IConsumer)
class _Collector:
    """
    An L{IConsumer} that collects what is written to it.
    """

    def __init__(self) -> None:
        self.data = b""
        self.producer: Any = None
        self.registered = 0
        self.unregistered = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.registered += 1

    def unregisterProducer(self) -> None:
        self.producer = None
        self.unregistered += 1

    def write(self, data: bytes) -> None:
        self.data += data


def _peer(host: str = "127.0.0.1", port: int = 50001) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class PassivePortRangeTests(SynchronousTestCase):
    """
    L{PassivePortRange} validates its bounds and hands ports out round-robin.
    """

    def test_candidatesRoundRobin(self) -> None:
        """
        Each call lists every port once, starting one further than the last
        call, wrapping around.
        """
        ports = PassivePortRange(5000, 5002)
        self.assertEqual(ports.candidates(), [5000, 5001, 5002])
        self.assertEqual(ports.candidates(), [5001, 5002, 5000])
        self.assertEqual(ports.candidates(), [5002, 5000, 5001])
        self.assertEqual(ports.candidates(), [5000, 5001, 5002])

    def test_singlePort(self) -> None:
        """
        A one-port range always offers that port.
        """
        ports = PassivePortRange(7000, 7000)
        self.assertEqual(ports.candidates(), [7000])
        self.assertEqual(ports.candidates(), [7000])

    def test_bounds(self) -> None:
        """
        Port 0, ports above 65535 and an inverted range are refused; the
        extremes 1 and 65535 are accepted.
        """
        for low, high in [(0, 10), (-1, 10), (10, 5), (1, 65536), (70000, 70001)]:
            self.assertRaises(ValueError, PassivePortRange, low, high)
        self.assertEqual(PassivePortRange(1, 65535).candidates()[:2], [1, 2])
        self.assertEqual(PassivePortRange(65535, 65535).candidates(), [65535])


class SameHostTests(SynchronousTestCase):
    """
    L{sameHost} compares addresses as addresses.
    """

    def test_mappedIPv4(self) -> None:
        """
        An IPv4-mapped IPv6 address is the same host as its IPv4 address.
        """
        self.assertTrue(sameHost("::ffff:127.0.0.1", "127.0.0.1"))
        self.assertTrue(sameHost("127.0.0.1", "::ffff:127.0.0.1"))

    def test_differentHosts(self) -> None:
        """
        Different addresses are different hosts.
        """
        self.assertFalse(sameHost("127.0.0.2", "127.0.0.1"))
        self.assertFalse(sameHost("::ffff:127.0.0.2", "127.0.0.1"))
        self.assertFalse(sameHost("::1", "127.0.0.1"))

    def test_ipv6Spellings(self) -> None:
        """
        Two spellings of one IPv6 address are the same host.
        """
        self.assertTrue(sameHost("2001:db8::1", "2001:0db8:0:0::0001"))

    def test_emptyIsNotAHost(self) -> None:
        """
        An empty or non-IP host string matches no address.
        """
        self.assertFalse(sameHost("", "127.0.0.1"))
        self.assertFalse(sameHost("localhost", "127.0.0.1"))


class PassiveListenerTests(SynchronousTestCase):
    """
    L{DataChannel.listenPassive} and L{DataChannel.whenReady} on a memory
    reactor: timeouts, foreign hosts, protection mismatches.
    """

    def setUp(self) -> None:
        self.reactor = _ListeningReactor()
        self.channel = DataChannel(self.reactor, "127.0.0.1", timeout=30.0)

    def _connect(
        self, host: str = "127.0.0.1", context: SSL.Context | None = None
    ) -> tuple[DataConnection | None, StringTransport]:
        factory = self.reactor.tcpServers[-1][1]
        address = IPv6Address("TCP", host, 50001) if ":" in host else _peer(host)
        connection = factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        if connection is not None:
            connection.makeConnection(transport)
        return connection, transport

    def test_whenReadyBeforeListen(self) -> None:
        """
        Asking for the data connection before PASV/EPSV fails with 425.
        """
        failure = self.failureResultOf(self.channel.whenReady(False), FTPReplyError)
        self.assertEqual(failure.value.code, 425)
        self.assertFalse(self.channel.configured)

    def test_listenPassive(self) -> None:
        """
        C{listenPassive} listens on the given interface with a backlog of one
        and returns the port; the channel is then configured.
        """
        port = self.channel.listenPassive("127.0.0.1", None)
        self.assertEqual(port, self.reactor.ports[0].getHost().port)
        self.assertEqual(self.reactor.tcpServers[0][2:], (1, "127.0.0.1"))
        self.assertTrue(self.channel.configured)

    def test_rangeSkipsBusyPorts(self) -> None:
        """
        With a port range, a busy port is skipped for the next one.
        """
        self.reactor.busy.add(6000)
        channel = DataChannel(self.reactor, "127.0.0.1", portRange=PassivePortRange(6000, 6002))
        self.assertEqual(channel.listenPassive("127.0.0.1", None), 6001)

    def test_rangeExhausted(self) -> None:
        """
        When every port of the range is busy, C{listenPassive} raises 425 and
        the channel is not configured.
        """
        self.reactor.busy.update({6000, 6001})
        channel = DataChannel(self.reactor, "127.0.0.1", portRange=PassivePortRange(6000, 6001))
        error = self.assertRaises(FTPReplyError, channel.listenPassive, "127.0.0.1", None)
        self.assertEqual(error.code, 425)
        self.assertFalse(channel.configured)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_listenAgainClosesPrevious(self) -> None:
        """
        A second C{listenPassive} closes the first listener.
        """
        self.channel.listenPassive("127.0.0.1", None)
        self.channel.listenPassive("127.0.0.1", None)
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertFalse(self.reactor.ports[1].stopped)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)

    def test_peerConnectionReady(self) -> None:
        """
        A clear connection from the control peer's host makes C{whenReady}
        fire with it; the listener closes and the timeout is cancelled.
        """
        self.channel.listenPassive("127.0.0.1", None)
        d = self.channel.whenReady(False)
        self.assertNoResult(d)
        connection, _ = self._connect()
        self.assertIs(self.successResultOf(d), connection)
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_peerConnectionBeforeWhenReady(self) -> None:
        """
        A connection that arrived before C{whenReady} is handed out at once.
        """
        self.channel.listenPassive("127.0.0.1", None)
        connection, _ = self._connect()
        self.assertIs(self.successResultOf(self.channel.whenReady(False)), connection)

    def test_mappedControlPeer(self) -> None:
        """
        A control peer seen as C{::ffff:127.0.0.1} accepts a data connection
        from C{127.0.0.1}.
        """
        channel = DataChannel(self.reactor, "::ffff:127.0.0.1")
        channel.listenPassive("127.0.0.1", None)
        connection, _ = self._connect()
        self.assertIsInstance(connection, DataConnection)
        self.assertIs(self.successResultOf(channel.whenReady(False)), connection)

    def test_timeout(self) -> None:
        """
        With no connection, C{whenReady} fails with 425 after C{timeout}
        seconds, not before, and the listener is stopped.
        """
        self.channel.listenPassive("127.0.0.1", None)
        d = self.channel.whenReady(False)
        self.reactor.advance(29.9)
        self.assertNoResult(d)
        self.assertFalse(self.reactor.ports[0].stopped)
        self.reactor.advance(0.1)
        failure = self.failureResultOf(d, DataChannelRefused)
        self.assertEqual(failure.value.code, 425)
        self.assertTrue(self.reactor.ports[0].stopped)

    def test_timeoutWithoutWaiter(self) -> None:
        """
        The listener times out even when no transfer is waiting yet; a later
        C{whenReady} fails with 425 at once.
        """
        self.channel.listenPassive("127.0.0.1", None)
        self.reactor.advance(30)
        self.assertTrue(self.reactor.ports[0].stopped)
        failure = self.failureResultOf(self.channel.whenReady(False), DataChannelRefused)
        self.assertEqual(failure.value.code, 425)

    def test_foreignHost(self) -> None:
        """
        A connection from another host is refused (C{buildProtocol} returns
        C{None}), the listener is stopped, and the waiting transfer fails with
        425.
        """
        self.channel.listenPassive("127.0.0.1", None)
        d = self.channel.whenReady(False)
        connection, _ = self._connect("10.0.0.9")
        self.assertIsNone(connection)
        self.assertTrue(self.reactor.ports[0].stopped)
        failure = self.failureResultOf(d, DataChannelRefused)
        self.assertEqual(failure.value.code, 425)

    def test_foreignHostBeforeWhenReady(self) -> None:
        """
        A foreign connection before the transfer command burns the listener:
        the later C{whenReady} fails with 425, and a connection from the right
        host after that is refused too.
        """
        self.channel.listenPassive("127.0.0.1", None)
        foreign, _ = self._connect("10.0.0.9")
        self.assertIsNone(foreign)
        late, _ = self._connect("127.0.0.1")
        self.assertIsNone(late)
        failure = self.failureResultOf(self.channel.whenReady(False), DataChannelRefused)
        self.assertEqual(failure.value.code, 425)

    def test_secondConnectionRefused(self) -> None:
        """
        Only the first connection is accepted; a second one (already queued
        in the backlog) gets C{None}.
        """
        self.channel.listenPassive("127.0.0.1", None)
        first, _ = self._connect()
        second, _ = self._connect()
        self.assertIsInstance(first, DataConnection)
        self.assertIsNone(second)
        self.assertIs(self.successResultOf(self.channel.whenReady(False)), first)

    def test_protectionMismatchAfterConnect(self) -> None:
        """
        A clear connection is refused (425, connection dropped) when the
        transfer requires protection.
        """
        self.channel.listenPassive("127.0.0.1", None)
        connection, transport = self._connect()
        failure = self.failureResultOf(self.channel.whenReady(True), DataChannelRefused)
        self.assertEqual(failure.value.code, 425)
        self.assertTrue(transport.disconnecting)

    def test_protectionMismatchBeforeConnect(self) -> None:
        """
        A transfer that requires protection and is already waiting when a
        clear connection arrives (C{PROT C}, C{PASV}, C{PROT P}, C{RETR}) is
        refused too: it must never get a clear connection.
        """
        self.channel.listenPassive("127.0.0.1", None)
        d = self.channel.whenReady(True)
        connection, transport = self._connect()
        failure = self.failureResultOf(d, DataChannelRefused)
        self.assertEqual(failure.value.code, 425)
        self.assertTrue(transport.disconnecting)

    def test_closedBeforeTransfer(self) -> None:
        """
        A data connection that closes before its transfer starts makes the
        transfer fail with 425.
        """
        self.channel.listenPassive("127.0.0.1", None)
        connection, _ = self._connect()
        assert connection is not None
        connection.connectionLost(Failure(error.ConnectionDone()))
        failure = self.failureResultOf(self.channel.whenReady(False), DataChannelRefused)
        self.assertEqual(failure.value.code, 425)

    def test_resetFailsWaiter(self) -> None:
        """
        C{reset} fails a waiting transfer with 425, stops the listener and
        cancels the timer.
        """
        self.channel.listenPassive("127.0.0.1", None)
        d = self.channel.whenReady(False)
        self.channel.reset()
        failure = self.failureResultOf(d, DataChannelRefused)
        self.assertEqual(failure.value.code, 425)
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(self.channel.configured)


class ClearTransferTests(SynchronousTestCase):
    """
    Uploads and downloads over a clear L{DataConnection} on a
    L{StringTransport}.
    """

    def setUp(self) -> None:
        self.reactor = _ListeningReactor()
        self.channel = DataChannel(self.reactor, "127.0.0.1")
        self.channel.listenPassive("127.0.0.1", None)
        factory = self.reactor.tcpServers[-1][1]
        connection = factory.buildProtocol(_peer())
        assert isinstance(connection, DataConnection)
        self.connection = connection
        self.transport = StringTransport(peerAddress=_peer())
        connection.makeConnection(self.transport)
        self.assertIs(self.successResultOf(self.channel.whenReady(False)), connection)

    def test_uploadCompleteOnCleanClose(self) -> None:
        """
        C{receiveInto} writes every byte into the consumer and fires when the
        peer closes cleanly; the consumer's producer is unregistered.
        """
        consumer = _Collector()
        d = self.connection.receiveInto(consumer)
        self.assertIs(consumer.producer, self.transport)
        self.connection.dataReceived(b"abc")
        self.connection.dataReceived(b"def")
        self.assertNoResult(d)
        self.connection.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(consumer.data, b"abcdef")
        self.assertEqual((consumer.registered, consumer.unregistered), (1, 1))
        self.assertEqual(self.connection.bytesReceived, 6)

    def test_uploadAbortedOnConnectionLost(self) -> None:
        """
        An upload whose connection is lost (not closed cleanly) fails with
        L{TransferAborted} 426.
        """
        consumer = _Collector()
        d = self.connection.receiveInto(consumer)
        self.connection.dataReceived(b"abc")
        self.connection.connectionLost(Failure(error.ConnectionLost()))
        failure = self.failureResultOf(d, TransferAborted)
        self.assertEqual(failure.value.code, 426)
        self.assertEqual(consumer.unregistered, 1)

    def test_receiveIntoAfterLost(self) -> None:
        """
        C{receiveInto} on a connection that was already lost (the write file
        took a while to open) returns a Deferred that fails with
        L{TransferAborted} 426.
        """
        self.connection.dataReceived(b"some")
        self.connection.connectionLost(Failure(error.ConnectionLost()))
        upload = self.connection.receiveInto(_Collector())
        self.assertIsInstance(upload, defer.Deferred)
        self.assertEqual(self.failureResultOf(upload, TransferAborted).value.code, 426)

    def test_dataBeforeReceiveIntoBuffered(self) -> None:
        """
        Bytes that arrive before C{receiveInto} are kept (and the transport
        paused), then handed to the consumer first.
        """
        self.connection.dataReceived(b"early")
        self.assertEqual(self.transport.producerState, "paused")
        consumer = _Collector()
        self.connection.receiveInto(consumer)
        self.assertEqual(consumer.data, b"early")
        self.assertEqual(self.transport.producerState, "producing")
        self.connection.dataReceived(b" late")
        self.assertEqual(consumer.data, b"early late")

    def test_sendBytes(self) -> None:
        """
        C{sendBytes} writes the bytes, then closes; it fires once the
        connection closed.
        """
        d = self.connection.sendBytes(b"listing\r\n")
        self.assertEqual(self.transport.value(), b"listing\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(d)
        self.connection.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.connection.bytesSent, 9)

    def test_sendBytesEmpty(self) -> None:
        """
        An empty listing writes nothing and closes.
        """
        self.connection.sendBytes(b"")
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)

    def test_sendBytesPeerReset(self) -> None:
        """
        When the peer resets the connection before our close completed
        (C{ConnectionLost}, not C{ConnectionDone}), the download is reported
        aborted (426), not complete.
        """
        d = self.connection.sendBytes(b"x" * 100000)
        self.connection.connectionLost(Failure(error.ConnectionLost()))
        failure = self.failureResultOf(d, TransferAborted)
        self.assertEqual(failure.value.code, 426)

    def test_sendFile(self) -> None:
        """
        C{sendFile} sends an L{IReadFile} to the connection, then closes.
        """

        class ReadFile:
            def send(self, consumer: Any) -> defer.Deferred[None]:
                consumer.write(b"file ")
                consumer.write(b"bytes")
                return defer.succeed(None)

        d = self.connection.sendFile(ReadFile())
        self.assertEqual(self.transport.value(), b"file bytes")
        self.assertTrue(self.transport.disconnecting)
        self.connection.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))


class TLSTransferTests(SynchronousTestCase):
    """
    Transfers over a TLS L{DataConnection} on a L{StringTransport}, against
    a pyOpenSSL client: the gate, complete and truncated uploads, downloads.
    """

    def setUp(self) -> None:
        self.tls, _ = memoryServerTLS()
        self.options = self.tls.optionsForConnection()
        self.clientContext = memoryClientContext()
        self.keep: list[object] = []
        self._sent = 0

    def _control(self, options: ConnectionTLS | None = None) -> SSL.Session:
        """
        A control-connection handshake; return the client's session.
        """
        server = (options or self.options).newConnection()
        server.set_accept_state()
        client = memoryClient(self.clientContext)
        memoryHandshake(server, client)
        self.keep.extend([server, client])
        return client.get_session()

    def _connect(
        self,
        requireResumption: bool,
        session: SSL.Session | None,
        requireUploadCloseNotify: bool = True,
    ) -> tuple[DataChannel, DataConnection, SSL.Connection]:
        self.reactor = _ListeningReactor()
        channel = DataChannel(
            self.reactor,
            "127.0.0.1",
            requireResumption=requireResumption,
            requireUploadCloseNotify=requireUploadCloseNotify,
        )
        channel.listenPassive("127.0.0.1", self.options)
        connection = self.reactor.tcpServers[-1][1].buildProtocol(_peer())
        assert isinstance(connection, DataConnection)
        self.transport = StringTransport(peerAddress=_peer())
        connection.makeConnection(self.transport)
        client = memoryClient(self.clientContext, session)
        self.keep.append(client)
        return channel, connection, client

    def _toClient(self, client: SSL.Connection) -> None:
        value = self.transport.value()
        new, self._sent = value[self._sent :], len(value)
        if new:
            client.bio_write(new)

    def _handshake(
        self, connection: DataConnection, client: SSL.Connection, clientData: bytes = b""
    ) -> None:
        sent = False
        for _ in range(10):
            done = stepTLS(client)
            if done and clientData and not sent:
                client.send(clientData)
                sent = True
            data = drainBIO(client)
            if data:
                connection.dataReceived(data)
            self._toClient(client)
            if done and connection.tls is not None and connection.tls.handshakeDone:
                return
        raise AssertionError("handshake did not complete")

    def test_readyAfterHandshake(self) -> None:
        """
        A TLS data connection is ready only once its handshake completed.
        """
        channel, connection, client = self._connect(False, None)
        d = channel.whenReady(True)
        stepTLS(client)
        connection.dataReceived(drainBIO(client))
        self.assertNoResult(d)
        self._toClient(client)
        self._handshake(connection, client)
        self.assertIs(self.successResultOf(d), connection)
        self.assertTrue(connection.protected)

    def test_resumedSessionPasses(self) -> None:
        """
        With resumption required, a data connection resuming the control
        connection's session is ready.
        """
        session = self._control()
        channel, connection, client = self._connect(True, session)
        d = channel.whenReady(True)
        self._handshake(connection, client)
        self.assertIs(self.successResultOf(d), connection)

    def test_notResumedRefused(self) -> None:
        """
        With resumption required, a full handshake is refused with 522, the
        data that came with the client's Finished is not accepted, and the
        connection is dropped.
        """
        channel, connection, client = self._connect(True, None)
        d = channel.whenReady(True)
        self._handshake(connection, client, b"smuggled upload")
        failure = self.failureResultOf(d, DataChannelRefused)
        self.assertEqual(failure.value.code, 522)
        self.assertEqual(connection.bytesReceived, 0)
        self.assertTrue(self.transport.disconnecting)

    def test_otherControlSessionRefused(self) -> None:
        """
        A session of another control connection's context does not pass the
        gate (522).
        """
        other = self.tls.optionsForConnection()
        session = self._control(other)
        channel, connection, client = self._connect(True, session)
        d = channel.whenReady(True)
        self._handshake(connection, client)
        self.assertEqual(self.failureResultOf(d, DataChannelRefused).value.code, 522)

    def test_garbageHandshakeRefused(self) -> None:
        """
        A failed TLS handshake fails the transfer with 522 and aborts the
        connection.
        """
        channel, connection, client = self._connect(False, None)
        d = channel.whenReady(True)
        connection.dataReceived(b"PLAINTEXT, NOT TLS\r\n")
        self.assertEqual(self.failureResultOf(d, DataChannelRefused).value.code, 522)
        self.assertTrue(self.transport.disconnecting)

    def test_clearTransferOnProtectedConnection(self) -> None:
        """
        A TLS connection is refused (425) for a transfer that expects a clear
        one.
        """
        channel, connection, client = self._connect(False, None)
        self._handshake(connection, client)
        failure = self.failureResultOf(channel.whenReady(False), DataChannelRefused)
        self.assertEqual(failure.value.code, 425)

    def test_uploadCompleteOnCloseNotify(self) -> None:
        """
        A TLS upload completes when the client's close_notify arrives: every
        byte reached the consumer, we answer with our own close_notify and
        close the connection.
        """
        channel, connection, client = self._connect(False, None)
        d = channel.whenReady(True)
        self._handshake(connection, client, b"first ")
        self.successResultOf(d)
        consumer = _Collector()
        upload = connection.receiveInto(consumer)
        client.sendall(b"second " * 5000)
        connection.dataReceived(drainBIO(client))
        self.assertNoResult(upload)
        client.shutdown()
        connection.dataReceived(drainBIO(client))
        self.assertIsNone(self.successResultOf(upload))
        self.assertEqual(consumer.data, b"first " + b"second " * 5000)
        self.assertTrue(self.transport.disconnecting)
        self._toClient(client)
        self.assertRaises(SSL.ZeroReturnError, readTLS, client)

    def test_uploadTruncatedWithoutCloseNotify(self) -> None:
        """
        A TLS upload whose TCP connection ends cleanly but without a
        close_notify is truncated: L{TransferAborted} 426.
        """
        channel, connection, client = self._connect(False, None)
        self._handshake(connection, client)
        self.successResultOf(channel.whenReady(True))
        consumer = _Collector()
        upload = connection.receiveInto(consumer)
        client.sendall(b"partial")
        connection.dataReceived(drainBIO(client))
        connection.connectionLost(Failure(error.ConnectionDone()))
        failure = self.failureResultOf(upload, TransferAborted)
        self.assertEqual(failure.value.code, 426)
        self.assertEqual(consumer.data, b"partial")

    def test_uploadTruncatedOnConnectionLost(self) -> None:
        """
        A TLS upload whose connection is lost without a close_notify fails
        with 426.
        """
        channel, connection, client = self._connect(False, None)
        self._handshake(connection, client)
        self.successResultOf(channel.whenReady(True))
        upload = connection.receiveInto(_Collector())
        connection.connectionLost(Failure(error.ConnectionLost()))
        self.assertEqual(self.failureResultOf(upload, TransferAborted).value.code, 426)

    def _optionalUpload(self, reason: Failure, cut: int = 0) -> tuple[defer.Deferred[None], bytes]:
        """
        With C{requireUploadCloseNotify=False}: an upload of three records,
        all but their last C{cut} raw bytes delivered, then the connection
        lost with C{reason}, no close_notify.

        @return: the upload's Deferred and what reached the consumer.
        """
        channel, connection, client = self._connect(False, None, requireUploadCloseNotify=False)
        self._handshake(connection, client)
        self.successResultOf(channel.whenReady(True))
        consumer = _Collector()
        upload = connection.receiveInto(consumer)
        for data in (b"one ", b"two ", b"three"):
            client.sendall(data)
        wire = drainBIO(client)
        connection.dataReceived(wire[: len(wire) - cut])
        connection.connectionLost(reason)
        return upload, consumer.data

    def test_optionalCleanCloseCompletes(self) -> None:
        """
        Without a required close_notify, a TLS upload whose TCP connection
        ends cleanly after a complete record completes with every byte.
        """
        upload, data = self._optionalUpload(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(upload))
        self.assertEqual(data, b"one two three")

    def test_optionalCutInsideRecord(self) -> None:
        """
        Without a required close_notify, a TLS upload whose clean TCP close
        comes inside a record (the last byte missing) is still truncated:
        426, with the complete records' bytes delivered.
        """
        upload, data = self._optionalUpload(Failure(error.ConnectionDone()), cut=1)
        self.assertEqual(self.failureResultOf(upload, TransferAborted).value.code, 426)
        self.assertEqual(data, b"one two ")

    def test_optionalReset(self) -> None:
        """
        Without a required close_notify, a TLS upload whose connection is
        lost (a reset) after complete records is still truncated: 426.
        """
        upload, _ = self._optionalUpload(Failure(error.ConnectionLost()))
        self.assertEqual(self.failureResultOf(upload, TransferAborted).value.code, 426)

    def test_closeNotifyBeforeReceiveInto(self) -> None:
        """
        A whole TLS upload (data and close_notify) that arrives before
        C{receiveInto} is delivered, and C{receiveInto} returns a Deferred
        that has already fired (the transfer code awaits it).
        """
        channel, connection, client = self._connect(False, None)
        self._handshake(connection, client)
        self.successResultOf(channel.whenReady(True))
        client.sendall(b"small file")
        client.shutdown()
        connection.dataReceived(drainBIO(client))
        consumer = _Collector()
        upload = connection.receiveInto(consumer)
        self.assertEqual(consumer.data, b"small file")
        self.assertIsInstance(upload, defer.Deferred)
        self.assertIsNone(self.successResultOf(upload))

    def test_sendBytes(self) -> None:
        """
        C{sendBytes} on a TLS connection sends the bytes, then our
        close_notify, then closes.
        """
        channel, connection, client = self._connect(False, None)
        self._handshake(connection, client)
        self.successResultOf(channel.whenReady(True))
        d = connection.sendBytes(b"listing line\r\n")
        self.assertTrue(self.transport.disconnecting)
        self._toClient(client)
        self.assertEqual(client.recv(1000), b"listing line\r\n")
        self.assertRaises(SSL.ZeroReturnError, readTLS, client)
        connection.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))


class LoopbackTests(TestCase):
    """
    L{DataChannel} with real sockets on 127.0.0.1.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    def test_busyRange(self) -> None:
        """
        When the only port of the range is taken, C{listenPassive} raises
        L{FTPReplyError} 425.
        """
        occupied = self.reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        self.addCleanup(occupied.stopListening)
        port = occupied.getHost().port
        channel = DataChannel(self.reactor, "127.0.0.1", portRange=PassivePortRange(port, port))
        error = self.assertRaises(FTPReplyError, channel.listenPassive, "127.0.0.1", None)
        self.assertEqual(error.code, 425)
        self.assertFalse(channel.configured)

    @defer.inlineCallbacks
    def test_clearConnectionAndDownload(self) -> Any:
        """
        A connection from 127.0.0.1 to the passive port makes C{whenReady}
        fire; C{sendBytes} delivers the bytes and closes; the listener no
        longer accepts connections.
        """
        channel = DataChannel(self.reactor, "127.0.0.1", timeout=10)
        self.addCleanup(channel.reset)
        port = channel.listenPassive("127.0.0.1", None)
        ready = channel.whenReady(False)

        received: list[bytes] = []
        closed: defer.Deferred[None] = defer.Deferred()

        class Client(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: Any = None) -> None:
                closed.callback(None)

        creator = protocol.ClientCreator(self.reactor, Client)
        yield creator.connectTCP("127.0.0.1", port)
        connection = yield ready
        self.assertIsInstance(connection, DataConnection)
        sent = connection.sendBytes(b"hello over loopback\r\n")
        yield closed
        yield sent
        self.assertEqual(b"".join(received), b"hello over loopback\r\n")
        yield self.assertFailure(
            protocol.ClientCreator(self.reactor, protocol.Protocol).connectTCP("127.0.0.1", port),
            error.ConnectionRefusedError,
        )
