"""
Brute-force defence and odd credentials (SECURITY.md cases 18, 19) and
read-only users (case 20 for C{--read-only-user}), against the real
C{twistd -n ftps} on loopback.

Failed logins are answered one second (C{failedLoginDelay}) after the C{PASS}
arrived, however long the check took; tests time that with
C{time.monotonic} on raw control connections. Bans are per address: a second
loopback address, 127.0.0.2, plays the other client.
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests import support

PASSWORD = "right-pw"

#: The failed-login delay of L{txftps._settings.ServerSettings}, and how far
#: a measurement may stray from it on a loaded machine.
DELAY = 1.0
SLACK = 0.6


class ServerTestCase(unittest.TestCase):
    """
    Helpers to start servers and open logged-out TLS control connections.
    """

    def startServer(self, *args: str, **kwargs: Any) -> support.TwistdServer:
        kwargs.setdefault("users", {"alice": PASSWORD})
        server = support.TwistdServer(*args, **kwargs)
        server.start()
        self.addCleanup(server.stop)
        self.server = server
        return server

    def control(self, source: str | None = None) -> support.ControlConnection:
        """
        A control connection with TLS on, not logged in, from C{source}
        (127.0.0.1 if C{None}).
        """
        control = support.ControlConnection(self.server, source=source, timeout=10)
        self.addCleanup(control.close)
        control.auth()
        return control

    def serverLog(self) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-4000:]

    def failLogin(
        self, control: support.ControlConnection, user: str = "alice", password: str = "wrong"
    ) -> tuple[int, bytes, float]:
        """
        C{USER}, then a C{PASS} that must fail: its code, text and how long
        it took.
        """
        control.expect(f"USER {user}", 331)
        return support.timedCommand(control, f"PASS {password}")

    def assertDelayed(self, seconds: float, what: str) -> None:
        self.assertTrue(
            DELAY - 0.05 <= seconds <= DELAY + SLACK,
            f"{what}: {seconds:.3f} s from PASS to the reply, expected about {DELAY} s",
        )


def inParallel(*calls: Callable[[], Any]) -> list[Any]:
    """
    Run C{calls} in threads at the same time; their results in order (an
    exception in one is raised here).
    """
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


class FailedLoginTests(ServerTestCase):
    """
    SECURITY 18: failed logins are slow, and a connection gets only a few.
    """

    def test_failureDelayed(self) -> None:
        """
        SECURITY 18: a wrong password is answered 530 about one second after
        PASS; the right password is answered 230 well under that.
        """
        self.startServer()
        control = self.control()
        code, _, seconds = self.failLogin(control)
        self.assertEqual(code, 530)
        self.assertDelayed(seconds, "wrong password")
        control.expect("USER alice", 331)
        code, _, seconds = support.timedCommand(control, f"PASS {PASSWORD}")
        self.assertEqual(code, 230)
        self.assertLess(seconds, DELAY / 2, "a successful login is not delayed")

    def test_closedAfterDefaultAttempts(self) -> None:
        """
        SECURITY 18: by default the third failed PASS on one connection is
        answered 530 and the connection is closed; after the first and second
        the connection goes on.
        """
        self.startServer()
        control = self.control()
        for attempt in (1, 2):
            code, _, seconds = self.failLogin(control)
            self.assertEqual(code, 530, f"attempt {attempt}")
            self.assertDelayed(seconds, f"attempt {attempt}")
            control.expect("NOOP", 200)
        code, _, _ = self.failLogin(control)
        self.assertEqual(code, 530)
        self.assertTrue(support.serverClosed(control), "connection open after 3 failures")

    def test_pipelinedGuesses(self) -> None:
        """
        SECURITY 18: four USER/PASS pairs pipelined in one write (the right
        password last) are answered one by one, each failure about a second
        after the one before, and the connection closes after the third
        failure: the fourth guess is never evaluated.
        """
        self.startServer()
        control = self.control()
        guesses = ["wrong-1", "wrong-2", "wrong-3", PASSWORD]
        started = time.monotonic()
        control.sock.sendall(b"".join(f"USER alice\r\nPASS {g}\r\n".encode() for g in guesses))
        answered = []
        for _ in range(3):
            self.assertEqual(control.reply()[0], 331)
            self.assertEqual(control.reply()[0], 530)
            answered.append(time.monotonic() - started)
        self.assertTrue(support.serverClosed(control), "connection open after 3 failures")
        self.assertGreater(answered[2], 3 * DELAY - 0.15, answered)
        self.assertNotIn("logged in", self.server.log(), self.serverLog())
        self.assertEqual(self.server.log().count("failed login for 'alice'"), 3)

    def test_maxLoginAttemptsOption(self) -> None:
        """
        C{--max-login-attempts 1}: the first failed PASS closes the
        connection.
        """
        self.startServer("--max-login-attempts", "1")
        control = self.control()
        code, _, _ = self.failLogin(control)
        self.assertEqual(code, 530)
        self.assertTrue(support.serverClosed(control), "connection open after 1 failure")


class BanTests(ServerTestCase):
    """
    SECURITY 18: repeated failures from one address ban it for a while; the
    password is then not even checked, and other addresses still log in.

    The users are in an htpasswd file that the test edits during the ban: a
    checker that evaluates a password first reloads the changed file and
    logs C{reloaded}, so the log tells whether the password was evaluated.
    """

    BAN_TIME = 3.0

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "wb") as f:
            f.write(support.bcryptLine("alice", PASSWORD, cost=5) + b"\n")
        self.startServer(
            "--auth",
            f"htpasswd:{self.path}",
            "--ban-after",
            "4",
            "--ban-time",
            str(self.BAN_TIME),
            users={},
        )
        self.log = support.LogWatch(self.server)

    def test_banAfterFailures(self) -> None:
        """
        SECURITY 18: after 4 failures from 127.0.0.1 over two connections,
        127.0.0.1 is refused at the door: on the explicit port a C{421} and a
        close right after accept, on the implicit port a close before any TLS
        handshake. A session of 127.0.0.1 opened before the ban gets C{530}
        for the right password after the usual delay, and the password is not
        evaluated (no reload, no login). 127.0.0.2 logs in meanwhile; once the
        ban time has passed, 127.0.0.1 logs in again.
        """
        first, second = self.control(), self.control()
        openBefore = self.control()
        for _ in range(2):
            started = time.monotonic()
            results = inParallel(lambda: self.failLogin(first), lambda: self.failLogin(second))
            self.assertEqual([r[0] for r in results], [530, 530])
        banStarted = started
        # Any password check from now on reloads the changed file.
        with open(self.path, "rb") as f:
            content = f.read()
        support.rewriteFile(self.path, content + support.bcryptLine("zed", "zed-pw", 5) + b"\n")
        self.log.mark()

        explicit = socket.create_connection((support.LOOPBACK, self.server.explicitPort), 10)
        self.addCleanup(explicit.close)
        received, closed = support.readUntilClosed(explicit, 10)
        self.assertTrue(closed, f"the banned explicit connection stayed open: {received!r}")
        self.assertTrue(received.startswith(b"421 "), received)
        self.assertEqual(received.count(b"\r\n"), 1, received)

        implicit = socket.create_connection((support.LOOPBACK, self.server.implicitPort), 10)
        self.addCleanup(implicit.close)
        context = self.server.ca.clientContext()
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            context.wrap_socket(implicit, server_hostname=support.LOOPBACK)
        self.assertTrue(
            self.log.waitFor("refused 127.0.0.1: banned after failed logins"), self.serverLog()
        )

        code, _, seconds = self.failLogin(openBefore, password=PASSWORD)
        self.assertEqual(code, 530, self.serverLog())
        self.assertDelayed(seconds, "banned login in a session opened before the ban")
        self.assertTrue(self.log.waitFor("failed login for 'alice'"), self.serverLog())
        self.assertNotIn("logged in", self.log.since())
        self.assertNotIn("reloaded", self.log.since(), "the banned password was evaluated")
        other = self.control(source="127.0.0.2")
        other.login("alice", PASSWORD)
        self.assertIn("alice logged in from 127.0.0.2", self.log.since())
        self.assertIn("reloaded", self.log.since(), "the reload oracle does not work")
        left = banStarted + self.BAN_TIME + 0.3 - time.monotonic()
        if left > 0:
            time.sleep(left)
        again = self.control()
        again.login("alice", PASSWORD)
        self.assertIn("alice logged in from 127.0.0.1", self.log.since())


class ConcurrentGuessTests(ServerTestCase):
    """
    SECURITY 18: the ban threshold holds for guesses sent at the same time
    over several connections, not only for guesses sent one after another.
    """

    def test_concurrentGuessesCountTowardsBan(self) -> None:
        """
        SECURITY 18: with C{--ban-after 2}, while three wrong passwords from
        127.0.0.1 are still being checked (bcrypt cost 13, in the thread
        pool), a fourth, right, password from 127.0.0.1 is refused (530) and
        nobody logs in: more than C{--ban-after} guesses from one address
        must never be evaluated, however they are spread over connections.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(support.bcryptLine("alice", PASSWORD, cost=13) + b"\n")
        self.startServer(
            "--auth", f"htpasswd:{path}", "--ban-after", "2", "--ban-time", "60", users={}
        )
        log = support.LogWatch(self.server)
        guessers = [self.control() for _ in range(3)]
        last = self.control()
        for control in [*guessers, last]:
            control.expect("USER alice", 331)
        log.mark()
        for control in guessers:
            control.send("PASS wrong-guess")
        self.assertTrue(
            support.waitUntil(lambda: log.since().count("<- PASS") >= 3, 5), log.since()
        )
        # The first two guesses are being checked (bcrypt cost 13); the third
        # is already refused unchecked, since two running checks reach the limit.
        self.assertNotIn("logged in", log.since())
        code, text = last.command(f"PASS {PASSWORD}", timeout=15)
        for control in guessers:
            self.assertEqual(control.reply(15)[0], 530)
        self.assertEqual(
            code,
            530,
            f"the right password was evaluated after 3 guesses with --ban-after 2: {text!r}"
            + self.serverLog(),
        )
        self.assertNotIn("logged in", self.server.log())


def medianDelays(
    case: ServerTestCase, users: tuple[str, str], tries: int = 3
) -> tuple[list[float], list[float], set[bytes], set[bytes]]:
    """
    Time failed logins for two user names, on two connections at once,
    C{tries} each.

    @return: the delays for each user, the C{USER} reply texts and the
        C{PASS} reply texts seen.
    """
    userReplies: set[bytes] = set()
    passReplies: set[bytes] = set()

    def measure(user: str) -> list[float]:
        control = case.control()
        delays = []
        for _ in range(tries):
            code, text = control.command(f"USER {user}")
            userReplies.add(text)
            code, text, seconds = support.timedCommand(control, "PASS wrong-password")
            passReplies.add(text)
            case.assertEqual(code, 530)
            delays.append(seconds)
        return delays

    known, unknown = inParallel(lambda: measure(users[0]), lambda: measure(users[1]))
    return known, unknown, userReplies, passReplies


class TimingTests(ServerTestCase):
    """
    SECURITY 18: a failed login does not tell whether the user exists, by
    its reply or by its timing.
    """

    serverOptions = ("--max-login-attempts", "100", "--ban-after", "1000")

    def assertSameTiming(self, known: list[float], unknown: list[float]) -> None:
        difference = abs(statistics.median(known) - statistics.median(unknown))
        self.assertLess(
            difference,
            0.15,
            f"known user: {[round(d, 3) for d in known]},"
            f" unknown user: {[round(d, 3) for d in unknown]}",
        )
        for seconds in known + unknown:
            self.assertDelayed(seconds, "failed login")

    def test_memoryChecker(self) -> None:
        """
        SECURITY 18: with C{memory:}, a wrong password for alice and any
        password for an unknown user give the same replies to USER and PASS,
        and the same delay (medians within 0.15 s).
        """
        self.startServer(*self.serverOptions)
        known, unknown, userReplies, passReplies = medianDelays(self, ("alice", "nobody"))
        self.assertEqual(len(userReplies), 1, userReplies)
        self.assertEqual(len(passReplies), 1, passReplies)
        self.assertSameTiming(known, unknown)

    def test_htpasswdLowCost(self) -> None:
        """
        SECURITY 18: with an htpasswd file whose users have a low bcrypt cost
        (C{htpasswd -B -C 5}), a known user and an unknown one still get the
        same replies and delay.
        """
        htpasswd = support.requirePackagedProgram("htpasswd", "apache2-utils")
        path = os.path.abspath(self.mktemp())
        for user, first in (("carol", True), ("dave", False)):
            subprocess.run(
                [htpasswd, "-B", "-C", "5", "-b", *(["-c"] if first else []), path, user, "pw"],
                check=True,
                capture_output=True,
            )
        self.startServer(*self.serverOptions, "--auth", f"htpasswd:{path}", users={})
        known, unknown, userReplies, passReplies = medianDelays(self, ("carol", "nobody"))
        self.assertEqual(len(userReplies), 1, userReplies)
        self.assertEqual(len(passReplies), 1, passReplies)
        self.assertSameTiming(known, unknown)


class OddCredentialsTests(ServerTestCase):
    """
    SECURITY 19: empty, missing and huge passwords never log in, even for
    users whose configured password is exactly that; PASS before USER is
    503.
    """

    HUGE = "h" * 5000

    def setUp(self) -> None:
        self.startServer(users={"alice": PASSWORD, "empty": "", "huge": self.HUGE})

    def assertNobodyLoggedIn(self) -> None:
        self.assertNotIn("logged in", self.server.log(), self.serverLog())

    def test_emptyMissingAndLongPasswords(self) -> None:
        """
        SECURITY 19: C{PASS } (empty) and C{PASS} (no argument) for a user
        whose password is empty, and a 5000-character password for the user
        who has exactly that password, all get 530.
        """

        def attempt(user: str, line: str) -> int:
            control = self.control()
            control.expect(f"USER {user}", 331)
            return control.command(line, timeout=10)[0]

        codes = inParallel(
            lambda: attempt("empty", "PASS "),
            lambda: attempt("empty", "PASS"),
            lambda: attempt("huge", f"PASS {self.HUGE}"),
        )
        self.assertEqual(codes, [530, 530, 530], self.serverLog())
        self.assertNobodyLoggedIn()

    def test_hugePasswordLine(self) -> None:
        """
        SECURITY 19: a 100 KB PASS line is longer than the server's line limit
        (8192 bytes): it is refused with 500 and the connection is closed;
        nobody logs in.
        """
        control = self.control()
        control.expect("USER alice", 331)
        try:
            control.sock.sendall(b"PASS " + b"p" * 100_000 + b"\r\n")
        except OSError:
            pass
        code, text = control.reply()
        self.assertEqual(code, 500, text)
        self.assertTrue(support.serverClosed(control))
        self.assertNobodyLoggedIn()

    def test_passBeforeUser(self) -> None:
        """
        SECURITY 19: PASS before any USER is 503; so is PASS again after a
        failed login (the user name is used up), and PASS after a login.
        """
        control = self.control()
        control.expect(f"PASS {PASSWORD}", 503)
        code, _, _ = self.failLogin(control)
        self.assertEqual(code, 530)
        control.expect(f"PASS {PASSWORD}", 503)
        control.login("alice", PASSWORD)
        control.expect(f"PASS {PASSWORD}", 503)


class ReadOnlyUserTests(ServerTestCase):
    """
    SECURITY 20 for C{--read-only-user alice}: alice reads her home but
    changes nothing; bob, not read-only, may write.
    """

    CONTENT = os.urandom(20000)

    def setUp(self) -> None:
        server = support.TwistdServer(
            "--read-only-user", "alice", users={"alice": PASSWORD, "bob": PASSWORD}
        )
        home = server.userHome("alice")
        os.makedirs(os.path.join(home, "sub"))
        with open(os.path.join(home, "a.txt"), "wb") as f:
            f.write(self.CONTENT)
        server.start()
        self.addCleanup(server.stop)
        self.server = server

    def test_reads(self) -> None:
        """
        alice lists her home and downloads her file byte for byte.
        """
        control = support.loggedInSession(self.server, "alice", PASSWORD)
        self.addCleanup(control.close)
        _, final, listing = support.downloadOver(control, "NLST")
        self.assertEqual(final[0], 226)
        self.assertEqual(sorted(listing.split()), [b"a.txt", b"sub"])
        _, final, data = support.downloadOver(control, "RETR a.txt")
        self.assertEqual(final[0], 226)
        self.assertEqual(data, self.CONTENT)

    def test_writesRefused(self) -> None:
        """
        SECURITY 20: STOR, APPE, STOU, MKD, RMD, DELE, RNFR/RNTO, SITE CHMOD
        and MFMT from alice are all refused with 550 (RNTO, its RNFR refused,
        with 503) and her home is unchanged, byte for byte and timestamp for
        timestamp.
        """
        home = self.server.userHome("alice")
        before = support.snapshotTree(home)
        control = support.loggedInSession(self.server, "alice", PASSWORD)
        self.addCleanup(control.close)
        refused: dict[str, int] = {}
        for command in ("STOR new.txt", "APPE a.txt", "STOU"):
            first, final = support.uploadOver(control, command, b"intruder\n")
            refused[command] = final[0]
        for command in (
            "MKD newdir",
            "RMD sub",
            "DELE a.txt",
            "RNFR a.txt",
            "RNTO b.txt",
            "SITE CHMOD 777 a.txt",
            "MFMT 20000101000000 a.txt",
        ):
            refused[command] = control.command(command)[0]
        expected = dict.fromkeys(refused, 550)
        expected["RNTO b.txt"] = 503
        self.assertEqual(refused, expected)
        self.assertEqual(support.snapshotTree(home), before)

    def test_otherUserWrites(self) -> None:
        """
        The same uploads and changes work for bob, who is not read-only (so
        the refusals above are the read-only rule, not a broken server).
        """
        control = support.loggedInSession(self.server, "bob", PASSWORD)
        self.addCleanup(control.close)
        _, final = support.uploadOver(control, "STOR new.txt", b"bob\n")
        self.assertEqual(final[0], 226)
        control.expect("MKD newdir", 257)
        control.expect("RNFR new.txt", 350)
        control.expect("RNTO newdir/moved.txt", 250)
        with open(os.path.join(self.server.userHome("bob"), "newdir", "moved.txt"), "rb") as f:
            self.assertEqual(f.read(), b"bob\n")
