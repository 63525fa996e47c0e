# -*- test-case-name: tests.test_client -*-
"""
The FTPS client's control channel: a line protocol that sends commands,
parses (multi-line) replies, matches them to the commands in order, and
upgrades itself to TLS after C{AUTH TLS}.

Every command's L{Deferred} fires with its final L{Reply} (2xx or 3xx) or
fails with L{FTPCommandError} (4xx, 5xx); preliminary replies (1xx) go to an
optional callback. A reply that does not come within the reply timeout fails
the command with L{FTPTimeoutError} and closes the connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    ITLSTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps._clienterrors import (
    CertificateError,
    ControlConnectionLost,
    FTPClientError,
    FTPCommandError,
    FTPTimeoutError,
)
from txftps._clienttls import TLSSession


@dataclass(frozen=True)
class Reply:
    """
    One complete FTP reply.

    @ivar code: the three-digit code.
    @ivar lines: its lines, without CR LF (the first and last carry the code).
    """

    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        """
        The first line without its code.
        """
        return self.lines[0][4:] if self.lines else ""

    @property
    def lastText(self) -> str:
        """
        The last line without its code (where C{227}, C{229} and C{257}
        replies carry their data on single-line replies).
        """
        return self.lines[-1][4:] if self.lines else ""


class _Pending:
    def __init__(self, command: str, preliminary: Callable[[Reply], None] | None) -> None:
        self.command = command
        self.preliminary = preliminary
        self.deferred: Deferred[Reply] = Deferred()
        self.timer: IDelayedCall | None = None

    def stopTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


def _masked(line: str) -> str:
    return "PASS ****" if line.upper().startswith("PASS ") else line


@implementer(IHandshakeListener)
class FTPControlProtocol(LineReceiver):
    """
    The control connection of an FTPS client.

    @ivar greeting: fires with the server's first reply.
    @ivar replyTimeout: seconds to wait for a reply before giving up.
    @ivar tlsSession: the L{TLSSession} of this connection, once TLS is on
        (set by whoever starts TLS).
    """

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, reactor: IReactorTime, replyTimeout: float = 60.0) -> None:
        self.reactor = reactor
        self.replyTimeout = replyTimeout
        self.tlsSession: TLSSession | None = None
        self._pending: deque[_Pending] = deque()
        self._lines: list[str] = []
        self._handshake: Deferred[None] | None = None
        self._lost: Failure | None = None
        greeting = _Pending("(greeting)", None)
        self._pending.append(greeting)
        self.greeting = greeting.deferred

    def connectionMade(self) -> None:
        self._armTimer(self._pending[0])

    # replies

    def lineReceived(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if not self._lines:
            if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
                self._fail(FTPClientError(f"malformed reply from the server: {text!r}"))
                return
            self._lines.append(text)
            if text[3:4] == "-":
                return
        else:
            self._lines.append(text)
            if not (text[:3] == self._lines[0][:3] and text[3:4] in ("", " ")):
                return
        reply = Reply(int(self._lines[0][:3]), self._lines)
        self._lines = []
        self._replyReceived(reply)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._fail(FTPClientError("the server sent an over-long reply line"))

    def _replyReceived(self, reply: Reply) -> None:
        if not self._pending:
            # An unsolicited reply: 421 before closing, typically.
            return
        pending = self._pending[0]
        if reply.code < 200:
            pending.stopTimer()
            if pending.preliminary is not None:
                pending.preliminary(reply)
            return
        self._pending.popleft()
        pending.stopTimer()
        if self._pending:
            self._armTimer(self._pending[0])
        if pending.deferred.called:
            # Its waiter gave up (a cancelled transfer): drop the reply.
            return
        if reply.code >= 400:
            pending.deferred.errback(FTPCommandError(reply.code, reply.lines, pending.command))
        else:
            pending.deferred.callback(reply)

    # commands

    def sendCommand(
        self, line: str, preliminary: Callable[[Reply], None] | None = None
    ) -> Deferred[Reply]:
        """
        Send one command.

        @param line: the command, without CR LF.
        @param preliminary: called with each 1xx reply to it; while a
            command has had a 1xx reply, the reply timeout is suspended until
            L{armReplyTimeout}.
        @return: fires with its final reply, or fails with
            L{FTPCommandError} (4xx, 5xx), L{FTPTimeoutError} or
            L{ControlConnectionLost}.
        """
        if "\r" in line or "\n" in line:
            raise ValueError(f"a command may not contain CR or LF: {line!r}")
        pending = _Pending(_masked(line), preliminary)
        if self._lost is not None:
            pending.deferred.errback(self._lostError())
            return pending.deferred
        self._pending.append(pending)
        if len(self._pending) == 1:
            self._armTimer(pending)
        self.sendLine(line.encode("utf-8"))
        return pending.deferred

    def armReplyTimeout(self, timeout: float | None = None) -> None:
        """
        Start waiting for the final reply of the oldest command, e.g. once
        its data connection has closed.

        @param timeout: seconds, instead of the reply timeout.
        """
        if self._pending:
            self._armTimer(self._pending[0], timeout)

    def sendLine(self, line: bytes) -> None:
        assert self.transport is not None
        self.transport.write(line + b"\r\n")

    def _armTimer(self, pending: _Pending, timeout: float | None = None) -> None:
        pending.stopTimer()
        seconds = self.replyTimeout if timeout is None else timeout
        pending.timer = self.reactor.callLater(seconds, self._timedOut, pending, seconds)

    def _timedOut(self, pending: _Pending, seconds: float) -> None:
        pending.timer = None
        self._fail(FTPTimeoutError(f"no reply to {pending.command} within {seconds:g} seconds"))

    def _fail(self, error: Exception) -> None:
        self._failAll(Failure(error))
        if self.transport is not None:
            cast(Any, self.transport).abortConnection()

    def _failAll(self, failure: Failure) -> None:
        pending, self._pending = self._pending, deque()
        for each in pending:
            each.stopTimer()
            if not each.deferred.called:
                each.deferred.errback(failure)
        if self._handshake is not None and not self._handshake.called:
            handshake, self._handshake = self._handshake, None
            handshake.errback(failure)

    # TLS

    def startTLS(self, session: TLSSession) -> Deferred[None]:
        """
        Start TLS as the client on this connection (after C{234}).

        @return: fires when the handshake completed and the certificate was
            accepted.
        """
        self.tlsSession = session
        self._handshake = Deferred()
        transport = ITLSTransport(self.transport)
        transport.startTLS(IOpenSSLClientConnectionCreator(session))
        return self._handshake

    def handshakeCompleted(self) -> None:
        if self._handshake is not None:
            handshake, self._handshake = self._handshake, None
            handshake.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = reason
        self._failAll(Failure(self._lostError()))

    def _lostError(self) -> Exception:
        assert self._lost is not None
        if self._lost.check(FTPClientError):
            return self._lost.value  # type: ignore[return-value]
        if self.tlsSession is not None:
            error = self.tlsSession.verificationError()
            if error is not None:
                return error
        if self._lost.check(CertificateError):
            return self._lost.value  # type: ignore[return-value]
        return ControlConnectionLost(
            f"the server closed the control connection ({self._lost.getErrorMessage()})"
        )
