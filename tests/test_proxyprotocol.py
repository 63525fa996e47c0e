"""
Tests for L{txftps._proxyprotocol}: PROXY v1/v2 headers from trusted load
balancers (C{--proxy-protocol}, C{--trusted-proxy}).

The header reader is tested in memory; the rest against the real
C{twistd -n ftps} on loopback with raw sockets. The server trusts 127.0.0.1
only: a socket from 127.0.0.1 plays the balancer (it writes the header
itself), sockets from 127.0.0.2 and 127.0.0.3 are direct clients. The tests
behind a real HAProxy are in L{tests.test_haproxy}.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import struct
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from tests import support
from txftps._internals import parseProxyHeader
from txftps._proxyprotocol import (
    BadProxyHeader,
    MissingProxyHeader,
    ProxyHeaderReader,
    TrustedProxies,
    looksLikeProxyHeader,
)

USER = "alice"
PASSWORD = "secret"
PROXY = "127.0.0.1"
DIRECT = "127.0.0.2"
OTHER = "127.0.0.3"

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1Header(source: str, sourcePort: int = 40000, family: str = "TCP4") -> bytes:
    """
    A PROXY version 1 header naming C{source} as the client.
    """
    return f"PROXY {family} {source} 127.0.0.1 {sourcePort} 21\r\n".encode("ascii")


def v2Header(source: str, sourcePort: int = 40000, tlvs: bytes = b"") -> bytes:
    """
    A PROXY version 2 C{PROXY} header (TCP over IPv4 or IPv6) naming
    C{source} as the client, built by hand from the specification.
    """
    address = ipaddress.ip_address(source)
    if address.version == 4:
        family = 0x11
        addresses = address.packed + ipaddress.IPv4Address("127.0.0.1").packed
    else:
        family = 0x21
        addresses = address.packed + ipaddress.IPv6Address("::1").packed
    body = addresses + struct.pack("!HH", sourcePort, 21) + tlvs
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


#: A version 2 C{LOCAL} header: HAProxy's health check, naming no client.
V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00]) + b"\x00\x00"


class HeaderReaderTests(SynchronousTestCase):
    """
    L{ProxyHeaderReader} collects one header and hands back what followed.
    """

    def feedAll(self, data: bytes, step: int | None = None) -> tuple[Any, bytes]:
        reader = ProxyHeaderReader()
        step = step or len(data)
        for offset in range(0, len(data), step):
            parsed = reader.feed(data[offset : offset + step])
            if parsed is not None:
                header, rest = parsed
                return header, rest + data[offset + step :]
        raise AssertionError(f"no header parsed from {data!r}")

    def test_twistedParsersAreThere(self) -> None:
        """
        The one use of Twisted's private parsers,
        L{txftps._internals.parseProxyHeader}, still works: an upgrade that
        moves or changes C{twisted.protocols.haproxy._v1parser}/C{_v2parser}
        fails here.
        """
        one = parseProxyHeader(1, v1Header("192.0.2.1")[:-2])
        two = parseProxyHeader(2, v2Header("192.0.2.2"))
        self.assertEqual((one.source.host, one.source.port), ("192.0.2.1", 40000))
        self.assertEqual((two.source.host, two.source.port), ("192.0.2.2", 40000))

    def test_v1(self) -> None:
        """
        A version 1 header: the client's address and port, and the bytes
        after the CRLF untouched, whole or a byte at a time.
        """
        data = v1Header("192.0.2.7", 4711) + b"USER alice\r\n"
        for step in (None, 1):
            header, rest = self.feedAll(data, step)
            self.assertEqual(header.version, 1)
            self.assertEqual(header.source, IPv4Address("TCP", "192.0.2.7", 4711))
            self.assertEqual(rest, b"USER alice\r\n")

    def test_v2(self) -> None:
        """
        A version 2 header with TLVs: the client's address, the TLVs
        skipped, the bytes after the header untouched, whole or a byte at a
        time.
        """
        tlv = b"\x04\x00\x03abc"
        data = v2Header("192.0.2.8", 4712, tlvs=tlv) + b"\x16\x03\x01rest"
        for step in (None, 1):
            header, rest = self.feedAll(data, step)
            self.assertEqual(header.version, 2)
            self.assertEqual(header.source, IPv4Address("TCP", "192.0.2.8", 4712))
            self.assertEqual(rest, b"\x16\x03\x01rest")

    def test_ipv6Normalized(self) -> None:
        """
        IPv6 sources come out compressed, IPv4-mapped ones as IPv4: one
        client, one key for caps and bans.
        """
        header, _ = self.feedAll(v2Header("2001:db8::7"))
        self.assertEqual(header.source, IPv6Address("TCP", "2001:db8::7", 40000))
        header, _ = self.feedAll(v1Header("2001:DB8:0:0::7", family="TCP6"))
        self.assertEqual(header.source, IPv6Address("TCP", "2001:db8::7", 40000))
        header, _ = self.feedAll(v2Header("::ffff:192.0.2.9"))
        self.assertEqual(header.source, IPv4Address("TCP", "192.0.2.9", 40000))

    def test_noClient(self) -> None:
        """
        A version 2 C{LOCAL} command and a version 1 C{UNKNOWN} header name
        no client.
        """
        header, rest = self.feedAll(V2_LOCAL + b"x")
        self.assertIsNone(header.source)
        self.assertEqual(rest, b"x")
        header, _ = self.feedAll(b"PROXY UNKNOWN\r\n")
        self.assertIsNone(header.source)

    def test_notAHeader(self) -> None:
        """
        Bytes that do not start a PROXY header raise L{MissingProxyHeader}
        as soon as that is clear.
        """
        for data in (b"USER alice\r\n", b"\x16\x03\x01", b"P", b"\r\n\r\n\x01"):
            reader = ProxyHeaderReader()
            if data in (b"P",):
                self.assertIsNone(reader.feed(data))
                self.assertRaises(MissingProxyHeader, reader.feed, b"ASV\r\n")
            else:
                self.assertRaises(MissingProxyHeader, reader.feed, data)

    def test_badHeaders(self) -> None:
        """
        Malformed headers raise L{BadProxyHeader}: addresses that are not
        addresses or of the wrong family, bad ports, an over-long version 1
        line, an unknown version 2 version or family, a short address block.
        """
        bad = [
            b"PROXY TCP4 evil 127.0.0.1 1 21\r\n",
            b"PROXY TCP4 192.0.2.1 127.0.0.1 port 21\r\n",
            b"PROXY TCP4 192.0.2.1 127.0.0.1 70000 21\r\n",
            b"PROXY TCP4 2001:db8::1 127.0.0.1 1 21\r\n",
            b"PROXY TCP5 192.0.2.1 127.0.0.1 1 21\r\n",
            b"PROXY TCP4 192.0.2.1\r\n",
            b"PROXY TCP4 " + b"1" * 100 + b"\r\n",
            V2_SIGNATURE + bytes([0x31, 0x11]) + b"\x00\x0c" + b"\x00" * 12,
            V2_SIGNATURE + bytes([0x21, 0x71]) + b"\x00\x0c" + b"\x00" * 12,
            V2_SIGNATURE + bytes([0x21, 0x11]) + b"\x00\x04" + b"\x00" * 4,
            V2_SIGNATURE + bytes([0x21, 0x31]) + b"\x00\xd8" + b"\x00" * 216,
        ]
        for data in bad:
            reader = ProxyHeaderReader()
            try:
                parsed = reader.feed(data)
            except MissingProxyHeader:
                self.fail(f"{data!r} taken for no header at all")
            except BadProxyHeader:
                continue
            self.fail(f"{data!r} parsed as {parsed!r}")

    def test_looksLikeHeader(self) -> None:
        """
        L{looksLikeProxyHeader} says yes, no, or not yet.
        """
        self.assertIsNone(looksLikeProxyHeader(b""))
        self.assertIsNone(looksLikeProxyHeader(b"PROX"))
        self.assertIsNone(looksLikeProxyHeader(V2_SIGNATURE[:11]))
        self.assertTrue(looksLikeProxyHeader(b"PROXY TCP4"))
        self.assertTrue(looksLikeProxyHeader(V2_SIGNATURE))
        self.assertFalse(looksLikeProxyHeader(b"PROXX"))
        self.assertFalse(looksLikeProxyHeader(b"USER"))
        self.assertFalse(looksLikeProxyHeader(b"\x16\x03\x01"))


class TrustedProxiesTests(SynchronousTestCase):
    """
    L{TrustedProxies} parses C{--trusted-proxy} values and matches peers.
    """

    def test_addressesAndNetworks(self) -> None:
        """
        An address trusts itself; a network its members; an IPv4-mapped peer
        matches its IPv4 network; anything else is not trusted.
        """
        trusted = TrustedProxies.fromStrings(["192.0.2.7", "10.0.0.0/8", "2001:db8::/32"])
        self.assertTrue(trusted.trusts("192.0.2.7"))
        self.assertFalse(trusted.trusts("192.0.2.8"))
        self.assertTrue(trusted.trusts("10.200.1.1"))
        self.assertTrue(trusted.trusts("::ffff:10.1.2.3"))
        self.assertTrue(trusted.trusts("2001:db8:1::5"))
        self.assertFalse(trusted.trusts("2001:db9::5"))
        self.assertFalse(trusted.trusts("not an address"))

    def test_refused(self) -> None:
        """
        Values that are not an address or network, or a network with host
        bits set, raise C{ValueError} naming the value.
        """
        for value in ("10.0.0.1/8", "example.com", "10.0.0.0/33", ""):
            e = self.assertRaises(ValueError, TrustedProxies.fromStrings, [value])
            self.assertIn(repr(value), str(e))


class ProxiedServerTestCase(unittest.TestCase):
    """
    A real server trusting 127.0.0.1 as its balancer, with short timeouts.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = support.TwistdServer(
            "--proxy-protocol",
            "--trusted-proxy",
            PROXY,
            "--handshake-timeout",
            "2",
            "--data-timeout",
            "3",
            *self.serverArgs,
            users={USER: PASSWORD},
        )
        self.server.start()
        self.addCleanup(self.server.stop)
        self.log = support.LogWatch(self.server)

    def serverLog(self) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-4000:]

    def control(
        self,
        header: bytes = b"",
        source: str = PROXY,
        implicit: bool = False,
        login: bool = True,
    ) -> support.ControlConnection:
        """
        A control connection from C{source} that first sends C{header};
        logged in with TLS and C{PROT P} unless told not.
        """
        control = support.ControlConnection(
            self.server, implicit=implicit, source=source, preamble=header
        )
        self.addCleanup(control.close)
        if login:
            self.assertEqual(control.greeting[0], 220, self.serverLog())
            if not implicit:
                control.auth()
            control.login(USER, PASSWORD)
            control.protect()
        return control

    def connectedFrom(self, control: support.ControlConnection) -> str:
        """
        The address the server says the session comes from (C{STAT}).
        """
        text = control.expect("STAT", 211).decode()
        for line in text.splitlines():
            if line.strip().startswith("Connected from "):
                return line.strip()[len("Connected from ") :]
        raise AssertionError(f"no address in {text!r}")

    def rawConnection(self, source: str = PROXY, implicit: bool = False) -> socket.socket:
        port = self.server.implicitPort if implicit else self.server.explicitPort
        sock = socket.create_connection((support.LOOPBACK, port), source_address=(source, 0))
        self.addCleanup(sock.close)
        return sock

    def assertClosedSilently(self, sock: socket.socket, what: str) -> None:
        """
        The server closes C{sock} without having sent a single byte.
        """
        data, closed = support.readUntilClosed(sock, 10)
        self.assertEqual(data, b"", f"{what}: the server sent bytes" + self.serverLog())
        self.assertTrue(closed, f"{what}: the connection stayed open" + self.serverLog())

    def assertLogged(self, text: str) -> None:
        self.assertTrue(self.log.waitFor(text), f"not logged: {text!r}" + self.serverLog())


class ControlConnectionTests(ProxiedServerTestCase):
    """
    Control connections from the trusted balancer and from direct clients.
    """

    def test_v1ClientAddress(self) -> None:
        """
        After a version 1 header the client it names is the peer: in C{STAT},
        in the login log line and in the per-command log lines.
        """
        self.log.mark()
        control = self.control(v1Header("192.0.2.44"))
        self.assertEqual(self.connectedFrom(control), "192.0.2.44")
        self.assertLogged(f"{USER} logged in from 192.0.2.44")
        self.assertLogged("192.0.2.44 <- STAT")
        self.assertNotIn(f"from {PROXY}", self.log.since())

    def test_v2ClientAddress(self) -> None:
        """
        The same after a version 2 header, IPv4 and IPv6 clients, explicit
        and implicit FTPS.
        """
        for client, implicit in (("192.0.2.45", False), ("2001:db8::45", True)):
            self.log.mark()
            control = self.control(v2Header(client), implicit=implicit)
            self.assertEqual(self.connectedFrom(control), client)
            self.assertLogged(f"{USER} logged in from {client}")

    def test_pipelinedAfterHeader(self) -> None:
        """
        Bytes that arrive in the same segment as the header reach the FTP
        protocol: a command sent with the header is answered after the
        greeting.
        """
        control = self.control(v2Header("192.0.2.46") + b"SYST\r\n", login=False)
        self.assertEqual(control.greeting[0], 220)
        self.assertEqual(control.reply()[0], 215)

    def test_implicitClientHelloWithHeader(self) -> None:
        """
        Implicit FTPS where the header and the TLS ClientHello arrive in one
        segment: the ClientHello reaches the TLS layer started for the
        client, the handshake completes and the greeting comes over TLS.
        """
        context = self.server.ca.clientContext()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=support.LOOPBACK)
        self.assertRaises(ssl.SSLWantReadError, tls.do_handshake)
        hello = outgoing.read()
        sock = self.rawConnection(implicit=True)
        sock.settimeout(10)
        sock.sendall(v2Header("192.0.2.47") + hello)

        def pump(step: Any) -> Any:
            while True:
                try:
                    return step()
                except ssl.SSLWantReadError:
                    pending = outgoing.read()
                    if pending:
                        sock.sendall(pending)
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise AssertionError("closed during TLS" + self.serverLog())
                    incoming.write(chunk)

        pump(tls.do_handshake)
        sock.sendall(outgoing.read())
        self.assertTrue(pump(lambda: tls.read(4096)).startswith(b"220 "))
        tls.write(f"USER {USER}\r\n".encode())
        sock.sendall(outgoing.read())
        self.assertTrue(pump(lambda: tls.read(4096)).startswith(b"331 "))
        tls.write(f"PASS {PASSWORD}\r\n".encode())
        sock.sendall(outgoing.read())
        self.assertTrue(pump(lambda: tls.read(4096)).startswith(b"230 "))
        self.assertLogged(f"{USER} logged in from 192.0.2.47")

    def test_alpnRefusalNamesClient(self) -> None:
        """
        The log line of a refused ALPN offer names the client from the
        header, not the balancer.
        """
        context = self.server.ca.clientContext()
        context.set_alpn_protocols(["http/1.1"])
        sock = self.rawConnection(implicit=True)
        sock.sendall(v2Header("192.0.2.80"))
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(sock, server_hostname=support.LOOPBACK)
        self.assertLogged("TLS handshake refused: 192.0.2.80 offered ALPN")

    def test_nothingBeforeHeader(self) -> None:
        """
        A trusted peer that sends nothing gets nothing, no greeting and no
        TLS, and is closed after the handshake timeout with a log line;
        likewise with half a header.
        """
        for implicit, partial in ((False, b""), (True, b""), (False, v2Header("192.0.2.1")[:20])):
            self.log.mark()
            sock = self.rawConnection(implicit=implicit)
            if partial:
                sock.sendall(partial)
            self.assertClosedSilently(sock, f"implicit={implicit} partial={partial!r}")
            self.assertLogged(f"closed connection from trusted proxy {PROXY}: no PROXY header")

    def test_trustedWithoutHeader(self) -> None:
        """
        A trusted peer whose first bytes are not a PROXY header is closed at
        once, without a byte sent, with a log line.
        """
        for implicit, first in ((False, b"USER alice\r\n"), (True, b"\x16\x03\x01\x00")):
            self.log.mark()
            sock = self.rawConnection(implicit=implicit)
            sock.sendall(first)
            self.assertClosedSilently(sock, f"implicit={implicit}")
            self.assertLogged(f"closed connection from trusted proxy {PROXY}: it sent no PROXY")

    def test_badHeader(self) -> None:
        """
        A malformed header from a trusted peer: closed without a byte, with
        a log line.
        """
        sock = self.rawConnection()
        sock.sendall(b"PROXY TCP4 not-an-address 127.0.0.1 1 21\r\n")
        self.assertClosedSilently(sock, "bad header")
        self.assertLogged(f"closed connection from trusted proxy {PROXY}: bad PROXY header")

    def test_healthCheck(self) -> None:
        """
        A version 2 C{LOCAL} header (a health check) is closed without a
        byte and without an info line.
        """
        self.log.mark()
        sock = self.rawConnection()
        sock.sendall(V2_LOCAL)
        self.assertClosedSilently(sock, "health check")
        self.assertLogged("names no client (a health check)")
        self.assertNotIn("#info", self.log.since())

    def test_untrustedWithHeader(self) -> None:
        """
        A PROXY header from an address that is not trusted closes the
        connection with a log line: over explicit FTPS after the greeting
        it already had, over implicit FTPS without a byte.
        """
        self.log.mark()
        sock = self.rawConnection(source=DIRECT)
        self.assertEqual(support.readReply(sock), b"220 txftps ready.\r\n")
        sock.sendall(v1Header("192.0.2.50"))
        self.assertClosedSilently(sock, "explicit, untrusted with a header")
        self.assertLogged(f"closed connection from {DIRECT}: a PROXY header from an address")
        self.log.mark()
        sock = self.rawConnection(source=DIRECT, implicit=True)
        sock.sendall(v2Header("192.0.2.50"))
        self.assertClosedSilently(sock, "implicit, untrusted with a header")
        self.assertLogged(f"closed connection from {DIRECT}: a PROXY header from an address")
        self.assertNotIn("192.0.2.50", self.server.log())

    def test_untrustedDirect(self) -> None:
        """
        A client from an address that is not trusted and sends no header is
        served as without the PROXY protocol, explicit and implicit.
        """
        for implicit in (False, True):
            control = self.control(source=DIRECT, implicit=implicit)
            self.assertEqual(self.connectedFrom(control), DIRECT)
            control.expect("NOOP", 200)


class IdleBeforeHandshakeTests(ProxiedServerTestCase):
    """
    An idle timeout shorter than the handshake timeout.
    """

    serverArgs = ("--idle-timeout", "1")

    def test_untrustedSilentImplicit(self) -> None:
        """
        A direct implicit-FTPS client that sends nothing while its idle
        timeout (shorter than the handshake timeout here) fires: the idle
        reply and close go through the TLS layer as without the PROXY
        protocol, and the connection ends after the handshake timeout
        without an error in the log.
        """
        sock = self.rawConnection(source=DIRECT, implicit=True)
        data, closed = support.readUntilClosed(sock, 10)
        self.assertTrue(closed, self.serverLog())
        self.assertNotIn("Traceback", self.server.log())
        self.assertNotIn("Unhandled", self.server.log())


class ProxiedDataTests(ProxiedServerTestCase):
    """
    Passive data connections through the balancer carry a header too, and
    are checked against the control connection's client address.
    """

    def setUp(self) -> None:
        super().setUp()
        self.payload = bytes(range(256)) * 4096
        support.writeFile(os.path.join(self.server.userHome(USER), "f.bin"), self.payload)

    def openData(self, control: support.ControlConnection, header: bytes, source: str) -> Any:
        port = control.epsv()
        sock = socket.create_connection(
            (support.LOOPBACK, port), timeout=10, source_address=(source, 0)
        )
        self.addCleanup(sock.close)
        if header:
            sock.sendall(header)
        return sock

    def test_downloadAndUpload(self) -> None:
        """
        A download and an upload over passive data connections from the
        balancer whose header names the control connection's client: the
        bytes arrive whole.
        """
        control = self.control(v2Header(DIRECT))
        data = control.secureData(self.openData(control, v2Header(DIRECT, 41000), PROXY))
        control.send("RETR f.bin")
        self.assertEqual(control.reply()[0], 150)
        received, _ = support.readUntilClosed(data, 10)
        self.assertEqual(control.reply()[0], 226, self.serverLog())
        self.assertEqual(received, self.payload)
        data = control.secureData(self.openData(control, v1Header(DIRECT, 41001), PROXY))
        control.send("STOR up.bin")
        self.assertEqual(control.reply()[0], 150)
        data.sendall(self.payload)
        support.finishUpload(data)
        self.assertEqual(control.reply()[0], 226, self.serverLog())
        stored = support.readFile(os.path.join(self.server.userHome(USER), "up.bin"))
        self.assertEqual(stored, self.payload)

    def test_uploadLogNamesClient(self) -> None:
        """
        The log line of a TLS upload that ended without close_notify names
        the client from the header, not the balancer.
        """
        control = self.control(v2Header(DIRECT))
        self.log.mark()
        data = control.secureData(self.openData(control, v2Header(DIRECT, 41002), PROXY))
        control.send("STOR cut.bin")
        self.assertEqual(control.reply()[0], 150)
        data.sendall(b"x" * 1000)
        data.close()
        self.assertEqual(control.reply()[0], 426, self.serverLog())
        self.assertLogged(f"TLS upload from {DIRECT} ended without close_notify")

    def test_directDataForProxiedControl(self) -> None:
        """
        A data connection straight from the client (not through the
        balancer, no header) passes the peer check as today.
        """
        control = self.control(v2Header(DIRECT))
        data = control.secureData(self.openData(control, b"", DIRECT))
        control.send("RETR f.bin")
        self.assertEqual(control.reply()[0], 150)
        received, _ = support.readUntilClosed(data, 10)
        self.assertEqual(control.reply()[0], 226, self.serverLog())
        self.assertEqual(received, self.payload)

    def test_foreignClient(self) -> None:
        """
        A data connection from the balancer whose header names another
        client is refused: zero bytes, 425, a log line naming both.
        """
        control = self.control(v2Header(DIRECT))
        self.log.mark()
        sock = self.openData(control, v2Header(OTHER), PROXY)
        control.send("RETR f.bin")
        self.assertEqual(control.finalReply()[1][0], 425, self.serverLog())
        self.assertClosedSilently(sock, "foreign client in the data header")
        self.assertLogged(f"refused data connection from {OTHER}; control peer is {DIRECT}")

    def test_directForeignClient(self) -> None:
        """
        A direct data connection from another address than the proxied
        client is refused as today.
        """
        control = self.control(v2Header(DIRECT))
        sock = self.openData(control, b"", OTHER)
        control.send("RETR f.bin")
        self.assertEqual(control.finalReply()[1][0], 425, self.serverLog())
        self.assertClosedSilently(sock, "direct foreign client")

    def test_noHeader(self) -> None:
        """
        A data connection from the balancer without a header (here a TLS
        ClientHello) is refused: zero bytes, 425, a log line.
        """
        control = self.control(v2Header(DIRECT))
        self.log.mark()
        sock = self.openData(control, b"", PROXY)
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        control.send("RETR f.bin")
        self.assertEqual(control.finalReply()[1][0], 425, self.serverLog())
        self.assertClosedSilently(sock, "no header on the data connection")
        self.assertLogged(f"closed data connection from trusted proxy {PROXY}: it sent no PROXY")


class CapsAndBansTests(ProxiedServerTestCase):
    """
    Caps and bans count the client the header names, not the balancer.
    """

    serverArgs = ("--ban-after", "2", "--ban-time", "60", "--max-clients-per-ip", "2")

    def test_perAddressCap(self) -> None:
        """
        With C{--max-clients-per-ip 2}, a third connection for one client
        gets 421 while another client behind the same balancer gets 220.
        """
        for _ in range(2):
            self.assertEqual(self.control(v2Header("192.0.2.60"), login=False).greeting[0], 220)
        self.assertEqual(self.control(v2Header("192.0.2.60"), login=False).greeting[0], 421)
        self.assertEqual(self.control(v2Header("192.0.2.61"), login=False).greeting[0], 220)

    def test_ban(self) -> None:
        """
        With C{--ban-after 2}, two failed logins of one client through the
        balancer ban that client at the door (421, logged with its address)
        and nobody else: not another client behind the balancer, not a
        direct client.
        """
        for _ in range(2):
            control = self.control(v2Header("192.0.2.66"), login=False)
            control.auth()
            control.expect(f"USER {USER}", 331)
            control.expect("PASS wrong", 530)
            control.close()
        self.log.mark()
        banned = self.control(v1Header("192.0.2.66"), login=False)
        self.assertEqual(banned.greeting[0], 421, self.serverLog())
        self.assertLogged("refused 192.0.2.66: banned after failed logins")
        self.assertTrue(support.serverClosed(banned))
        # Implicit FTPS: refused before any TLS, without a byte.
        self.log.mark()
        sock = self.rawConnection(implicit=True)
        sock.sendall(v2Header("192.0.2.66"))
        self.assertClosedSilently(sock, "banned client over implicit FTPS")
        self.assertLogged("refused 192.0.2.66: banned after failed logins")

    def test_banLeavesOthers(self) -> None:
        """
        The ban of one client leaves another client behind the balancer and
        a direct client alone.
        """
        for _ in range(2):
            control = self.control(v2Header("192.0.2.67"), login=False)
            control.auth()
            control.expect(f"USER {USER}", 331)
            control.expect("PASS wrong", 530)
            control.close()
        self.assertEqual(self.control(v2Header("192.0.2.67"), login=False).greeting[0], 421)
        self.control(v2Header("192.0.2.68"))
        self.control(source=DIRECT)
