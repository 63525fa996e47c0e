# -*- test-case-name: tests.test_internals -*-
"""
Every use of a private part of pyOpenSSL or Twisted, each wrapped once.

txftps needs a few things neither library offers publicly: whether a
handshake resumed a session, the bytes left in a connection's memory BIO,
enough of Twisted's TLS layer to end TLS on a live connection for C{CCC},
Twisted's PROXY protocol header parsers, the key-exchange groups and
signature algorithms of a context (TLS profiles), whether OpenSSL runs a
FIPS provider, a copy of a TLS session (the client's data connections), the
session-ID context of a context already in use,
TLS record buffers freed on an idle connection, decrypting many records
into one buffer, reading the records to send into one buffer, and the
socket under a plain TCP transport (downloads send on it directly).
Each lives here in one function, and C{tests.test_internals} has a test for
each that fails loudly, naming the function, if an upgrade removes what it
relies on.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib
from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from zope.interface import noLongerProvides


def sessionReused(connection: SSL.Connection) -> bool:
    """
    Tell whether the handshake of C{connection} resumed an earlier session.

    pyOpenSSL has no public call for this: it is the private binding of
    C{SSL_session_reused}.

    @param connection: a connection whose handshake has completed.
    @return: C{True} for an abbreviated (resumed) handshake, TLS 1.2 or 1.3.
    """
    return bool(_lib.SSL_session_reused(connection._ssl))


def setSessionContext(context: SSL.Context, sessionContext: bytes) -> None:
    """
    Set the session-ID context that the next L{SSL.Connection} made from
    C{context} takes.

    OpenSSL copies a context's session-ID context into each connection when
    the connection is made (C{SSL_new}), and a session resumes only on a
    connection with the session-ID context it was made under (TLS 1.2
    session IDs and tickets, TLS 1.3 tickets). Setting it just before making
    each connection gives connections of one shared context session-ID
    contexts of their own. pyOpenSSL's C{Context.set_session_id} refuses a
    context that already made a connection; this is the private binding of
    C{SSL_CTX_set_session_id_context}.

    @param sessionContext: at most 32 bytes.
    @raise ValueError: C{sessionContext} is longer than 32 bytes.
    """
    if len(sessionContext) > 32:
        raise ValueError("a session-ID context has at most 32 bytes")
    if not _lib.SSL_CTX_set_session_id_context(
        context._context, sessionContext, len(sessionContext)
    ):
        raise SSL.Error("SSL_CTX_set_session_id_context failed")


def copySession(session: SSL.Session) -> SSL.Session:
    """
    An independent copy of a client session, for one data connection.

    Data connections must not share the control connection's
    C{SSL_SESSION}: OpenSSL marks a session not resumable when a connection
    using it fails (a fatal alert, e.g. a data connection closed in the
    middle of its handshake after a 550), and every later data connection
    would then do a full handshake, which servers requiring session reuse
    refuse with 522. pyOpenSSL has no public way to copy a session; this
    serializes it (C{i2d_SSL_SESSION}) and reads it back
    (C{d2i_SSL_SESSION}) with pyOpenSSL's private bindings, in this one
    place (C{tests.test_client} fails loudly if they disappear).
    """
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib

    size = _lib.i2d_SSL_SESSION(session._session, _ffi.NULL)
    if size <= 0:
        raise ValueError("cannot serialize the TLS session")
    buffer = _ffi.new("unsigned char[]", size)
    pointer = _ffi.new("unsigned char **", buffer)
    _lib.i2d_SSL_SESSION(session._session, pointer)
    source = _ffi.new("const unsigned char **", buffer)
    raw = _lib.d2i_SSL_SESSION(_ffi.NULL, source, size)
    if raw == _ffi.NULL:
        raise ValueError("cannot read back the TLS session")
    copy = SSL.Session.__new__(SSL.Session)
    copy._session = _ffi.gc(raw, _lib.SSL_SESSION_free)
    copy._context = session._context
    return copy


def setGroups(context: SSL.Context, groups: bytes) -> None:
    """
    Restrict the key-exchange groups (ECDHE curves, TLS 1.3 key shares) of
    a context. pyOpenSSL's public C{set_tmp_ecdh} takes a single curve; this
    is the private binding of C{SSL_CTX_set1_groups_list} (spelt
    C{SSL_CTX_set1_curves_list} there).

    @param context: a context no connection uses yet.
    @param groups: an OpenSSL group list, e.g. C{b"P-256:P-384"}.
    @raise ValueError: OpenSSL refused the list.
    """
    if _lib.SSL_CTX_set1_curves_list(context._context, groups) != 1:
        raise ValueError(f"OpenSSL refused the group list {groups!r}")


def setSignatureAlgorithms(context: SSL.Context, algorithms: bytes) -> None:
    """
    Restrict the signature algorithms a context signs handshakes with and
    asks of client certificates; the private binding of
    C{SSL_CTX_set1_sigalgs_list}.

    @param context: a context no connection uses yet.
    @param algorithms: an OpenSSL signature algorithm list, e.g.
        C{b"ECDSA+SHA256:rsa_pss_rsae_sha256"}.
    @raise ValueError: OpenSSL refused the list.
    """
    if _lib.SSL_CTX_set1_sigalgs_list(context._context, algorithms) != 1:
        raise ValueError(f"OpenSSL refused the signature algorithm list {algorithms!r}")


def fipsProviderActive() -> bool | None:
    """
    Whether the OpenSSL that pyOpenSSL and C{cryptography} share runs a FIPS
    provider: C{cryptography}'s backend knows (a private attribute), and
    has no public accessor.

    @return: C{True} or C{False}, or C{None} when it cannot be told.
    """
    from cryptography.hazmat.backends.openssl.backend import backend

    enabled = getattr(backend, "_fips_enabled", None)
    return bool(enabled) if enabled is not None else None


def releaseBuffers(connection: object) -> None:
    """
    Make OpenSSL free C{connection}'s record buffers whenever they are empty
    (C{SSL_MODE_RELEASE_BUFFERS} on this connection only): an idle
    connection then holds none. pyOpenSSL sets modes only on contexts.

    @param connection: a connection that does not carry bulk data; anything
        else (a test transport's handle) is left alone.
    """
    if isinstance(connection, SSL.Connection):
        _lib.SSL_set_mode(connection._ssl, _lib.SSL_MODE_RELEASE_BUFFERS)


class PlaintextReader:
    """
    Decrypts every complete record a connection holds into one preallocated
    buffer, and returns them as one C{bytes}: one copy, one object, however
    many records came in (pyOpenSSL's C{recv} allocates a buffer and makes a
    C{bytes} for every record). The buffer is only used inside L{read}, so one
    reader serves every connection of a reactor thread.

    @ivar size: the most bytes one L{read} returns.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = _ffi.new("char[]", size)

    def read(self, connection: SSL.Connection) -> tuple[bytes, bool]:
        """
        Decrypt what C{connection}'s incoming BIO holds, up to L{size} bytes.

        @return: the plaintext, and whether the peer's close_notify came.
        @raise SSL.Error: a record failed, as pyOpenSSL's C{recv} raises it.
        """
        ssl = connection._ssl
        buffer = self._buffer
        total = 0
        closed = False
        while total < self.size:
            count = _lib.SSL_read(ssl, buffer + total, self.size - total)
            if count > 0:
                total += count
                continue
            try:
                connection._raise_ssl_error(ssl, count)
            except SSL.WantReadError:
                pass
            except SSL.ZeroReturnError:
                closed = True
            break
        return _ffi.buffer(buffer, total)[:], closed


def directSocket(transport: Any, protocol: object) -> socket.socket | None:
    """
    The socket of C{transport}, when C{protocol} may send on it directly:
    C{transport} is Twisted's plain TCP transport (C{tcp.Connection}, no TLS
    of Twisted's) and C{protocol} is its protocol, not wrapped by anything
    that would see (count, throttle, transform) what is written. Twisted
    documents neither C{tcp.Connection.protocol} nor C{TLS}.

    A protocol that sends on the socket must only do so while the
    transport's write buffer is empty, or bytes leave out of order.

    @return: the socket, or C{None}: write through the transport.
    """
    if not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", False):
        return None
    if getattr(transport, "protocol", None) is not protocol:
        return None
    handle = transport.getHandle()
    return handle if isinstance(handle, socket.socket) else None


class CiphertextReader:
    """
    Reads what a memory-BIO connection wrote (the records to send) into one
    preallocated buffer, without the new buffer and the copy into a new
    C{bytes} that pyOpenSSL's C{bio_read} makes on every call, and without
    its exception when there is nothing to read. The buffer is reused by the
    next L{read}, so one reader serves every connection of a reactor thread.

    @ivar size: the most bytes one L{read} returns.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = _ffi.new("char[]", size)
        self._view = memoryview(_ffi.buffer(self._buffer))

    def read(self, connection: SSL.Connection) -> memoryview:
        """
        Take up to L{size} bytes from C{connection}'s outgoing memory BIO.

        @return: a view of them (empty when the BIO is empty), valid until
            the next L{read}: copy what must be kept.
        @raise TypeError: C{connection} has no memory BIO (it was made with
            a socket).
        """
        bio = connection._from_ssl
        if bio is None:
            raise TypeError("the connection has no memory BIO")
        count = _lib.BIO_read(bio, self._buffer, self.size)
        return self._view[: max(count, 0)]


def unreadBytes(connection: SSL.Connection) -> bytes:
    """
    What is left in C{connection}'s incoming memory BIO after its TLS
    session ended: bytes the peer sent behind its close_notify. pyOpenSSL
    has no call for this; it reads the private BIO.

    @param connection: a memory-BIO connection (made with no socket).
    """
    bio = connection._into_ssl
    if bio is None:
        return b""
    chunks = []
    buffer = _ffi.new("char[]", 4096)
    while True:
        count = _lib.BIO_read(bio, buffer, 4096)
        if count <= 0:
            break
        chunks.append(_ffi.buffer(buffer, count)[:])
    return b"".join(chunks)


@dataclass(frozen=True)
class TLSLayer:
    """
    The parts of Twisted's TLS layer (C{TLSMemoryBIOProtocol}, put under a
    protocol by C{startTLS}) that ending TLS on a live connection needs.

    @ivar connection: the pyOpenSSL connection of the layer.
    @ivar flushSendBIO: writes what the connection produced to the socket.
    """

    connection: SSL.Connection
    flushSendBIO: Any


def takeTLSLayer(transport: Any) -> TLSLayer:
    """
    The TLS layer that C{startTLS} put on C{transport}, with every write the
    protocol made so far handed to the TLS connection.

    @param transport: a TCP transport on which C{startTLS} was called; its
        C{protocol} is Twisted's TLS layer.
    """
    tls = transport.protocol
    aggregator = tls._aggregator
    if aggregator is not None:
        aggregator.flush()
    return TLSLayer(tls._tlsConnection, tls._flushSendBIO)


def forgetTLS(transport: Any) -> None:
    """
    Make C{transport} a plain TCP transport again after its TLS session
    ended: C{startTLS} marked it as TLS and set C{getHandle} and
    C{getPeerCertificate} on the instance to the TLS layer's.

    @param transport: the transport that L{takeTLSLayer} was given.
    """
    transport.TLS = False
    for name in ("getHandle", "getPeerCertificate"):
        transport.__dict__.pop(name, None)
    noLongerProvides(transport, ISSLTransport)


#: The first 12 bytes of every PROXY protocol version 2 header.
PROXY_V2_SIGNATURE: bytes = V2Parser.PREFIX


def parseProxyHeader(version: int, header: bytes) -> Any:
    """
    Parse one complete PROXY protocol header with Twisted's parser for
    C{version}. Twisted ships them in C{twisted.protocols.haproxy} but
    exports only C{proxyEndpoint}, whose wrapper starts the wrapped protocol
    before the header is in.

    @param header: version 1 without its CRLF, or a whole version 2 header.
    @return: Twisted's C{ProxyInfo} (C{source}, C{destination}).
    @raise ValueError: the header does not parse.
    """
    try:
        if version == 1:
            return V1Parser.parse(header)
        return V2Parser.parse(header)
    except (InvalidProxyHeader, ValueError, KeyError, IndexError, struct.error) as e:
        raise ValueError(f"version {version} header does not parse ({type(e).__name__})")


def forgetExitSignal(reactor: Any, signum: int) -> bool:
    """
    Make twistd exit with status 0 after a stop caused by C{signum}: Twisted
    remembers the signal that stopped the reactor (its private
    C{_exitSignal}) and twistd raises it again on the way out.

    @return: whether the reactor had been stopped by C{signum}.
    """
    if getattr(reactor, "_exitSignal", None) != signum:
        return False
    reactor._exitSignal = None
    return True
