# -*- test-case-name: tests.test_sharedstate -*-
"""
Connection caps and login bans shared by worker processes (C{--workers N}).

The parent process holds the one authoritative L{ConnectionLimits} and
L{LoginBans}; each worker talks to it over AMP on a UNIX socket pair
(L{StateKeeper} and L{ParentConnection} on the parent's side,
L{WorkerConnection} on the worker's):

  - a worker asks C{Admit} before a control connection gets its greeting
    (L{SharedConnectionLimits.reserve}); the parent counts the connection
    against C{--max-clients} and C{--max-clients-per-ip} in every worker at
    once, so the caps hold exactly. The only race is the conservative one: a
    connection that ended in one worker is counted until its C{Release}
    arrives, so for that long a new connection may be refused that would
    just fit.
  - a worker asks C{BeginCheck} before a password check
    (L{SharedLoginBans.beginCheck}); the parent answers with its
    L{LoginBans}, so a ban decided in any worker refuses the next C{PASS} in
    every worker, and checks running in parallel in several workers cannot
    pass C{--ban-after} together. The verdict goes back with C{LoginFailed}
    or C{LoginSucceeded}.
  - when a failure starts a ban, the parent pushes C{Ban} to every worker,
    which keeps it in a local table: the refusal of a banned address at the
    door (before the greeting and before TLS) stays a synchronous look-up.
    The race accepted here: a connection accepted before the push arrives
    (well under a millisecond) gets its greeting, but its C{PASS} is still
    refused by the parent.

A worker that dies holds nothing: the parent releases its connections and
abandons its running checks (L{StateKeeper.workerGone}).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from txftps._settings import ConnectionLimits
from txftps.auth import LoginBans

_log = Logger()


class Admit(amp.Command):
    """
    May a new control connection from C{host} be served? If so, it counts
    until L{Release}.
    """

    arguments = [(b"host", amp.Unicode())]
    response = [(b"admitted", amp.Boolean())]


class Release(amp.Command):
    """
    A connection admitted for C{host} ended.
    """

    arguments = [(b"host", amp.Unicode())]
    requiresAnswer = False


class BeginCheck(amp.Command):
    """
    May a password check for C{host} run now (L{LoginBans.beginCheck})?
    """

    arguments = [(b"host", amp.Unicode())]
    response = [(b"allowed", amp.Boolean())]


class LoginFailed(amp.Command):
    """
    A login from C{host} failed; C{checked}: it ends a check begun with
    L{BeginCheck}.
    """

    arguments = [(b"host", amp.Unicode()), (b"checked", amp.Boolean())]
    requiresAnswer = False


class LoginSucceeded(amp.Command):
    """
    A login from C{host} succeeded; C{checked} as for L{LoginFailed}.
    """

    arguments = [(b"host", amp.Unicode()), (b"checked", amp.Boolean())]
    requiresAnswer = False


class Ready(amp.Command):
    """
    Worker to parent: the worker serves and its SIGHUP and SIGUSR1 handlers
    are in place, so the parent may forward those signals to it (before,
    either would kill it).
    """

    requiresAnswer = False


class Ban(amp.Command):
    """
    Parent to worker: refuse C{host} for C{seconds} from now.
    """

    arguments = [(b"host", amp.Unicode()), (b"seconds", amp.Float())]
    requiresAnswer = False


def _call(
    connection: amp.AMP, command: type[amp.Command], **arguments: Any
) -> defer.Deferred[Any]:
    d: defer.Deferred[Any] = connection.callRemote(command, **arguments)  # type: ignore[no-untyped-call]
    return d


class StateKeeper:
    """
    The parent's side: the caps and bans of all workers, and what each
    worker holds of them.

    @ivar limits: the authoritative caps.
    @ivar bans: the authoritative bans.
    @ivar sessions: control connections admitted so far, per worker number.
    """

    def __init__(self, clock: IReactorTime, limits: ConnectionLimits, bans: LoginBans) -> None:
        self._clock = clock
        self.limits = limits
        self.bans = bans
        self.sessions: Counter[int] = Counter()
        self._held: dict[int, Counter[str]] = {}
        self._checks: dict[int, Counter[str]] = {}
        self._workers: dict[int, ParentConnection] = {}
        self._bannedUntil: dict[str, float] = {}

    def workerConnected(self, number: int, connection: ParentConnection) -> None:
        """
        Worker C{number} (a new process) is on C{connection}: it learns the
        bans in force.
        """
        self._workers[number] = connection
        self._held[number] = Counter()
        self._checks[number] = Counter()
        now = self._clock.seconds()
        for host, until in list(self._bannedUntil.items()):
            if until > now:
                _call(connection, Ban, host=host, seconds=until - now)
            else:
                del self._bannedUntil[host]

    def workerGone(self, number: int) -> None:
        """
        Worker C{number} ended: release its connections, abandon its checks.
        """
        self._workers.pop(number, None)
        for host, count in self._held.pop(number, Counter()).items():
            for _ in range(count):
                self.limits.release(host)
        for host, count in self._checks.pop(number, Counter()).items():
            for _ in range(count):
                self.bans.abandon(host)

    def admit(self, number: int, host: str) -> bool:
        """
        Answer L{Admit} from worker C{number}.
        """
        if number not in self._held or not self.limits.admit(host):
            return False
        self._held[number][host] += 1
        self.sessions[number] += 1
        return True

    def release(self, number: int, host: str) -> None:
        """
        Handle L{Release} from worker C{number}.
        """
        held = self._held.get(number)
        if held is None or held[host] <= 0:
            return
        held[host] -= 1
        if not held[host]:
            del held[host]
        self.limits.release(host)

    def beginCheck(self, number: int, host: str) -> defer.Deferred[bool]:
        """
        Answer L{BeginCheck} from worker C{number}.
        """
        if number not in self._checks:
            return defer.succeed(False)

        def counted(allowed: bool) -> bool:
            checks = self._checks.get(number)
            if allowed and checks is None:
                # The worker died while the bans answered.
                self.bans.abandon(host)
                return False
            if allowed and checks is not None:
                checks[host] += 1
            return allowed

        return self.bans.beginCheck(host).addCallback(counted)

    def _ended(self, number: int, host: str, checked: bool) -> bool:
        checks = self._checks.get(number)
        if not checked or checks is None or checks[host] <= 0:
            return False
        checks[host] -= 1
        if not checks[host]:
            del checks[host]
        return True

    def failed(self, number: int, host: str, checked: bool) -> None:
        """
        Handle L{LoginFailed} from worker C{number}; push a ban it starts to
        every worker.
        """
        before = self.bans.refusesConnections(host)
        self.bans.failed(host, checked=self._ended(number, host, checked))
        if not before and self.bans.refusesConnections(host):
            seconds = float(self.bans.banTime)
            self._bannedUntil[host] = self._clock.seconds() + seconds
            _log.info(
                "{host} banned for {seconds:.0f} s after failed logins, in every worker",
                host=host,
                seconds=seconds,
            )
            for connection in self._workers.values():
                _call(connection, Ban, host=host, seconds=seconds)

    def succeeded(self, number: int, host: str, checked: bool) -> None:
        """
        Handle L{LoginSucceeded} from worker C{number}.
        """
        self.bans.succeeded(host, checked=self._ended(number, host, checked))


class _QuietAMP(amp.AMP):
    """
    AMP without its "connection established" and "connection lost" lines:
    the pool logs what a worker's start and end mean.
    """

    def makeConnection(self, transport: Any) -> None:
        amp.BinaryBoxProtocol.makeConnection(self, transport)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        amp.BinaryBoxProtocol.connectionLost(self, reason)  # type: ignore[no-untyped-call]
        self.transport = None


class ParentConnection(_QuietAMP):
    """
    The parent's end of one worker's AMP connection.
    """

    def __init__(
        self, keeper: StateKeeper, number: int, onReady: Callable[[], None] | None = None
    ) -> None:
        """
        @param onReady: called when the worker says it is L{Ready}.
        """
        super().__init__()  # type: ignore[no-untyped-call]
        self._keeper = keeper
        self._number = number
        self._onReady = onReady

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._keeper.workerConnected(self._number, self)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        self._keeper.workerGone(self._number)

    @Admit.responder
    def _admit(self, host: str) -> dict[str, bool]:
        return {"admitted": self._keeper.admit(self._number, host)}

    @Release.responder
    def _release(self, host: str) -> dict[str, Any]:
        self._keeper.release(self._number, host)
        return {}

    @BeginCheck.responder
    def _beginCheck(self, host: str) -> defer.Deferred[dict[str, bool]]:
        d = self._keeper.beginCheck(self._number, host)
        return d.addCallback(lambda allowed: {"allowed": allowed})

    @LoginFailed.responder
    def _failed(self, host: str, checked: bool) -> dict[str, Any]:
        self._keeper.failed(self._number, host, checked)
        return {}

    @LoginSucceeded.responder
    def _succeeded(self, host: str, checked: bool) -> dict[str, Any]:
        self._keeper.succeeded(self._number, host, checked)
        return {}

    @Ready.responder
    def _ready(self) -> dict[str, Any]:
        if self._onReady is not None:
            self._onReady()
        return {}


class WorkerConnection(_QuietAMP):
    """
    A worker's end of its AMP connection to the parent.

    @ivar bans: the worker's L{SharedLoginBans}, which keeps the bans the
        parent pushes.
    """

    def __init__(self, onLost: Callable[[], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.bans: LoginBans | None = None
        self._onLost = onLost

    @Ban.responder
    def _ban(self, host: str, seconds: float) -> dict[str, Any]:
        if self.bans is not None:
            self.bans.ban(host, seconds)
        return {}

    def ready(self) -> None:
        """
        Tell the parent this worker is L{Ready}.
        """
        _call(self, Ready)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        self._onLost()


def _refusedOnError(what: str) -> Callable[[Failure], bool]:
    def refuse(failure: Failure) -> bool:
        _log.error(
            "no answer from the parent process to {what}: {reason}; refused",
            what=what,
            reason=failure.getErrorMessage(),
        )
        return False

    return refuse


class SharedConnectionLimits(ConnectionLimits):
    """
    A worker's caps: the parent decides (L{reserve}), this counts the
    worker's own connections and tells the parent when they end.

    The protocol calls L{admit} synchronously; a worker's protocol first
    awaits L{reserve}, which records the parent's verdict, and then starts
    as usual: its L{admit} takes that verdict.
    """

    def __init__(self, connection: amp.AMP, maxClients: int, maxPerAddress: int) -> None:
        super().__init__(maxClients, maxPerAddress)
        self._connection = connection
        self._granted: Counter[str] = Counter()
        #: The worker's control connections that started.
        self.sessions: set[Any] = set()

    def reserve(self, host: str) -> defer.Deferred[bool]:
        """
        Ask the parent whether a new connection from C{host} fits the caps;
        when it does, the next L{admit} for C{host} takes it.
        """

        def granted(response: dict[str, Any]) -> bool:
            if response["admitted"]:
                self._granted[host] += 1
                return True
            return False

        d = _call(self._connection, Admit, host=host)
        return d.addCallback(granted).addErrback(_refusedOnError("a new connection"))

    def admit(self, host: str) -> bool:
        if self._granted[host] <= 0:
            return False
        self._granted[host] -= 1
        if not self._granted[host]:
            del self._granted[host]
        # The parent counted it against every worker's connections; this
        # worker's own count is never over the caps then.
        return super().admit(host)

    def unclaimed(self, host: str) -> None:
        """
        A reservation for C{host} that no L{admit} took (the connection was
        refused for another reason, or closed while waiting) goes back.
        """
        if self._granted[host] > 0:
            self._granted[host] -= 1
            if not self._granted[host]:
                del self._granted[host]
            _call(self._connection, Release, host=host)

    def release(self, host: str) -> None:
        super().release(host)
        _call(self._connection, Release, host=host)


class SharedLoginBans(LoginBans):
    """
    A worker's bans: the parent counts failures and running checks
    (L{beginCheck}, L{failed}, L{succeeded} go to it); the bans it pushes
    are kept here, so that C{refusesConnections} and L{isBanned} answer at
    once.
    """

    def __init__(
        self, clock: IReactorTime, connection: amp.AMP, banAfter: int, banTime: float
    ) -> None:
        super().__init__(clock, banAfter, banTime)
        self._connection = connection

    def isBanned(self, host: str) -> bool:
        return self.refusesConnections(host)

    def beginCheck(self, host: str) -> defer.Deferred[bool]:
        d = _call(self._connection, BeginCheck, host=host)
        return d.addCallback(lambda response: bool(response["allowed"])).addErrback(
            _refusedOnError("a password check")
        )

    def checking(self, host: str) -> None:
        # The parent counts running checks (beginCheck).
        pass

    def abandon(self, host: str) -> None:
        pass

    def failed(self, host: str, checked: bool = True) -> bool:
        # The parent decides bans and pushes them to every worker; whether
        # this failure started one is not known here.
        _call(self._connection, LoginFailed, host=host, checked=checked)
        return False

    def succeeded(self, host: str, checked: bool = True) -> None:
        _call(self._connection, LoginSucceeded, host=host, checked=checked)


class _OneConnection(Factory):
    """
    Builds one given protocol, for a socket adopted as a connection.
    """

    noisy = False

    def __init__(self, connection: amp.AMP) -> None:
        self._connection = connection

    def buildProtocol(self, addr: Any) -> amp.AMP:
        return self._connection


def adoptConnection(reactor: Any, fileDescriptor: int, connection: amp.AMP) -> None:
    """
    Run C{connection} on the connected, non-blocking UNIX socket
    C{fileDescriptor} (L{IReactorSocket.adoptStreamConnection
    <twisted.internet.interfaces.IReactorSocket.adoptStreamConnection>}; the
    reactor takes a duplicate, the caller closes its own).
    """
    reactor.adoptStreamConnection(fileDescriptor, socket.AF_UNIX, _OneConnection(connection))
