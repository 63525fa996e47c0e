"""
Tests for L{txftps._internals}: each private part of pyOpenSSL or Twisted
that txftps relies on is still there and still does what we use it for. A
failure here names the function that an upgrade broke.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, protocol, reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import (
    drainBIO,
    memoryClient,
    memoryClientContext,
    memoryHandshake,
    memoryServerTLS,
)
from txftps._internals import (
    CiphertextReader,
    PlaintextReader,
    directSocket,
    fipsProviderActive,
    forgetTLS,
    releaseBuffers,
    sessionReused,
    setGroups,
    setSessionContext,
    setSignatureAlgorithms,
    takeTLSLayer,
    unreadBytes,
)


class SessionReusedTests(SynchronousTestCase):
    """
    L{sessionReused} wraps pyOpenSSL's private C{SSL_session_reused}.
    """

    def test_bindingExists(self) -> None:
        """
        C{OpenSSL._util.lib.SSL_session_reused} exists. If this fails, a
        pyOpenSSL upgrade removed the private binding:
        L{txftps._internals.sessionReused} (and with it C{--session-reuse
        required}) must be reimplemented.
        """
        from OpenSSL import _util

        lib = getattr(_util, "lib", None)
        if lib is None or not hasattr(lib, "SSL_session_reused"):
            self.fail(
                "pyOpenSSL no longer exposes OpenSSL._util.lib.SSL_session_reused: "
                "txftps._internals.sessionReused is broken; TLS session-reuse checks on "
                "data connections cannot work until it is reimplemented"
            )
        connection = SSL.Connection(memoryClientContext(), None)
        self.assertTrue(hasattr(connection, "_ssl"), "SSL.Connection._ssl is gone")


class SetSessionContextTests(SynchronousTestCase):
    """
    L{setSessionContext} wraps the private binding of
    C{SSL_CTX_set_session_id_context}, which works on a context that already
    made connections (pyOpenSSL's C{set_session_id} refuses those).
    """

    def test_usedContext(self) -> None:
        """
        On a context that made a connection, the session-ID context set is
        the one the next connection takes: a session made under one resumes
        under the same bytes, not under others.
        """
        tls, _ = memoryServerTLS("localhost")
        context = tls.optionsForConnection().getContext()
        clientContext = memoryClientContext()
        keep = []

        def handshake(sessionContext: bytes, session: SSL.Session | None) -> SSL.Connection:
            """
            Make a server connection under C{sessionContext} and run a
            handshake offering C{session}; return the client side.
            """
            setSessionContext(context, sessionContext)
            server = SSL.Connection(context, None)
            server.set_accept_state()
            client = memoryClient(clientContext, session)
            memoryHandshake(server, client)
            keep.append((server, client))
            return client

        session = handshake(b"one", None).get_session()
        self.assertRaises(ValueError, context.set_session_id, b"refused")
        handshake(b"two", session)
        handshake(b"one", session)
        self.assertEqual([sessionReused(server) for server, _ in keep], [False, False, True])

    def test_tooLong(self) -> None:
        """
        More than 32 bytes (OpenSSL's limit) is a L{ValueError}.
        """
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        setSessionContext(context, b"x" * 32)
        self.assertRaises(ValueError, setSessionContext, context, b"x" * 33)


class ProfileListTests(SynchronousTestCase):
    """
    L{setGroups} and L{setSignatureAlgorithms} wrap pyOpenSSL's private
    C{SSL_CTX_set1_curves_list} and C{SSL_CTX_set1_sigalgs_list}, which the
    C{fips} TLS profile needs.
    """

    def test_groupsRestricted(self) -> None:
        """
        After L{setGroups} with C{P-384} only, a handshake with a client
        that offers X25519 and P-384 agrees on P-384, and one with a client
        offering only X25519 fails. If this fails, a pyOpenSSL upgrade broke
        L{txftps._internals.setGroups} and the C{fips} profile with it.
        """
        tls, _ = memoryServerTLS("localhost")

        def handshake(clientGroups: bytes) -> SSL.Connection:
            context = SSL.Context(SSL.TLS_SERVER_METHOD)
            context.use_certificate(tls._openSSLChain[0])
            context.use_privatekey(tls.key)
            setGroups(context, b"P-384")
            server = SSL.Connection(context, None)
            server.set_accept_state()
            clientContext = memoryClientContext(maxVersion=SSL.TLS1_3_VERSION)
            setGroups(clientContext, clientGroups)
            memoryHandshake(server, memoryClient(clientContext))
            return server

        server = handshake(b"X25519:P-384")
        self.assertEqual(server.get_group_name(), "secp384r1")
        self.assertRaises(SSL.Error, handshake, b"X25519")
        self.assertRaises(ValueError, setGroups, SSL.Context(SSL.TLS_METHOD), b"no-such-group")

    def test_signatureAlgorithmsAccepted(self) -> None:
        """
        L{setSignatureAlgorithms} accepts a list OpenSSL knows and refuses
        one it does not.
        """
        setSignatureAlgorithms(SSL.Context(SSL.TLS_METHOD), b"ECDSA+SHA256:rsa_pss_rsae_sha256")
        self.assertRaises(
            ValueError, setSignatureAlgorithms, SSL.Context(SSL.TLS_METHOD), b"ECDSA+MD4"
        )

    def test_fipsProviderActive(self) -> None:
        """
        L{fipsProviderActive} can tell (C{True} or C{False}): if it returns
        C{None}, C{cryptography}'s backend lost C{_fips_enabled} and the
        start line says "FIPS provider state unknown".
        """
        self.assertIn(fipsProviderActive(), (True, False))


class UnreadBytesTests(SynchronousTestCase):
    """
    L{unreadBytes} reads what is left in a connection's private incoming
    memory BIO (C{CCC}: plaintext behind the client's close_notify).
    """

    def test_bytesBehindCloseNotify(self) -> None:
        """
        After the peer's close_notify, the plaintext that arrived with it is
        returned, once.
        """
        tls, _ = memoryServerTLS("localhost")
        server = SSL.Connection(tls.optionsForConnection().getContext(), None)
        server.set_accept_state()
        client = memoryClient(memoryClientContext())
        memoryHandshake(server, client)
        client.shutdown()
        server.bio_write(drainBIO(client) + b"NOOP\r\n")
        with self.assertRaises(SSL.ZeroReturnError):
            server.recv(1024)
        self.assertEqual(unreadBytes(server), b"NOOP\r\n")
        self.assertEqual(unreadBytes(server), b"")


def _connectedPair() -> tuple[SSL.Connection, SSL.Connection]:
    """
    A memory-BIO server and client connection with their handshake done.
    """
    tls, _ = memoryServerTLS("localhost")
    server = SSL.Connection(tls.optionsForConnection().getContext(), None)
    server.set_accept_state()
    client = memoryClient(memoryClientContext())
    memoryHandshake(server, client)
    return server, client


def _sendAll(connection: SSL.Connection, data: bytes) -> None:
    while data:
        data = data[connection.send(data) :]


def _mode(connection: SSL.Connection) -> int:
    from OpenSSL._util import lib

    return int(lib.SSL_set_mode(connection._ssl, 0))


class ReleaseBuffersTests(SynchronousTestCase):
    """
    L{releaseBuffers} sets C{SSL_MODE_RELEASE_BUFFERS} on one connection
    through pyOpenSSL's private C{SSL_set_mode} binding.
    """

    def test_oneConnectionOnly(self) -> None:
        """
        The connection given gets the mode; another connection of the same
        context (a data connection) keeps its buffers, and the released one
        still carries data both ways.
        """
        from OpenSSL._util import lib

        server, client = _connectedPair()
        other = SSL.Connection(server.get_context(), None)
        releaseBuffers(server)
        self.assertTrue(_mode(server) & lib.SSL_MODE_RELEASE_BUFFERS)
        self.assertFalse(_mode(other) & lib.SSL_MODE_RELEASE_BUFFERS)
        client.send(b"NOOP\r\n")
        server.bio_write(drainBIO(client))
        self.assertEqual(server.recv(100), b"NOOP\r\n")
        server.send(b"200 OK\r\n")
        client.bio_write(drainBIO(server))
        self.assertEqual(client.recv(100), b"200 OK\r\n")

    def test_notAConnection(self) -> None:
        """
        Anything but a pyOpenSSL connection is left alone.
        """
        releaseBuffers(object())


class PlaintextReaderTests(SynchronousTestCase):
    """
    L{PlaintextReader} decrypts many records into one C{bytes} through
    pyOpenSSL's private C{SSL_read} binding and C{Connection._raise_ssl_error}.
    """

    def test_manyRecordsOneRead(self) -> None:
        """
        Three records and a close_notify come back as one piece, with the
        close seen.
        """
        server, client = _connectedPair()
        pieces = [bytes([n]) * 10000 for n in range(3)]
        for piece in pieces:
            _sendAll(client, piece)
        client.shutdown()
        server.bio_write(drainBIO(client))
        self.assertEqual(PlaintextReader(65536).read(server), (b"".join(pieces), True))

    def test_boundedBySize(self) -> None:
        """
        A read returns at most C{size} bytes; the next read returns the rest,
        and a read with nothing pending returns nothing, not closed.
        """
        server, client = _connectedPair()
        _sendAll(client, b"a" * 20000)
        server.bio_write(drainBIO(client))
        reader = PlaintextReader(15000)
        self.assertEqual(reader.read(server), (b"a" * 15000, False))
        self.assertEqual(reader.read(server), (b"a" * 5000, False))
        self.assertEqual(reader.read(server), (b"", False))

    def test_badRecord(self) -> None:
        """
        A record that does not decrypt raises pyOpenSSL's C{SSL.Error}.
        """
        server, client = _connectedPair()
        client.send(b"x" * 1000)
        record = bytearray(drainBIO(client))
        record[-1] ^= 1
        server.bio_write(bytes(record))
        self.assertRaises(SSL.Error, PlaintextReader(4096).read, server)


class CiphertextReaderTests(SynchronousTestCase):
    """
    L{CiphertextReader} reads a connection's outgoing memory BIO through
    pyOpenSSL's private C{BIO_read} binding and C{Connection._from_ssl}.
    """

    def test_readsWhatTheConnectionWrote(self) -> None:
        """
        The records a connection wrote come back as a view the peer
        decrypts; a read with nothing pending returns an empty view (no
        exception). If C{_from_ssl} or C{BIO_read} is gone, downloads
        (C{txftps._datatls}) must be reimplemented.
        """
        server, client = _connectedPair()
        _sendAll(server, b"z" * 40000)
        reader = CiphertextReader(1 << 20)
        records = reader.read(server)
        self.assertIsInstance(records, memoryview)
        client.bio_write(bytes(records))
        self.assertEqual(PlaintextReader(65536).read(client), (b"z" * 40000, False))
        self.assertEqual(len(reader.read(server)), 0)

    def test_boundedBySize(self) -> None:
        """
        A read takes at most C{size} bytes; the next read goes on where it
        stopped, into the same buffer.
        """
        server, client = _connectedPair()
        _sendAll(server, b"y" * 20000)
        reader = CiphertextReader(4096)
        pieces = []
        while True:
            piece = reader.read(server)
            pieces.append(bytes(piece))
            if len(piece) < 4096:
                break
        self.assertEqual({len(p) for p in pieces[:-1]}, {4096})
        client.bio_write(b"".join(pieces))
        self.assertEqual(PlaintextReader(65536).read(client), (b"y" * 20000, False))

    def test_socketConnection(self) -> None:
        """
        A connection made with a socket (no memory BIO) raises C{TypeError}
        instead of reading through a null BIO.
        """
        import socket

        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        connection = SSL.Connection(memoryClientContext(), a)
        self.assertRaises(TypeError, CiphertextReader(4096).read, connection)


class _Connected(protocol.Protocol):
    """
    Fires C{ready} with itself once connected.
    """

    def __init__(self) -> None:
        self.ready: defer.Deferred[_Connected] = defer.Deferred()

    def connectionMade(self) -> None:
        self.ready.callback(self)


class DirectSocketTests(TestCase):
    """
    L{directSocket} leans on Twisted's C{tcp.Connection}, its C{protocol}
    and C{TLS} attributes and C{getHandle}.
    """

    @defer.inlineCallbacks
    def _accepted(self) -> Any:
        server = _Connected()
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, protocol.Factory.forProtocol(lambda: server), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, protocol.Protocol).connectTCP(
            "127.0.0.1", port.getHost().port
        )
        self.addCleanup(client.transport.abortConnection)
        yield server.ready
        self.addCleanup(server.transport.abortConnection)  # type: ignore[union-attr]
        return server

    @defer.inlineCallbacks
    def test_plainTCP(self) -> Any:
        """
        An accepted TCP connection's own protocol gets the connection's
        socket. If this fails, C{txftps._internals.directSocket} must be
        reimplemented (downloads then go through the transport only).
        """
        import socket

        server = yield self._accepted()
        sock = directSocket(server.transport, server)
        self.assertIsInstance(sock, socket.socket)
        self.assertEqual(sock.fileno(), server.transport.fileno())

    @defer.inlineCallbacks
    def test_notItsProtocol(self) -> Any:
        """
        A protocol that is not the transport's own (it is wrapped) gets
        C{None}: writes must go through the wrapper.
        """
        server = yield self._accepted()
        self.assertIsNone(directSocket(server.transport, protocol.Protocol()))

    @defer.inlineCallbacks
    def test_twistedTLS(self) -> Any:
        """
        A transport running Twisted's TLS (C{startTLS}) gets C{None}.
        """
        server = yield self._accepted()
        tls, _ = memoryServerTLS("localhost")
        server.transport.startTLS(tls.optionsForConnection())
        self.assertIsNone(directSocket(server.transport, server))

    def test_otherTransports(self) -> None:
        """
        Anything but Twisted's TCP transport gets C{None}.
        """
        from twisted.internet.testing import StringTransport

        transport = StringTransport()
        transport.protocol = object()  # type: ignore[attr-defined]
        self.assertIsNone(directSocket(transport, transport.protocol))  # type: ignore[attr-defined]


class _StartTLSOnConnect(protocol.Protocol):
    """
    Starts TLS as soon as it is connected and records what
    L{takeTLSLayer} and L{forgetTLS} did to the transport.
    """

    def __init__(self, options: Any, done: defer.Deferred[dict[str, Any]]) -> None:
        self.options = options
        self.done = done

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.startTLS(self.options)
        found: dict[str, Any] = {
            "instanceAttributes": {"getHandle", "getPeerCertificate"} <= set(vars(transport)),
            "sslBefore": ISSLTransport.providedBy(transport),
        }
        layer = takeTLSLayer(transport)
        found["connection"] = layer.connection
        found["flush"] = layer.flushSendBIO
        forgetTLS(transport)
        found["sslAfter"] = ISSLTransport.providedBy(transport)
        found["leftAttributes"] = {"getHandle", "getPeerCertificate"} & set(vars(transport))
        transport.abortConnection()
        self.done.callback(found)


class TLSLayerTests(TestCase):
    """
    L{takeTLSLayer} and L{forgetTLS} lean on what Twisted's C{startTLS} does
    to a TCP transport (an instance C{getHandle} and C{getPeerCertificate},
    C{ISSLTransport}) and on its TLS layer's private C{_tlsConnection},
    C{_flushSendBIO} and C{_aggregator}.
    """

    def test_startTLSLayer(self) -> None:
        """
        On a real loopback TCP connection after C{startTLS}: the layer has a
        pyOpenSSL connection and a flush callable, and forgetting TLS removes
        the instance attributes and C{ISSLTransport}. A failure means
        C{txftps._internals.takeTLSLayer} or C{forgetTLS} (and with them
        C{CCC}) must be reimplemented for this Twisted.
        """
        tls, _ = memoryServerTLS("localhost")
        done: defer.Deferred[dict[str, Any]] = defer.Deferred()
        factory = protocol.Factory.forProtocol(
            lambda: _StartTLSOnConnect(tls.optionsForConnection(), done)
        )
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        client = protocol.ClientCreator(reactor, protocol.Protocol)
        connecting = client.connectTCP("127.0.0.1", port.getHost().port)

        def closeClient(p: protocol.Protocol) -> None:
            self.addCleanup(p.transport.abortConnection)  # type: ignore[union-attr]

        connecting.addCallback(closeClient)

        def check(found: dict[str, Any]) -> None:
            self.assertTrue(found["instanceAttributes"], found)
            self.assertTrue(found["sslBefore"])
            self.assertIsInstance(found["connection"], SSL.Connection)
            self.assertTrue(callable(found["flush"]))
            self.assertFalse(found["sslAfter"])
            self.assertEqual(found["leftAttributes"], set())

        return defer.gatherResults([connecting, done.addCallback(check)])


class CopySessionTests(SynchronousTestCase):
    """
    L{copySession} copies a client session with pyOpenSSL's private
    C{i2d_SSL_SESSION}, C{d2i_SSL_SESSION} and C{Session} attributes.
    """

    def test_copy(self) -> None:
        """
        The copy of a session from a completed handshake is another
        C{SSL_SESSION} that a connection of the same context accepts and
        resumes. If this fails, a pyOpenSSL upgrade broke
        L{txftps._internals.copySession}, and with it session resumption on
        the client's data connections after a failed one.
        """
        from txftps._internals import copySession, sessionReused

        serverTLS, _ = memoryServerTLS()
        serverContext = serverTLS.optionsForConnection().getContext()
        clientContext = memoryClientContext()
        first = memoryClient(clientContext)
        server = SSL.Connection(serverContext, None)
        server.set_accept_state()
        memoryHandshake(server, first)
        original = first.get_session()
        assert original is not None
        try:
            copy = copySession(original)
        except Exception as e:
            self.fail(f"txftps._internals.copySession is broken: {e!r}")
        self.assertIsNot(copy._session, original._session)
        second = memoryClient(clientContext, copy)
        server = SSL.Connection(serverContext, None)
        server.set_accept_state()
        memoryHandshake(server, second)
        self.assertTrue(sessionReused(second), "a copied session was not resumed")


class ExitSignalTests(SynchronousTestCase):
    """
    L{txftps._internals.forgetExitSignal} leans on Twisted's private
    C{_exitSignal}, which a reactor stopped by a signal remembers.
    """

    def test_reactorRemembersTheSignal(self) -> None:
        """
        A reactor's signal handler for SIGTERM records the signal in
        C{_exitSignal}; L{forgetExitSignal} clears it, and leaves another
        signal alone. A failure means C{--workers} would exit -15 after
        SIGTERM: reimplement L{forgetExitSignal} for this Twisted.
        """
        import signal as signals

        from twisted.internet.selectreactor import SelectReactor

        from txftps._internals import forgetExitSignal

        # A reactor of its own, never run or installed.
        reactor: Any = SelectReactor()
        self.addCleanup(reactor.disconnectAll)
        self.assertTrue(hasattr(reactor, "_exitSignal"), "Twisted reactors lost _exitSignal")
        reactor._exitSignal = None
        reactor.sigTerm(signals.SIGTERM, None)
        self.assertEqual(reactor._exitSignal, signals.SIGTERM)
        self.assertFalse(forgetExitSignal(reactor, signals.SIGINT))
        self.assertEqual(reactor._exitSignal, signals.SIGTERM)
        self.assertTrue(forgetExitSignal(reactor, signals.SIGTERM))
        self.assertIsNone(reactor._exitSignal)
