# -*- test-case-name: tests.test_observers -*-
"""
Session observers that other observers build on: L{SilentObserver}, which
ignores everything, and L{FanOutObserver}, which tells several observers
(C{--xferlog}, C{--metrics} and an embedder's own) about each event; and
L{transferDirection}, which names the direction of a transfer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from txftps.interfaces import ISessionObserver

_log = Logger()

#: Transfer commands and the direction their bytes move in.
_DIRECTIONS = {
    "RETR": "download",
    "STOR": "upload",
    "APPE": "upload",
    "STOU": "upload",
    "LIST": "listing",
    "NLST": "listing",
    "MLSD": "listing",
}


def transferDirection(command: str) -> str:
    """
    The direction of a transfer that C{command} (as an observer's
    C{transferEnded} gets it) made: C{"download"}, C{"upload"} or
    C{"listing"}.
    """
    return _DIRECTIONS.get(command, "download")


@implementer(ISessionObserver)
class SilentObserver:
    """
    An L{ISessionObserver} that ignores every event: the observer of a
    factory given none, and a base class for observers that want only a
    few events.
    """

    def sessionOpened(self, peer: Any) -> None:
        pass

    def sessionClosed(self, peer: Any) -> None:
        pass

    def connectionRefused(self, peer: Any, reason: str) -> None:
        pass

    def tlsHandshakeFailed(self, peer: Any, reason: str) -> None:
        pass

    def loginSucceeded(self, peer: Any, user: str) -> None:
        pass

    def loginFailed(self, peer: Any, user: str) -> None:
        pass

    def addressBanned(self, peer: Any) -> None:
        pass

    def commandReceived(self, peer: Any, command: str, argument: str) -> None:
        pass

    def replySent(self, peer: Any, code: int, text: str) -> None:
        pass

    def dataConnectionRefused(self, peer: Any, reason: str) -> None:
        pass

    def transferStarted(
        self, peer: Any, command: str, path: str, user: str, anonymous: bool, binary: bool
    ) -> None:
        pass

    def transferEnded(
        self, peer: Any, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        pass


@implementer(ISessionObserver)
class FanOutObserver:
    """
    Tells every one of several L{ISessionObserver}s about each event, in
    order. An observer that raises (which it must not) is logged and the
    others still hear of the event: a broken observer never breaks a
    session.

    @ivar observers: the observers.
    """

    def __init__(self, observers: Iterable[ISessionObserver]) -> None:
        self.observers = list(observers)

    def _tell(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                _log.failure("session observer {observer!r} failed", observer=observer)

    def sessionOpened(self, peer: Any) -> None:
        self._tell("sessionOpened", peer)

    def sessionClosed(self, peer: Any) -> None:
        self._tell("sessionClosed", peer)

    def connectionRefused(self, peer: Any, reason: str) -> None:
        self._tell("connectionRefused", peer, reason)

    def tlsHandshakeFailed(self, peer: Any, reason: str) -> None:
        self._tell("tlsHandshakeFailed", peer, reason)

    def loginSucceeded(self, peer: Any, user: str) -> None:
        self._tell("loginSucceeded", peer, user)

    def loginFailed(self, peer: Any, user: str) -> None:
        self._tell("loginFailed", peer, user)

    def addressBanned(self, peer: Any) -> None:
        self._tell("addressBanned", peer)

    def commandReceived(self, peer: Any, command: str, argument: str) -> None:
        self._tell("commandReceived", peer, command, argument)

    def replySent(self, peer: Any, code: int, text: str) -> None:
        self._tell("replySent", peer, code, text)

    def dataConnectionRefused(self, peer: Any, reason: str) -> None:
        self._tell("dataConnectionRefused", peer, reason)

    def transferStarted(
        self, peer: Any, command: str, path: str, user: str, anonymous: bool, binary: bool
    ) -> None:
        self._tell("transferStarted", peer, command, path, user, anonymous, binary)

    def transferEnded(
        self, peer: Any, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        self._tell("transferEnded", peer, command, path, sent, received, code)


def handshakeFailureReason(reason: Any) -> str:
    """
    The reason of a failed TLS handshake for
    L{ISessionObserver.tlsHandshakeFailed}: OpenSSL's last reason string in
    lower case with underscores, or C{"connection_closed"} when the
    connection simply ended.

    @param reason: the L{Failure<twisted.python.failure.Failure>} the
        connection was lost with.
    """
    from OpenSSL import SSL

    error = getattr(reason, "value", reason)
    if isinstance(error, SSL.Error):
        details = error.args[0] if error.args else None
        if isinstance(details, list) and details and isinstance(details[-1], tuple):
            text = str(details[-1][-1])
            words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
            if words:
                return "_".join(words)
        return "tls_error"
    return "connection_closed"
