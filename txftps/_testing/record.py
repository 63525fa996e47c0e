# -*- test-case-name: tests.test_testing -*-
"""
A record of what happened on a test server, to assert on: logins, commands,
replies and transfers, in order, as L{ISessionObserver} hears them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress
from zope.interface import implementer

from txftps._observers import transferDirection
from txftps.interfaces import ISessionObserver


def _session(peer: IAddress) -> str:
    if isinstance(peer, (IPv4Address, IPv6Address)):
        return f"{peer.host}:{peer.port}"
    return str(peer)


@dataclass(frozen=True)
class Login:
    """
    A login attempt.

    @ivar session: the client's C{host:port}, the same for every event of
        one control connection.
    @ivar user: the name sent with C{USER}.
    @ivar succeeded: C{True} for 230/232, C{False} for 530.
    """

    session: str
    user: str
    succeeded: bool


@dataclass(frozen=True)
class Command:
    """
    A command the server ran (C{PASS} arguments read C{***}).
    """

    session: str
    command: str
    argument: str


@dataclass(frozen=True)
class Reply:
    """
    A reply the server sent.
    """

    session: str
    code: int
    text: str


@dataclass(frozen=True)
class Transfer:
    """
    A transfer that ended.

    @ivar command: C{RETR}, C{STOR}, C{APPE}, C{STOU}, C{LIST}, C{NLST} or
        C{MLSD}.
    @ivar path: the absolute FTP path (for C{STOU}, the name chosen).
    @ivar direction: C{"download"}, C{"upload"} or C{"listing"}.
    @ivar bytes: the bytes moved in that direction.
    @ivar code: the final reply: 226 when it completed, else the error code.
    """

    session: str
    command: str
    path: str
    direction: str
    bytes: int
    code: int

    @property
    def completed(self) -> bool:
        """
        The server answered 226.
        """
        return self.code == 226


Event = Login | Command | Reply | Transfer


@implementer(ISessionObserver)
class SessionRecord:
    """
    Everything a test server's sessions did, in order.

    @ivar events: L{Login}, L{Command}, L{Reply} and L{Transfer} events.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._waiting: list[tuple[Callable[[SessionRecord], bool], defer.Deferred[None]]] = []

    # queries

    @property
    def logins(self) -> list[Login]:
        """
        The login attempts.
        """
        return [e for e in self.events if isinstance(e, Login)]

    @property
    def commands(self) -> list[Command]:
        """
        The commands run.
        """
        return [e for e in self.events if isinstance(e, Command)]

    @property
    def replies(self) -> list[Reply]:
        """
        The replies sent.
        """
        return [e for e in self.events if isinstance(e, Reply)]

    @property
    def transfers(self) -> list[Transfer]:
        """
        The transfers that ended.
        """
        return [e for e in self.events if isinstance(e, Transfer)]

    def clear(self) -> None:
        """
        Forget every event so far.
        """
        del self.events[:]

    def waitFor(self, predicate: Callable[[SessionRecord], bool]) -> defer.Deferred[None]:
        """
        Wait until C{predicate(record)} holds, checked now and after every
        event; for what the client cannot see, such as the end of a transfer
        whose client gave up.

        @return: fires with C{None} once it holds (trial's test timeout ends
            a wait that never does).
        """
        d: defer.Deferred[None] = defer.Deferred()
        if predicate(self):
            d.callback(None)
        else:
            self._waiting.append((predicate, d))
        return d

    def _add(self, event: Event) -> None:
        self.events.append(event)
        waiting, self._waiting = self._waiting, []
        for predicate, d in waiting:
            if predicate(self):
                d.callback(None)
            else:
                self._waiting.append((predicate, d))

    # ISessionObserver

    # Connections, handshakes, bans and data-connection refusals are for
    # the operator's observers (--metrics); a record keeps what a test of
    # a shell or of a client asserts on.

    def sessionOpened(self, peer: IAddress) -> None:
        pass

    def sessionClosed(self, peer: IAddress) -> None:
        pass

    def connectionRefused(self, peer: IAddress, reason: str) -> None:
        pass

    def tlsHandshakeFailed(self, peer: IAddress, reason: str) -> None:
        pass

    def addressBanned(self, peer: IAddress) -> None:
        pass

    def dataConnectionRefused(self, peer: IAddress, reason: str) -> None:
        pass

    def transferStarted(
        self, peer: IAddress, command: str, path: str, user: str, anonymous: bool, binary: bool
    ) -> None:
        pass

    def loginSucceeded(self, peer: IAddress, user: str) -> None:
        self._add(Login(_session(peer), user, True))

    def loginFailed(self, peer: IAddress, user: str) -> None:
        self._add(Login(_session(peer), user, False))

    def commandReceived(self, peer: IAddress, command: str, argument: str) -> None:
        self._add(Command(_session(peer), command, argument))

    def replySent(self, peer: IAddress, code: int, text: str) -> None:
        self._add(Reply(_session(peer), code, text))

    def transferEnded(
        self, peer: IAddress, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        direction = transferDirection(command)
        moved = received if direction == "upload" else sent
        self._add(Transfer(_session(peer), command, path, direction, moved, code))
