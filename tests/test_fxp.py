"""
Secure server-to-server transfers (FXP) with C{SSCN} and C{CPSV} between
two real C{twistd -n ftps} on different loopback addresses (127.0.0.2 and
127.0.0.3), driven by raw control connections and by lftp; and what stays
refused without C{--allow-fxp}.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from twisted.trial import unittest

from tests import support

SOURCE_HOST = "127.0.0.2"
TARGET_HOST = "127.0.0.3"
CLIENT_HOST = "127.0.0.4"
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)


def _portArgument(host: str, port: int) -> str:
    return ",".join([*host.split("."), str(port >> 8), str(port & 0xFF)])


def _passiveAddress(text: bytes) -> tuple[str, int]:
    match = re.search(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", text)
    assert match is not None, text
    numbers = [int(n) for n in match.groups()]
    return ".".join(str(n) for n in numbers[:4]), numbers[4] * 256 + numbers[5]


class FXPRefusedTests(unittest.TestCase):
    """
    Without C{--allow-fxp}, nothing of server-to-server transfers is there.
    """

    def setUp(self) -> None:
        self.server = support.TwistdServer(users={"alice": "pw"}, anonymous=False).start()
        self.addCleanup(self.server.stop)
        self.control = support.loggedInSession(self.server, "alice", "pw")
        self.addCleanup(self.control.close)

    def test_refused(self) -> None:
        """
        FEAT lists neither SSCN nor CPSV; SSCN ON and CPSV get 502; PORT to
        another address is still refused with no connection attempt.
        """
        _, feat = self.control.command("FEAT")
        self.assertNotIn(b"SSCN", feat)
        self.assertNotIn(b"CPSV", feat)
        self.assertEqual(self.control.command("SSCN ON")[0], 502)
        self.assertEqual(self.control.command("CPSV")[0], 502)
        code, _ = self.control.command(f"PORT {_portArgument(TARGET_HOST, 40000)}")
        self.assertEqual(code, 501)


class FXPTests(unittest.TestCase):
    """
    Two servers with C{--allow-fxp}: a file goes from 127.0.0.2 to
    127.0.0.3 over a TLS data connection between them.
    """

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="txftps-fxp-")
        self.ca = support.ThrowawayCA(self.directory, extraNames=(SOURCE_HOST, TARGET_HOST))
        self.source = self._server(SOURCE_HOST)
        self.target = self._server(TARGET_HOST)
        support.writeFile(os.path.join(self.source.userHome("alice"), "big.bin"), PAYLOAD)
        os.makedirs(self.target.userHome("bob"), exist_ok=True)

    def _server(self, host: str) -> support.TwistdServer:
        server = support.TwistdServer(
            "--allow-fxp",
            ca=self.ca,
            users={"alice": "pw-a", "bob": "pw-b"},
            anonymous=False,
            host=host,
        ).start()
        self.addCleanup(server.stop)
        return server

    def _login(
        self, server: support.TwistdServer, user: str, pw: str
    ) -> support.ControlConnection:
        # The FXP client is a third host: neither server's address.
        control = support.ControlConnection(server, source=CLIENT_HOST, timeout=20)
        self.addCleanup(control.close)
        control.auth()
        control.login(user, pw)
        control.protect()
        control.expect("TYPE I", 200)
        return control

    def _copied(self) -> bytes:
        return support.readFile(os.path.join(self.target.userHome("bob"), "copy.bin"))

    def test_feat(self) -> None:
        """
        With C{--allow-fxp} FEAT lists SSCN and CPSV; bare SSCN tells the
        mode, SSCN ON and OFF switch it.
        """
        control = self._login(self.source, "alice", "pw-a")
        _, feat = control.command("FEAT")
        self.assertIn(b"\r\n SSCN\r\n", feat)
        self.assertIn(b"\r\n CPSV\r\n", feat)
        self.assertEqual(control.expect("SSCN", 200).strip(), b"200 SSCN:SERVER METHOD")
        self.assertEqual(control.expect("SSCN ON", 200).strip(), b"200 SSCN:CLIENT METHOD")
        self.assertEqual(control.expect("SSCN", 200).strip(), b"200 SSCN:CLIENT METHOD")
        self.assertEqual(control.expect("SSCN OFF", 200).strip(), b"200 SSCN:SERVER METHOD")
        self.assertEqual(control.command("SSCN MAYBE")[0], 501)

    def _finish(self, first: support.ControlConnection, second: support.ControlConnection) -> None:
        """
        Both transfers end with 226, and the copy is the original.
        """
        preliminary, (code, text) = first.finalReply(60)
        self.assertEqual(code, 226, text + self.logs())
        preliminary, (code, text) = second.finalReply(60)
        self.assertEqual(code, 226, text + self.logs())
        self.assertEqual(len(self._copied()), len(PAYLOAD))
        self.assertTrue(self._copied() == PAYLOAD, "the copy differs from the original")

    def logs(self) -> bytes:
        return (
            "\n--- source ---\n"
            + self.source.log()[-3000:]
            + "\n--- target ---\n"
            + self.target.log()[-3000:]
        ).encode()

    def test_sscn(self) -> None:
        """
        The target listens (PASV) as TLS server; the source, after SSCN ON,
        connects to it (PORT) and runs TLS as the client: the copy is
        byte-exact, both sides answer 226, and both logs name the
        server-to-server connection.
        """
        source = self._login(self.source, "alice", "pw-a")
        target = self._login(self.target, "bob", "pw-b")
        source.expect("SSCN ON", 200)
        host, port = _passiveAddress(target.expect("PASV", 227))
        self.assertEqual(host, TARGET_HOST)
        source.expect(f"PORT {_portArgument(host, port)}", 200)
        target.send("STOR copy.bin")
        self.assertEqual(target.reply(10)[0], 150)
        source.send("RETR big.bin")
        self._finish(source, target)
        self.assertIn(f"server-to-server data connection with {SOURCE_HOST}", self.target.log())
        self.assertIn(f"server-to-server data connection with {TARGET_HOST}", self.source.log())

    def test_cpsv(self) -> None:
        """
        The source listens with CPSV (it will be the TLS client); the target
        connects to it (PORT) and runs TLS as the server: the copy is
        byte-exact.
        """
        source = self._login(self.source, "alice", "pw-a")
        target = self._login(self.target, "bob", "pw-b")
        host, port = _passiveAddress(source.expect("CPSV", 227))
        self.assertEqual(host, SOURCE_HOST)
        target.expect(f"PORT {_portArgument(host, port)}", 200)
        source.send("RETR big.bin")
        self.assertEqual(source.reply(10)[0], 150)
        target.send("STOR copy.bin")
        self._finish(target, source)

    def test_clientStillResumes(self) -> None:
        """
        C{--allow-fxp} exempts only server-to-server connections: a data
        connection from the client's own address that does not resume the
        control session is still refused (522) and gets no byte.
        """
        source = self._login(self.source, "alice", "pw-a")
        port = source.epsv()
        source.send("RETR big.bin")
        sock = support.socket.create_connection(
            (SOURCE_HOST, port), timeout=10, source_address=(CLIENT_HOST, 0)
        )
        self.addCleanup(sock.close)
        try:
            fresh = self.ca.clientContext().wrap_socket(sock, server_hostname=support.LOOPBACK)
            self.addCleanup(fresh.close)
            data, _ = support.readUntilClosed(fresh, 10)
        except (support.ssl.SSLError, OSError):
            data = b""
        self.assertEqual(data, b"")
        preliminary, (code, _) = source.finalReply(20)
        self.assertIn(code, (425, 522))

    def test_lftp(self) -> None:
        """
        lftp as the FXP client (C{ftp:ssl-protect-fxp yes}) copies a file
        from one server to the other; the data never passes through lftp.
        """
        binary = support.requireProgram("lftp")
        script = (
            f"set ssl:ca-file {self.ca.caFile}; set ssl:verify-certificate yes;"
            " set ftp:ssl-force yes; set ftp:ssl-protect-data yes;"
            " set ftp:ssl-protect-fxp yes; set ftp:use-fxp yes;"
            " set ftp:fxp-force yes; set net:max-retries 1; set net:timeout 20;"
            " set cmd:fail-exit yes;"
            f" get ftp://alice:pw-a@{SOURCE_HOST}:{self.source.explicitPort}/big.bin"
            f" -o ftp://bob:pw-b@{TARGET_HOST}:{self.target.explicitPort}/copy.bin"
        )
        result = subprocess.run(
            [binary, "-d", "-c", script],
            capture_output=True,
            timeout=120,
            env=dict(os.environ, HOME=self.directory),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-4000:] + self.logs())
        self.assertTrue(self._copied() == PAYLOAD, "the copy differs from the original")
        transcript = result.stderr.decode("utf-8", "replace")
        self.assertTrue(
            "SSCN" in transcript or "CPSV" in transcript,
            "lftp did not use SSCN or CPSV:\n" + transcript[-3000:],
        )
