# -*- test-case-name: tests.test_testing -*-
"""
Switches that make a test server misbehave the way real servers do, so that
code under test can show how it handles them, and the protocol, data channel
and TLS classes that carry them out.

Each switch is a field of L{Misbehaviour}; the classes here read the
server's current L{Misbehaviour} as they act, so a switch turned on between
two operations applies to the next one (session resumption: to the next
control connection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, interfaces
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps._datachannel import DataChannel
from txftps._dataconnection import DataConnection
from txftps.errors import FTPReplyError
from txftps.server import FTPSFactory, FTPSProtocol
from txftps.tls import ConnectionTLS, ServerTLS

_CONNECTION_DONE = Failure(ConnectionDone())


@dataclass(frozen=True)
class Misbehaviour:
    """
    How a test server misbehaves; the default misbehaves in no way.

    @ivar sessionResumption: C{False}: the server keeps no TLS session cache
        and issues no session tickets, so no data connection resumes the
        control connection's session (and the server does not require it),
        as with servers that never offer resumption. Applies to control
        connections made afterwards.
    @ivar truncateDownloadsAt: a download (C{RETR}) stops after this many
        bytes: the data connection closes without a TLS close_notify and the
        server replies 226 all the same, as broken servers do; only a client
        that insists on the close_notify, or compares sizes, notices.
    @ivar truncateUploadsAt: the server keeps the first this many bytes of an
        upload, closes the data connection without a TLS close_notify and
        replies 226, storing the short file, as a server that lost the end
        of an upload but believes it complete.
    @ivar slowDataChunk: downloads and listings leave in pieces of this
        many bytes, one every L{slowDataInterval} seconds (a slow or
        congested data connection); C{None} for full speed.
    @ivar slowDataInterval: seconds between two pieces.
    @ivar closeAfterCommands: after this many commands on a control
        connection (counted from its start), the next one is answered
        C{421} and the connection closes (a server shutting down, or an
        administrator's kick).
    @ivar refusePassive: C{PASV} and C{EPSV} are answered C{425} (a server
        whose passive ports are exhausted or firewalled).
    """

    sessionResumption: bool = True
    truncateDownloadsAt: int | None = None
    truncateUploadsAt: int | None = None
    slowDataChunk: int | None = None
    slowDataInterval: float = 0.1
    closeAfterCommands: int | None = None
    refusePassive: bool = False


class _NoResumptionTLS(ServerTLS):
    """
    Server TLS that never resumes a session: no session cache, no tickets.
    """

    def makeContext(self) -> SSL.Context:
        context = super().makeContext()
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.set_options(SSL.OP_NO_TICKET)
        return context


def withoutResumption(tls: ServerTLS) -> ServerTLS:
    """
    The same certificate and key, never resuming a TLS session.
    """
    return _NoResumptionTLS(tls.chain, tls.key, tls.clientCAs, tls.clientCertificates)


@implementer(interfaces.IConsumer)
class _Collector:
    """
    Collects all of a download (pulling from a non-streaming producer).
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        while not streaming and self._producer is producer:
            before = len(self.chunks)
            producer.resumeProducing()
            if len(self.chunks) == before and self._producer is producer:
                break

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


class _MisbehavingConnection(DataConnection):
    """
    A data connection that truncates, trickles or both, as the server's
    L{Misbehaviour} says.
    """

    _channel: _MisbehavingChannel

    def __init__(self, channel: DataChannel, context: ConnectionTLS | None, **kwargs: Any) -> None:
        super().__init__(channel, context, **kwargs)
        self._cut = False
        self._pacer: interfaces.IDelayedCall | None = None

    @property
    def _misbehaviour(self) -> Misbehaviour:
        return self._channel.misbehaviour

    # downloads and listings

    def sendFile(self, readFile: Any) -> defer.Deferred[None]:
        misbehaviour = self._misbehaviour
        limit = misbehaviour.truncateDownloadsAt
        if limit is None and misbehaviour.slowDataChunk is None:
            return super().sendFile(readFile)
        self._sendDone = defer.Deferred()
        self._watchStalls()
        collector = _Collector()
        d = readFile.send(collector)
        d.addCallbacks(lambda _: self._replay(b"".join(collector.chunks), limit), self._sendFailed)
        return self._sendDone

    def sendBytes(self, data: bytes) -> defer.Deferred[None]:
        if self._misbehaviour.slowDataChunk is None:
            return super().sendBytes(data)
        self._sendDone = defer.Deferred()
        self._watchStalls()
        self._replay(data, None)
        return self._sendDone

    def _replay(self, data: bytes, limit: int | None) -> None:
        if limit is not None:
            data = data[:limit]
        chunk = self._misbehaviour.slowDataChunk or len(data) or 1
        interval = self._misbehaviour.slowDataInterval

        def step(offset: int) -> None:
            self._pacer = None
            if self._lost:
                return
            piece = data[offset : offset + chunk]
            if piece:
                self.write(piece)
            if offset + chunk < len(data):
                self._pacer = self._channel.clock.callLater(interval, step, offset + chunk)
            elif limit is not None:
                self._closeWithoutNotify()
            else:
                self.finish()

        step(0)

    def _closeWithoutNotify(self) -> None:
        """
        Close TCP after what was written, with no close_notify before it.
        """
        self._finishing = True
        self._cut = True
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        if self._pacer is not None and self._pacer.active():
            self._pacer.cancel()
        self._pacer = None
        super().connectionLost(reason)

    # uploads

    def receiveInto(self, consumer: interfaces.IConsumer) -> defer.Deferred[None]:
        limit = self._misbehaviour.truncateUploadsAt
        if limit is None:
            return super().receiveInto(consumer)
        return super().receiveInto(
            _TruncatingSink(consumer, limit, lambda: self._truncateUpload(limit))
        )

    def _truncateUpload(self, limit: int) -> None:
        if self._uploadDone is None:
            return
        d, self._uploadDone = self._uploadDone, None
        self._cut = True
        # What was kept, not what arrived in the last record.
        self.bytesReceived = limit
        self._releaseSink()
        self._closeWithoutNotify()
        d.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if self._cut:
            return
        super().dataReceived(data)


@implementer(interfaces.IConsumer)
class _TruncatingSink:
    """
    Passes the first C{limit} bytes of an upload on, then calls C{onLimit}.
    """

    def __init__(
        self, consumer: interfaces.IConsumer, limit: int, onLimit: Callable[[], None]
    ) -> None:
        self._consumer = consumer
        self._left = limit
        self._onLimit = onLimit

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._consumer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._consumer.unregisterProducer()

    def write(self, data: bytes) -> None:
        if self._left <= 0:
            return
        piece = data[: self._left]
        self._left -= len(piece)
        self._consumer.write(piece)
        if self._left <= 0:
            self._onLimit()


class _MisbehavingChannel(DataChannel):
    """
    A data channel whose connections misbehave as L{misbehaviour} says.

    @ivar misbehaviour: set by the protocol that owns the channel.
    """

    connectionFactory = _MisbehavingConnection
    misbehaviour = Misbehaviour()


class MisbehavingProtocol(FTPSProtocol):
    """
    An L{FTPSProtocol} that refuses passive mode or closes with 421 when its
    factory's L{Misbehaviour} says so.
    """

    dataChannelFactory = _MisbehavingChannel
    factory: _TestFactory

    def __init__(self) -> None:
        super().__init__()
        self._commandCount = 0

    @property
    def misbehaviour(self) -> Misbehaviour:
        """
        The server's current misbehaviour.
        """
        return self.factory.misbehaviour

    def connectionMade(self) -> None:
        super().connectionMade()
        if isinstance(self.dataChannel, _MisbehavingChannel):
            self.dataChannel.misbehaviour = self.misbehaviour
        self.factory.sessionStarted(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.factory.sessionEnded(self)

    def _runLine(self, line: bytes) -> None:
        if isinstance(self.dataChannel, _MisbehavingChannel):
            self.dataChannel.misbehaviour = self.misbehaviour
        command, _ = self._parse(line)
        if not command:
            super()._runLine(line)
            return
        self._commandCount += 1
        limit = self.misbehaviour.closeAfterCommands
        if limit is not None:
            if self._commandCount > limit:
                self.observer.commandReceived(self.peerAddress, command, "")
                self.reply(421, "Service not available, closing control connection.")
                self._close()
                return
        super()._runLine(line)

    def ftp_PASV(self, argument: str) -> None:
        self._refusePassive()
        super().ftp_PASV(argument)

    def ftp_EPSV(self, argument: str) -> None:
        self._refusePassive()
        super().ftp_EPSV(argument)

    def _refusePassive(self) -> None:
        if self.misbehaviour.refusePassive:
            raise FTPReplyError(425, "Can't open passive connection.")


class _TestFactory(FTPSFactory):
    """
    An L{FTPSFactory} whose protocols misbehave on request and which knows
    its open sessions, so that the server can close them when it stops.
    """

    protocol = MisbehavingProtocol
    misbehaviour = Misbehaviour()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: set[MisbehavingProtocol] = set()
        self._drained: list[defer.Deferred[None]] = []

    def sessionStarted(self, session: MisbehavingProtocol) -> None:
        self.sessions.add(session)

    def sessionEnded(self, session: MisbehavingProtocol) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def closeSessions(self) -> defer.Deferred[None]:
        """
        Drop every open control connection (and with it its data
        connections); fires once all of them are gone.
        """
        d: defer.Deferred[None] = defer.Deferred()
        if not self.sessions:
            d.callback(None)
            return d
        self._drained.append(d)
        for session in list(self.sessions):
            session.transport.abortConnection()
        return d
