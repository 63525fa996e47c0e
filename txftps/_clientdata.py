# -*- test-case-name: tests.test_client -*-
"""
The FTPS client's data connections: always TLS, the client always the TLS
client (RFC 4217), and always resuming the control connection's session.

A passive connection (C{EPSV}, C{PASV}) is made with a TCP client endpoint
wrapped by C{wrapClientTLS}; an active one (C{PORT}, C{EPRT}) is accepted on
a listening port that takes exactly one connection, from the control
connection's peer address. L{DataProtocol} delivers what arrives to an
C{IConsumer}, or sends from an C{IBodyProducer}, and reports how the
connection ended: a TLS close_notify is a complete transfer; a TCP close
without one is L{TransferTruncated}.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IHandshakeListener,
    IListeningPort,
    IProtocol,
    IPushProducer,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from txftps._clienterrors import FTPClientError, FTPTimeoutError, TransferTruncated
from txftps._clienttls import TLSSession


def parsePASV(text: str) -> tuple[str, int]:
    """
    The address and port of a C{227} reply's C{h1,h2,h3,h4,p1,p2}.

    @raise FTPClientError: the reply has no such numbers.
    """
    match = re.search(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})", text)
    if match is None:
        raise FTPClientError(f"unparsable PASV reply: {text!r}")
    numbers = [int(n) for n in match.groups()]
    if any(n > 255 for n in numbers):
        raise FTPClientError(f"unparsable PASV reply: {text!r}")
    return ".".join(str(n) for n in numbers[:4]), numbers[4] * 256 + numbers[5]


def parseEPSV(text: str) -> int:
    """
    The port of a C{229} reply's C{(|||port|)}.

    @raise FTPClientError: the reply has no such port.
    """
    match = re.search(r"\((.)\1\1(\d{1,5})\1\)", text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise FTPClientError(f"unparsable EPSV reply: {text!r}")
    return int(match.group(2))


def passiveHost(announced: str, controlPeer: str) -> str:
    """
    The address to connect to for a C{PASV} reply announcing C{announced}
    on a control connection to C{controlPeer}: the control peer's address
    when the announced one is private, loopback, link-local or unspecified
    and not the control peer itself (a server behind NAT that announces its
    inside address, as curl's C{--ftp-skip-pasv-ip} handles), the announced
    one otherwise.
    """
    try:
        address = ipaddress.ip_address(announced)
    except ValueError:
        return controlPeer
    if announced == controlPeer:
        return announced
    if address.is_private or address.is_loopback or address.is_link_local:
        return controlPeer
    if address.is_unspecified:
        return controlPeer
    return announced


def portArgument(host: str, port: int) -> str:
    """
    The argument of C{PORT} (IPv4) for C{host} and C{port}.
    """
    return ",".join([*host.split("."), str(port >> 8), str(port & 0xFF)])


def eprtArgument(host: str, port: int) -> str:
    """
    The argument of C{EPRT} for C{host} and C{port}.
    """
    family = 2 if ":" in host else 1
    return f"|{family}|{host}|{port}|"


@implementer(IConsumer)
class _CountingConsumer:
    """
    The consumer an upload writes to: counts bytes and restarts the stall
    timer on each write, then passes them to the TLS transport.
    """

    def __init__(self, protocol: DataProtocol) -> None:
        self.protocol = protocol

    def registerProducer(self, producer: object, streaming: bool) -> None:
        cast(Any, self.protocol.transport).registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        cast(Any, self.protocol.transport).unregisterProducer()

    def write(self, data: bytes) -> None:
        self.protocol.progress(len(data))
        assert self.protocol.transport is not None
        self.protocol.transport.write(data)


@implementer(IPushProducer)
class _ReadingProducer:
    """
    Pauses and resumes reading from a data connection for the consumer of a
    download (the TCP transport under the TLS layer is the push producer).
    """

    def __init__(self, protocol: DataProtocol) -> None:
        self.protocol = protocol

    def _tcp(self) -> IPushProducer:
        transport = self.protocol.transport
        return IPushProducer(getattr(transport, "transport", transport))

    def pauseProducing(self) -> None:
        self._tcp().pauseProducing()

    def resumeProducing(self) -> None:
        self._tcp().resumeProducing()

    def stopProducing(self) -> None:
        self.protocol.abort()


@implementer(IHandshakeListener)
class DataProtocol(Protocol):
    """
    One data connection of a transfer.

    @ivar done: fires with the byte count when the connection ended with a
        TLS close_notify; fails with L{TransferTruncated} (no close_notify),
        L{FTPTimeoutError} (stalled) or the certificate error.
    @ivar count: bytes moved so far.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        session: TLSSession,
        consumer: IConsumer | None = None,
        producer: IBodyProducer | None = None,
        stallTimeout: float = 60.0,
        onProgress: object = None,
    ) -> None:
        self.reactor = reactor
        self.session = session
        self.consumer = consumer
        self.producer = producer
        self.stallTimeout = stallTimeout
        self.onProgress = onProgress
        self.done: Deferred[int] = Deferred()
        self.count = 0
        self._timer: IDelayedCall | None = None
        self._error: Exception | None = None
        self._sending: Deferred[None] | None = None
        self._allSent = False
        self._lost = False

    def connectionMade(self) -> None:
        self._restartTimer()
        if self.consumer is not None:
            self.consumer.registerProducer(_ReadingProducer(self), True)

    def handshakeCompleted(self) -> None:
        """
        Start sending an upload only once TLS is up: Twisted's TLS layer
        aborts (instead of closing cleanly) a connection closed before its
        handshake finished, which an empty upload would otherwise do.
        """
        if self.producer is not None and self._sending is None and not self._allSent:
            self._sending = self.producer.startProducing(_CountingConsumer(self))
            self._sending.addCallbacks(self._sent, self._sendFailed)

    def _sent(self, _: object) -> None:
        self._sending = None
        self._allSent = True
        assert self.transport is not None
        self.transport.loseConnection()

    def _sendFailed(self, failure: Failure) -> None:
        self._sending = None
        self._error = failure.value if isinstance(failure.value, Exception) else None
        self.abort()

    def progress(self, size: int) -> None:
        """
        C{size} more bytes moved: count them and restart the stall timer.
        """
        self.count += size
        self._restartTimer()
        if callable(self.onProgress):
            self.onProgress(size)

    def dataReceived(self, data: bytes) -> None:
        self.progress(len(data))
        if self.consumer is not None:
            self.consumer.write(data)

    def _restartTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.stallTimeout)
            return
        self._timer = self.reactor.callLater(self.stallTimeout, self._stalled)

    def expectConnection(self) -> None:
        """
        Start the stall timer before the connection exists (active mode):
        a server that never connects fails the transfer after the stall
        timeout instead of leaving it waiting for ever.
        """
        self._restartTimer()

    def _stalled(self) -> None:
        self._timer = None
        if self.transport is None:
            if not self.done.called:
                self.done.errback(
                    FTPTimeoutError(
                        f"the server did not open the data connection within"
                        f" {self.stallTimeout:g} seconds"
                    )
                )
            return
        self._error = FTPTimeoutError(
            f"the data connection stalled for {self.stallTimeout:g} seconds"
        )
        self.abort()

    def abort(self) -> None:
        """
        Close the connection at once (no close_notify).
        """
        if self.transport is not None and not self._lost:
            cast(Any, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._sending is not None and self.producer is not None:
            self.producer.stopProducing()
        if self.consumer is not None:
            self.consumer.unregisterProducer()
        if self.done.called:
            return
        if self._error is not None:
            self.done.errback(self._error)
        elif (error := self.session.verificationError()) is not None:
            self.done.errback(error)
        elif reason.check(ConnectionDone) or self._allSent:
            # An upload is complete once all of it went out followed by our
            # close_notify; whether the server answers with its own before
            # closing does not matter: its final reply says if it got all.
            self.done.callback(self.count)
        else:
            self.done.errback(
                TransferTruncated(
                    "the data connection ended without a TLS close_notify after"
                    f" {self.count} bytes ({reason.getErrorMessage()})"
                )
            )


def connectPassive(
    reactor: IReactorTCP, host: str, port: int, session: TLSSession, protocol: DataProtocol
) -> Deferred[IProtocol]:
    """
    Connect a passive data connection to C{host} and C{port}, with TLS
    resuming C{session}'s control session.
    """
    endpointType = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
    endpoint = wrapClientTLS(
        session.dataCreator(),
        endpointType(reactor, host, port, timeout=30),
    )
    return endpoint.connect(Factory.forProtocol(lambda: protocol))


class _OneConnectionFactory(Factory):
    """
    Accepts one data connection from C{peer} (with TLS from C{tlsFactory});
    refuses everything else.
    """

    def __init__(self, tlsFactory: TLSMemoryBIOFactory, peer: str) -> None:
        self.tlsFactory = tlsFactory
        self.peer = peer
        self.taken = False

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        host = getattr(addr, "host", None)
        if self.taken or host is None:
            return None
        if _normalize(host) != _normalize(self.peer):
            return None
        self.taken = True
        return self.tlsFactory.buildProtocol(addr)


def _normalize(host: str) -> str:
    if host.startswith("::ffff:"):
        return host[7:]
    return host


def listenActive(
    reactor: IReactorTCP, interface: str, peer: str, session: TLSSession, protocol: DataProtocol
) -> IListeningPort:
    """
    Listen on C{interface} for one active-mode data connection from C{peer},
    with TLS (as the TLS client) resuming C{session}'s control session.
    """
    tlsFactory = TLSMemoryBIOFactory(
        session.dataCreator(), True, Factory.forProtocol(lambda: protocol)
    )
    factory: Any = _OneConnectionFactory(tlsFactory, peer)
    return reactor.listenTCP(0, factory, interface=interface)
