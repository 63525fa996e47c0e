# -*- test-case-name: tests.test_ccc -*-
"""
CCC (RFC 4217 section 5): return a control connection from TLS to plaintext.

Twisted's TLS layer can start TLS on a connection but not stop it. After the
C{200} reply to C{CCC}, L{clearControlChannel} puts a small protocol in place
of the connection's TLS layer that ends the TLS session, whichever side
clients expect to start the shutdown, and then gives the raw connection back
to the protocol interpreter in plaintext.

Only explicit FTPS connections use it, and only when the operator allows CCC
(C{--allow-ccc}); data connections stay protected (C{PROT P} stays in force).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txftps._internals import forgetTLS, takeTLSLayer, unreadBytes

_log = Logger()


#: First bytes of TLS records (change_cipher_spec, alert, handshake,
#: application_data, heartbeat); a plaintext FTP command starts with a letter.
_TLS_RECORD_TYPES = frozenset(range(0x14, 0x19))


class _ClosingTLS(Protocol):
    """
    Stands in for the TLS layer while the TLS session ends after C{CCC}.

    Clients end it in two ways. Some (lftp) send their close_notify right
    after the 200 and wait for ours: we answer it. Others (curl's default)
    wait for the server's close_notify and then talk plaintext without
    answering: if the client's close_notify has not come within
    C{serverFirstAfter} seconds we send ours, and the first byte that cannot
    start a TLS record is the plaintext that follows.

    @cvar serverFirstAfter: seconds to wait for the client's close_notify
        before sending ours first.
    """

    serverFirstAfter = 0.3

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
        self._sentOurs = False
        self._timer: Any = None

    def connectionMade(self) -> None:
        self._timer = self._pi.clock.callLater(self.serverFirstAfter, self._sendOurs)

    def _sendOurs(self) -> None:
        self._timer = None
        if self._done or self._sentOurs:
            return
        self._sentOurs = True
        try:
            self._connection.shutdown()
        except SSL.Error:
            pass
        self._flush()

    def _finish(self, leftover: bytes) -> None:
        self._done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._cleared()
        if leftover:
            self._pi.dataReceived(leftover)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        if data[0] not in _TLS_RECORD_TYPES:
            # The client has moved on to plaintext without a close_notify of
            # its own (it waited for ours, or skipped the TLS shutdown).
            self._finish(data)
            return
        self._connection.bio_write(data)
        try:
            while True:
                dropped = self._connection.recv(65536)
                _log.warn("discarded {n} protected bytes sent after CCC", n=len(dropped))
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self._sendOurs()
            # Plaintext the client sent right behind its close_notify.
            self._finish(unreadBytes(self._connection))
        except SSL.Error as e:
            _log.info("TLS error while clearing the control channel: {e}", e=e)
            self._done = True
            self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._pi.connectionLost(reason)


def clearControlChannel(pi: Any) -> None:
    """
    End the TLS session on C{pi}'s control connection (see L{_ClosingTLS} for
    who sends close_notify first) and give the connection back to C{pi} in
    plaintext. Call it right after writing the C{200} reply to C{CCC}.

    @param pi: the protocol interpreter; its C{transport} is a TCP transport
        on which C{startTLS} was called.
    """
    transport = pi.transport
    layer = takeTLSLayer(transport)

    def cleared() -> None:
        forgetTLS(transport)
        transport.protocol = pi
        _log.info("control channel from {host} is in plaintext after CCC", host=pi.peerHost)

    transport.protocol = _ClosingTLS(layer.connection, pi, cleared, layer.flushSendBIO)
    transport.protocol.makeConnection(transport)
