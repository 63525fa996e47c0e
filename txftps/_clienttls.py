# -*- test-case-name: tests.test_client -*-
"""
TLS for the FTPS client: trust (a CA file or the system's roots, host-name
or IP-address checks with service_identity, SHA-256 pinning), client
certificates, and session resumption on data connections.

One L{TLSSession} per control connection owns one C{SSL.Context}: the control
connection and all its data connections are created from it (pyOpenSSL only
resumes a session on a connection of the context that made it), and each
data connection resumes the control connection's session. L{TLSSession}
implements Twisted's L{IOpenSSLClientConnectionCreator}, so it plugs into
C{wrapClientTLS}, C{TLSMemoryBIOFactory} and C{ITLSTransport.startTLS}; it
keeps the control connection's C{SSL.Connection} it created, which is how
the session is reached without any private Twisted attribute.

We build the context with pyOpenSSL rather than C{optionsForClientTLS}
because pinning alone (no CA, no host-name check) cannot be expressed with
it, and because Twisted 26.10 installs an ALPN callback on every context it
builds. No ALPN is offered.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname, verify_ip_address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps._clienterrors import CertificateError
from txftps._internals import copySession

_log = Logger()

#: OpenSSL's X509_V_ERR_* codes a user meets, and what they mean.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    26: "unsupported certificate purpose",
}


def normalizeFingerprint(pin: str) -> bytes:
    """
    The 32 bytes of a SHA-256 fingerprint written as hex, with or without
    colons, in either case, optionally prefixed C{sha256:} (the form
    C{twistd ftps} logs and C{openssl x509 -fingerprint -sha256} prints).

    @raise ValueError: C{pin} is not a SHA-256 fingerprint.
    """
    text = pin.strip()
    if text.lower().startswith("sha256:"):
        text = text[7:]
    if text.lower().startswith("sha256 fingerprint="):
        text = text[19:]
    text = text.replace(":", "").replace(" ", "")
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"not a SHA-256 fingerprint: {pin!r}")
    return digest


def _isAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Verification:
    """
    What one TLS connection's verification found.

    @ivar error: why the certificate was refused, or C{None}.
    """

    def __init__(self) -> None:
        self.error: str | None = None


class ClientTLS:
    """
    How an FTPS client trusts servers and proves who it is: the settings a
    user chooses once, from which each control connection gets its own
    L{TLSSession}.

    By default the server's certificate must chain to the system's trusted
    roots and name the host (or IP address) connected to.

    @ivar caFile: a PEM file of CA certificates to trust instead of the
        system's roots.
    @ivar pin: the SHA-256 digest of the server's certificate, or C{None}.
        With no C{caFile}, a matching pin is trust enough (no chain or host
        name check); with a C{caFile}, both must hold.
    @ivar certFile: the client certificate chain (PEM), or C{None}.
    @ivar keyFile: its private key (PEM); defaults to C{certFile}.
    @ivar insecure: accept any certificate (a warning is logged).
    @ivar maximumVersion: the highest TLS version offered
        (C{SSL.TLS1_2_VERSION} or C{SSL.TLS1_3_VERSION}), or C{None}.
    """

    def __init__(
        self,
        caFile: str | None = None,
        pin: str | None = None,
        certFile: str | None = None,
        keyFile: str | None = None,
        insecure: bool = False,
        maximumVersion: int | None = None,
    ) -> None:
        self.caFile = caFile
        self.pin = normalizeFingerprint(pin) if pin is not None else None
        self.certFile = certFile
        self.keyFile = keyFile if keyFile is not None else certFile
        self.insecure = insecure
        self.maximumVersion = maximumVersion
        # Load everything once now, so that a bad file is an error here.
        self.newContext()

    def newContext(self, verify: Callable[..., bool] | None = None) -> SSL.Context:
        """
        A new client context with these settings.

        @param verify: the certificate verification callback (pyOpenSSL's
            signature); by default one that applies these settings.
        @raise ValueError: a file cannot be loaded.
        """
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        if self.maximumVersion is not None:
            context.set_max_proto_version(self.maximumVersion)
        context.set_options(SSL.OP_NO_COMPRESSION)
        try:
            if self.caFile is not None:
                context.load_verify_locations(self.caFile)
            elif self.pin is None and not self.insecure:
                context.set_default_verify_paths()
            if self.certFile is not None:
                context.use_certificate_chain_file(self.certFile)
                context.use_privatekey_file(self.keyFile or self.certFile)
                context.check_privatekey()
        except (SSL.Error, crypto.Error, OSError) as e:
            raise ValueError(f"cannot load TLS files: {_describe(e)}") from None
        if verify is None:

            def verify(connection: SSL.Connection, *args: Any) -> bool:
                return self.verify(_Verification(), *args)

        context.set_verify(SSL.VERIFY_PEER, verify)
        return context

    def session(self, hostname: str) -> TLSSession:
        """
        The TLS of one control connection to C{hostname} and its data
        connections.
        """
        if self.insecure:
            _log.warn(
                "insecure: the certificate of {host} is not verified; anyone on the"
                " path can read and change this session",
                host=hostname,
            )
        return TLSSession(self, hostname)

    @property
    def checksHostname(self) -> bool:
        """
        Whether the certificate must name the host (not when insecure, nor
        when a pin alone is the trust).
        """
        return not self.insecure and not (self.pin is not None and self.caFile is None)

    def verify(
        self, state: _Verification, certificate: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """
        Decide on one certificate of the server's chain (pyOpenSSL's verify
        callback), recording why in C{state} when refused.
        """
        if self.insecure:
            return True
        if self.pin is not None:
            if depth == 0:
                from cryptography.hazmat.primitives.serialization import Encoding

                der = certificate.to_cryptography().public_bytes(Encoding.DER)
                if hashlib.sha256(der).digest() != self.pin:
                    state.error = "certificate does not match the pinned SHA-256 fingerprint"
                    return False
            if self.caFile is None:
                return True
        if not ok:
            if state.error is None:
                reason = _VERIFY_ERRORS.get(errno, f"X.509 verification error {errno}")
                state.error = f"certificate not trusted ({reason})"
            return False
        return True


@implementer(IOpenSSLClientConnectionCreator)
class TLSSession:
    """
    The TLS of one control connection and its data connections: one
    C{SSL.Context}; the first connection created is the control connection;
    every later one (L{dataCreator}) resumes its session.

    @ivar hostname: the host name (or address) the certificate must name.
    @ivar control: the control connection's C{SSL.Connection}, once made.
    """

    def __init__(self, settings: ClientTLS, hostname: str) -> None:
        self.settings = settings
        self.hostname = hostname
        self._states: dict[SSL.Connection, _Verification] = {}
        self.context = settings.newContext(self._verifyCallback)
        self.context.set_info_callback(self._infoCallback)
        self.control: SSL.Connection | None = None

    def _state(self, connection: SSL.Connection) -> _Verification:
        state = self._states.get(connection)
        if state is None:
            state = self._states[connection] = _Verification()
        return state

    def _verifyCallback(self, connection: SSL.Connection, *args: Any) -> bool:
        return self.settings.verify(self._state(connection), *args)

    def _connection(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        # Keep the control connection's state and the newest data
        # connection's, not one per transfer for ever.
        for old in list(self._states)[1:-1]:
            del self._states[old]
        self._state(connection)
        if not _isAddress(self.hostname):
            connection.set_tlsext_host_name(self.hostname.encode("idna"))
        return connection

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        The control connection
        (L{twisted.internet.interfaces.IOpenSSLClientConnectionCreator}).
        """
        self.control = self._connection(tlsProtocol)
        return self.control

    def dataCreator(self) -> IOpenSSLClientConnectionCreator:
        """
        A connection creator for one data connection that resumes the control
        connection's session.
        """
        return _DataConnectionCreator(self)

    def currentSession(self) -> SSL.Session | None:
        """
        The control connection's TLS session, to resume (for TLS 1.3 the
        ticket arrives after the handshake: read a reply first).
        """
        if self.control is None:
            return None
        return self.control.get_session()

    def verificationError(self) -> CertificateError | None:
        """
        Why the last connection's certificate was refused, if it was.
        """
        for state in reversed(list(self._states.values())):
            if state.error is not None:
                return CertificateError(state.error)
        return None

    def _infoCallback(self, connection: SSL.Connection, where: int, ret: int) -> None:
        if not where & SSL.SSL_CB_HANDSHAKE_DONE or not self.settings.checksHostname:
            return
        state = self._state(connection)
        try:
            if _isAddress(self.hostname):
                verify_ip_address(connection, self.hostname)
            else:
                verify_hostname(connection, self.hostname)
        except VerificationError:
            state.error = f"host name mismatch: the certificate is not valid for {self.hostname}"
            # Twisted's TLS protocol is the connection's app data.
            connection.get_app_data().failVerification(Failure(CertificateError(state.error)))


@implementer(IOpenSSLClientConnectionCreator)
class _DataConnectionCreator:
    """
    Creates one data connection of a L{TLSSession}, resuming its control
    connection's session.
    """

    def __init__(self, session: TLSSession) -> None:
        self.session = session
        self.connection: SSL.Connection | None = None

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self.session._connection(tlsProtocol)
        resumable = self.session.currentSession()
        if resumable is not None:
            connection.set_session(copySession(resumable))
        self.connection = connection
        return connection


def _describe(error: Exception) -> str:
    if isinstance(error, SSL.Error | crypto.Error) and error.args and error.args[0]:
        entries = error.args[0]
        if isinstance(entries, list) and entries and isinstance(entries[-1], tuple):
            return str(entries[-1][-1])
    return str(error)
