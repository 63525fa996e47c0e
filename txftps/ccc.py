# -*- test-case-name: tests.test_ccc -*-
"""
CCC (RFC 4217 section 5): return a control connection from TLS to plaintext.

Twisted's TLS layer can start TLS on a connection but not stop it. After the
C{200} reply to C{CCC}, L{clearControlChannel} puts a small protocol in place
of the connection's TLS layer that reads the client's TLS records until the
client's close_notify arrives (the client starts the shutdown, RFC 4217
section 6), answers with our close_notify, and gives the raw connection back
to the protocol interpreter in plaintext.

Only explicit FTPS connections use it, and only when the operator allows CCC
(C{--allow-ccc}); data connections stay protected (C{PROT P} stays in force).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import noLongerProvides

__all__ = ["clearControlChannel"]

_log = Logger()


class _ClosingTLS(Protocol):
    """
    Stands in for the TLS layer until the client's close_notify arrives.
    """

    def __init__(
        self,
        connection: SSL.Connection,
        pi: Any,
        cleared: Callable[[], None],
        flush: Callable[[], None],
    ) -> None:
        self._connection = connection
        self._flush = flush
        self._pi = pi
        self._cleared = cleared
        self._done = False

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self._connection.bio_write(data)
        try:
            while True:
                dropped = self._connection.recv(65536)
                _log.warn("discarded {n} protected bytes sent after CCC", n=len(dropped))
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self._done = True
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass
            self._flush()
            leftover = _unreadBytes(self._connection)
            self._cleared()
            if leftover:
                # Plaintext the client sent right behind its close_notify.
                self._pi.dataReceived(leftover)
        except SSL.Error as e:
            _log.info("TLS error while clearing the control channel: {e}", e=e)
            self._done = True
            self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._pi.connectionLost(reason)


def _unreadBytes(connection: SSL.Connection) -> bytes:
    """
    What is left in C{connection}'s incoming memory BIO after TLS ended: the
    first plaintext bytes, if the client sent them in the same packet as its
    close_notify. pyOpenSSL has no call for this; it uses the private BIO.
    """
    bio = getattr(connection, "_into_ssl", None)
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


def clearControlChannel(pi: Any) -> None:
    """
    Wait for the client's close_notify on C{pi}'s control connection, answer
    it, and give the connection back to C{pi} in plaintext. Call it right
    after writing the C{200} reply to C{CCC}.

    @param pi: the protocol interpreter; its C{transport} is a TCP transport
        on which C{startTLS} was called.
    """
    transport = pi.transport
    tls = transport.protocol
    aggregator = getattr(tls, "_aggregator", None)
    if aggregator is not None:
        aggregator.flush()
    connection: SSL.Connection = tls._tlsConnection

    def cleared() -> None:
        transport.TLS = False
        for name in ("getHandle", "getPeerCertificate"):
            transport.__dict__.pop(name, None)
        noLongerProvides(transport, ISSLTransport)
        transport.protocol = pi
        _log.info("control channel from {host} is in plaintext after CCC", host=pi.peerHost)

    transport.protocol = _ClosingTLS(connection, pi, cleared, tls._flushSendBIO)
    transport.protocol.makeConnection(transport)
