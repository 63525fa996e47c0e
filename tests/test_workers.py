"""
Tests for C{twistd ftps --workers N} (L{txftps._workers}, L{txftps._worker}):
the real server with two worker processes, driven by ftplib and raw
sockets over loopback; its caps, bans, passive slices, restarts and
signals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading

from twisted.trial import unittest

from tests.support import (
    ControlConnection,
    LogWatch,
    PeerClosed,
    ServerLogTestCase,
    TwistdServer,
    curl,
    freePortRange,
    ftplibClient,
    lftp,
    loggedInSession,
    readFile,
    readLine,
    readUntilClosed,
    refusedStart,
    waitUntil,
    writeFile,
)
from txftps._datachannel import PassivePortRange
from txftps._workers import _WorkerProcess, passiveSlices

_SESSION = re.compile(r"\[worker (\d+)\] session from 127\.0\.0\.1 port (\d+)$", re.M)
_STARTED = re.compile(r"worker (\d+) started, pid (\d+), passive ports (\S+)")


def workerPids(server: TwistdServer) -> dict[int, int]:
    """
    The pid of each worker as the parent logged it (the latest start).
    """
    return {int(n): int(pid) for n, pid, _ in _STARTED.findall(server.log())}


def alive(pid: int) -> bool:
    """
    Whether process C{pid} exists and is not a zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def workerOf(server: TwistdServer, sock: socket.socket, timeout: float = 5.0) -> int:
    """
    The worker that serves the connection C{sock} (the worker logs the
    client's port when the parent admits it).
    """
    port = sock.getsockname()[1]
    found: list[int] = []

    def look() -> bool:
        for number, logged in _SESSION.findall(server.log()):
            if int(logged) == port:
                found.append(int(number))
                return True
        return False

    if not waitUntil(look, timeout):
        raise AssertionError(f"no worker logged the session from port {port}:\n{server.log()}")
    return found[0]


class PassiveSlicesTests(unittest.SynchronousTestCase):
    """
    L{passiveSlices} splits C{--passive-ports} between workers.
    """

    def test_slicesCoverTheRangeWithoutOverlap(self) -> None:
        """
        Every port of the range is in exactly one slice; slices differ in
        size by one port at most.
        """
        slices = passiveSlices(PassivePortRange(30000, 30010), 3)
        self.assertEqual(slices, [(30000, 30003), (30004, 30007), (30008, 30010)])

    def test_onePortEach(self) -> None:
        """
        A range exactly as large as the number of workers gives one port to
        each.
        """
        self.assertEqual(passiveSlices(PassivePortRange(5, 6), 2), [(5, 5), (6, 6)])

    def test_tooFewPorts(self) -> None:
        """
        A range smaller than the number of workers is refused.
        """
        with self.assertRaises(ValueError) as e:
            passiveSlices(PassivePortRange(30000, 30001), 3)
        self.assertIn("fewer than --workers 3", str(e.exception))

    def test_noRange(self) -> None:
        """
        Without C{--passive-ports} every worker takes any free port.
        """
        self.assertEqual(passiveSlices(None, 2), [None, None])


class _SignalledTransport:
    """
    A process transport that records the signals sent to it.
    """

    def __init__(self) -> None:
        self.signals: list[int] = []

    def signalProcess(self, signalNumber: int) -> None:
        self.signals.append(signalNumber)


class HeldSignalTests(unittest.SynchronousTestCase):
    """
    L{_WorkerProcess.signal}: a worker gets signals once it is ready.
    """

    def setUp(self) -> None:
        self.worker = _WorkerProcess(None, 1)  # type: ignore[arg-type]
        self.transport = _SignalledTransport()
        self.worker.transport = self.transport  # type: ignore[assignment]

    def test_heldUntilReady(self) -> None:
        """
        Before L{_WorkerProcess.ready} nothing is sent; then each signal
        held is sent once, in the order it came.
        """
        for signalNumber in (signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP):
            self.worker.signal(signalNumber)
        self.assertEqual(self.transport.signals, [])
        self.worker.ready()
        self.assertEqual(self.transport.signals, [signal.SIGHUP, signal.SIGUSR1])

    def test_sentWhenReady(self) -> None:
        """
        Once the worker is ready, each signal goes at once.
        """
        self.worker.ready()
        self.worker.signal(signal.SIGUSR1)
        self.worker.signal(signal.SIGUSR1)
        self.assertEqual(self.transport.signals, [signal.SIGUSR1, signal.SIGUSR1])


class OptionTests(unittest.TestCase):
    """
    Bad C{--workers} combinations stop the start with one line.
    """

    def test_notPositive(self) -> None:
        """
        C{--workers 0} is refused.
        """
        line = refusedStart("--workers", "0")
        self.assertIn("--workers must be positive", line)

    def test_passiveRangeTooSmall(self) -> None:
        """
        C{--passive-ports} with fewer ports than workers is refused.
        """
        line = refusedStart("--workers", "3", "--passive-ports", "30000-30001")
        self.assertIn("fewer than --workers 3", line)

    def test_unshareableEndpoint(self) -> None:
        """
        An endpoint that is not C{tcp:} or C{tcp6:} cannot be shared.
        """
        line = refusedStart("--workers", "2", "--listen", "unix:/tmp/txftps-never.sock")
        self.assertIn("--workers needs tcp: or tcp6: endpoints", line)


class WorkersTestCase(ServerLogTestCase):
    """
    Starts C{twistd ftps --workers 2} with C{extraArgs}.
    """

    extraArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = TwistdServer(
            "--workers", "2", *self.extraArgs, users={"alice": "secret"}
        ).start()
        self.addCleanup(self.server.stop)
        self.data = os.urandom(4096)
        writeFile(os.path.join(self.server.root, "small.bin"), self.data)
        self.assertTrue(
            waitUntil(lambda: self.server.log().count("accepting explicit FTPS") == 2, 20),
            self.serverLog(),
        )

    def serverLog(self, tail: int = 4000) -> str:
        return "\nserver log:\n" + self.server.log()[-tail:]

    def download(self) -> None:
        client = ftplibClient(self.server)
        try:
            data: list[bytes] = []
            client.retrbinary("RETR small.bin", data.append)
            self.assertSameBytes(b"".join(data), self.data, "RETR small.bin")
        finally:
            client.quit()


class LoadTests(WorkersTestCase):
    """
    Under load both workers serve sessions.
    """

    extraArgs = ("--max-clients-per-ip", "100")

    def test_bothWorkersServe(self) -> None:
        """
        Forty concurrent ftplib sessions (AUTH TLS, login, PROT P, RETR,
        QUIT) all get their bytes, and the sessions were served by both
        workers: each logged some, and the parent counts each worker's
        sessions when it stops.
        """
        errors: list[BaseException] = []

        def session() -> None:
            try:
                self.download()
            except BaseException as e:
                errors.append(e)

        for _ in range(5):
            threads = [threading.Thread(target=session) for _ in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [], self.serverLog())
            served = {int(n) for n, _ in _SESSION.findall(self.server.log())}
            if served == {1, 2}:
                break
        self.assertEqual(served, {1, 2}, self.serverLog())
        self.server.stopProcess()
        counts = dict(
            re.findall(
                r"worker (\d+) exited with status 0, after (\d+) sessions", self.server.log()
            )
        )
        self.assertEqual(set(counts), {"1", "2"}, self.serverLog())
        self.assertEqual(
            sum(int(c) for c in counts.values()), len(_SESSION.findall(self.server.log()))
        )
        self.assertTrue(all(int(c) > 0 for c in counts.values()), counts)


class ClientTests(WorkersTestCase):
    """
    Real clients against C{--workers 2}.
    """

    def test_curlAndLftp(self) -> None:
        """
        curl uploads (explicit) and downloads (implicit) the same bytes,
        and lftp lists and downloads.
        """
        payload = os.urandom(200_000)
        upload = writeFile(os.path.join(self.server.directory, "up.bin"), payload)
        for n in range(4):
            self.assertSucceeded(
                curl(self.server, "-T", upload, path=f"/up{n}.bin", user="alice:secret"),
                "curl upload",
            )
            got = curl(self.server, path=f"/up{n}.bin", user="alice:secret", implicit=True)
            self.assertSucceeded(got, "curl download")
            self.assertSameBytes(got.stdout, payload, "curl download")
        target = os.path.join(self.server.directory, "fetched.bin")
        result = lftp(self.server, f"cls -1; get up0.bin -o {target}", user="alice,secret")
        self.assertSucceeded(result, "lftp")
        self.assertEqual(sorted(result.stdout.decode().split()), [f"up{n}.bin" for n in range(4)])
        self.assertSameBytes(readFile(target), payload, "lftp get")


class JSONLogTests(WorkersTestCase):
    """
    The workers' log events reach the parent's log as events.
    """

    extraArgs = ("--log-format", "json")

    def test_workerEventsCarryTheWorker(self) -> None:
        """
        With C{--log-format json}, a worker's login line is one JSON object
        in the parent's log, with C{worker} and the formatted C{text}.
        """
        self.download()
        self.server.stopProcess()
        events = [json.loads(line) for line in self.server.log().splitlines() if line]
        logins = [e for e in events if "logged in from" in e.get("text", "")]
        self.assertEqual(len(logins), 1, self.serverLog())
        self.assertIn(logins[0]["worker"], (1, 2))
        self.assertEqual(logins[0]["log_system"], f"worker {logins[0]['worker']}")
        self.assertEqual(logins[0]["text"], "anonymous logged in from 127.0.0.1")


class ConnectionCapTests(WorkersTestCase):
    """
    C{--max-clients-per-ip} counts the sessions of every worker.
    """

    extraArgs = ("--max-clients-per-ip", "3")

    def test_capHoldsAcrossWorkers(self) -> None:
        """
        Of twelve connections held open at once, exactly three get 220 and
        the others 421, while both workers took connections: a cap counted
        per worker would have let more in.
        """
        for _ in range(5):
            watch = LogWatch(self.server)
            watch.mark()
            controls = [ControlConnection(self.server) for _ in range(12)]
            try:
                codes = [c.greeting[0] for c in controls]
                self.assertEqual(codes, [220] * 3 + [421] * 9, self.serverLog())
                workers = set(
                    re.findall(r"\[worker (\d+)\] (?:session from|connection from)", watch.since())
                )
            finally:
                for c in controls:
                    c.close()
            if workers == {"1", "2"}:
                return
            # All went to one worker: wait until the parent counted them
            # out, then try again.
            self.assertTrue(
                waitUntil(lambda w=watch: w.since().count(" ended") == 3, 10), self.serverLog()
            )
        self.fail("every round of connections went to one worker" + self.serverLog())

    def test_capFreedWhenAWorkerDies(self) -> None:
        """
        The sessions of a worker that is killed no longer count: after a
        kill, three new sessions fit again.
        """
        held = [loggedInSession(self.server) for _ in range(3)]
        try:
            refused = ControlConnection(self.server)
            self.assertEqual(refused.greeting[0], 421)
            refused.close()
            victims = {workerOf(self.server, c.sock) for c in held}
            pids = workerPids(self.server)
            for number in victims:
                os.kill(pids[number], signal.SIGKILL)
            self.assertTrue(
                waitUntil(
                    lambda: len(_STARTED.findall(self.server.log())) == 2 + len(victims), 20
                ),
                self.serverLog(),
            )
            fresh = [loggedInSession(self.server) for _ in range(3)]
            for c in fresh:
                c.close()
        finally:
            for c in held:
                c.close()


class BanTests(WorkersTestCase):
    """
    A ban decided in one worker holds in every worker.
    """

    extraArgs = ("--ban-after", "2", "--max-login-attempts", "5")

    def test_banAcrossWorkers(self) -> None:
        """
        Two failed logins on a session of one worker ban the address: the
        next PASS (with the right password) on a session already open on
        the other worker gets 530, and new connections get 421 at the door.
        """
        sessions: dict[int, ControlConnection] = {}
        extra: list[ControlConnection] = []
        try:
            for _ in range(60):
                control = ControlConnection(self.server)
                number = workerOf(self.server, control.sock)
                if number in sessions:
                    extra.append(control)
                else:
                    sessions[number] = control
                if len(sessions) == 2:
                    break
            self.assertEqual(set(sessions), {1, 2}, self.serverLog())
            for c in extra:
                c.close()
            first, other = sessions[1], sessions[2]
            for control in (first, other):
                control.auth()
            for _ in range(2):
                first.expect("USER alice", 331)
                first.expect("PASS wrong", 530)
            other.expect("USER alice", 331)
            code, text = other.command("PASS secret")
            self.assertEqual(code, 530, text)
            for _ in range(6):
                late = ControlConnection(self.server)
                self.assertEqual(late.greeting[0], 421, late.greeting)
                late.close()
        finally:
            for c in [*sessions.values(), *extra]:
                c.close()
        self.assertIn("banned for 600 s after failed logins, in every worker", self.server.log())


class PassiveSliceTests(WorkersTestCase):
    """
    Each worker's passive listeners use its own slice of C{--passive-ports}.
    """

    def setUp(self) -> None:
        self.low = freePortRange(6)
        self.extraArgs = ("--passive-ports", f"{self.low}-{self.low + 5}")
        super().setUp()

    def test_slices(self) -> None:
        """
        The parent gives each worker half the range; PASV on a session of
        a worker answers a port of that worker's half, and a download
        through it gets the file.
        """
        started = dict((n, p) for n, _, p in _STARTED.findall(self.server.log()))
        self.assertEqual(
            started,
            {"1": f"{self.low}-{self.low + 2}", "2": f"{self.low + 3}-{self.low + 5}"},
        )
        seen: set[int] = set()
        for _ in range(40):
            control = loggedInSession(self.server)
            try:
                number = workerOf(self.server, control.sock)
                port = control.pasv()
                low = self.low if number == 1 else self.low + 3
                self.assertTrue(low <= port <= low + 2, (number, port))
                data = control.openData(port)
                control.expect("TYPE I", 200)
                control.send("RETR small.bin")
                received, _ = readUntilClosed(data)
                data.close()
                self.assertSameBytes(received, self.data, f"RETR on worker {number}")
                self.assertEqual(control.finalReply()[1][0], 226)
                seen.add(number)
            finally:
                control.close()
            if seen == {1, 2}:
                break
        self.assertEqual(seen, {1, 2}, self.serverLog())


class LifeTests(WorkersTestCase):
    """
    Restarts, signals and stopping.
    """

    def test_killedWorkerRestarts(self) -> None:
        """
        A worker killed with SIGKILL is started again, with the same
        number and passive ports, and serves new sessions.
        """
        before = workerPids(self.server)
        os.kill(before[1], signal.SIGKILL)
        self.assertTrue(
            waitUntil(lambda: workerPids(self.server)[1] != before[1], 20), self.serverLog()
        )
        self.assertIn("worker 1 killed by signal 9; restarting it", self.server.log())
        self.assertEqual(workerPids(self.server)[2], before[2])
        watch = LogWatch(self.server)
        self.assertTrue(
            waitUntil(lambda: self.server.log().count("accepting explicit FTPS") == 3, 20),
            self.serverLog(),
        )
        watch.mark()
        for _ in range(60):
            self.download()
            if "[worker 1] session from" in watch.since():
                break
        self.assertIn("[worker 1] session from", watch.since(), self.serverLog())

    def test_signalsReachEveryWorker(self) -> None:
        """
        SIGUSR1 and SIGHUP sent to the parent reach every worker, which
        logs them and goes on serving.
        """
        watch = LogWatch(self.server)
        watch.mark()
        assert self.server.process is not None
        for name in ("SIGUSR1", "SIGHUP"):
            self.server.process.send_signal(getattr(signal, name))
            for number in (1, 2):
                self.assertTrue(
                    watch.waitFor(f"[worker {number}] txftps: worker {number} got {name}", 10),
                    self.serverLog(),
                )
        self.assertIsNone(self.server.process.poll())
        self.download()

    def test_signalDuringWorkerStartIsKept(self) -> None:
        """
        SIGUSR1 and SIGHUP sent to the parent while a worker is still
        starting (before its handlers are in place, when either signal
        would kill it) reach that worker once it is ready: it logs them and
        is not killed.
        """
        before = workerPids(self.server)
        watch = LogWatch(self.server)
        watch.mark()
        os.kill(before[1], signal.SIGKILL)
        # The parent logs the new pid as soon as it spawned the process,
        # well before the worker's Python has imported anything.
        self.assertTrue(
            waitUntil(lambda: workerPids(self.server)[1] != before[1], 20), self.serverLog()
        )
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGUSR1)
        self.server.process.send_signal(signal.SIGHUP)
        for name in ("SIGUSR1", "SIGHUP"):
            self.assertTrue(
                watch.waitFor(f"[worker 1] txftps: worker 1 got {name}", 20), self.serverLog()
            )
            self.assertTrue(
                watch.waitFor(f"[worker 2] txftps: worker 2 got {name}", 20), self.serverLog()
            )
        self.assertEqual(watch.since().count("killed by signal"), 1, self.serverLog())
        self.assertTrue(alive(workerPids(self.server)[1]), self.serverLog())

    def test_sigtermClosesSessionsAndStops(self) -> None:
        """
        SIGTERM: an open session gets 421 and is closed, the parent exits
        with 0, and no worker is left.
        """
        pids = workerPids(self.server)
        control = loggedInSession(self.server)
        try:
            assert self.server.process is not None
            self.server.process.send_signal(signal.SIGTERM)
            code, text = control.reply(10)
            self.assertEqual(code, 421, text)
            with self.assertRaises(PeerClosed):
                control.reply(10)
            self.assertEqual(self.server.process.wait(20), 0, self.serverLog())
        finally:
            control.close()
        self.assertTrue(
            waitUntil(lambda: not any(alive(p) for p in pids.values()), 10), self.serverLog()
        )

    def test_parentKilled(self) -> None:
        """
        When the parent dies without stopping its workers (SIGKILL), they
        notice and exit.
        """
        pids = workerPids(self.server)
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait()
        self.assertTrue(
            waitUntil(lambda: not any(alive(p) for p in pids.values()), 10), self.serverLog()
        )


class ProxyProtocolTests(WorkersTestCase):
    """
    Behind a trusted balancer, the workers take the client from the PROXY
    header, for the shared caps too.
    """

    extraArgs = (
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.1",
        "--max-clients-per-ip",
        "1",
    )

    def connect(self, client: str) -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", self.server.explicitPort), timeout=5)
        sock.sendall(f"PROXY TCP4 {client} 127.0.0.1 5555 21\r\n".encode())
        return sock, readLine(sock)

    def test_clientFromHeader(self) -> None:
        """
        The worker admits the client the header names: one connection for
        192.0.2.7 gets 220, a second for it gets 421, one for 192.0.2.8
        gets 220, and the worker logs the named client.
        """
        first, reply = self.connect("192.0.2.7")
        try:
            self.assertTrue(reply.startswith(b"220 "), reply)
            second, reply = self.connect("192.0.2.7")
            second.close()
            self.assertTrue(reply.startswith(b"421 "), reply)
            other, reply = self.connect("192.0.2.8")
            other.close()
            self.assertTrue(reply.startswith(b"220 "), reply)
        finally:
            first.close()
        self.assertRegex(self.server.log(), r"\[worker \d\] session from 192\.0\.2\.7 port 5555")
