# -*- test-case-name: tests.test_datachannel -*-
"""
The data channel: passive listeners, data connections and the transfer gate.

A L{DataChannel} belongs to one control connection. C{PASV}/C{EPSV} make it
open one listener (L{DataChannel.listenPassive}); the first connection from
the control connection's peer address is accepted, the listener closes, and
with C{PROT P} the connection runs a TLS handshake as the server with the
control connection's own TLS context. A transfer waits for
L{DataChannel.whenReady}, which fires only after that handshake completed and
the gate passed (peer address, session resumed when required), or fails with
the reply to send (425, 522). No file byte moves before that.

A connection from any other address is closed at once, gets zero bytes, and
burns the listener: the transfer gets 425. A passive connection from a
trusted proxy (C{--proxy-protocol}) is checked the same way, with the client
address its PROXY header names, once the header is in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error, interfaces
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txftps._dataconnection import DataConnection
from txftps._datatls import DataTLS
from txftps._proxyprotocol import TrustedProxies, proxiedDataProtocol
from txftps.errors import DataChannelRefused, FTPReplyError
from txftps.tls import ConnectionTLS, fingerprint, peerCertificate

_log = Logger()


def _normalHost(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def sameHost(a: str, b: str) -> bool:
    """
    Compare two IP address strings, an IPv4-mapped IPv6 address equal to its
    IPv4 address.
    """
    return _normalHost(a) == _normalHost(b)


class PassivePortRange:
    """
    The ports that passive listeners may use, handed out round-robin.

    @ivar low: first port.
    @ivar high: last port (inclusive).
    """

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high <= 65535:
            raise ValueError(f"bad passive port range {low}-{high}")
        self.low = low
        self.high = high
        self._next = low

    def candidates(self) -> list[int]:
        """
        Every port of the range once, starting after the last one handed out.
        """
        size = self.high - self.low + 1
        start = self._next - self.low
        self._next = self.low + (start + 1) % size
        return [self.low + (start + i) % size for i in range(size)]


class _DataFactory(ClientFactory):
    """
    Builds the one data connection of a passive listener or of an active
    connect to the target of C{PORT}/C{EPRT}; either way the connection is
    ours to run TLS on as the server (RFC 4217 section 7).
    """

    noisy = False

    def __init__(
        self, channel: DataChannel, context: ConnectionTLS | None, passive: bool = False
    ) -> None:
        self._channel = channel
        self._context = context
        self._passive = passive

    def buildProtocol(self, addr: Any) -> Protocol | None:
        if self._passive and self._channel._fromTrustedProxy(addr):
            return self._channel._acceptProxied(self._context)
        return self._channel._accept(addr, self._context)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        _log.info("active data connection failed: {reason}", reason=reason.getErrorMessage())
        self._channel.refuse(
            DataChannelRefused(425, "Cannot open data connection.", "connect_failed")
        )


class DataChannel:
    """
    The data-connection state of one control connection.

    @cvar connectionFactory: builds a L{DataConnection}.
    @ivar connection: the accepted data connection, if any.
    """

    connectionFactory: Callable[..., DataConnection] = DataConnection

    def __init__(
        self,
        reactor: Any,
        controlPeerHost: str,
        requireResumption: bool = True,
        timeout: float = 30.0,
        portRange: PassivePortRange | None = None,
        requireUploadCloseNotify: bool = True,
        trustedProxies: TrustedProxies | None = None,
    ) -> None:
        """
        @param reactor: provides
            L{IReactorTCP<twisted.internet.interfaces.IReactorTCP>} and
            L{IReactorTime<twisted.internet.interfaces.IReactorTime>}.
        @param controlPeerHost: the control connection's peer address; only
            data connections from it are accepted.
        @param requireResumption: TLS data connections must resume a session
            of the control connection's context.
        @param timeout: seconds a passive listener waits for its connection
            and its handshake.
        @param portRange: ports passive listeners may use, or C{None} for any.
        @param requireUploadCloseNotify: a TLS upload completes only with the
            client's close_notify; when C{False}, also with a clean TCP close
            after a complete TLS record.
        @param trustedProxies: proxies whose passive connections start with a
            PROXY header naming the client, or C{None}.
        """
        self._reactor = reactor
        self._peerHost = controlPeerHost
        self._requireResumption = requireResumption
        self._timeout = timeout
        self._portRange = portRange
        #: A TLS upload completes only with the client's close_notify.
        self.requireUploadCloseNotify = requireUploadCloseNotify
        self._trustedProxies = trustedProxies
        #: Data connections may come from, or go to, addresses other than
        #: the control peer (ports >= 1024): server-to-server transfers
        #: (C{--allow-fxp}, logged-in users only).
        self.allowForeignPeers = False
        #: The TLS client context of server-to-server transfers (C{SSCN ON},
        #: C{CPSV}), or C{None} when they are not allowed.
        self.serverToServerContext: SSL.Context | None = None
        #: The TLS role of the next data connection: server (C{False}),
        #: client (C{True}), or decided by the transfer command (C{None}).
        self._tlsClient: bool | None = False
        self._bindHost: str | None = None
        self._listener: interfaces.IListeningPort | None = None
        self._timer: interfaces.IDelayedCall | None = None
        self.connection: DataConnection | None = None
        self._ready = False
        self._failure: FTPReplyError | None = None
        self._waiting: defer.Deferred[DataConnection] | None = None
        self._configured = False
        self._waitingProtected = False
        #: The SHA-256 fingerprint of the control connection's client
        #: certificate; a TLS data connection must present the same one.
        self.controlCertificate: str | None = None
        self._activeTarget: tuple[str, int, ConnectionTLS | None] | None = None
        self._connector: Any = None
        #: A passive connection from a trusted proxy, waiting for its header.
        self._proxied: Protocol | None = None
        #: Called with the reason (L{txftps.interfaces.DATA_REFUSAL_REASONS})
        #: when the gate refuses a data connection or it never comes.
        self.onRefused: Callable[[str], None] = lambda reason: None

    @property
    def clock(self) -> interfaces.IReactorTime:
        """
        The clock for data-connection timers.
        """
        return self._reactor  # type: ignore[no-any-return]

    @property
    def timeout(self) -> float:
        """
        Seconds a data connection may wait or stall.
        """
        return self._timeout

    # PASV / EPSV

    @property
    def clientHost(self) -> str:
        """
        The address of the control connection's client: the only address
        data connections are accepted from.
        """
        return self._peerHost

    def listenPassive(
        self, interface: str, context: ConnectionTLS | None, tlsClient: bool | None = False
    ) -> int:
        """
        Open a listener for the next transfer, closing any earlier one.

        @param interface: the local address to listen on.
        @param context: the control connection's TLS for C{PROT P}, or
            C{None} for clear.
        @param tlsClient: the TLS role on the connection: server (C{False},
            RFC 4217), client (C{True}, C{CPSV}), or chosen by the transfer
            command (C{None}, C{SSCN ON}).
        @return: the port number.
        @raise FTPReplyError: 425 when no port can be had.
        """
        self.reset()
        self._tlsClient = tlsClient
        factory = _DataFactory(self, context, passive=True)
        ports = self._portRange.candidates() if self._portRange else [0]
        for port in ports:
            try:
                self._listener = self._reactor.listenTCP(
                    port, factory, backlog=1, interface=interface
                )
                break
            except error.CannotListenError:
                continue
        else:
            _log.warn(
                "passive port range {low}-{high} exhausted",
                low=self._portRange.low if self._portRange else 0,
                high=self._portRange.high if self._portRange else 0,
            )
            raise FTPReplyError(425, "No passive port is free; try again later.")
        self._configured = True
        self._timer = self._reactor.callLater(self._timeout, self._timedOut)
        return int(self._listener.getHost().port)  # type: ignore[union-attr]

    # PORT / EPRT

    def connectActive(
        self,
        host: str,
        port: int,
        context: ConnectionTLS | None,
        tlsClient: bool | None = False,
        bindHost: str | None = None,
    ) -> None:
        """
        Make the next transfer connect to C{host}:C{port} (C{PORT}/C{EPRT}).
        The connection is opened when a transfer waits for it.

        @param host: must be the control peer's address (checked here),
            unless L{allowForeignPeers}.
        @param port: 1024 or above (checked here).
        @param context: the control connection's TLS for C{PROT P}, or
            C{None} for clear.
        @param tlsClient: the TLS role, as for L{listenPassive}.
        @param bindHost: the local address to connect from (the control
            connection's), when it is of the same family as C{host}.
        @raise FTPReplyError: 501 for a foreign host or a privileged port; no
            connection is attempted and no earlier target survives.
        """
        self.reset()
        self._tlsClient = tlsClient
        self._bindHost = bindHost
        if not sameHost(host, self._peerHost) and not self.allowForeignPeers:
            _log.warn(
                "refused active data connection to {host}; control peer is {peer}",
                host=host,
                peer=self._peerHost,
            )
            raise FTPReplyError(501, "Data connections go only to the control peer's address.")
        if not 1024 <= port <= 65535:
            raise FTPReplyError(501, "Data connections to ports below 1024 are refused.")
        self._activeTarget = (host, port, context)
        self._configured = True

    def _connectActive(self) -> None:
        assert self._activeTarget is not None
        host, port, context = self._activeTarget
        self._activeTarget = None
        bind = self._bindHost
        if bind is not None and (":" in bind) != (":" in host):
            bind = None
        self._connector = self._reactor.connectTCP(
            host,
            port,
            _DataFactory(self, context),
            timeout=self._timeout,
            bindAddress=(bind, 0) if bind else None,
        )

    def _accept(self, addr: Any, context: ConnectionTLS | None) -> DataConnection | None:
        if self.connection is not None or self._failure is not None:
            return None
        host = addr.host if isinstance(addr, (IPv4Address, IPv6Address)) else ""
        port = addr.port if isinstance(addr, (IPv4Address, IPv6Address)) else 0
        self._stopListening()
        foreign = not sameHost(host, self._peerHost)
        if foreign and not (self.allowForeignPeers and port >= 1024):
            _log.warn(
                "refused data connection from {host}; control peer is {peer}",
                host=host,
                peer=self._peerHost,
            )
            self.refuse(
                DataChannelRefused(
                    425, "Data connection from a foreign address refused.", "foreign_peer"
                )
            )
            return None
        if foreign:
            _log.info(
                "server-to-server data connection with {host}:{port} for {peer}",
                host=host,
                port=port,
                peer=self._peerHost,
            )
        self.connection = self.connectionFactory(
            self, context, tlsClient=self._tlsClient, fxp=foreign
        )
        return self.connection

    def _fromTrustedProxy(self, addr: Any) -> bool:
        proxies = self._trustedProxies
        return (
            proxies is not None
            and isinstance(addr, (IPv4Address, IPv6Address))
            and proxies.trusts(addr.host)
        )

    def _acceptProxied(self, context: ConnectionTLS | None) -> Protocol:
        """
        A passive connection from a trusted proxy takes the listener, as any
        first connection does; once its PROXY header is in, L{_accept} checks
        the client address it names. No valid header in time: 425, as for a
        foreign address.
        """
        self._stopListening()

        def accept(client: Any) -> DataConnection | None:
            if self._proxied is not gate:
                return None
            self._proxied = None
            return self._accept(client, context)

        def refused(reason: str) -> None:
            if self._proxied is gate:
                self._proxied = None
                self.refuse(
                    DataChannelRefused(
                        425, "Data connection without a valid PROXY header.", "proxy_header"
                    )
                )

        gate = proxiedDataProtocol(self.clock, self._timeout, accept, refused)
        self._proxied = gate
        return gate

    def _dropProxied(self) -> None:
        if self._proxied is not None:
            gate, self._proxied = self._proxied, None
            transport: Any = gate.transport
            if transport is not None:
                transport.abortConnection()

    def handshakeCompleted(self, connection: DataConnection, tls: DataTLS) -> bool:
        if connection is not self.connection:
            return False
        if connection.fxp or tls.client:
            # The other FTP server cannot hold this client's TLS session or
            # certificate: for a server-to-server transfer the checks are
            # the peer's port (>= 1024), PROT P and --allow-fxp itself.
            self.connectionReady(connection)
            return self._ready
        if self._requireResumption and not tls.resumed:
            _log.info("data connection did not resume the control TLS session")
            self.refuse(
                DataChannelRefused(
                    522,
                    "Data connection must resume the TLS session of the control connection.",
                    "not_resumed",
                )
            )
            return False
        presented = peerCertificate(tls.connection)
        if (fingerprint(presented) if presented else None) != self.controlCertificate:
            _log.info("data connection did not present the control connection's certificate")
            self.refuse(
                DataChannelRefused(
                    522,
                    "Data connection must present the client certificate of the control"
                    " connection.",
                    "certificate_mismatch",
                )
            )
            return False
        self.connectionReady(connection)
        return self._ready

    def connectionReady(self, connection: DataConnection) -> None:
        if self._waiting is not None and connection.protected != self._waitingProtected:
            self.refuse(
                DataChannelRefused(
                    425,
                    "Data protection level changed after the data connection opened.",
                    "protection_changed",
                )
            )
            return
        self._ready = True
        if self._waiting is not None:
            # A connection nobody waits for stays under the data timeout.
            self._cancelTimer()
            d, self._waiting = self._waiting, None
            d.callback(connection)

    def connectionLost(self, connection: DataConnection) -> None:
        if connection is self.connection and not connection.transferring:
            self.refuse(
                DataChannelRefused(
                    425, "Data connection closed before the transfer.", "closed_early"
                )
            )

    def refuse(self, reason: FTPReplyError) -> None:
        self._cancelTimer()
        self._stopListening()
        self._dropProxied()
        if self._failure is None:
            self._failure = reason
            self.onRefused(getattr(reason, "reason", "other"))
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.abort()
        if self._waiting is not None:
            d, self._waiting = self._waiting, None
            d.errback(reason)

    def _timedOut(self) -> None:
        self._timer = None
        self.refuse(DataChannelRefused(425, "Data connection timed out.", "timeout"))

    # transfers

    @property
    def configured(self) -> bool:
        """
        C{PASV}/C{EPSV} prepared a data connection for the next transfer.
        """
        return self._configured

    def whenReady(
        self, protected: bool, tlsClient: bool = False
    ) -> defer.Deferred[DataConnection]:
        """
        Wait for the data connection to be ready for a transfer.

        @param protected: the transfer requires TLS (C{PROT P}).
        @param tlsClient: when the TLS role was left to the transfer command
            (C{SSCN ON}), run TLS as the client for this transfer.
        @return: fires with the connection once it passed the gate; fails with
            L{DataChannelRefused} (425 or 522).
        """
        if not self._configured:
            return defer.fail(FTPReplyError(425, "Use PASV or EPSV first."))
        if self._failure is not None:
            return defer.fail(self._failure)
        if self.connection is not None and self.connection.protected != protected:
            failure = DataChannelRefused(
                425,
                "Data protection level changed after the data connection opened.",
                "protection_changed",
            )
            self.refuse(failure)
            return defer.fail(failure)
        if self._tlsClient is None:
            self._tlsClient = tlsClient
        if self.connection is not None and self.connection.tlsPending:
            self.connection.startTLS(tlsClient)
        if self._ready and self.connection is not None:
            self._cancelTimer()
            return defer.succeed(self.connection)
        self._waitingProtected = protected
        self._waiting = defer.Deferred()
        if self._timer is None:
            self._timer = self._reactor.callLater(self._timeout, self._timedOut)
        if self._activeTarget is not None:
            self._connectActive()
        return self._waiting

    def abortTransfer(self) -> None:
        """
        C{ABOR}: drop the data connection (no close_notify) or stop waiting
        for it; the running transfer fails.
        """
        self.reset()

    def transferDone(self) -> None:
        """
        The transfer ended: forget its connection; the next transfer needs a
        new C{PASV}.
        """
        connection, self.connection = self.connection, None
        self.reset()
        if connection is not None:
            connection.finish()

    # cleanup

    def _cancelTimer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _stopListening(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.stopListening()

    def reset(self) -> None:
        """
        Close any listener and connection; back to "no data connection".
        """
        self._cancelTimer()
        self._stopListening()
        self._dropProxied()
        if self._waiting is not None:
            d, self._waiting = self._waiting, None
            d.errback(DataChannelRefused(425, "Data connection reset."))
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.abort()
        if self._connector is not None:
            connector, self._connector = self._connector, None
            if self.connection is None and connector.state == "connecting":
                connector.stopConnecting()
        self._activeTarget = None
        self._ready = False
        self._failure = None
        self._configured = False

    close = reset
