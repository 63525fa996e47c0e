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
    fipsProviderActive,
    forgetTLS,
    setGroups,
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
