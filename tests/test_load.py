"""
Correctness under load, against the real C{twistd -n ftps}: many full
sessions with transfers at once, and many idle logged-in TLS sessions held
and released. The tests count bytes, replies and file descriptors; they time
nothing (the numbers are C{bench/compare.py}'s job, see C{docs/performance.md}).
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import threading
from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests import support

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
