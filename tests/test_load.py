"""
Correctness under load, against the real C{twistd -n ftps}: many full
sessions with transfers at once, many idle logged-in TLS sessions held
and released, and a burst of connections while the server is too busy to
accept them (the listen backlog). The tests count bytes, replies and file descriptors; they time
nothing (the numbers are C{bench/compare.py}'s job, see C{docs/performance.md}).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import resource
import signal
import socket
import struct
import threading
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from tests import support
from txftps._settings import LISTEN_BACKLOG, listeningEndpoint

#: Full sessions with a download and an upload, all at once.
CONCURRENT_SESSIONS = 1000

#: Idle logged-in TLS sessions held at once (about 30 s on 2 cores).
IDLE_SESSIONS = 10000


def _raiseFileLimit(needed: int) -> None:
    """
    Raise this process's soft open-file limit (the server inherits it) to
    the hard limit, and fail when even that is too low for C{needed}.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raise AssertionError(f"ulimit -n is {soft}; this test needs {needed} descriptors")


def _runAll(
    count: int,
    threads: int,
    work: Callable[[int], Any],
    barrier: threading.Barrier | None = None,
) -> list[Any]:
    """
    Run C{work(i)} for every C{i} below C{count} on C{threads} threads;
    return the results in order, or raise the first failure (which breaks
    C{barrier}, so that no thread waits for one that failed).
    """
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    nextIndex = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if nextIndex[0] >= count or errors:
                    return
                index = nextIndex[0]
                nextIndex[0] += 1
            try:
                results[index] = work(index)
            except BaseException as e:
                with lock:
                    errors.append(e)
                if barrier is not None:
                    barrier.abort()
                return

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        first = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        raise (first or errors)[0]
    return results


class LoadTests(unittest.TestCase):
    """
    Many sessions at once: nothing lost, nothing refused, nothing leaked.
    """

    def setUp(self) -> None:
        # Each process (this one, the server) holds one descriptor a session,
        # two while it transfers.
        _raiseFileLimit(max(CONCURRENT_SESSIONS * 2, IDLE_SESSIONS) + 500)
        self.server = support.TwistdServer(
            "--max-clients",
            str(IDLE_SESSIONS + 10),
            "--max-clients-per-ip",
            str(IDLE_SESSIONS + 10),
            "--log-level",
            "info",
            users={"alice": "secret"},
            implicit=False,
        ).start()
        self.addCleanup(self.server.stop)
        assert self.server.process is not None
        self.pid = self.server.process.pid
        home = self.server.userHome("alice")
        os.makedirs(home, exist_ok=True)
        self.payload = os.urandom(64 * 1024)
        support.writeFile(os.path.join(home, "payload.bin"), self.payload)

    def baseline(self) -> int:
        """
        The server's descriptors once it is settled, after one session.
        """
        before = support.openFileDescriptors(self.pid)
        support.ftplibClient(self.server, "alice", "secret").quit()
        support.waitUntil(lambda: support.openFileDescriptors(self.pid) <= before, 10)
        return support.openFileDescriptors(self.pid)

    def assertDescriptorsBackTo(self, baseline: int) -> None:
        back = support.waitUntil(
            lambda: support.openFileDescriptors(self.pid) <= baseline, timeout=60
        )
        self.assertTrue(
            back,
            f"server holds {support.openFileDescriptors(self.pid)} descriptors, {baseline} before",
        )

    def test_concurrentFullSessions(self) -> None:
        """
        1,000 clients at once each log in over TLS, download a 64 KiB file
        and upload 64 KiB of their own over PROT P (the data connections
        resume their control sessions): every download has the file's bytes,
        every upload is stored whole under its own name, and the server's
        descriptors return to where they were.
        """
        baseline = self.baseline()
        barrier = threading.Barrier(CONCURRENT_SESSIONS, timeout=120)
        home = self.server.userHome("alice")

        def session(index: int) -> tuple[str, str]:
            client = support.ftplibClient(self.server, "alice", "secret", timeout=60)
            try:
                # Every control connection is open and logged in before
                # any transfer starts: 1,000 sessions at once.
                barrier.wait()
                got: list[bytes] = []
                client.retrbinary("RETR payload.bin", got.append)
                mine = hashlib.sha256(b"%d" % index).digest() * 2048
                reply = client.storbinary(f"STOR up{index}.bin", io.BytesIO(mine))
                client.quit()
            finally:
                client.close()
            return hashlib.sha256(b"".join(got)).hexdigest(), reply

        results = _runAll(CONCURRENT_SESSIONS, CONCURRENT_SESSIONS, session, barrier)
        expected = hashlib.sha256(self.payload).hexdigest()
        self.assertEqual([digest for digest, _ in results], [expected] * CONCURRENT_SESSIONS)
        self.assertEqual([reply[:3] for _, reply in results], ["226"] * CONCURRENT_SESSIONS)
        for index in range(CONCURRENT_SESSIONS):
            with open(os.path.join(home, f"up{index}.bin"), "rb") as f:
                self.assertEqual(
                    f.read(), hashlib.sha256(b"%d" % index).digest() * 2048, f"up{index}.bin"
                )
        self.assertDescriptorsBackTo(baseline)

    def test_idleSessions(self) -> None:
        """
        10,000 logged-in TLS sessions (AUTH TLS, login, PBSZ/PROT P) are held
        at once: every one is open, each holds one descriptor on the server,
        every one still answers a command, and when the clients go away the
        descriptors return to where they were.
        """
        baseline = self.baseline()
        clients = _runAll(
            IDLE_SESSIONS,
            8,
            lambda _: support.ftplibClient(self.server, "alice", "secret", timeout=120),
        )
        try:
            held = support.openFileDescriptors(self.pid) - baseline
            self.assertEqual(held, IDLE_SESSIONS)
            replies = _runAll(IDLE_SESSIONS, 8, lambda i: clients[i].voidcmd("NOOP")[:3])
            self.assertEqual(replies, ["200"] * IDLE_SESSIONS)
        finally:
            for client in clients:
                if client is not None:
                    client.close()
        self.assertDescriptorsBackTo(baseline)


def _maxBacklog(port: Any) -> int:
    """
    The listen backlog of Twisted TCP port C{port}, as the kernel holds it
    (C{tcpi_sacked} of C{TCP_INFO} on a listening socket).
    """
    info = port.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    backlog: int = struct.unpack_from("8B6I", info)[13]
    return backlog


def _somaxconn() -> int:
    """
    The kernel's cap on any listen backlog.
    """
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


class ListeningEndpointTests(unittest.TestCase):
    """
    L{listeningEndpoint}: C{tcp:} and C{tcp6:} endpoints that set no
    backlog listen with L{LISTEN_BACKLOG}, not Twisted's 50.
    """

    def listen(self, description: str) -> defer.Deferred[int]:
        from twisted.internet import reactor

        d = listeningEndpoint(reactor, description).listen(Factory.forProtocol(Protocol))

        def listening(port: Any) -> int:
            self.addCleanup(port.stopListening)
            return _maxBacklog(port)

        return d.addCallback(listening)

    @defer.inlineCallbacks
    def test_default(self) -> Generator[Any, Any, None]:
        """
        Without C{backlog=}, a C{tcp:} endpoint's backlog is
        L{LISTEN_BACKLOG} (or the kernel's cap, if lower).
        """
        self.assertEqual(LISTEN_BACKLOG, 1024)
        backlog = yield self.listen("tcp:0:interface=127.0.0.1")
        self.assertEqual(backlog, min(LISTEN_BACKLOG, _somaxconn()))

    @defer.inlineCallbacks
    def test_tcp6(self) -> Generator[Any, Any, None]:
        """
        So is a C{tcp6:} endpoint's.
        """
        backlog = yield self.listen(r"tcp6:0:interface=\:\:1")
        self.assertEqual(backlog, min(LISTEN_BACKLOG, _somaxconn()))

    @defer.inlineCallbacks
    def test_ownBacklogWins(self) -> Generator[Any, Any, None]:
        """
        A C{backlog=} in the description is kept, wherever it stands.
        """
        first = yield self.listen("tcp:0:backlog=7:interface=127.0.0.1")
        last = yield self.listen("tcp:port=0:interface=127.0.0.1:backlog=9")
        self.assertEqual((first, last), (7, 9))

    def test_otherEndpoints(self) -> None:
        """
        Other endpoints are built from their description as it is.
        """
        from twisted.internet import reactor

        endpoint = listeningEndpoint(reactor, "unix:/nonexistent/socket:backlog=3")
        self.assertIsInstance(endpoint, UNIXServerEndpoint)


#: Connections opened at once while the server accepts none: more than
#: Twisted's default listen backlog (50), fewer than L{LISTEN_BACKLOG}.
BURST = 300


def _established(port: int) -> int:
    """
    How many of the server's sockets on local TCP port C{port} are
    established (accepted by the kernel, whether or not the server took
    them from its accept queue yet).
    """
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
                count += 1
    return count


class BurstTests(unittest.TestCase):
    """
    A burst of connections while the server is too busy to accept (here:
    stopped) waits in the kernel's accept queue, and every one gets its
    greeting once the server goes on; with Twisted's default backlog of 50
    the kernel drops the SYNs past 51 and those clients wait 1, 3, 7... s
    to retry.
    """

    def burst(self, server: support.TwistdServer, stopped: list[int]) -> None:
        """
        Stop processes C{stopped}, open L{BURST} connections to
        C{server}'s explicit port, check the kernel takes them all, go on,
        and read every greeting.
        """
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
            self.addCleanup(os.kill, pid, signal.SIGCONT)
        clients = []
        try:
            for _ in range(BURST):
                sock = socket.socket()
                clients.append(sock)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", server.explicitPort))
            queued = support.waitUntil(lambda: _established(server.explicitPort) >= BURST, 20)
            self.assertTrue(
                queued,
                f"{_established(server.explicitPort)} of {BURST} connections"
                " reached the accept queue",
            )
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            for sock in clients:
                sock.setblocking(True)
                sock.settimeout(60)
                greeting = support.readLine(sock)
                self.assertEqual(greeting[:4], b"220 ", greeting)
        finally:
            for sock in clients:
                sock.close()

    def test_oneProcess(self) -> None:
        """
        The burst against C{twistd ftps} on its default endpoints.
        """
        server = support.TwistdServer("--max-clients-per-ip", str(BURST)).start()
        self.addCleanup(server.stop)
        assert server.process is not None
        self.burst(server, [server.process.pid])

    def test_workers(self) -> None:
        """
        The burst against C{twistd ftps --workers 2}, whose workers accept
        on the socket the parent opened.
        """
        server = support.TwistdServer("--workers", "2", "--max-clients-per-ip", str(BURST)).start()
        self.addCleanup(server.stop)
        self.assertTrue(
            support.waitUntil(lambda: server.log().count("accepting explicit FTPS") == 2, 20),
            server.log(),
        )
        pids = [int(pid) for pid in re.findall(r"worker \d+ started, pid (\d+)", server.log())]
        self.assertEqual(len(pids), 2, server.log())
        self.burst(server, pids)
