# -*- test-case-name: tests.test_datachannel,tests.test_bulk -*-
"""
One data connection: clear or with its own L{DataTLS} layer, the consumer a
download is sent to and the producer an upload is read from.

Its L{DataChannel<txftps._datachannel.DataChannel>} decides whether it may carry a transfer (the gate); the
connection itself knows when a transfer completed: a download when our last
byte and close_notify are out, an upload when the client's close_notify
arrived (TLS) or the TCP stream ended cleanly (clear). With
C{requireUploadCloseNotify} off on its channel, a TLS upload whose TCP stream
ended cleanly after a complete TLS record completes too (logged). Anything
else (a reset, a stream cut inside a record) is a L{TransferAborted} (426).
No byte either way for the channel's timeout aborts a transfer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from OpenSSL import SSL
from twisted.internet import defer, error, interfaces
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps._datatls import DataTLS
from txftps._internals import directSocket
from txftps.errors import DataChannelRefused, FTPReplyError
from txftps.tls import ConnectionTLS


class DataConnectionOwner(TypingProtocol):
    """
    What a L{DataConnection} tells, and asks of, the data channel that owns
    it (L{txftps._datachannel.DataChannel} provides it).
    """

    @property
    def clock(self) -> interfaces.IReactorTime:
        """
        The reactor's clock, for the stall timer.
        """

    @property
    def timeout(self) -> float:
        """
        Seconds a transfer may stall.
        """

    requireUploadCloseNotify: bool

    #: The TLS client context of server-to-server transfers, if allowed.
    serverToServerContext: SSL.Context | None

    @property
    def clientHost(self) -> str:
        """
        The address of the control connection's client (behind a balancer,
        the one its PROXY header named).
        """

    def connectionReady(self, connection: DataConnection) -> None:
        """
        C{connection} is ready for a transfer (a clear one connected, or a
        protected one finished its handshake and passed the gate).
        """

    def handshakeCompleted(self, connection: DataConnection, tls: DataTLS) -> bool:
        """
        The TLS handshake of C{connection} completed: may it carry a transfer?
        """

    def refuse(self, reason: FTPReplyError) -> None:
        """
        The data connection cannot be used: the transfer fails with
        C{reason}.
        """

    def connectionLost(self, connection: DataConnection) -> None:
        """
        C{connection} closed.
        """


_log = Logger()
_SOCKET_READ_SIZE = 256 * 1024
#: Plaintext a download sends straight to its socket in one reactor
#: iteration before it lets the reactor serve other connections.
_BURST = 4 * 1024 * 1024
_CONNECTION_DONE = Failure(error.ConnectionDone())


class TransferAborted(FTPReplyError):
    """
    The data connection ended before the transfer completed.
    """


@implementer(interfaces.IConsumer)
class DataConnection(Protocol):
    """
    One data connection, clear or with its own L{DataTLS} layer.

    It is also the L{IConsumer<twisted.internet.interfaces.IConsumer>} that
    an L{IReadFile<twisted.protocols.ftp.IReadFile>} sends a download to.

    @cvar tlsFactory: builds the TLS layer; replace to change how TLS runs.
    @ivar protected: the connection runs TLS.
    @ivar tls: the TLS layer, or C{None}.
    """

    tlsFactory: Callable[..., DataTLS] = DataTLS
    transport: Any

    def __init__(
        self,
        channel: DataConnectionOwner,
        context: ConnectionTLS | None,
        tlsClient: bool | None = False,
        fxp: bool = False,
    ) -> None:
        """
        @param channel: the data channel that owns the connection.
        @param context: the control connection's TLS for C{PROT P}, or
            C{None} for clear.
        @param tlsClient: run TLS as the client (C{True}), the server
            (C{False}), or wait for L{startTLS} to say which (C{None}:
            C{SSCN ON} decides per transfer command).
        @param fxp: the peer is another FTP server (a server-to-server
            transfer): it cannot resume this client's TLS session.
        """
        self._channel = channel
        self._context = context
        self._tlsClient = tlsClient
        self.fxp = fxp
        self.protected = context is not None
        self.tls: DataTLS | None = None
        self._beforeTLS: list[bytes] = []
        self._buffer: list[bytes] = []
        self._sink: interfaces.IConsumer | None = None
        self._uploadDone: defer.Deferred[None] | None = None
        self._sendDone: defer.Deferred[None] | None = None
        self._sending = False
        self._finishing = False
        self._lost = False
        # A failed handshake left its alert to deliver: close, never abort.
        self._alertPending = False
        self._stallTimer: interfaces.IDelayedCall | None = None
        self.bytesReceived = 0
        self.bytesSent = 0
        # A download's pull producer, while pumped by _pump.
        self._puller: Any = None
        # The socket raw bytes go straight to (inside _pump), or None.
        self._direct: Any = None
        self._pumpSocket: Any = None
        # The transport's write buffer may hold bytes (nothing may then
        # overtake them on the socket).
        self._queued = True
        self._aborted = False

    # stalls

    def _watchStalls(self) -> None:
        """
        Abort the transfer when no byte moves either way for the channel's
        timeout.
        """
        if self._lost:
            return
        if self._stallTimer is not None and self._stallTimer.active():
            self._stallTimer.reset(self._channel.timeout)
        else:
            self._stallTimer = self._channel.clock.callLater(self._channel.timeout, self._stalled)

    def _stalled(self) -> None:
        self._stallTimer = None
        _log.info(
            "data connection stalled for {seconds} s; aborting", seconds=self._channel.timeout
        )
        self.abort()

    def _activity(self) -> None:
        if self._stallTimer is not None and self._stallTimer.active():
            self._stallTimer.reset(self._channel.timeout)

    # Protocol

    def connectionMade(self) -> None:
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            # The last record of a transfer must not wait for an ACK.
            setNoDelay(True)
        if hasattr(self.transport, "bufferSize"):
            # Read bulk data in large pieces: every read costs a pass through
            # the reactor, the TLS layer and the file's write.
            self.transport.bufferSize = _SOCKET_READ_SIZE
        if self._context is None:
            self._channel.connectionReady(self)
        elif self._tlsClient is not None:
            self.startTLS(self._tlsClient)

    @property
    def tlsPending(self) -> bool:
        """
        A protected connection whose TLS role is not decided yet (see
        L{startTLS}).
        """
        return self._context is not None and self.tls is None

    def startTLS(self, client: bool) -> None:
        """
        Start TLS in the given role; bytes the peer sent before are fed to it.

        @param client: run TLS as the client.
        """
        if not self.tlsPending or self.transport is None:
            self._tlsClient = client
            return
        context = self._channel.serverToServerContext if client else self._context
        if context is None:
            self._channel.refuse(
                DataChannelRefused(522, "Server-to-server transfers are not allowed here.")
            )
            self.abort()
            return
        tls = self.tlsFactory(context, self._send, self._gate, client=client)
        self.tls = tls
        tls.start()
        early, self._beforeTLS = b"".join(self._beforeTLS), []
        if early:
            self.dataReceived(early)

    def _gate(self, tls: DataTLS) -> bool:
        return self._channel.handshakeCompleted(self, tls)

    def dataReceived(self, data: bytes) -> None:
        if self.tlsPending:
            # The TLS role is decided by the transfer command (SSCN ON).
            self._beforeTLS.append(data)
            return
        if self.tls is not None:
            try:
                data = self.tls.dataReceived(data)
            except SSL.Error as e:
                _log.info("data connection TLS failure: {error}", error=e)
                if not self.tls.handshakeDone:
                    # The handshake's alert tells the client why (for
                    # instance no_application_protocol): a clean close
                    # delivers it, an abort would drop it.
                    self._alertPending = True
                    self._channel.refuse(
                        DataChannelRefused(
                            522, "Data connection TLS handshake failed.", "tls_handshake"
                        )
                    )
                self.abort()
                return
        self._activity()
        if data:
            self.bytesReceived += len(data)
            if self._sink is not None:
                self._sink.write(data)
            else:
                self._buffer.append(data)
                self.transport.pauseProducing()
        if self.tls is not None and self.tls.closeNotifyReceived:
            self._completeUpload()

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        self._lost = True
        if self._stallTimer is not None and self._stallTimer.active():
            self._stallTimer.cancel()
        self._stallTimer = None
        self._channel.connectionLost(self)
        if self._uploadDone is not None:
            if self._streamComplete(reason):
                self._completeUpload()
            else:
                self._failUpload()
        if self._sendDone is not None:
            d, self._sendDone = self._sendDone, None
            if self._finishing and reason.check(error.ConnectionDone):
                d.callback(None)
            else:
                d.errback(TransferAborted(426, "Data connection closed; transfer aborted."))

    def _streamComplete(self, reason: Failure) -> bool:
        """
        Did the upload's stream, which ended with C{reason} before any
        close_notify, carry the whole upload? A clear stream: when it ended
        with a clean TCP close. A TLS stream: only when the channel does not
        require a close_notify, the TCP close was clean and it came after a
        complete TLS record. A clean TCP close of a TLS stream is logged with
        the verdict.
        """
        clean = reason.check(error.ConnectionDone) is not None
        if self.tls is None or not clean:
            return clean
        if not self.tls.atRecordBoundary:
            ending, verdict = "inside a TLS record", "truncated"
        elif self._channel.requireUploadCloseNotify:
            ending = "without close_notify"
            verdict = "truncated (--upload-close-notify optional would accept it)"
        else:
            ending, verdict = "without close_notify", "accepted (--upload-close-notify optional)"
        _log.info(
            "TLS upload from {host} ended {ending} (clean TCP close) after {count} bytes: {verdict}",
            # The control connection's client: this connection passed the
            # peer check, and behind a balancer its own peer is the balancer.
            host=self._channel.clientHost,
            ending=ending,
            count=self.bytesReceived,
            verdict=verdict,
        )
        return verdict.startswith("accepted")

    @property
    def transferring(self) -> bool:
        """
        A transfer is using this connection.
        """
        return self._uploadDone is not None or self._sendDone is not None

    @property
    def uploading(self) -> bool:
        """
        An upload is using this connection (L{receiveInto} runs).
        """
        return self._uploadDone is not None

    # Uploads

    def receiveInto(self, consumer: interfaces.IConsumer) -> defer.Deferred[None]:
        """
        Write everything the peer sends into C{consumer}.

        @return: fires when the upload completed (TLS: the peer's close_notify;
            clear: a clean TCP close), fails with L{TransferAborted} when it
            was cut short.
        """
        done: defer.Deferred[None] = defer.Deferred()
        self._uploadDone = done
        self._sink = consumer
        self._watchStalls()
        consumer.registerProducer(self.transport, True)
        buffered, self._buffer = self._buffer, []
        for chunk in buffered:
            consumer.write(chunk)
        if self.tls is not None and self.tls.closeNotifyReceived:
            self._completeUpload()
        elif self._lost:
            self._failUpload()
        else:
            self.transport.resumeProducing()
        return done

    def _completeUpload(self) -> None:
        if self._uploadDone is None:
            return
        d, self._uploadDone = self._uploadDone, None
        self._releaseSink()
        if self.tls is not None:
            self.tls.close()
        if not self._lost:
            self.transport.loseConnection()
        d.callback(None)

    def _failUpload(self) -> None:
        if self._uploadDone is None:
            return
        d, self._uploadDone = self._uploadDone, None
        self._releaseSink()
        d.errback(TransferAborted(426, "Upload truncated: the data connection closed early."))

    def _releaseSink(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.unregisterProducer()

    # Downloads: IConsumer for IReadFile.send

    def sendFile(self, readFile: Any) -> defer.Deferred[None]:
        """
        Send an L{IReadFile<twisted.protocols.ftp.IReadFile>}, then close with
        our close_notify.

        @return: fires once the connection closed after the last byte, fails
            with L{TransferAborted} when the peer went away first.
        """
        self._sendDone = defer.Deferred()
        self._watchStalls()
        d = readFile.send(self)
        d.addCallbacks(lambda _: self.finish(), self._sendFailed)
        return self._sendDone

    def sendBytes(self, data: bytes) -> defer.Deferred[None]:
        """
        Send C{data} (a listing), then close.
        """
        self._sendDone = defer.Deferred()
        self._watchStalls()
        if data:
            self.write(data)
        self.finish()
        return self._sendDone

    def _sendFailed(self, reason: Failure) -> None:
        _log.info("download failed: {reason}", reason=reason.getErrorMessage())
        if not self._lost:
            self.transport.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        A pull producer (a file being sent) is pumped by L{_pump} when the
        connection may send on its socket directly; anything else is the
        transport's.
        """
        sock = None if streaming else directSocket(self.transport, self)
        if sock is None:
            self.transport.registerProducer(producer, streaming)
            return
        self._puller = producer
        self._pumpSocket = sock
        self.transport.registerProducer(_Pump(self, producer), False)

    def unregisterProducer(self) -> None:
        self._puller = None
        self._pumpSocket = None
        self.transport.unregisterProducer()

    def _pump(self, drained: bool) -> None:
        """
        Pull pieces from the download's producer while the socket takes
        them whole, up to L{_BURST} bytes; the first piece past that, or
        what the socket refused, waits in the transport's buffer, which
        resumes us (C{drained}) once it is written. One reactor iteration
        then carries many pieces, each in one C{send}, and the reactor still
        serves other connections between bursts.
        """
        if drained:
            self._queued = False
        producer = self._puller
        start = self.bytesSent
        while True:
            if self.bytesSent - start < _BURST:
                self._direct = self._pumpSocket
            before = self.bytesSent
            try:
                producer.resumeProducing()
            finally:
                self._direct = None
            if (
                self._queued
                or self._puller is not producer
                or self._finishing
                or self._lost
                or self.bytesSent == before
            ):
                return

    def _send(self, data: bytes | memoryview) -> None:
        """
        Raw bytes to the peer: inside L{_pump} straight to the socket while
        the transport's buffer is empty, otherwise (and whatever the socket
        refused) through the transport, which keeps them in order. C{data}
        may be a view of a buffer that is reused after the call: what waits
        in the transport is a copy.
        """
        sock = self._direct
        if sock is not None and not self._queued and not self._aborted:
            try:
                sent = sock.send(data)
            except OSError:
                # Full (EAGAIN), or broken: the transport meets the
                # error itself when it writes.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self._queued = True
        self.transport.write(bytes(data))

    def write(self, data: bytes) -> None:
        if self._lost or self._finishing:
            return
        self.bytesSent += len(data)
        self._activity()
        if self.tls is not None:
            self.tls.send(data)
        else:
            self._send(data)

    def finish(self) -> None:
        """
        Close after what was written: our close_notify first, then TCP.
        """
        if self._finishing:
            return
        self._finishing = True
        if self._lost:
            if self._sendDone is not None:
                d, self._sendDone = self._sendDone, None
                d.callback(None)
            return
        if self.tls is not None:
            self.tls.close()
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the connection now, without a close_notify; after a failed
        handshake, close it once the TLS alert is sent.
        """
        if self._lost:
            return
        self._aborted = True
        if self._alertPending:
            self.transport.loseConnection()
        else:
            self.transport.abortConnection()


@implementer(interfaces.IPullProducer)
class _Pump:
    """
    The pull producer a L{DataConnection} registers with its transport for
    a download's pull producer: the transport's first call comes from its
    C{registerProducer}, every later one when its write buffer drained.
    """

    def __init__(self, connection: DataConnection, producer: Any) -> None:
        self._connection = connection
        self._producer = producer
        self._drained = False

    def resumeProducing(self) -> None:
        drained, self._drained = self._drained, True
        self._connection._pump(drained)

    def stopProducing(self) -> None:
        self._producer.stopProducing()
