# -*- test-case-name: tests.test_tls -*-
"""
TLS for txftps: certificate loading and generation, the TLS of each control
connection, and the session-reuse check.

Every control connection gets a L{ServerTLS.optionsForConnection} object of its
own, a L{ConnectionTLS}: the one L{SSL.Context} of its L{ServerTLS} (session
cache and session tickets on), and a session-ID context no other connection
has. The connection's data channels are TLS servers made by that same object
(L{ConnectionTLS.newConnection}), so a data connection whose handshake
resumed a session (L{sessionReused}) can only have come from the client that
holds the control connection's session: OpenSSL resumes a session (TLS 1.2
session ID or ticket, TLS 1.3 ticket) only on a connection with the
session-ID context it was made under.

ALPN, on control and data connections alike: every such context selects
C{ftp} for a client that offers it (FileZilla does), refuses a client that
offers ALPN without C{ftp} with a C{no_application_protocol} alert (the ALPACA
defence: a client that came to speak HTTP or SMTP is not let into an FTP
session), and serves a client that offers no ALPN as if ALPN did not exist
(L{selectALPN}).

Every context follows the server's L{TLSProfile} (C{modern}, C{compatible},
the default, or C{fips}; see L{txftps._tlsprofiles}), and material outside
the profile is refused when it is loaded, with one line saying why.
L{CertificateFiles} says where the material lives, so that a server can load
it again (on SIGHUP) and swap the L{ServerTLS} of its factories: connections
made before keep the options, and so the context, they started with.

Usage::

    tls = ServerTLS.fromFiles(FilePath("chain.pem"), FilePath("key.pem"))
    options = tls.optionsForConnection()
    transport.startTLS(options)
    dataConnection = options.newConnection()
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import itertools
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509, PKey
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer

from txftps._internals import sessionReused, setSessionContext
from txftps._tlsprofiles import (
    COMPATIBLE,
    FIPS,
    MODERN,
    TLS_PROFILES,
    TLSProfile,
    describeOpenSSL,
)

__all__ = [
    "ALPN_PROTOCOL",
    "COMPATIBLE",
    "FIPS",
    "MODERN",
    "TLS_PROFILES",
    "ALPNRefused",
    "CertificateError",
    "CertificateFiles",
    "ConnectionTLS",
    "ServerTLS",
    "TLSProfile",
    "describeOpenSSL",
    "fingerprint",
    "generateSelfSigned",
    "peerCertificate",
    "selectALPN",
    "sessionReused",
]

_log = Logger()

ALPN_PROTOCOL = b"ftp"
"""
The ALPN protocol ID of FTP (IANA's registry; RFC 7301).
"""

# What a refusal logs of the offered list: the client chooses it (up to 64 KiB).
_LOGGED_PROTOCOLS = 8
_LOGGED_PROTOCOL_BYTES = 32


class CertificateError(Exception):
    """
    A certificate or key could not be loaded; the message says why, in one
    line fit for an operator.
    """


class ALPNRefused(SSL.Error):
    """
    The client offered ALPN protocols and C{ftp} was not among them.

    Raised from the ALPN callback, it makes OpenSSL answer with a fatal
    C{no_application_protocol} alert, and pyOpenSSL raises it again from the
    handshake call; being an C{SSL.Error}, every TLS layer (Twisted's for
    control connections, L{txftps._datatls.DataTLS} for data connections)
    treats it as the failed handshake it is.
    """


def _describeOffered(offered: list[bytes]) -> str:
    shown = [repr(p[:_LOGGED_PROTOCOL_BYTES])[1:] for p in offered[:_LOGGED_PROTOCOLS]]
    if len(offered) > _LOGGED_PROTOCOLS:
        shown.append(f"... ({len(offered)} in all)")
    return ", ".join(shown)


def _peerOf(connection: SSL.Connection) -> str:
    """
    The peer's address for a log line: Twisted's TLS protocol is the
    application data of a control connection, and the protocol it wraps
    knows the client's address (the one a PROXY header named, behind a
    balancer); a data connection has none.
    """
    tls = connection.get_app_data()
    client = getattr(getattr(tls, "wrappedProtocol", None), "peerHost", None)
    if client:
        return str(client)
    getPeer = getattr(getattr(tls, "transport", None), "getPeer", None)
    host = getattr(getPeer(), "host", None) if getPeer is not None else None
    return str(host) if host is not None else "a client"


def selectALPN(connection: SSL.Connection, offered: list[bytes]) -> bytes:
    """
    The ALPN select callback of every server context: C{ftp} or a refusal.

    OpenSSL calls it only for a client that offers ALPN; a client that
    offers none is served without it.

    @param connection: the server connection in its handshake.
    @param offered: the protocol IDs the client offered, in its order.
    @return: C{b"ftp"} when the client offered it.
    @raise ALPNRefused: the client offered ALPN without C{ftp}.
    """
    if ALPN_PROTOCOL in offered:
        return ALPN_PROTOCOL
    described = _describeOffered(offered)
    _log.info(
        "TLS handshake refused: {peer} offered ALPN {offered} without ftp",
        peer=_peerOf(connection),
        offered=described,
    )
    # The arguments of an SSL.Error are an OpenSSL error queue: a list of
    # (library, function, reason); Twisted's TLS layer reads them.
    raise ALPNRefused(
        [("SSL routines", "", f"no application protocol: client offered {described}")]
    )


def peerCertificate(connection: SSL.Connection) -> x509.Certificate | None:
    """
    The verified certificate the peer of C{connection} presented, if any.
    """
    return connection.get_peer_certificate(as_cryptography=True)


def fingerprint(certificate: x509.Certificate) -> str:
    """
    The SHA-256 fingerprint of a certificate, as colon-separated hex.

    @param certificate: the certificate.
    @return: e.g. C{"AB:01:..."}.
    """
    digest = certificate.fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def generateSelfSigned(
    certPath: FilePath[str], keyPath: FilePath[str], hostnames: list[str]
) -> None:
    """
    Write a new ECDSA P-256 private key and a self-signed certificate for it.

    The key file is created with mode 0600 before any key byte is written.

    @param certPath: where the PEM certificate goes.
    @param keyPath: where the PEM private key goes.
    @param hostnames: DNS names and IP addresses for the subjectAltName.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "txftps")])
    alternatives: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternatives.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(keyPath.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(keyPEM)
    certPath.setContent(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class ServerTLS:
    """
    The server's certificate chain and key, and the TLS policy built on them.

    @ivar chain: the leaf certificate first, then intermediates.
    @ivar key: the private key of the leaf certificate.
    @ivar clientCAs: CA certificates that client certificates must chain to.
    @ivar clientCertificates: C{"none"}, C{"optional"} (verified when sent)
        or C{"required"}.
    @ivar profile: the protocol versions, ciphers and groups offered.
    """

    chain: tuple[x509.Certificate, ...]
    key: PKey
    clientCAs: tuple[x509.Certificate, ...] = ()
    clientCertificates: str = "none"
    profile: TLSProfile = COMPATIBLE

    def withClientCertificates(self, caPath: FilePath[str], mode: str) -> ServerTLS:
        """
        The same server material, asking clients for certificates issued by
        the CAs in C{caPath}.

        @param mode: C{"optional"} or C{"required"}.
        @raise CertificateError: the CA file cannot be used.
        """
        try:
            cas = tuple(x509.load_pem_x509_certificates(caPath.getContent()))
        except OSError as e:
            raise CertificateError(f"cannot read client CA {caPath.path}: {e.strerror}")
        except ValueError:
            raise CertificateError(f"no PEM certificate in {caPath.path}")
        return dataclasses.replace(self, clientCAs=cas, clientCertificates=mode)

    def withProfile(self, profile: TLSProfile, source: str = "the certificate") -> ServerTLS:
        """
        The same material under another profile, checked against it.

        @param source: what to call the material in an error (a file name).
        @raise CertificateError: the material does not fit C{profile}, or
            OpenSSL refuses it.
        """
        tls = dataclasses.replace(self, profile=profile)
        tls.check(source)
        return tls

    def check(self, source: str = "the certificate") -> None:
        """
        Refuse material that this server's profile does not allow, or that
        OpenSSL would refuse on every connection (by building one context).

        @param source: what to call the material in an error (a file name).
        @raise CertificateError: with a one-line reason.
        """
        problem = self.profile.problemWith(self.chain, self.key.to_cryptography_key())
        if problem is not None:
            raise CertificateError(
                f"{source} does not fit TLS profile {self.profile.name}: {problem}"
            )
        try:
            self.optionsForConnection()
        except (SSL.Error, ValueError) as e:
            raise CertificateError(f"OpenSSL refuses {source}: {_openSSLReason(e)}")

    @classmethod
    def fromFiles(
        cls,
        certPath: FilePath[str],
        keyPath: FilePath[str],
        profile: TLSProfile = COMPATIBLE,
    ) -> ServerTLS:
        """
        Load a PEM certificate chain and a PEM private key, and check them
        against C{profile}.

        @param certPath: PEM file with the leaf certificate first.
        @param keyPath: PEM file with the private key (may be the same file).
        @param profile: the TLS profile the material must fit.
        @raise CertificateError: with a one-line reason when anything is off.
        """
        try:
            chainBytes = certPath.getContent()
        except OSError as e:
            raise CertificateError(f"cannot read certificate {certPath.path}: {e.strerror}")
        try:
            keyBytes = keyPath.getContent()
        except OSError as e:
            raise CertificateError(f"cannot read key {keyPath.path}: {e.strerror}")
        try:
            chain = tuple(x509.load_pem_x509_certificates(chainBytes))
        except ValueError:
            raise CertificateError(f"no PEM certificate in {certPath.path}")
        try:
            privateKey = serialization.load_pem_private_key(keyBytes, password=None)
        except (ValueError, TypeError) as e:
            raise CertificateError(f"cannot load private key {keyPath.path}: {e}")
        leafKey = chain[0].public_key()
        pem = serialization.Encoding.PEM
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if leafKey.public_bytes(pem, spki) != privateKey.public_key().public_bytes(pem, spki):
            raise CertificateError(
                f"key {keyPath.path} does not match certificate {certPath.path}"
            )
        key = PKey.from_cryptography_key(privateKey)  # type: ignore[arg-type]
        return cls(chain, key, profile=profile).withProfile(
            profile, f"certificate {certPath.path}"
        )

    @classmethod
    def fromDataDirectory(
        cls, directory: FilePath[str], profile: TLSProfile = COMPATIBLE
    ) -> tuple[ServerTLS, bool]:
        """
        Load the generated certificate under C{directory}, generating it first
        if there is none.

        @param directory: the data directory; created (mode 0700) if missing.
        @param profile: the TLS profile the material must fit.
        @return: the loaded material, and whether it was generated just now.
        """
        files, generated = CertificateFiles.inDataDirectory(directory, profile)
        return files.load(), generated

    @cached_property
    def _openSSLChain(self) -> list[X509]:
        """
        The chain as pyOpenSSL objects, converted once (every connection
        needs them).
        """
        return [X509.from_cryptography(c) for c in self.chain]

    @property
    def fingerprint(self) -> str:
        """
        The SHA-256 fingerprint of the leaf certificate.
        """
        return fingerprint(self.chain[0])

    @cached_property
    def _openSSLClientCAs(self) -> list[X509]:
        """
        The client CAs as pyOpenSSL objects, converted once (every control
        connection that asks for client certificates needs them).
        """
        return [X509.from_cryptography(c) for c in self.clientCAs]

    @cached_property
    def serverToServerContext(self) -> SSL.Context:
        """
        The TLS client context of server-to-server transfers (C{SSCN ON},
        C{CPSV}, with C{--allow-fxp}): the server's TLS profile, this
        server's certificate for peers that ask for one. The peer is another FTP
        server whose certificate nothing here can vouch for, so it is not
        verified: the transfer is encrypted, not authenticated (see
        docs/security.md).
        """
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self.profile.configure(context)
        context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
        leaf, *extra = self._openSSLChain
        context.use_certificate(leaf)
        for certificate in extra:
            context.add_extra_chain_cert(certificate)
        context.use_privatekey(self.key)
        context.set_options(SSL.OP_NO_RENEGOTIATION)
        context.clear_mode(SSL.MODE_RELEASE_BUFFERS)
        return context

    def makeContext(self) -> SSL.Context:
        """
        Make the TLS context that every connection of this L{ServerTLS}
        shares: the versions and ciphers of the profile, no renegotiation,
        session cache and tickets on, ALPN C{ftp} (L{selectALPN}), client
        certificates as configured. Called once, the first time a
        connection needs it; a subclass overrides it to change the policy
        (call this, then change the context before returning it: pyOpenSSL
        refuses changes once a connection used it).
        """
        verify = self.clientCertificates != "none" and bool(self.clientCAs)
        leaf, *extra = self._openSSLChain
        options = CertificateOptions(
            privateKey=self.key,
            certificate=leaf,
            extraCertChain=extra,
            enableSessions=True,
            enableSessionTickets=True,
            raiseMinimumTo=TLSVersion.TLSv1_2,
            verify=verify,
            caCerts=self._openSSLClientCAs if verify else None,
            requireCertificate=self.clientCertificates == "required",
        )
        context = options.getContext()
        if verify:
            context.set_client_ca_list([c.get_subject() for c in self._openSSLClientCAs])
        context.set_options(SSL.OP_NO_RENEGOTIATION)
        self.profile.configure(context)
        # Replaces the callback Twisted installs, which fails on our
        # connections (internal_error) whenever a client offers ALPN.
        context.set_alpn_select_callback(selectALPN)
        # Keep record buffers between writes: bulk data moves through here.
        context.clear_mode(SSL.MODE_RELEASE_BUFFERS)
        return context

    @cached_property
    def _context(self) -> SSL.Context:
        return self.makeContext()

    @cached_property
    def _sessionContexts(self) -> itertools.count[int]:
        return itertools.count()

    def optionsForConnection(self) -> ConnectionTLS:
        """
        Make the TLS options of one control connection: the shared context
        (L{makeContext}) with a session-ID context of the connection's own,
        which its data connections share.

        @return: a new L{ConnectionTLS}; the shared context is made, and
            refused material raises, before any connection uses it.
        """
        return ConnectionTLS(self._context, b"%d" % next(self._sessionContexts))


@implementer(IOpenSSLServerConnectionCreator)
class ConnectionTLS:
    """
    The TLS of one control connection and of its data connections: the
    L{SSL.Context} of a L{ServerTLS}, shared with every other connection, and
    a session-ID context of this connection's own.

    Every TLS connection made by L{newConnection} (Twisted's C{startTLS}
    calls L{serverConnectionForTLS}) takes this session-ID context, so it
    resumes only sessions that another connection of the same object made:
    the control connection's, on its data connections. A session of another
    control connection, offered by ticket or by session ID, gives a full
    handshake, which L{sessionReused} tells.

    @ivar sessionContext: the session-ID context, at most 32 bytes.
    """

    def __init__(self, context: SSL.Context, sessionContext: bytes) -> None:
        """
        @param context: the shared context (L{ServerTLS.makeContext}).
        @param sessionContext: unique among the connections of C{context}.
        """
        self._context = context
        self.sessionContext = sessionContext

    def getContext(self) -> SSL.Context:
        """
        The shared context, with this connection's session-ID context set for
        the next L{SSL.Connection} made from it. Make that connection before
        any other L{ConnectionTLS} of the same context is asked, or use
        L{newConnection}, which does both at once.
        """
        setSessionContext(self._context, self.sessionContext)
        return self._context

    def newConnection(self) -> SSL.Connection:
        """
        A new TLS connection (no socket: memory BIOs) on the shared context
        with this connection's session-ID context, not yet in the client or
        server state.
        """
        return SSL.Connection(self.getContext(), None)

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """
        The TLS server connection of Twisted's C{startTLS}: L{newConnection}.
        """
        return self.newConnection()


def _openSSLReason(error: Exception) -> str:
    """
    The reasons in an OpenSSL error queue (or any other error), in one line.
    """
    queue = error.args[0] if error.args else None
    if isinstance(queue, list) and queue and all(isinstance(e, tuple) for e in queue):
        return "; ".join(str(e[-1]) for e in queue)
    return str(error)


@dataclass(frozen=True)
class CertificateFiles:
    """
    Where a server's TLS material lives, so that it can be loaded at start
    and loaded again while the server runs (C{twistd ftps} does on SIGHUP).

    @ivar certificate: PEM file with the leaf certificate first.
    @ivar key: PEM file with the private key (may be C{certificate}).
    @ivar profile: the TLS profile the material must fit.
    @ivar clientCA: PEM file with the CAs that client certificates must chain
        to, or C{None}.
    @ivar clientCertificates: C{"none"}, C{"optional"} or C{"required"}.
    """

    certificate: FilePath[str]
    key: FilePath[str]
    profile: TLSProfile = COMPATIBLE
    clientCA: FilePath[str] | None = None
    clientCertificates: str = "none"

    @classmethod
    def inDataDirectory(
        cls, directory: FilePath[str], profile: TLSProfile = COMPATIBLE, **kwargs: Any
    ) -> tuple[CertificateFiles, bool]:
        """
        The generated certificate and key under C{directory}, generating them
        first if either is missing.

        @param directory: the data directory; created (mode 0700) if missing.
        @param profile: the TLS profile the material must fit.
        @param kwargs: the other attributes.
        @return: the files, and whether they were generated just now.
        """
        if not directory.isdir():
            os.makedirs(directory.path, mode=0o700, exist_ok=True)
        certPath = directory.child("server-cert.pem")
        keyPath = directory.child("server-key.pem")
        generated = False
        if not (certPath.exists() and keyPath.exists()):
            generateSelfSigned(certPath, keyPath, ["localhost", "127.0.0.1", "::1"])
            generated = True
        return cls(certPath, keyPath, profile, **kwargs), generated

    def load(self) -> ServerTLS:
        """
        Read and check all the files.

        @return: the material, ready to serve.
        @raise CertificateError: with a one-line reason when any file is
            missing, unreadable, malformed or outside the profile.
        """
        tls = ServerTLS.fromFiles(self.certificate, self.key, self.profile)
        if self.clientCA is not None and self.clientCertificates != "none":
            tls = tls.withClientCertificates(self.clientCA, self.clientCertificates)
            tls.check(f"client CA {self.clientCA.path}")
        return tls
