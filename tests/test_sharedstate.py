"""
Tests for L{txftps._sharedstate}: the caps and bans that worker processes
share through their parent, without processes (the parent's L{StateKeeper}
with fake worker connections, and both AMP ends over an in-memory pump).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from txftps._settings import ConnectionLimits
from txftps._sharedstate import (
    Ban,
    ParentConnection,
    SharedConnectionLimits,
    SharedLoginBans,
    StateKeeper,
    WorkerConnection,
)
from txftps.auth import LoginBans


class _FakeWorker:
    """
    Records what the parent pushes to a worker.
    """

    def __init__(self) -> None:
        self.pushed: list[tuple[Any, dict[str, Any]]] = []

    def callRemote(self, command: Any, **arguments: Any) -> None:
        self.pushed.append((command, arguments))


class StateKeeperTests(SynchronousTestCase):
    """
    The parent's L{StateKeeper} counts every worker's connections and checks.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.keeper = StateKeeper(
            self.clock, ConnectionLimits(10, 2), LoginBans(self.clock, banAfter=2, banTime=60)
        )
        self.workers = {1: _FakeWorker(), 2: _FakeWorker()}
        for number, worker in self.workers.items():
            self.keeper.workerConnected(number, worker)  # type: ignore[arg-type]

    def test_capCountsEveryWorker(self) -> None:
        """
        One connection from an address in each worker reaches a per-address
        cap of 2: a third, in either worker, is refused until one is
        released.
        """
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(2, "192.0.2.1"))
        self.assertFalse(self.keeper.admit(1, "192.0.2.1"))
        self.assertFalse(self.keeper.admit(2, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(2, "192.0.2.2"))
        self.keeper.release(2, "192.0.2.1")
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.assertEqual(self.keeper.sessions, {1: 2, 2: 2})

    def test_releaseOnlyWhatTheWorkerHolds(self) -> None:
        """
        A worker cannot release a connection another worker holds.
        """
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.keeper.release(2, "192.0.2.1")
        self.assertFalse(self.keeper.admit(2, "192.0.2.1"))

    def test_deadWorkerReleasesItsConnections(self) -> None:
        """
        The connections of a worker that died no longer count; a dead
        worker is admitted nothing.
        """
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(1, "192.0.2.1"))
        self.keeper.workerGone(1)
        self.assertFalse(self.keeper.admit(1, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(2, "192.0.2.1"))
        self.assertTrue(self.keeper.admit(2, "192.0.2.1"))

    def test_banPushedToEveryWorker(self) -> None:
        """
        Failures in two workers add up; the one that starts the ban sends
        C{Ban} to every worker, once; further checks are refused everywhere.
        """
        self.assertTrue(self.successResultOf(self.keeper.beginCheck(1, "192.0.2.1")))
        self.keeper.failed(1, "192.0.2.1", checked=True)
        self.assertEqual(self.workers[1].pushed, [])
        self.assertTrue(self.successResultOf(self.keeper.beginCheck(2, "192.0.2.1")))
        self.keeper.failed(2, "192.0.2.1", checked=True)
        expected = [(Ban, {"host": "192.0.2.1", "seconds": 60})]
        self.assertEqual(self.workers[1].pushed, expected)
        self.assertEqual(self.workers[2].pushed, expected)
        self.keeper.failed(2, "192.0.2.1", checked=False)
        self.assertEqual(self.workers[1].pushed, expected)
        self.assertFalse(self.successResultOf(self.keeper.beginCheck(1, "192.0.2.1")))

    def test_newWorkerLearnsBans(self) -> None:
        """
        A worker started during a ban (a restart) gets it with the time
        left.
        """
        for number in (1, 2):
            self.successResultOf(self.keeper.beginCheck(number, "192.0.2.1"))
            self.keeper.failed(number, "192.0.2.1", checked=True)
        self.clock.advance(20)
        late = _FakeWorker()
        self.keeper.workerConnected(3, late)  # type: ignore[arg-type]
        self.assertEqual(late.pushed, [(Ban, {"host": "192.0.2.1", "seconds": 40})])

    def test_runningChecksAcrossWorkers(self) -> None:
        """
        Checks running in two workers count together: with C{banAfter} 2,
        a third concurrent check is refused; the checks of a worker that
        dies are abandoned, freeing their places without a failure.
        """
        self.assertTrue(self.successResultOf(self.keeper.beginCheck(1, "192.0.2.1")))
        self.assertTrue(self.successResultOf(self.keeper.beginCheck(2, "192.0.2.1")))
        self.assertFalse(self.successResultOf(self.keeper.beginCheck(1, "192.0.2.1")))
        self.keeper.workerGone(2)
        self.assertTrue(self.successResultOf(self.keeper.beginCheck(1, "192.0.2.1")))
        self.assertFalse(self.keeper.bans.refusesConnections("192.0.2.1"))


class OverAMPTests(SynchronousTestCase):
    """
    A worker's L{SharedConnectionLimits} and L{SharedLoginBans} against the
    parent's L{StateKeeper}, over AMP.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.keeper = StateKeeper(
            self.clock, ConnectionLimits(10, 1), LoginBans(self.clock, banAfter=1, banTime=60)
        )
        self.worker = WorkerConnection(lambda: None)
        self.readies: list[None] = []
        self.parent = ParentConnection(self.keeper, 1, lambda: self.readies.append(None))
        _, _, self.pump = iosim.connectedServerAndClient(
            lambda: self.parent, lambda: self.worker, greet=True
        )
        self.limits = SharedConnectionLimits(self.worker, 10, 1)
        self.bans = SharedLoginBans(self.clock, self.worker, 1, 60)
        self.worker.bans = self.bans

    def test_reserveThenAdmit(self) -> None:
        """
        L{SharedConnectionLimits.admit} takes only what the parent granted;
        a release reaches the parent.
        """
        self.assertFalse(self.limits.admit("192.0.2.1"))
        d = self.limits.reserve("192.0.2.1")
        self.pump.flush()
        self.assertTrue(self.successResultOf(d))
        refused = self.limits.reserve("192.0.2.1")
        self.pump.flush()
        self.assertFalse(self.successResultOf(refused))
        self.assertTrue(self.limits.admit("192.0.2.1"))
        self.assertFalse(self.limits.admit("192.0.2.1"))
        self.limits.release("192.0.2.1")
        self.pump.flush()
        again = self.limits.reserve("192.0.2.1")
        self.pump.flush()
        self.assertTrue(self.successResultOf(again))

    def test_unclaimedReservationReturned(self) -> None:
        """
        A reservation no connection took goes back to the parent.
        """
        d = self.limits.reserve("192.0.2.1")
        self.pump.flush()
        self.assertTrue(self.successResultOf(d))
        self.limits.unclaimed("192.0.2.1")
        self.pump.flush()
        self.assertFalse(self.limits.admit("192.0.2.1"))
        self.assertTrue(self.keeper.limits.admit("192.0.2.1"))

    def test_banArrivesAtTheDoor(self) -> None:
        """
        A failure reported by the worker bans the address at the parent,
        and the pushed ban makes the worker refuse it at the door, until it
        expires.
        """
        check = self.bans.beginCheck("192.0.2.1")
        self.pump.flush()
        self.assertTrue(self.successResultOf(check))
        self.assertFalse(self.bans.refusesConnections("192.0.2.1"))
        self.bans.failed("192.0.2.1")
        self.pump.flush()
        self.assertTrue(self.bans.refusesConnections("192.0.2.1"))
        again = self.bans.beginCheck("192.0.2.1")
        self.pump.flush()
        self.assertFalse(self.successResultOf(again))
        self.clock.advance(60)
        self.assertFalse(self.bans.refusesConnections("192.0.2.1"))

    def test_ready(self) -> None:
        """
        L{WorkerConnection.ready} reaches the parent's C{onReady}, once.
        """
        self.pump.flush()
        self.assertEqual(self.readies, [])
        self.worker.ready()
        self.pump.flush()
        self.assertEqual(self.readies, [None])

    def test_parentGoneRefuses(self) -> None:
        """
        With the parent gone, new connections and checks are refused.
        """
        self.parent.transport.loseConnection()
        self.pump.flush()
        d = self.limits.reserve("192.0.2.1")
        self.assertFalse(self.successResultOf(d))
        check = self.bans.beginCheck("192.0.2.1")
        self.assertFalse(self.successResultOf(check))
        self.flushLoggedErrors()
