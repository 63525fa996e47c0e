"""
Tests for L{txftps.tls}: the session-reuse check, the per-connection TLS
options, and certificate loading and generation.

Everything runs in memory: pyOpenSSL connections over memory BIOs, no sockets.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity.pyopenssl import verify_hostname
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from tests.support import (
    drainBIO,
    memoryClient,
    memoryClientContext,
    memoryHandshake,
    memoryServerTLS,
    stepTLS,
)
from txftps.tls import (
    ALPNRefused,
    CertificateError,
    ConnectionTLS,
    ServerTLS,
    fingerprint,
    sessionReused,
)

_VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}


def _server(options: SSL.Context | ConnectionTLS) -> SSL.Connection:
    if isinstance(options, ConnectionTLS):
        server = options.newConnection()
    else:
        server = SSL.Connection(options, None)
    server.set_accept_state()
    return server


class SessionReusedTests(SynchronousTestCase):
    """
    L{sessionReused} tells a resumed handshake from a full one, for TLS 1.2
    and TLS 1.3, and only a session of the same control connection's
    options resumes, although every connection shares one context.
    """

    def setUp(self) -> None:
        self.tls, _ = memoryServerTLS()
        self.serverContext = self.tls.optionsForConnection()
        self.controlConnections: list[tuple[SSL.Connection, SSL.Connection]] = []

    def _firstSession(self, version: str, clientContext: SSL.Context) -> SSL.Session:
        """
        Run a first full handshake (the control connection) and return the
        client's session. Both ends are kept alive for the rest of the test,
        as a control connection is while its data connections run: OpenSSL
        marks a session not resumable when the client connection that made
        it is freed without a TLS shutdown.
        """
        server = _server(self.serverContext)
        client = memoryClient(clientContext)
        memoryHandshake(server, client)
        self.assertEqual(server.get_protocol_version_name(), version)
        self.controlConnections.append((server, client))
        return client.get_session()

    def _fresh(self, version: str) -> None:
        server = _server(self.serverContext)
        client = memoryClient(memoryClientContext(maxVersion=_VERSIONS[version]))
        memoryHandshake(server, client)
        self.assertEqual(server.get_protocol_version_name(), version)
        self.assertIs(sessionReused(server), False)

    def test_freshHandshakeTLS12(self) -> None:
        """
        A full TLS 1.2 handshake is not reported as resumed.
        """
        self._fresh("TLSv1.2")

    def test_freshHandshakeTLS13(self) -> None:
        """
        A full TLS 1.3 handshake is not reported as resumed.
        """
        self._fresh("TLSv1.3")

    def _resumedSameContext(self, version: str, clientContext: SSL.Context) -> None:
        session = self._firstSession(version, clientContext)
        server = _server(self.serverContext)
        client = memoryClient(clientContext, session)
        memoryHandshake(server, client)
        self.assertEqual(server.get_protocol_version_name(), version)
        self.assertIs(sessionReused(server), True)

    def test_resumedTLS12(self) -> None:
        """
        A TLS 1.2 handshake resuming a session of the same server context is
        reported as resumed.
        """
        self._resumedSameContext("TLSv1.2", memoryClientContext(maxVersion=SSL.TLS1_2_VERSION))

    def test_resumedTLS12SessionCache(self) -> None:
        """
        The server context has a session cache: a TLS 1.2 client that does not
        use tickets still resumes by session ID.
        """
        clientContext = memoryClientContext(maxVersion=SSL.TLS1_2_VERSION)
        clientContext.set_options(SSL.OP_NO_TICKET)
        self._resumedSameContext("TLSv1.2", clientContext)

    def test_resumedTLS13(self) -> None:
        """
        A TLS 1.3 handshake resuming a ticket of the same server context is
        reported as resumed.
        """
        self._resumedSameContext("TLSv1.3", memoryClientContext(maxVersion=SSL.TLS1_3_VERSION))

    def _otherContext(self, version: str, tickets: bool = True) -> None:
        clientContext = memoryClientContext(maxVersion=_VERSIONS[version])
        if not tickets:
            clientContext.set_options(SSL.OP_NO_TICKET)
        session = self._firstSession(version, clientContext)
        other = self.tls.optionsForConnection()
        server = _server(other)
        client = memoryClient(clientContext, session)
        memoryHandshake(server, client)
        self.assertEqual(server.get_protocol_version_name(), version)
        self.assertIs(sessionReused(server), False)

    def test_otherConnectionTLS12(self) -> None:
        """
        A TLS 1.2 ticket of one control connection does not resume on a
        connection of another control connection's options.
        """
        self._otherContext("TLSv1.2")

    def test_otherConnectionTLS12SessionID(self) -> None:
        """
        A TLS 1.2 session ID of one control connection (no tickets: the
        server's session cache) does not resume on a connection of another
        control connection's options.
        """
        self._otherContext("TLSv1.2", tickets=False)

    def test_otherConnectionTLS13(self) -> None:
        """
        A TLS 1.3 ticket of one control connection does not resume on a
        connection of another control connection's options.
        """
        self._otherContext("TLSv1.3")

    def test_interleavedConnections(self) -> None:
        """
        Connections made in any order each keep the session-ID context of
        the options that made them: a data connection made for the first
        control connection after a second control connection's connection
        was made resumes only the first one's session, and one made for the
        second resumes only the second's (TLS 1.2 and 1.3).
        """
        for version in ("TLSv1.2", "TLSv1.3"):
            clientContext = memoryClientContext(maxVersion=_VERSIONS[version])
            first = self.serverContext
            firstSession = self._firstSession(version, clientContext)
            second = self.tls.optionsForConnection()
            secondControl = _server(second)
            secondClient = memoryClient(clientContext)
            memoryHandshake(secondControl, secondClient)
            self.controlConnections.append((secondControl, secondClient))
            secondSession = secondClient.get_session()

            results = []
            for options, session in (
                (first, firstSession),
                (second, firstSession),
                (first, secondSession),
                (second, secondSession),
            ):
                server = _server(options)
                # Another connection made between this one and its handshake.
                _server(self.tls.optionsForConnection())
                client = memoryClient(clientContext, session)
                memoryHandshake(server, client)
                self.controlConnections.append((server, client))
                results.append(sessionReused(server))
            self.assertEqual(results, [True, False, False, True], version)


class OptionsForConnectionTests(SynchronousTestCase):
    """
    L{ServerTLS.optionsForConnection} makes the options of one control
    connection with the policy of the design, on one shared context.
    """

    def setUp(self) -> None:
        self.tls, self.ca = memoryServerTLS()

    def test_newSessionContextEachCall(self) -> None:
        """
        Every call gives a new options object with a session-ID context of
        its own, on the one context of the L{ServerTLS}.
        """
        options = [self.tls.optionsForConnection() for _ in range(100)]
        self.assertEqual(len({id(o) for o in options}), 100)
        self.assertEqual(len({o.sessionContext for o in options}), 100)
        self.assertTrue(all(0 < len(o.sessionContext) <= 32 for o in options))
        self.assertEqual(len({id(o.getContext()) for o in options}), 1)

    def test_startTLS(self) -> None:
        """
        The options are what Twisted's C{startTLS} takes: an
        L{IOpenSSLServerConnectionCreator} whose connections use the shared
        context.
        """
        options = self.tls.optionsForConnection()
        self.assertTrue(IOpenSSLServerConnectionCreator.providedBy(options))
        connection = options.serverConnectionForTLS(object())
        self.assertIs(connection.get_context(), options.getContext())

    def test_sameContextForItsConnections(self) -> None:
        """
        One options object always hands out the same context, so the control
        connection and its data connections share it.
        """
        options = self.tls.optionsForConnection()
        self.assertIs(options.getContext(), options.getContext())

    def test_tls12Accepted(self) -> None:
        """
        A client limited to TLS 1.2 completes a handshake.
        """
        server = _server(self.tls.optionsForConnection())
        client = memoryClient(memoryClientContext(maxVersion=SSL.TLS1_2_VERSION))
        memoryHandshake(server, client)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.2")

    def test_tls11Refused(self) -> None:
        """
        A client limited to TLS 1.1 fails the handshake, while the same
        client completes one against a server that allows TLS 1.1 (so the
        refusal is the server's minimum version).
        """

        def tls11Client() -> SSL.Connection:
            context = memoryClientContext(
                minVersion=SSL.TLS1_VERSION, maxVersion=SSL.TLS1_1_VERSION
            )
            context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
            return memoryClient(context)

        permissive = SSL.Context(SSL.TLS_SERVER_METHOD)
        permissive.set_min_proto_version(SSL.TLS1_VERSION)
        permissive.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        permissive.use_certificate(X509.from_cryptography(self.tls.chain[0]))
        permissive.use_privatekey(self.tls.key)
        control = _server(permissive)
        memoryHandshake(control, tls11Client())
        self.assertEqual(control.get_protocol_version_name(), "TLSv1.1")

        server = _server(self.tls.optionsForConnection())
        error = self.assertRaises(SSL.Error, memoryHandshake, server, tls11Client())
        self.assertIn("protocol", str(error))

    def test_noRenegotiation(self) -> None:
        """
        The context has C{OP_NO_RENEGOTIATION} set.
        """
        context = self.tls.optionsForConnection().getContext()
        options = context.set_options(0)
        self.assertTrue(options & SSL.OP_NO_RENEGOTIATION, hex(options))

    def test_sessionTicketsOn(self) -> None:
        """
        Session tickets are not disabled: C{OP_NO_TICKET} is not set.
        """
        context = self.tls.optionsForConnection().getContext()
        options = context.set_options(0)
        self.assertFalse(options & SSL.OP_NO_TICKET, hex(options))

    def test_sessionCacheOn(self) -> None:
        """
        The server-side session cache is on.
        """
        context = self.tls.optionsForConnection().getContext()
        self.assertTrue(context.get_session_cache_mode() & SSL.SESS_CACHE_SERVER)

    def test_chainFromCA(self) -> None:
        """
        A leaf issued by an intermediate, loaded from a PEM chain file (leaf
        first), is served with its intermediate: a client that trusts only
        the root CA verifies the server and its host name.
        """
        root = trustme.CA()
        intermediate = root.create_child_ca()
        leaf = intermediate.issue_cert("ftps.example.test")
        directory = FilePath(self.mktemp())
        directory.makedirs()
        certPath = directory.child("chain.pem")
        keyPath = directory.child("key.pem")
        certPath.setContent(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        keyPath.setContent(leaf.private_key_pem.bytes())

        tls = ServerTLS.fromFiles(certPath, keyPath)
        self.assertEqual(len(tls.chain), 2)
        self.assertEqual(
            tls.chain[0].subject,
            x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).subject,
        )

        clientContext = memoryClientContext()
        root.configure_trust(clientContext)
        clientContext.set_verify(SSL.VERIFY_PEER)
        client = memoryClient(clientContext)
        client.set_tlsext_host_name(b"ftps.example.test")
        server = _server(tls.optionsForConnection())
        memoryHandshake(server, client)
        verify_hostname(client, "ftps.example.test")
        presented = client.get_peer_cert_chain()
        self.assertEqual(len(presented), 2)

    def test_chainUntrustedCA(self) -> None:
        """
        A client trusting another CA fails to verify the server (so
        L{test_chainFromCA} tests verification, not its absence).
        """
        clientContext = memoryClientContext()
        trustme.CA().configure_trust(clientContext)
        clientContext.set_verify(SSL.VERIFY_PEER)
        server = _server(self.tls.optionsForConnection())
        self.assertRaises(SSL.Error, memoryHandshake, server, memoryClient(clientContext))


class FromFilesTests(SynchronousTestCase):
    """
    L{ServerTLS.fromFiles} loads a chain and a key, or raises
    L{CertificateError} with a one-line reason.
    """

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.ca = trustme.CA()
        self.leaf = self.ca.issue_cert("localhost")
        self.certPath = self.directory.child("cert.pem")
        self.keyPath = self.directory.child("key.pem")
        self.certPath.setContent(b"".join(b.bytes() for b in self.leaf.cert_chain_pems))
        self.keyPath.setContent(self.leaf.private_key_pem.bytes())

    def _refused(self, certPath: FilePath[str], keyPath: FilePath[str], mention: str) -> str:
        error = self.assertRaises(CertificateError, ServerTLS.fromFiles, certPath, keyPath)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertNotIn("\r", message)
        self.assertIn(mention, message)
        return message

    def test_loads(self) -> None:
        """
        A matching chain and key load; the chain starts with the leaf.
        """
        tls = ServerTLS.fromFiles(self.certPath, self.keyPath)
        leaf = x509.load_pem_x509_certificate(self.leaf.cert_chain_pems[0].bytes())
        self.assertEqual(tls.chain[0], leaf)

    def test_sameFile(self) -> None:
        """
        Key and chain may be in one file.
        """
        both = self.directory.child("both.pem")
        both.setContent(self.leaf.private_key_and_cert_chain_pem.bytes())
        tls = ServerTLS.fromFiles(both, both)
        self.assertEqual(len(tls.chain), len(self.leaf.cert_chain_pems))

    def test_missingCertificate(self) -> None:
        """
        A missing certificate file is named in the error.
        """
        missing = self.directory.child("nope.pem")
        self._refused(missing, self.keyPath, missing.path)

    def test_missingKey(self) -> None:
        """
        A missing key file is named in the error.
        """
        missing = self.directory.child("nope-key.pem")
        self._refused(self.certPath, missing, missing.path)

    def test_certificateNotPEM(self) -> None:
        """
        A certificate file without a PEM certificate is refused.
        """
        self.certPath.setContent(b"this is not a certificate\n")
        self._refused(self.certPath, self.keyPath, self.certPath.path)

    def test_certificateFileHoldsOnlyAKey(self) -> None:
        """
        A "certificate" file that holds only a private key is refused.
        """
        self._refused(self.keyPath, self.keyPath, self.keyPath.path)

    def test_certificateGarbledPEM(self) -> None:
        """
        A PEM certificate block with garbage inside is refused with one line.
        """
        self.certPath.setContent(
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
        )
        self._refused(self.certPath, self.keyPath, self.certPath.path)

    def test_keyNotPEM(self) -> None:
        """
        A key file without a PEM key is refused.
        """
        self.keyPath.setContent(b"this is not a key\n")
        self._refused(self.certPath, self.keyPath, self.keyPath.path)

    def test_keyDoesNotMatch(self) -> None:
        """
        A key that is not the certificate's key is refused, naming both files.
        """
        other = self.ca.issue_cert("localhost")
        self.keyPath.setContent(other.private_key_pem.bytes())
        message = self._refused(self.certPath, self.keyPath, self.keyPath.path)
        self.assertIn(self.certPath.path, message)
        self.assertIn("does not match", message)

    def test_encryptedKey(self) -> None:
        """
        A passphrase-protected key is refused (the server cannot prompt).
        """
        key = serialization.load_pem_private_key(self.leaf.private_key_pem.bytes(), None)
        self.keyPath.setContent(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        self._refused(self.certPath, self.keyPath, self.keyPath.path)


class DataDirectoryTests(SynchronousTestCase):
    """
    L{ServerTLS.fromDataDirectory} generates a self-signed ECDSA P-256
    certificate once and reuses it.
    """

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())

    def test_generatedOnce(self) -> None:
        """
        The first call generates (C{True}), the second loads the same
        certificate (C{False}, same fingerprint, files unchanged).
        """
        first, generated = ServerTLS.fromDataDirectory(self.directory)
        self.assertIs(generated, True)
        keyBytes = self.directory.child("server-key.pem").getContent()
        second, generatedAgain = ServerTLS.fromDataDirectory(self.directory)
        self.assertIs(generatedAgain, False)
        self.assertEqual(first.fingerprint, second.fingerprint)
        self.assertEqual(keyBytes, self.directory.child("server-key.pem").getContent())

    def test_modes(self) -> None:
        """
        The data directory is created with mode 0700 and the key file has
        mode 0600.
        """
        ServerTLS.fromDataDirectory(self.directory)
        self.assertEqual(stat.S_IMODE(os.stat(self.directory.path).st_mode), 0o700)
        keyMode = os.stat(self.directory.child("server-key.pem").path).st_mode
        self.assertEqual(stat.S_IMODE(keyMode), 0o600)

    def test_ecdsaP256SelfSigned(self) -> None:
        """
        The generated key is ECDSA on P-256 and the certificate is signed by
        itself.
        """
        tls, _ = ServerTLS.fromDataDirectory(self.directory)
        certificate = tls.chain[0]
        publicKey = certificate.public_key()
        self.assertIsInstance(publicKey, ec.EllipticCurvePublicKey)
        assert isinstance(publicKey, ec.EllipticCurvePublicKey)
        self.assertIsInstance(publicKey.curve, ec.SECP256R1)
        self.assertEqual(certificate.issuer, certificate.subject)
        certificate.verify_directly_issued_by(certificate)

    def test_generatedServes(self) -> None:
        """
        The generated certificate completes a TLS handshake.
        """
        tls, _ = ServerTLS.fromDataDirectory(self.directory)
        server = _server(tls.optionsForConnection())
        client = memoryClient(memoryClientContext())
        memoryHandshake(server, client)
        peer = client.get_peer_certificate()
        assert peer is not None
        self.assertEqual(fingerprint(peer.to_cryptography()), tls.fingerprint)


class FingerprintTests(SynchronousTestCase):
    """
    L{fingerprint} and L{ServerTLS.fingerprint}.
    """

    def test_format(self) -> None:
        """
        The fingerprint is the SHA-256 of the DER certificate as 32
        colon-separated upper-case hex pairs.
        """
        tls, _ = memoryServerTLS()
        text = tls.fingerprint
        self.assertRegex(text, r"\A[0-9A-F]{2}(:[0-9A-F]{2}){31}\Z")
        der = tls.chain[0].public_bytes(serialization.Encoding.DER)
        self.assertEqual(text.replace(":", "").lower(), hashlib.sha256(der).hexdigest())
        self.assertEqual(
            text, ":".join(f"{b:02X}" for b in tls.chain[0].fingerprint(hashes.SHA256()))
        )
        self.assertIsNone(re.search(r"[a-f]", text))


class ALPNTests(SynchronousTestCase):
    """
    The context of L{ServerTLS.optionsForConnection} selects ALPN C{ftp} when
    a client offers it, refuses a client that offers ALPN without C{ftp} with
    a C{no_application_protocol} alert, and serves a client that offers no
    ALPN as before. The server connections here have no application data,
    as data connections (L{txftps._datatls.DataTLS}) have none.
    """

    def setUp(self) -> None:
        self.tls, _ = memoryServerTLS()
        self.context = self.tls.optionsForConnection()

    def _client(
        self, protocols: list[bytes] | None, session: SSL.Session | None = None
    ) -> SSL.Connection:
        context = memoryClientContext()
        if protocols is not None:
            context.set_alpn_protos(protocols)
        return memoryClient(context, session)

    def test_ftpSelected(self) -> None:
        """
        A client offering only C{ftp} gets C{ftp}.
        """
        server = _server(self.context)
        client = self._client([b"ftp"])
        memoryHandshake(server, client)
        self.assertEqual(client.get_alpn_proto_negotiated(), b"ftp")
        self.assertEqual(server.get_alpn_proto_negotiated(), b"ftp")

    def test_ftpAmongOthers(self) -> None:
        """
        A client offering C{ftp} after other protocols gets C{ftp}.
        """
        server = _server(self.context)
        client = self._client([b"h2", b"http/1.1", b"ftp"])
        memoryHandshake(server, client)
        self.assertEqual(client.get_alpn_proto_negotiated(), b"ftp")

    def test_noALPN(self) -> None:
        """
        A client offering no ALPN completes the handshake and nothing is
        negotiated.
        """
        server = _server(self.context)
        client = self._client(None)
        memoryHandshake(server, client)
        self.assertEqual(client.get_alpn_proto_negotiated(), b"")
        self.assertEqual(server.get_alpn_proto_negotiated(), b"")

    def test_otherProtocolRefused(self) -> None:
        """
        A client offering ALPN without C{ftp} fails the handshake with a
        C{no_application_protocol} alert (the ALPACA defence): the server
        raises L{ALPNRefused} (an C{SSL.Error}, which every TLS layer
        handles) and the client reads the alert.
        """
        server = _server(self.context)
        client = self._client([b"http/1.1"])
        self.assertFalse(stepTLS(client))
        server.bio_write(drainBIO(client))
        error = self.assertRaises(ALPNRefused, server.do_handshake)
        self.assertIsInstance(error, SSL.Error)
        self.assertIn("http/1.1", str(error))
        client.bio_write(drainBIO(server))
        clientError = self.assertRaises(SSL.Error, client.do_handshake)
        self.assertIn("no application protocol", str(clientError))

    def test_refusalDoesNotStick(self) -> None:
        """
        After a refused client, a client offering C{ftp} on the same
        context (another data connection of the same control connection)
        completes its handshake: no failure is left behind on the context.
        """
        refused = _server(self.context)
        client = self._client([b"http/1.1"])
        stepTLS(client)
        refused.bio_write(drainBIO(client))
        self.assertRaises(SSL.Error, refused.do_handshake)
        server = _server(self.context)
        client = self._client([b"ftp"])
        memoryHandshake(server, client)
        self.assertEqual(server.get_alpn_proto_negotiated(), b"ftp")

    def test_resumedWithALPN(self) -> None:
        """
        A data connection offering C{ftp} resumes the session of a control
        connection that negotiated C{ftp}, TLS 1.2 and TLS 1.3.
        """
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):
            clientContext = memoryClientContext(maxVersion=version, minVersion=version)
            clientContext.set_alpn_protos([b"ftp"])
            control = memoryClient(clientContext)
            memoryHandshake(_server(self.context), control)
            data = memoryClient(clientContext, control.get_session())
            server = _server(self.context)
            memoryHandshake(server, data)
            self.assertTrue(sessionReused(server), version)
            self.assertEqual(data.get_alpn_proto_negotiated(), b"ftp")
