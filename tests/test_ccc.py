"""
CCC, clearing the control channel (SECURITY.md case 8, RFC 4217 sections 5
and 6; L{txftps._ccc}), against the real C{twistd -n ftps} on loopback.

Raw clients are Python C{ssl} sockets: after C{200} to C{CCC} the client sends
its close_notify with C{SSLSocket.unwrap()}, which returns only once the
server's close_notify arrived, and then speaks plaintext on the same TCP
connection. lftp does the same with C{set ftp:ssl-use-ccc yes}.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from typing import Any

from twisted.trial import unittest

from tests import support

PASSWORD = "ccc-pw"

#: The file in alice's home.
CONTENT = os.urandom(60000)


class CCCTestCase(unittest.TestCase):
    """
    Starts servers with user alice, C{f.bin} in her home.
    """

    def startServer(self, *args: str) -> support.TwistdServer:
        server = support.TwistdServer(*args, users={"alice": PASSWORD})
        os.makedirs(server.userHome("alice"))
        with open(os.path.join(server.userHome("alice"), "f.bin"), "wb") as f:
            f.write(CONTENT)
        server.start()
        self.addCleanup(server.stop)
        self.server = server
        return server

    def session(self, implicit: bool = False) -> support.ControlConnection:
        """
        A control connection logged in as alice over TLS, with PROT P.
        """
        control = support.loggedInSession(self.server, "alice", PASSWORD, implicit=implicit)
        self.addCleanup(control.close)
        return control

    def serverLog(self) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-4000:]

    def assertStillTLS(self, control: support.ControlConnection) -> None:
        """
        The control connection still runs TLS: NOOP and SYST over the TLS
        socket are answered.
        """
        self.assertIsInstance(control.sock, ssl.SSLSocket)
        self.assertEqual(control.command("NOOP")[0], 200)
        self.assertEqual(control.command("SYST")[0], 215)

    def clear(self, control: support.ControlConnection) -> Any:
        """
        C{CCC} (must be 200), then the client's close_notify; the server's
        close_notify must come back within five seconds (or C{unwrap}
        raises). Afterwards C{control} speaks plaintext.

        @return: the TLS session of the control connection, for resuming it
            on data connections.
        """
        self.assertEqual(control.command("CCC")[0], 200, self.serverLog())
        session = control.sock.session  # type: ignore[attr-defined]
        control.sock.settimeout(5)
        control.sock = control.sock.unwrap()  # type: ignore[attr-defined]
        control.protected = False
        return session


class CCCRefusedTests(CCCTestCase):
    """
    SECURITY 8: where CCC is refused, and that TLS stays on then.
    """

    def test_unprotectedChannel(self) -> None:
        """
        SECURITY 8: CCC on a control channel that never had TLS (a plaintext
        login, C{--tls-required none}) is 533.
        """
        self.startServer("--tls-required", "none", "--allow-ccc")
        control = support.ControlConnection(self.server)
        self.addCleanup(control.close)
        control.login("alice", PASSWORD)
        control.expect("CCC", 533)
        control.expect("NOOP", 200)

    def test_beforeLogin(self) -> None:
        """
        SECURITY 8: CCC before login is 530, even when allowed, and TLS stays
        on.
        """
        self.startServer("--allow-ccc")
        control = support.ControlConnection(self.server)
        self.addCleanup(control.close)
        control.auth()
        control.expect("CCC", 530)
        self.assertStillTLS(control)
        control.login("alice", PASSWORD)

    def test_notAllowed(self) -> None:
        """
        SECURITY 8: without C{--allow-ccc}, CCC after login is 534 and TLS
        stays on; transfers still work.
        """
        self.startServer()
        control = self.session()
        control.expect("CCC", 534)
        self.assertStillTLS(control)
        _, final, data = support.downloadOver(control, "RETR f.bin")
        self.assertEqual(final[0], 226)
        self.assertEqual(data, CONTENT)

    def test_implicit(self) -> None:
        """
        SECURITY 8: on an implicit connection CCC is 534 even with
        C{--allow-ccc}, and TLS stays on.
        """
        self.startServer("--allow-ccc")
        control = self.session(implicit=True)
        control.expect("CCC", 534)
        self.assertStillTLS(control)

    def test_featListsCCCOnlyWhenAllowed(self) -> None:
        """
        FEAT lists CCC with C{--allow-ccc} and not without.
        """
        for args, listed in (((), False), (("--allow-ccc",), True)):
            self.startServer(*args)
            control = self.session()
            _, text = control.command("FEAT")
            lines = text.decode().splitlines()
            self.assertEqual(" CCC" in lines, listed, (args, lines))


class CCCTests(CCCTestCase):
    """
    SECURITY 8 with C{--allow-ccc}: after CCC the control channel is
    plaintext, protection cannot be changed any more, and data stays
    protected.
    """

    def setUp(self) -> None:
        self.startServer("--allow-ccc")

    def test_plaintextAfterCCC(self) -> None:
        """
        SECURITY 8: AUTH TLS, login, PBSZ 0, PROT P, CCC: 200 over TLS; the
        client's close_notify is answered with the server's; then the same
        TCP connection carries plaintext replies (PWD: 257 in clear bytes),
        still logged in as alice.
        """
        control = self.session()
        self.clear(control)
        control.sock.sendall(b"PWD\r\n")
        raw = b""
        while not raw.endswith(b"\r\n"):
            chunk = control.sock.recv(4096)
            if not chunk:
                break
            raw += chunk
        self.assertTrue(raw.startswith(b'257 "/"'), raw[:40])
        self.assertIn("in plaintext after CCC", self.server.log())
        control.expect("NOOP", 200)
        control.expect("SIZE f.bin", 213)

    def test_serverStartsShutdown(self) -> None:
        """
        SECURITY 8: a client that waits for the server to end TLS after the
        200 (curl's default CCC mode, and ProFTPD's order) gets the server's
        close_notify, does not answer it, and talks plaintext on the same TCP
        connection: PWD gets 257 in clear bytes.
        """
        control = self.session()
        self.assertEqual(control.command("CCC")[0], 200, self.serverLog())
        control.sock.settimeout(5)
        self.assertEqual(control.sock.recv(4096), b"", "expected the server's close_notify")
        plain = socket.socket(fileno=os.dup(control.sock.fileno()))
        self.addCleanup(plain.close)
        plain.settimeout(5)
        plain.sendall(b"PWD\r\n")
        raw = support.readLine(plain)
        self.assertTrue(raw.startswith(b'257 "/"'), raw[:40] + self.serverLog().encode())
        self.assertIn("in plaintext after CCC", self.server.log())

    def test_protectionCommandsRefused(self) -> None:
        """
        SECURITY 8: after CCC, AUTH TLS, AUTH SSL, PBSZ 0, PROT C, PROT P and
        CDC are refused with 534, and the channel stays plaintext.
        """
        control = self.session()
        self.clear(control)
        for command in ("AUTH TLS", "AUTH SSL", "PBSZ 0", "PROT C", "PROT P", "CDC"):
            code, text = control.command(command)
            self.assertEqual(code, 534, (command, text))
        control.expect("NOOP", 200)

    def test_dataStaysProtected(self) -> None:
        """
        SECURITY 8: PROT stays P after CCC. A clear data connection gets no
        file byte on RETR and stores nothing on STOR; a TLS data connection
        resuming the control session gets the file whole.
        """
        control = self.session()
        session = self.clear(control)
        first, data = support.startTransfer(control, "RETR f.bin")
        self.assertIsNotNone(data, first)
        assert data is not None
        self.assertNotIsInstance(data, ssl.SSLSocket)
        received, _ = support.readUntilClosed(data, 2)
        data.close()
        self.assertEqual(received, b"", "a clear data connection got bytes")
        self.assertGreaterEqual(control.reply(10)[0], 400)

        port = control.epsv()
        clear = socket.create_connection((support.LOOPBACK, port), timeout=5)
        control.send("STOR planted.bin")
        code, _ = control.reply()
        if code < 400:
            try:
                clear.sendall(b"plaintext upload\n" * 100)
                clear.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            support.readUntilClosed(clear, 3)
            self.assertGreaterEqual(control.reply(10)[0], 400)
        clear.close()
        self.assertFalse(
            os.path.exists(os.path.join(self.server.userHome("alice"), "planted.bin"))
        )

        port = control.epsv()
        raw = socket.create_connection((support.LOOPBACK, port), timeout=5)
        tls = control.context.wrap_socket(raw, server_hostname=support.LOOPBACK, session=session)
        self.addCleanup(tls.close)
        control.send("RETR f.bin")
        first = control.reply()
        self.assertEqual(first[0], 150, first)
        received, _ = support.readUntilClosed(tls, 5)
        self.assertEqual(control.reply(10)[0], 226, self.serverLog())
        self.assertEqual(hashlib.sha256(received).hexdigest(), hashlib.sha256(CONTENT).hexdigest())

    def test_noPlaintextLoginAfterCCC(self) -> None:
        """
        SECURITY 8 and 9: after CCC, REIN logs out, and a new USER/PASS in
        plaintext is refused (530) without the password being checked: a
        cleared channel never carries a login.
        """
        control = self.session()
        self.clear(control)
        log = support.LogWatch(self.server)
        log.mark()
        control.expect("REIN", 220)
        control.expect("USER alice", 530)
        control.expect(f"PASS {PASSWORD}", 530)
        control.expect("PWD", 530)
        self.assertNotIn("logged in", log.since())
        self.assertNotIn("failed login", log.since())

    def test_protectedBytesAfterCCCDiscarded(self) -> None:
        """
        A command sent over TLS after the 200 to CCC but before the client's
        close_notify is discarded, not run: DELE does not delete, and no
        reply comes for it.
        """
        control = self.session()
        self.assertEqual(control.command("CCC")[0], 200)
        control.send("DELE f.bin")
        control.sock.settimeout(5)
        control.sock = control.sock.unwrap()  # type: ignore[attr-defined]
        control.protected = False
        code, text = control.command("PWD")
        self.assertEqual(code, 257, text)
        self.assertTrue(os.path.exists(os.path.join(self.server.userHome("alice"), "f.bin")))


class LftpCCCTests(CCCTestCase):
    """
    lftp clears the control channel when the server allows it.
    """

    def test_lftp(self) -> None:
        """
        lftp with C{set ftp:ssl-use-ccc yes} sends CCC (200), then lists and
        downloads a file byte for byte over protected data connections
        (C{--session-reuse optional}: lftp does not resume the TLS session
        on data connections after CCC).
        """
        self.startServer("--allow-ccc", "--session-reuse", "optional")
        local = os.path.abspath(self.mktemp())
        os.makedirs(local)
        result = support.lftp(
            self.server,
            f"set ftp:ssl-use-ccc yes; debug 5; cls -1; get f.bin -o {local}/f.bin",
            user=f"alice,{PASSWORD}",
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:] + self.serverLog().encode())
        self.assertIn(b"---> CCC", result.stderr)
        self.assertIn(b"<--- 200 CCC", result.stderr)
        self.assertEqual(result.stdout.split(), [b"f.bin"])
        with open(os.path.join(local, "f.bin"), "rb") as f:
            self.assertEqual(f.read(), CONTENT)
        self.assertIn("in plaintext after CCC", self.server.log())
