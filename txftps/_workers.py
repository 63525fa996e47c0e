# -*- test-case-name: tests.test_workers -*-
"""
C{twistd ftps --workers N}: the parent process.

One Python process uses one core. With C{--workers N} the twistd process
becomes a parent that serves no FTP itself:

  1. it opens every C{--listen} and C{--implicit} endpoint (C{tcp:} and
     C{tcp6:} only: a listening TCP socket is what can be shared), logs the
     usual C{listening on} lines, and stops accepting on them itself;
  2. it starts N workers, C{python -m txftps._worker} with the same C{ftps}
     options, handing each the listening sockets (C{childFDs} of
     C{spawnProcess}; the worker adopts them with
     C{IReactorSocket.adoptStreamPort}) and one end of a UNIX socket pair
     for AMP (L{txftps._sharedstate}): the kernel gives each new
     connection to one of the workers that wait on the socket;
  3. each worker gets a slice of C{--passive-ports} of its own
     (L{passiveSlices}), so a passive data connection always reaches the
     worker whose session opened the listener;
  4. it restarts a worker that dies (with its slice, after a delay that
     grows while workers die young), forwards SIGHUP and SIGUSR1 to every
     worker (to a worker still starting once it says it is ready: until
     its handlers are in place either signal would kill it), relays the
     workers' log events into its own log (tagged C{worker N}), and on
     SIGTERM or SIGINT stops every worker (they close their sessions with
     421) before it exits.

C{ProcessMonitor} from C{twisted.runner} cannot pass file descriptors to its
processes (no C{childFDs}), hence L{WorkerPool}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from twisted.application import service
from twisted.internet import defer, endpoints, error, protocol
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger, eventFromJSON
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from txftps._datachannel import PassivePortRange
from txftps._internals import forgetExitSignal
from txftps._settings import ConnectionLimits, listeningEndpoint
from txftps._sharedstate import ParentConnection, StateKeeper, adoptConnection
from txftps.auth import LoginBans

_log = Logger()

#: Seconds the workers get to close their sessions after SIGTERM before
#: they are killed.
STOP_TIMEOUT = 15.0

#: A worker that ran shorter than this many seconds died young: its
#: restart waits, twice as long each time, up to L{MAX_RESTART_DELAY}.
YOUNG = 5.0
MAX_RESTART_DELAY = 30.0


def shareable(reactor: Any, description: str) -> bool:
    """
    Can the endpoint C{description} be shared with worker processes (is it
    a plain TCP listening socket)?
    """
    endpoint = endpoints.serverFromString(reactor, description)
    return isinstance(endpoint, (endpoints.TCP4ServerEndpoint, endpoints.TCP6ServerEndpoint))


def passiveSlices(
    portRange: PassivePortRange | None, workers: int
) -> list[tuple[int, int] | None]:
    """
    Split C{portRange} into C{workers} slices that do not overlap and
    differ in size by one port at most; C{None} for each worker when there
    is no range (every worker takes any free port: the system never gives
    one port to two processes).

    @raise ValueError: the range has fewer ports than C{workers}.
    """
    if portRange is None:
        return [None] * workers
    size = portRange.high - portRange.low + 1
    if size < workers:
        raise ValueError(
            f"--passive-ports {portRange.low}-{portRange.high} has {size} port(s),"
            f" fewer than --workers {workers}"
        )
    slices: list[tuple[int, int] | None] = []
    low = portRange.low
    for number in range(workers):
        count = size // workers + (1 if number < size % workers else 0)
        slices.append((low, low + count - 1))
        low += count
    return slices


class _Unserved(protocol.Factory):
    """
    The factory of the parent's listening ports, which never accept.
    """

    noisy = False

    def buildProtocol(self, addr: Any) -> None:
        return None


class SharedPortService(service.Service):
    """
    A listening socket the parent opens and hands to its workers; the
    parent itself never accepts on it.

    @ivar kind: C{"explicit"} or C{"implicit"}.
    @ivar port: the listening port, once started.
    """

    def __init__(self, reactor: Any, description: str, kind: str) -> None:
        self._reactor = reactor
        self._description = description
        self.kind = kind
        self.port: Any = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        endpoint = listeningEndpoint(self._reactor, self._description)
        d = endpoint.listen(_Unserved())
        result: list[Any] = []
        d.addBoth(result.append)
        # TCP endpoints listen at once.
        outcome = result[0]
        if isinstance(outcome, Failure):
            if outcome.check(error.CannotListenError):
                raise SystemExit(
                    f"twistd ftps: error: cannot listen on {self._description}:"
                    f" {getattr(outcome.value, 'socketError', outcome.value)}"
                )
            outcome.raiseException()
        self.port = outcome
        self.port.stopReading()
        address = self.port.getHost()
        _log.info(
            "txftps: {kind} FTPS listening on {host} port {port}",
            kind=self.kind,
            host=address.host,
            port=address.port,
        )

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self.port is None:
            return None
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)


class _WorkerProcess(protocol.ProcessProtocol):
    """
    One worker process as the parent sees it: its log events arrive as JSON
    lines on its standard output, anything else on its standard error.
    """

    def __init__(self, pool: WorkerPool, number: int) -> None:
        self._pool = pool
        self.number = number
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.started = 0.0
        self._buffers = {1: b"", 2: b""}
        self._ready = False
        self._held: list[int] = []

    def signal(self, signalNumber: int) -> None:
        """
        Pass C{signalNumber} to the worker; until it is L{ready} (before,
        SIGHUP or SIGUSR1 would kill it), hold it to pass then, once.
        """
        if not self._ready:
            if signalNumber not in self._held:
                self._held.append(signalNumber)
            return
        if self.transport is None:
            return
        try:
            self.transport.signalProcess(signalNumber)
        except (error.ProcessExitedAlready, OSError):
            pass

    def ready(self) -> None:
        """
        The worker says its signal handlers are in place: pass it what was
        held.
        """
        self._ready = True
        held, self._held = self._held, []
        for signalNumber in held:
            self.signal(signalNumber)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD not in self._buffers:
            return
        *lines, self._buffers[childFD] = (self._buffers[childFD] + data).split(b"\n")
        for line in lines:
            if line.strip():
                self._pool.relay(self.number, childFD, line)

    def processEnded(self, reason: Failure) -> None:
        for childFD, rest in self._buffers.items():
            if rest.strip():
                self._pool.relay(self.number, childFD, rest)
        self._buffers = {1: b"", 2: b""}
        self._pool.workerEnded(self, reason)
        self.ended.callback(None)


class WorkerPool(service.Service):
    """
    Starts, restarts, signals and stops the worker processes.

    @ivar keeper: the caps and bans the workers share.
    @ivar processes: the running workers' transports, by worker number.
    """

    def __init__(
        self,
        reactor: Any,
        workers: int,
        arguments: Sequence[str],
        ports: Sequence[SharedPortService],
        slices: Sequence[tuple[int, int] | None],
        keeper: StateKeeper,
        publish: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """
        @param arguments: the C{ftps} options each worker gets.
        @param ports: the listening sockets to hand over.
        @param slices: each worker's passive ports (L{passiveSlices}).
        @param publish: where relayed log events go (the global log).
        """
        self._reactor = reactor
        self._workers = workers
        self._arguments = list(arguments)
        self._ports = list(ports)
        self._slices = list(slices)
        self.keeper = keeper
        self._publish = publish if publish is not None else _log.observer
        self.processes: dict[int, Any] = {}
        self._protocols: dict[int, _WorkerProcess] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._delays: dict[int, float] = {}
        self._stopping = False
        self._previousHandlers: dict[int, Any] = {}

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        for number in range(1, self._workers + 1):
            self._spawn(number)
        for signalNumber in (signal.SIGHUP, signal.SIGUSR1):
            try:
                self._previousHandlers[signalNumber] = signal.signal(signalNumber, self._signalled)
            except ValueError:
                # Not the main thread: an embedding application's choice.
                pass

    def _spawn(self, number: int) -> None:
        self._restarts.pop(number, None)
        worker = _WorkerProcess(self, number)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ours.setblocking(False)
            adoptConnection(
                self._reactor, ours.fileno(), ParentConnection(self.keeper, number, worker.ready)
            )
            childFDs: dict[int, Any] = {0: "w", 1: "r", 2: "r", 3: theirs.fileno()}
            listening = []
            for index, port in enumerate(self._ports):
                fd = 4 + index
                childFDs[fd] = port.port.fileno()
                listening.append({"kind": port.kind, "fd": fd, "family": port.port.addressFamily})
            spec = {
                "number": number,
                "channel": 3,
                "listening": listening,
                "passive": self._slices[number - 1],
            }
            process = self._reactor.spawnProcess(
                worker,
                sys.executable,
                [sys.executable, "-m", "txftps._worker", json.dumps(spec), *self._arguments],
                env=dict(os.environ),
                childFDs=childFDs,
            )
        finally:
            ours.close()
            theirs.close()
        process.closeChildFD(0)
        worker.started = self._reactor.seconds()
        self.processes[number] = process
        self._protocols[number] = worker
        passive = self._slices[number - 1]
        _log.info(
            "txftps: worker {number} started, pid {pid}, passive ports {passive}",
            number=number,
            pid=process.pid,
            passive=f"{passive[0]}-{passive[1]}" if passive else "any",
        )

    def relay(self, number: int, childFD: int, line: bytes) -> None:
        """
        Log a line that worker C{number} wrote: a log event (standard
        output) goes on as the event it was, tagged with the worker; any
        other line is logged as text.
        """
        text = line.decode("utf-8", "replace")
        event: dict[str, Any] | None = None
        if childFD == 1:
            try:
                loaded = eventFromJSON(text)
            except ValueError:
                loaded = None
            if isinstance(loaded, dict) and "log_time" in loaded:
                event = loaded
        if event is None:
            _log.warn("worker {number}: {line}", number=number, line=text.rstrip())
            return
        event["log_system"] = f"worker {number}"
        event["worker"] = number
        self._publish(event)

    def workerEnded(self, worker: _WorkerProcess, reason: Failure) -> None:
        """
        Worker process C{worker} ended: restart it unless the pool stops.
        """
        number = worker.number
        if self._protocols.get(number) is worker:
            del self._protocols[number]
            self.processes.pop(number, None)
        how = reason.value
        status = getattr(how, "signal", None)
        description = (
            f"killed by signal {status}"
            if status
            else f"exited with status {getattr(how, 'exitCode', None)}"
        )
        if self._stopping:
            _log.info(
                "txftps: worker {number} {description}, after {sessions} sessions",
                number=number,
                description=description,
                sessions=self.keeper.sessions[number],
            )
            return
        lived = self._reactor.seconds() - worker.started
        if lived >= YOUNG:
            delay = 0.0
        else:
            delay = min(max(self._delays.get(number, 0.0) * 2, 1.0), MAX_RESTART_DELAY)
        self._delays[number] = delay
        _log.error(
            "txftps: worker {number} {description}; restarting it in {delay:.0f} s",
            number=number,
            description=description,
            delay=delay,
        )
        self._restarts[number] = self._reactor.callLater(delay, self._spawn, number)

    def _signalled(self, signalNumber: int, frame: FrameType | None) -> None:
        # Forward at once (a signal handler may do this much) to the
        # workers that are ready, the others get it when they are; the
        # workers log what they got.
        for worker in list(self._protocols.values()):
            worker.signal(signalNumber)
        previous = self._previousHandlers.get(signalNumber)
        if callable(previous):
            previous(signalNumber, frame)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        self._stopping = True
        for signalNumber, previous in self._previousHandlers.items():
            try:
                signal.signal(signalNumber, previous if previous is not None else signal.SIG_DFL)
            except ValueError:
                pass
        self._previousHandlers = {}
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts = {}
        waiting = [worker.ended for worker in self._protocols.values()]
        for process in list(self.processes.values()):
            try:
                process.signalProcess("TERM")
            except (error.ProcessExitedAlready, OSError):
                pass
        killer = self._reactor.callLater(STOP_TIMEOUT, self._kill)
        d = defer.DeferredList(waiting)

        def stopped(result: object) -> object:
            if killer.active():
                killer.cancel()
            # twistd would end by raising the SIGTERM again, an exit status
            # of -15; the stop was orderly and complete, which a supervisor
            # should see as status 0.
            forgetExitSignal(self._reactor, signal.SIGTERM)
            return result

        return d.addBoth(stopped)

    def _kill(self) -> None:
        for number, process in list(self.processes.items()):
            _log.warn("txftps: worker {number} did not stop; killing it", number=number)
            try:
                process.signalProcess("KILL")
            except (error.ProcessExitedAlready, OSError):
                pass


def workerArguments(options: Any, dataDirectory: str) -> list[str]:
    """
    The C{ftps} options a worker gets: the parent's, plus the certificate
    the parent generated under C{dataDirectory} (if it did), so that a
    worker never generates one.
    """
    arguments = list(options.arguments)
    if options["cert"] is None:
        # The names ServerTLS.fromDataDirectory gives the generated files.
        directory = FilePath(dataDirectory)
        arguments += [
            "--cert",
            directory.child("server-cert.pem").path,
            "--key",
            directory.child("server-key.pem").path,
        ]
    return arguments


def makeWorkerPool(reactor: Any, options: Any, dataDirectory: str) -> service.MultiService:
    """
    The service of a C{twistd ftps --workers N} parent: the shared
    listening sockets and the L{WorkerPool}.

    @param options: the parsed L{txftps.tap.Options}.
    @param dataDirectory: where a generated certificate is.
    """
    top = service.MultiService()
    ports = []
    for kind, descriptions in (("explicit", options["listen"]), ("implicit", options["implicit"])):
        for description in descriptions:
            port = SharedPortService(reactor, description, kind)
            port.setServiceParent(top)  # type: ignore[no-untyped-call]
            ports.append(port)
    keeper = StateKeeper(
        reactor,
        ConnectionLimits(options["max-clients"], options["max-clients-per-ip"]),
        LoginBans(reactor, options["ban-after"], options["ban-time"]),
    )
    pool = WorkerPool(
        reactor,
        options["workers"],
        workerArguments(options, dataDirectory),
        ports,
        passiveSlices(options["passive-ports"], options["workers"]),
        keeper,
    )
    pool.setServiceParent(top)  # type: ignore[no-untyped-call]
    return top
