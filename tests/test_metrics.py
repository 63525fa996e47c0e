"""
C{--metrics ENDPOINT}: the Prometheus metrics of the real C{twistd -n ftps},
scraped over HTTP while and after real clients (curl, lftp, ftplib, raw
sockets, openssl s_client) do things; each test checks that the counters
moved by exactly what happened.
"""

from __future__ import annotations

import ftplib
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.address import IPv4Address
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from tests import support
from txftps._metrics import MetricsResource, ServerMetrics, metricsSite

USER = "alice"
PASSWORD = "secret"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parseMetrics(text: str) -> Samples:
    """
    Every sample of a Prometheus text page: C{(name, sorted labels)} to
    value.
    """
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


PEER = IPv4Address("TCP", "192.0.2.7", 50123)


class ServerMetricsTests(unittest.SynchronousTestCase):
    """
    L{ServerMetrics} counts what it is told, in its own registry.
    """

    def test_counts(self) -> None:
        """
        Each observer event moves its metric.
        """
        metrics = ServerMetrics()
        metrics.sessionOpened(PEER)
        metrics.sessionOpened(PEER)
        metrics.sessionClosed(PEER)
        metrics.connectionRefused(PEER, "banned")
        metrics.loginSucceeded(PEER, "bob")
        metrics.loginFailed(PEER, "bob")
        metrics.loginFailed(PEER, "bob")
        metrics.addressBanned(PEER)
        metrics.tlsHandshakeFailed(PEER, "unsupported_protocol")
        metrics.dataConnectionRefused(PEER, "foreign_peer")
        metrics.transferEnded(PEER, "RETR", "/f", 100, 5, 226)
        metrics.transferEnded(PEER, "STOR", "/g", 3, 70, 426)
        metrics.transferEnded(PEER, "MLSD", "/", 40, 0, 226)
        get = metrics.registry.get_sample_value
        self.assertEqual(get("txftps_sessions"), 1)
        self.assertEqual(get("txftps_connections_refused_total", {"reason": "banned"}), 1)
        self.assertEqual(get("txftps_connections_refused_total", {"reason": "limit"}), 0)
        self.assertEqual(get("txftps_logins_total", {"result": "success"}), 1)
        self.assertEqual(get("txftps_logins_total", {"result": "failure"}), 2)
        self.assertEqual(get("txftps_bans_total"), 1)
        self.assertEqual(
            get("txftps_tls_handshake_failures_total", {"reason": "unsupported_protocol"}), 1
        )
        self.assertEqual(
            get("txftps_data_connections_refused_total", {"reason": "foreign_peer"}), 1
        )
        self.assertEqual(
            get("txftps_data_connections_refused_total", {"reason": "not_resumed"}), 0
        )
        transfers = {
            (d, r): get("txftps_transfers_total", {"direction": d, "result": r})
            for d in ("download", "upload", "listing")
            for r in ("complete", "incomplete")
        }
        self.assertEqual(
            transfers,
            {
                ("download", "complete"): 1,
                ("download", "incomplete"): 0,
                ("upload", "complete"): 0,
                ("upload", "incomplete"): 1,
                ("listing", "complete"): 1,
                ("listing", "incomplete"): 0,
            },
        )
        self.assertEqual(get("txftps_sent_bytes_total"), 143)
        self.assertEqual(get("txftps_received_bytes_total"), 75)

    def test_ownRegistry(self) -> None:
        """
        Two servers in one process count apart (no global registry).
        """
        one, two = ServerMetrics(), ServerMetrics()
        one.loginFailed(PEER, "x")
        self.assertEqual(
            two.registry.get_sample_value("txftps_logins_total", {"result": "failure"}), 0
        )

    def test_resource(self) -> None:
        """
        The resource renders the registry in the Prometheus text format
        with its content type.
        """
        metrics = ServerMetrics()
        metrics.addressBanned(PEER)
        request = DummyRequest([b""])
        body = MetricsResource(metrics.registry).render_GET(request)
        self.assertEqual(value(parseMetrics(body.decode()), "txftps_bans_total"), 1)
        self.assertIn(b"text/plain", request.responseHeaders.getRawHeaders(b"content-type")[0])
        self.assertFalse(metricsSite(metrics).noisy)


class MetricsCase(support.ServerLogTestCase):
    """
    Runs the real server with C{--metrics tcp:0:interface=127.0.0.1} and
    C{extraArgs}, scraped over HTTP; C{before} is the first scrape.
    """

    extraArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = support.TwistdServer(
            "--metrics",
            "tcp:0:interface=127.0.0.1",
            *self.extraArgs,
            users={USER: PASSWORD},
        )
        self.server.start()
        self.addCleanup(self.server.stop)
        match = re.search(
            r"metrics \(HTTP /metrics\) listening on \S+ port (\d+)", self.server.log()
        )
        assert match is not None, self.server.log()
        self.url = f"http://127.0.0.1:{match.group(1)}/metrics"
        self.before = self.scrape()

    def serverLog(self, tail: int = 4000) -> str:
        return "\n--- server log ---\n" + self.server.log()[-tail:]

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            self.assertIn("text/plain", response.headers["Content-Type"])
            return parseMetrics(response.read().decode("utf-8"))

    def delta(self, name: str, **labels: str) -> float:
        return value(self.scrape(), name, **labels) - value(self.before, name, **labels)

    def waitForDelta(self, expected: float, name: str, **labels: str) -> None:
        """
        Wait until C{name}{labels} moved by C{expected} since the test
        started (the server counts some events after the client saw the
        reply), then check it is exactly that.
        """
        support.waitUntil(lambda: self.delta(name, **labels) >= expected, 10)
        self.assertEqual(
            self.delta(name, **labels), expected, f"{name}{labels}" + self.serverLog()
        )


class MetricsServerTests(MetricsCase):
    """
    Sessions, logins, transfers, refusals and handshake failures.
    """

    def test_notFound(self) -> None:
        """
        Only C{/metrics} is served; the rest is 404, and scrapes write no
        access-log line.
        """
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.url.replace("/metrics", "/other"), timeout=10)
        self.assertEqual(e.exception.code, 404)
        self.assertNotIn("GET /metrics", self.server.log())

    def test_sessions(self) -> None:
        """
        The sessions gauge is up by one while a control connection is open
        and back down after it closed.
        """
        control = support.loggedInSession(self.server)
        self.assertEqual(self.delta("txftps_sessions"), 1)
        other = support.ControlConnection(self.server, implicit=True)
        self.assertEqual(self.delta("txftps_sessions"), 2)
        control.command("QUIT")
        control.close()
        other.close()
        self.waitForDelta(0, "txftps_sessions")
        self.assertTrue(support.waitUntil(lambda: self.delta("txftps_sessions") == 0, 10))

    def test_logins(self) -> None:
        """
        A successful and two failed logins.
        """
        support.ftplibClient(self.server, USER, PASSWORD).quit()
        for _ in range(2):
            client = support.ReusingFTP_TLS(context=self.server.ca.clientContext(), timeout=10)
            client.connect("127.0.0.1", self.server.explicitPort)
            client.auth()
            with self.assertRaises(ftplib.error_perm):
                client.login(USER, "wrong")
            client.close()
        self.waitForDelta(1, "txftps_logins_total", result="success")
        self.waitForDelta(2, "txftps_logins_total", result="failure")
        self.assertEqual(self.delta("txftps_bans_total"), 0)

    def test_transfers(self) -> None:
        """
        curl downloads and uploads a file and lftp lists a directory: each
        is one complete transfer of its direction, and the byte counters
        moved by at least the file sizes (listings add theirs).
        """
        content = os.urandom(300_000)
        support.writeFile(os.path.join(self.server.root, "f.bin"), content)
        result = support.curl(self.server, "-o", "-", path="/f.bin")
        self.assertSucceeded(result, "curl download")
        upload = os.path.join(self.server.directory, "u.bin")
        support.writeFile(upload, b"u" * 123_456)
        result = support.curl(
            self.server, "-T", upload, implicit=True, path="/u.bin", user=f"{USER}:{PASSWORD}"
        )
        self.assertSucceeded(result, "curl upload")
        result = support.lftp(self.server, "ls", user=f"{USER},{PASSWORD}")
        self.assertSucceeded(result, "lftp ls")
        self.waitForDelta(1, "txftps_transfers_total", direction="download", result="complete")
        self.waitForDelta(1, "txftps_transfers_total", direction="upload", result="complete")
        self.waitForDelta(1, "txftps_transfers_total", direction="listing", result="complete")
        self.assertEqual(
            self.delta("txftps_transfers_total", direction="download", result="incomplete"), 0
        )
        sent = self.delta("txftps_sent_bytes_total")
        self.assertGreater(sent, len(content))
        self.assertLess(sent, len(content) + 10_000)
        self.assertEqual(self.delta("txftps_received_bytes_total"), 123_456)

    def test_abortedDownload(self) -> None:
        """
        A download stopped by ABOR is one incomplete download.
        """
        with open(os.path.join(self.server.root, "big.bin"), "wb") as f:
            f.truncate(50 * 1024 * 1024)
        control = support.loggedInSession(self.server)
        self.addCleanup(control.close)
        first, data = support.startTransfer(control, "RETR big.bin")
        self.assertEqual(first[0], 150)
        assert data is not None
        data.recv(16384)
        self.assertEqual(
            self.delta("txftps_transfers_total", direction="download", result="incomplete"), 0
        )
        control.send("ABOR")
        self.assertEqual(control.reply(10)[0], 426)
        self.assertEqual(control.reply(10)[0], 226)
        data.close()
        self.waitForDelta(1, "txftps_transfers_total", direction="download", result="incomplete")
        self.assertEqual(
            self.delta("txftps_transfers_total", direction="download", result="complete"), 0
        )

    def test_notResumed(self) -> None:
        """
        ftplib's C{FTP_TLS}, which does not resume the control session on
        its data connection, is refused (522): one C{not_resumed} refusal,
        one incomplete download.
        """
        support.writeFile(os.path.join(self.server.root, "f.txt"), b"x")
        client = support.ftplibClient(self.server, cls=ftplib.FTP_TLS)
        try:
            # The server's refusal reaches ftplib as a broken TLS shutdown
            # or as the 522.
            with self.assertRaises((ftplib.Error, OSError)):
                client.retrbinary("RETR f.txt", lambda b: None)
        finally:
            client.close()
        self.waitForDelta(1, "txftps_data_connections_refused_total", reason="not_resumed")
        self.waitForDelta(1, "txftps_transfers_total", direction="download", result="incomplete")
        self.assertEqual(
            self.delta("txftps_data_connections_refused_total", reason="foreign_peer"), 0
        )

    def test_foreignPeer(self) -> None:
        """
        A data connection from 127.0.0.3 to the passive port of a session
        from 127.0.0.1 is refused: one C{foreign_peer} refusal, and the
        RETR gets 425.
        """
        support.writeFile(os.path.join(self.server.root, "f.txt"), b"x")
        control = support.loggedInSession(self.server)
        self.addCleanup(control.close)
        port = control.epsv()
        thief = socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=("127.0.0.3", 0)
        )
        self.addCleanup(thief.close)
        self.waitForDelta(1, "txftps_data_connections_refused_total", reason="foreign_peer")
        control.send("RETR f.txt")
        _, (code, _) = control.finalReply(10)
        self.assertEqual(code, 425)

    def test_tlsHandshakeFailures(self) -> None:
        """
        openssl s_client offering only TLS 1.1 (after AUTH TLS) and a
        plaintext command on the implicit port are failed handshakes, by
        OpenSSL's reason; neither opened a session that is still counted.
        """
        openssl = support.requireProgram("openssl")
        subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{self.server.explicitPort}",
                "-starttls",
                "ftp",
                "-tls1_1",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        self.waitForDelta(1, "txftps_tls_handshake_failures_total", reason="unsupported_protocol")
        sock = socket.create_connection(("127.0.0.1", self.server.implicitPort), timeout=5)
        sock.sendall(b"USER anonymous\r\n")
        support.readUntilClosed(sock, 5)
        sock.close()
        support.waitUntil(lambda: self.totalHandshakeFailures() >= 2, 10)
        self.assertEqual(self.totalHandshakeFailures(), 2, self.scrape())
        self.assertEqual(
            self.delta("txftps_tls_handshake_failures_total", reason="wrong_version_number"), 1
        )
        self.waitForDelta(0, "txftps_sessions")

    def totalHandshakeFailures(self) -> float:
        now = self.scrape()
        return sum(
            v - self.before.get(k, 0.0)
            for k, v in now.items()
            if k[0] == "txftps_tls_handshake_failures_total"
        )


class BanMetricsTests(MetricsCase):
    """
    Bans, with C{--ban-after 2}.
    """

    extraArgs = ("--ban-after", "2")

    def test_ban(self) -> None:
        """
        Two failed logins from 127.0.0.2 are two failures and one ban; the
        next connection from there is refused at the door (C{banned}).
        """
        control = support.ControlConnection(self.server, source="127.0.0.2")
        self.addCleanup(control.close)
        control.auth()
        for _ in range(2):
            control.expect(f"USER {USER}", 331)
            control.expect("PASS wrong", 530)
        self.waitForDelta(1, "txftps_bans_total")
        self.waitForDelta(2, "txftps_logins_total", result="failure")
        self.assertEqual(self.delta("txftps_connections_refused_total", reason="banned"), 0)
        refused = support.ControlConnection(self.server, source="127.0.0.2")
        self.addCleanup(refused.close)
        self.assertEqual(refused.greeting[0], 421)
        self.waitForDelta(1, "txftps_connections_refused_total", reason="banned")
        self.assertEqual(self.delta("txftps_bans_total"), 1)


class RefusedTests(unittest.TestCase):
    """
    A bad C{--metrics} stops the start with one line.
    """

    def test_badEndpoint(self) -> None:
        """
        An endpoint description Twisted cannot parse.
        """
        line = support.refusedStart("--metrics", "nonsense:9102")
        self.assertIn("bad endpoint 'nonsense:9102'", line)

    def test_portTaken(self) -> None:
        """
        A port something else listens on: a non-zero exit, the line that
        says so (logged, as for a taken C{--listen} port), no traceback.
        """
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        description = f"tcp:{port}:interface=127.0.0.1"
        result = subprocess.run(
            [*support.twistdCommand(directory, "none"), "--metrics", description],
            capture_output=True,
            cwd=directory,
            env=support.twistdEnvironment(),
            timeout=30,
        )
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        self.assertIn(f"twistd ftps: error: cannot listen on {description}", output)
