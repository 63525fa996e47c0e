# -*- test-case-name: tests.test_proxyprotocol -*-
"""
The PROXY protocol (versions 1 and 2) from trusted TCP load balancers.

A balancer such as HAProxy with C{send-proxy} or C{send-proxy-v2} starts
every connection it passes on with a header naming the client. From an
address in L{TrustedProxies}, a connection must start with that header, and
the client it names is the peer everywhere: caps, bans, logs and the
data-connection peer check. Nothing is sent to a trusted peer, and no FTP
protocol exists for its connection, before the whole header is in; then the
real transport is handed to the FTP protocol (L{ProxyProtocolFactory} for
control connections, L{proxiedDataProtocol} for passive data connections)
and the bytes that followed the header (a pipelined command, a TLS
ClientHello) are fed to it, through the TLS layer when implicit TLS started.

A connection from any other address is served directly, as without the
PROXY protocol, but if it starts with a PROXY header it is closed: only
trusted balancers may say who the client is. A trusted peer that sends no
header, a header that does not parse, or none within the timeout is closed
with a log line; a header that names no client (a version 2 C{LOCAL}
command, HAProxy's health check, or C{UNKNOWN}) is closed quietly.

Twisted's C{twisted.protocols.haproxy} parses the headers, but its wrapper
starts the wrapped protocol before the header is parsed (so C{getPeer()} is
the balancer there and C{startTLS} ends up below the header parser). Its
parsers are private; L{txftps._internals.parseProxyHeader} is the one place
that uses them.

L{txftps.server} re-exports L{ProxyProtocolFactory} and L{TrustedProxies}.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet import interfaces
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txftps._internals import PROXY_V2_SIGNATURE, parseProxyHeader


class _WrappedFactory(TypingProtocol):
    """
    What L{ProxyProtocolFactory} needs of the factory it wraps
    (L{txftps.server.FTPSFactory} provides it).
    """

    reactor: Any
    settings: Any

    def buildProtocol(self, addr: Any) -> Any:
        """
        The FTP protocol for a client at C{addr}.
        """

    def doStart(self) -> None:
        """
        Called when the wrapping factory starts.
        """

    def doStop(self) -> None:
        """
        Called when the wrapping factory stops.
        """


_log = Logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ClientAddress = IPv4Address | IPv6Address

_V1_PREFIX = b"PROXY "
#: A version 1 header is at most 107 bytes with its CRLF.
_V1_MAX = 107
_V2_SIGNATURE = PROXY_V2_SIGNATURE
_V2_FIXED = 16


def _normalIP(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """
    C{host} as an address, an IPv4-mapped IPv6 address as its IPv4 address.

    @raise ValueError: C{host} is not an IP address.
    """
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """
    The networks whose connections must start with a PROXY header.

    @ivar networks: the trusted networks.
    """

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    @classmethod
    def fromStrings(cls, descriptions: Iterable[str]) -> TrustedProxies:
        """
        Trusted networks from C{--trusted-proxy} values: an address
        (C{192.0.2.7}, C{2001:db8::7}) or a network (C{10.0.0.0/8}).

        @raise ValueError: a value is neither, or a network has host bits set
            (C{10.0.0.1/8}: did the operator mean C{10.0.0.0/8} or
            C{10.0.0.1}?); the message names the value.
        """
        networks = []
        for description in descriptions:
            try:
                networks.append(ipaddress.ip_network(description.strip(), strict=True))
            except ValueError as e:
                raise ValueError(
                    f"--trusted-proxy needs an address or a network such as 10.0.0.0/8,"
                    f" not {description!r} ({e})"
                )
        return cls(networks)

    def trusts(self, host: str) -> bool:
        """
        Whether C{host} (an IP address string) is in a trusted network.
        """
        try:
            address = _normalIP(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class ProxyHeader:
    """
    A parsed PROXY header.

    @ivar version: 1 or 2.
    @ivar source: the client's address, or C{None} when the header names
        none (a health check).
    """

    version: int
    source: ClientAddress | None


class BadProxyHeader(Exception):
    """
    The bytes are not a valid PROXY header; the message says why.
    """


class MissingProxyHeader(BadProxyHeader):
    """
    The connection does not start with a PROXY header at all.
    """


def looksLikeProxyHeader(data: bytes) -> bool | None:
    """
    Whether C{data}, the first bytes of a connection, start a PROXY header.

    @return: C{True} or C{False}, or C{None} while too few bytes have
        arrived to tell.
    """
    for prefix in (_V1_PREFIX, _V2_SIGNATURE):
        if data[: len(prefix)] == prefix[: len(data)]:
            return True if len(data) >= len(prefix) else None
    return False


def _parseWithTwisted(version: int, header: bytes) -> Any:
    """
    Parse one complete header with Twisted's parser for C{version}
    (L{txftps._internals.parseProxyHeader}).

    @raise BadProxyHeader: the header does not parse.
    """
    try:
        return parseProxyHeader(version, header)
    except ValueError as e:
        raise BadProxyHeader(str(e))


def _clientAddress(source: object) -> ClientAddress | None:
    """
    The client address of a parsed header's source, checked and in its
    normal form (IPv4-mapped as IPv4, IPv6 compressed).

    @raise BadProxyHeader: the source is not a TCP address with a valid IP
        address and port.
    """
    if source is None:
        return None
    if not isinstance(source, (IPv4Address, IPv6Address)):
        raise BadProxyHeader("the source is not an IP address")
    try:
        address = ipaddress.ip_address(source.host)
    except ValueError:
        raise BadProxyHeader(f"the source {source.host!r} is not an IP address")
    if (address.version == 4) != isinstance(source, IPv4Address):
        raise BadProxyHeader(f"the source {source.host!r} does not match the address family")
    if not 0 <= source.port <= 65535:
        raise BadProxyHeader(f"the source port {source.port} is out of range")
    address = _normalIP(str(address))
    if isinstance(address, ipaddress.IPv4Address):
        return IPv4Address("TCP", str(address), source.port)
    return IPv6Address("TCP", str(address), source.port)


class ProxyHeaderReader:
    """
    Collects the first bytes of a connection until a whole PROXY header is
    in.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """
        Take the next bytes.

        @return: C{None} until the header is complete; then the header and
            the bytes that followed it.
        @raise MissingProxyHeader: the bytes do not start a PROXY header.
        @raise BadProxyHeader: they start one that is not valid.
        """
        self._buffer += data
        buffer = self._buffer
        started = looksLikeProxyHeader(buffer)
        if started is None:
            return None
        if not started:
            raise MissingProxyHeader("no PROXY header")
        if buffer.startswith(_V1_PREFIX):
            end = buffer.find(b"\r\n", 0, _V1_MAX)
            if end < 0:
                if len(buffer) >= _V1_MAX:
                    raise BadProxyHeader(f"version 1 header longer than {_V1_MAX} bytes")
                return None
            version, header, rest = 1, buffer[:end], buffer[end + 2 :]
            if header == b"PROXY UNKNOWN" or header.startswith(b"PROXY UNKNOWN "):
                # Valid without addresses, which Twisted's parser refuses.
                self._buffer = b""
                return ProxyHeader(1, None), rest
        else:
            if len(buffer) < _V2_FIXED:
                return None
            size = _V2_FIXED + int.from_bytes(buffer[14:16], "big")
            if len(buffer) < size:
                return None
            version, header, rest = 2, buffer[:size], buffer[size:]
        self._buffer = b""
        info = _parseWithTwisted(version, header)
        return ProxyHeader(version, _clientAddress(info.source)), rest


class _HeaderGate(Protocol):
    """
    A connection from a trusted proxy until its PROXY header is in; then the
    transport goes to the protocol that C{handOver} returns for the client's
    address.
    """

    transport: Any

    def __init__(
        self,
        clock: interfaces.IReactorTime,
        timeout: float,
        what: str,
        handOver: Callable[[ClientAddress], interfaces.IProtocol | None],
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._what = what
        self._handOver = handOver
        self._refused = refused
        self._reader = ProxyHeaderReader()
        self._timer: interfaces.IDelayedCall | None = None
        self._done = False
        self._proxy = ""

    def connectionMade(self) -> None:
        self._proxy = self.transport.getPeer().host
        self._timer = self._clock.callLater(self._timeout, self._timedOut)

    def _refuse(self, reason: str) -> None:
        self._finish()
        _log.info(
            "closed {what} from trusted proxy {proxy}: {reason}",
            what=self._what,
            proxy=self._proxy,
            reason=reason,
        )
        self.transport.abortConnection()
        if self._refused is not None:
            self._refused(reason)

    def _timedOut(self) -> None:
        self._timer = None
        self._refuse("no PROXY header within the timeout")

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        try:
            parsed = self._reader.feed(data)
        except MissingProxyHeader:
            self._refuse("it sent no PROXY header")
            return
        except BadProxyHeader as e:
            self._refuse(f"bad PROXY header: {e}")
            return
        if parsed is None:
            return
        header, rest = parsed
        self._finish()
        if header.source is None:
            _log.debug(
                "closed {what} from trusted proxy {proxy}: its PROXY header names no client"
                " (a health check)",
                what=self._what,
                proxy=self._proxy,
            )
            self.transport.loseConnection()
            return
        protocol = self._handOver(header.source)
        transport = self.transport
        if protocol is None:
            transport.abortConnection()
            return
        transport.protocol = protocol
        protocol.makeConnection(transport)
        if rest and not transport.disconnecting:
            # transport.protocol: the TLS layer if implicit TLS just started.
            transport.protocol.dataReceived(rest)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._finish()


class _DirectClient(Protocol):
    """
    A connection from an address that is not trusted: the FTP protocol runs
    at once, as without the PROXY protocol, but this stays in front of it
    (and of the TLS layer it may start) until the first bytes show that they
    are not a PROXY header.
    """

    transport: Any

    def __init__(self, protocol: interfaces.IProtocol) -> None:
        self._protocol = protocol
        self._next: Any = protocol
        self._buffer = b""

    def connectionMade(self) -> None:
        transport = self.transport
        transport.protocol = self._protocol
        self._protocol.makeConnection(transport)
        self._next = transport.protocol
        transport.protocol = self

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        verdict = looksLikeProxyHeader(self._buffer)
        if verdict is None:
            return
        transport = self.transport
        transport.protocol = self._next
        if verdict:
            _log.info(
                "closed connection from {host}: a PROXY header from an address that is not"
                " a trusted proxy",
                host=transport.getPeer().host,
            )
            transport.abortConnection()
            return
        data, self._buffer = self._buffer, b""
        self._next.dataReceived(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._next.connectionLost(reason)

    # Once TLS started (implicit FTPS), the transport sends writes, closes
    # and producers through its protocol (twisted.internet._newtls's
    # ConnectionMixin): they go to the TLS layer this stands in front of.

    def write(self, data: bytes) -> None:
        self._next.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self._next.writeSequence(data)

    def loseConnection(self) -> None:
        self._next.loseConnection()

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self._next.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._next.unregisterProducer()


class ProxyProtocolFactory(Factory):
    """
    Wraps an L{FTPSFactory<txftps.server.FTPSFactory>} whose settings name trusted proxies: a
    connection from one of them waits for its PROXY header and the FTP
    protocol gets the client's address from it (its C{clientAddress}); any
    other connection is served directly, unless it starts with a PROXY
    header.

    @ivar wrappedFactory: the factory of the FTP protocols.
    """

    noisy = False

    def __init__(self, wrappedFactory: _WrappedFactory) -> None:
        trusted = wrappedFactory.settings.trustedProxies
        if trusted is None:
            raise ValueError("the factory's settings name no trusted proxies")
        self.wrappedFactory = wrappedFactory
        self._trusted = trusted

    def doStart(self) -> None:
        self.wrappedFactory.doStart()

    def doStop(self) -> None:
        self.wrappedFactory.doStop()

    def buildProtocol(self, addr: Any) -> Protocol | None:
        host = addr.host if isinstance(addr, (IPv4Address, IPv6Address)) else ""
        if self._trusted.trusts(host):
            settings = self.wrappedFactory.settings
            return _HeaderGate(
                self.wrappedFactory.reactor,
                settings.handshakeTimeout,
                "connection",
                self._clientProtocol,
            )
        protocol = self.wrappedFactory.buildProtocol(addr)
        return _DirectClient(protocol) if protocol is not None else None

    def _clientProtocol(self, client: ClientAddress) -> interfaces.IProtocol | None:
        protocol: interfaces.IProtocol | None = self.wrappedFactory.buildProtocol(client)
        if protocol is not None:
            protocol.clientAddress = client  # type: ignore[attr-defined]
        return protocol


def proxiedDataProtocol(
    clock: interfaces.IReactorTime,
    timeout: float,
    accept: Callable[[ClientAddress], interfaces.IProtocol | None],
    refused: Callable[[str], None],
) -> Protocol:
    """
    The protocol of a passive data connection from a trusted proxy: it waits
    for the PROXY header and hands the connection to what C{accept} returns
    for the client's address (C{None}: closed).

    @param clock: for the timeout.
    @param timeout: seconds the header may take.
    @param accept: checks the client's address and returns the data
        connection's protocol, or C{None} to refuse it.
    @param refused: called with the reason when there is no valid header.
    """
    return _HeaderGate(clock, timeout, "data connection", accept, refused)
