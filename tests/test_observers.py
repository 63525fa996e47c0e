"""
The observers other observers build on (L{SilentObserver},
L{FanOutObserver}), the reason of a failed TLS handshake, and the
implementations of L{ISessionObserver} that C{twistd ftps} uses.
"""

from __future__ import annotations

import os
from typing import Any

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from txftps._metrics import ServerMetrics
from txftps._observers import FanOutObserver, SilentObserver, handshakeFailureReason
from txftps._xferlog import TransferLog
from txftps.auth import LoginBans
from txftps.interfaces import ISessionObserver
from txftps.server import FanOutObserver as PublicFanOut

PEER = IPv4Address("TCP", "192.0.2.7", 50123)


class _Recorder(SilentObserver):
    def __init__(self, name: str, calls: list[Any], fail: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail

    def loginFailed(self, peer: Any, user: str) -> None:
        if self.fail:
            raise RuntimeError("broken observer")
        self.calls.append((self.name, "loginFailed", user))

    def transferStarted(
        self, peer: Any, command: str, path: str, user: str, anonymous: bool, binary: bool
    ) -> None:
        self.calls.append((self.name, command, path, user, anonymous, binary))


class FanOutTests(unittest.SynchronousTestCase):
    """
    L{FanOutObserver} tells each observer, in order.
    """

    def test_interfaces(self) -> None:
        """
        The fan-out, the silent observer, the xferlog and the metrics
        provide L{ISessionObserver} (all its methods, with their
        arguments); the fan-out is public in L{txftps.server}.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        transferLog = TransferLog(os.path.join(directory, "x"), Clock())
        self.addCleanup(transferLog.close)
        for observer in (FanOutObserver([]), SilentObserver(), transferLog, ServerMetrics()):
            self.assertTrue(verifyObject(ISessionObserver, observer))
        self.assertIs(PublicFanOut, FanOutObserver)

    def test_order(self) -> None:
        """
        Every argument reaches every observer, in the order given.
        """
        calls: list[Any] = []
        fan = FanOutObserver([_Recorder("a", calls), _Recorder("b", calls)])
        fan.transferStarted(PEER, "RETR", "/f", "bob", False, True)
        self.assertEqual(
            calls,
            [("a", "RETR", "/f", "bob", False, True), ("b", "RETR", "/f", "bob", False, True)],
        )

    def test_brokenObserver(self) -> None:
        """
        An observer that raises is logged; the others still hear.
        """
        calls: list[Any] = []
        fan = FanOutObserver([_Recorder("a", calls, fail=True), _Recorder("b", calls)])
        fan.loginFailed(PEER, "eve")
        self.assertEqual(calls, [("b", "loginFailed", "eve")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HandshakeReasonTests(unittest.SynchronousTestCase):
    """
    L{handshakeFailureReason} names why a handshake failed.
    """

    def test_openSSL(self) -> None:
        """
        OpenSSL's last reason, lower case with underscores.
        """
        error = SSL.Error([("SSL routines", "", "unsupported protocol")])
        self.assertEqual(handshakeFailureReason(Failure(error)), "unsupported_protocol")
        error = SSL.Error([("x", "", "a"), ("SSL routines", "", "wrong version number")])
        self.assertEqual(handshakeFailureReason(Failure(error)), "wrong_version_number")
        self.assertEqual(handshakeFailureReason(Failure(SSL.Error())), "tls_error")

    def test_closed(self) -> None:
        """
        A connection that just ended: C{connection_closed}.
        """
        for error in (ConnectionDone(), ConnectionLost()):
            self.assertEqual(handshakeFailureReason(Failure(error)), "connection_closed")
        self.assertEqual(handshakeFailureReason(None), "connection_closed")


class BanStartTests(unittest.SynchronousTestCase):
    """
    L{LoginBans.failed} says which failure started a ban.
    """

    def test_startsOnce(self) -> None:
        """
        Only the failure that reaches C{banAfter} starts the ban; failures
        during the ban do not start another; after it expired, one can.
        """
        clock = Clock()
        bans = LoginBans(clock, banAfter=2, banTime=10)
        self.assertEqual(
            [bans.failed("h", checked=False) for _ in range(4)], [False, True, False, False]
        )
        clock.advance(11)
        self.assertEqual([bans.failed("h", checked=False) for _ in range(2)], [False, True])
