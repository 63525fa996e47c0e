# -*- test-case-name: tests.test_workers -*-
"""
One worker process of C{twistd ftps --workers N}.

The parent (L{txftps._workers}) runs C{python -m txftps._worker SPEC
OPTIONS...}: C{SPEC} is a JSON object with the worker's number, the file
descriptor of its AMP connection to the parent, the listening sockets it
inherited and its slice of C{--passive-ports}; C{OPTIONS} are the parent's
C{ftps} options. The worker builds the same server as C{twistd ftps} would
(L{txftps.tap.makeService}), with three differences:

  - it accepts on the listening sockets it inherited
    (C{IReactorSocket.adoptStreamPort});
  - its caps and bans are shared through the parent
    (L{txftps._sharedstate}): a new control connection waits, reading
    nothing and sent nothing, until the parent admits it
    (L{WorkerSession});
  - it logs JSON lines on its standard output, which the parent relays into
    its own log; SIGHUP and SIGUSR1 (forwarded by the parent once the
    worker said it is ready, L{WorkerConnection.ready}) are logged, then go to
    whatever else handles them. On SIGTERM or SIGINT it stops
    accepting, answers every session C{421} and closes it, and exits.

When the parent goes away (its end of the AMP connection closes) the worker
stops too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger, globalLogBeginner
from twisted.python.failure import Failure

from txftps._datachannel import PassivePortRange
from txftps._logging import observerFactory
from txftps._settings import ConnectionLimits
from txftps._sharedstate import (
    SharedConnectionLimits,
    SharedLoginBans,
    WorkerConnection,
    adoptConnection,
)
from txftps.auth import LoginBans
from txftps.server import FTPSFactory, FTPSProtocol, ProxyProtocolFactory

_log = Logger()

#: Seconds the sessions get to close after SIGTERM.
CLOSE_TIMEOUT = 10.0


class WorkerSession(FTPSProtocol):
    """
    The protocol of a worker's control connections: it asks the parent
    whether the connection fits the caps before it starts (no greeting, no
    TLS, nothing read until then), and it can be shut down with C{421}.
    """

    _waiting = False
    _lostWhileWaiting = False
    _held = b""
    _peerPort: int | None = None

    def connectionMade(self) -> None:
        limits = self.factory.limits
        # The client a trusted proxy named, as the interpreter takes it.
        client = self.clientAddress if self.clientAddress is not None else self.transport.getPeer()
        host = client.host
        if not isinstance(limits, SharedConnectionLimits) or self.factory.bans.refusesConnections(
            host
        ):
            # Refused at the door (the ban), as in one process.
            super().connectionMade()
            return
        self._waiting = True
        self.transport.pauseProducing()
        limits.reserve(host).addCallback(self._decided, limits, host)

    def _decided(self, admitted: bool, limits: SharedConnectionLimits, host: str) -> None:
        self._waiting = False
        if self._lostWhileWaiting:
            limits.unclaimed(host)
            return
        # admit() takes the parent's verdict; a ban that arrived meanwhile
        # refuses the connection at the door and the reservation goes back.
        super().connectionMade()
        limits.unclaimed(host)
        limits.sessions.add(self)
        if admitted and not self._closing:
            self._peerPort = self.peerAddress.port
            _log.debug("session from {host} port {port}", host=host, port=self._peerPort)
        held, self._held = self._held, b""
        transport = self.transport
        if held and not transport.disconnecting:
            # transport.protocol: the TLS layer if implicit TLS started.
            transport.protocol.dataReceived(held)  # type: ignore[no-untyped-call]
        transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._waiting:
            self._held += data
            return
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._waiting:
            self._lostWhileWaiting = True
        limits = self.factory.limits
        if isinstance(limits, SharedConnectionLimits):
            limits.sessions.discard(self)
        if self._peerPort is not None:
            _log.debug(
                "session from {host} port {port} ended", host=self.peerHost, port=self._peerPort
            )
            self._peerPort = None
        super().connectionLost(reason)

    def shutDown(self) -> None:
        """
        The worker stops: answer C{421} and close.
        """
        if self._closing:
            return
        self.reply(421, "Service shutting down; closing control connection.")
        self._close()


class _AdoptedPortService(service.Service):
    """
    Accepts on a listening socket the parent handed over.
    """

    def __init__(
        self, reactor: Any, number: int, kind: str, fd: int, family: int, factory: FTPSFactory
    ) -> None:
        self._reactor = reactor
        self._number = number
        self._kind = kind
        self._fd = fd
        self._family = family
        self._factory = factory
        self._port: Any = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        served: Any = self._factory
        if self._factory.settings.trustedProxies is not None:
            served = ProxyProtocolFactory(self._factory)
        self._port = self._reactor.adoptStreamPort(self._fd, self._family, served)
        # The port holds a duplicate.
        os.close(self._fd)
        address = self._port.getHost()
        _log.info(
            "txftps: worker {number} accepting {kind} FTPS connections on {host} port {port}",
            number=self._number,
            kind=self._kind,
            host=address.host,
            port=address.port,
        )

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._port is None:
            return None
        port, self._port = self._port, None
        return defer.maybeDeferred(port.stopListening)


class _SessionCloser(service.Service):
    """
    Stopped after the ports: answers every open session C{421}, closes it,
    and waits (up to L{CLOSE_TIMEOUT} seconds) until all are gone.
    """

    def __init__(self, reactor: Any, limits: SharedConnectionLimits) -> None:
        self._reactor = reactor
        self._limits = limits

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        sessions = list(self._limits.sessions)
        if sessions:
            _log.info("txftps: closing {count} session(s)", count=len(sessions))
        for session in sessions:
            session.shutDown()
        done: defer.Deferred[None] = defer.Deferred()
        deadline = self._reactor.seconds() + CLOSE_TIMEOUT

        def check() -> None:
            if not self._limits.sessions or self._reactor.seconds() >= deadline:
                done.callback(None)
            else:
                self._reactor.callLater(0.05, check)

        check()
        return done


class WorkerRuntime:
    """
    What a worker process adds to the server L{txftps.tap.makeService}
    builds: the shared caps and bans, and the inherited listening sockets.

    @ivar number: the worker's number, from 1.
    @ivar connection: the AMP connection to the parent.
    @ivar limits: the shared caps, once L{share} ran.
    """

    def __init__(self, reactor: Any, spec: dict[str, Any]) -> None:
        self._reactor = reactor
        self.number: int = spec["number"]
        self._listening: list[dict[str, Any]] = list(spec["listening"])
        self.connection = WorkerConnection(self._parentGone)
        self.limits: SharedConnectionLimits | None = None
        self._stopping = False
        channel = spec["channel"]
        os.set_blocking(channel, False)
        adoptConnection(reactor, channel, self.connection)
        os.close(channel)

    def share(
        self, limits: ConnectionLimits, bans: LoginBans
    ) -> tuple[SharedConnectionLimits, SharedLoginBans]:
        """
        Caps and bans like C{limits} and C{bans}, decided by the parent.
        """
        self.limits = SharedConnectionLimits(
            self.connection, limits.maxClients, limits.maxPerAddress
        )
        shared = SharedLoginBans(self._reactor, self.connection, bans.banAfter, bans.banTime)
        self.connection.bans = shared
        return self.limits, shared

    def adopt(self, factory: FTPSFactory) -> service.Service:
        """
        The service that accepts C{factory}'s connections on the next
        inherited listening socket (the parent hands them over in the order
        of C{--listen}, then C{--implicit}).
        """
        listening = self._listening.pop(0)
        kind = "implicit" if factory.implicit else "explicit"
        if listening["kind"] != kind:
            raise RuntimeError(f"expected a {kind} socket from the parent, got {listening}")
        factory.protocol = WorkerSession  # type: ignore[assignment]
        return _AdoptedPortService(
            self._reactor, self.number, kind, listening["fd"], listening["family"], factory
        )

    def closer(self) -> service.Service:
        """
        The service that closes the sessions when the worker stops.
        """
        assert self.limits is not None
        return _SessionCloser(self._reactor, self.limits)

    def _parentGone(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        _log.error(
            "txftps: worker {number}: the parent process is gone; stopping", number=self.number
        )
        if self._reactor.running:
            self._reactor.stop()

    def stopping(self) -> None:
        """
        The worker stops on its own (a signal): the parent's end closing is
        no news then.
        """
        self._stopping = True

    def installSignalLogging(self) -> None:
        """
        Log SIGHUP and SIGUSR1, then pass them to the handler each had.
        """
        for signalNumber in (signal.SIGHUP, signal.SIGUSR1):
            previous = signal.getsignal(signalNumber)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                name = signal.Signals(signum).name
                self._reactor.callFromThread(
                    _log.info,
                    "txftps: worker {number} got {signal}",
                    number=self.number,
                    signal=name,
                )
                if callable(previous):
                    previous(signum, frame)

            signal.signal(signalNumber, handler)


def main(argv: list[str] | None = None) -> None:
    """
    Run a worker: C{argv} is the JSON spec, then the C{ftps} options.
    """
    from twisted.internet import reactor

    from txftps.tap import Options, makeService

    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    options = Options()
    options.parseOptions(argv[1:])
    passive = spec["passive"]
    options["passive-ports"] = PassivePortRange(*passive) if passive else None
    globalLogBeginner.beginLoggingTo(
        [observerFactory({"logfile": "-"}, "json", options["log-level"])()],
        redirectStandardIO=False,
    )
    runtime = WorkerRuntime(reactor, spec)
    server = makeService(options, worker=runtime)
    root = service.MultiService()
    # Stopped in reverse order: the server (ports first), then the sessions.
    runtime.closer().setServiceParent(root)  # type: ignore[no-untyped-call]
    server.setServiceParent(root)  # type: ignore[no-untyped-call]

    def start() -> None:
        root.startService()  # type: ignore[no-untyped-call]
        runtime.installSignalLogging()
        # Serving, with the handlers in place: the parent held SIGHUP and
        # SIGUSR1 for this worker until now.
        runtime.connection.ready()

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", runtime.stopping)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
