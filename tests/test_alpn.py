"""
ALPN on the real C{twistd -n ftps}, control and data connections, explicit
(C{AUTH TLS}) and implicit: a client offering C{ftp} (FileZilla does) gets
C{ftp}; a client offering ALPN without C{ftp} is refused with a
C{no_application_protocol} alert (120); a client offering no ALPN is served as
before. Clients: Python's C{ssl}, C{openssl s_client} and C{gnutls-cli}.

Before txftps installed its own ALPN callback, Twisted's failed on these
connections and every client offering ALPN got an C{internal_error} alert (80).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess

from tests import support
from tests.support import ControlConnection, readFile, readUntilClosed, writeFile

USER = "alice"
PASSWORD = "secret"

# OpenSSL's text for alert 120, as Python's ssl module reports it.
_NO_APPLICATION_PROTOCOL = "alert no application protocol"


def alpnContext(server: support.TwistdServer, protocols: list[str] | None) -> ssl.SSLContext:
    """
    A client context trusting the server's throwaway CA and offering ALPN
    C{protocols} (none when C{None}).
    """
    context = server.ca.clientContext()
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    return context


class ALPNTestCase(support.ServerLogTestCase):
    """
    A server with user C{alice} for each test, a file to download, and
    sessions over Python's C{ssl} with a chosen ALPN offer.
    """

    implicit = False

    def setUp(self) -> None:
        self.server = support.TwistdServer(users={USER: PASSWORD})
        self.server.start()
        self.addCleanup(self.server.stop)
        self.payload = os.urandom(256 * 1024 + 3)
        writeFile(os.path.join(self.server.userHome(USER), "file.bin"), self.payload)

    def serverLog(self, tail: int = 6000) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-tail:]

    def connect(self, protocols: list[str] | None) -> ControlConnection:
        """
        A control connection offering ALPN C{protocols}, TLS on (C{AUTH TLS}
        on the explicit port), not logged in.
        """
        control = ControlConnection(
            self.server, implicit=self.implicit, context=alpnContext(self.server, protocols)
        )
        self.addCleanup(control.close)
        self.assertEqual(control.greeting[0], 220, control.greeting)
        if not self.implicit:
            control.auth()
        return control

    def session(self, protocols: list[str] | None) -> ControlConnection:
        """
        L{connect}, then log in and C{PROT P}.
        """
        control = self.connect(protocols)
        control.login(USER, PASSWORD)
        control.protect()
        return control

    def refusedHandshake(self, protocols: list[str]) -> ssl.SSLError:
        """
        Open a control connection offering C{protocols}; its handshake must
        fail.

        @return: the client's error.
        """
        context = alpnContext(self.server, protocols)
        port = self.server.implicitPort if self.implicit else self.server.explicitPort
        raw = socket.create_connection((support.LOOPBACK, port), timeout=5)
        self.addCleanup(raw.close)
        if not self.implicit:
            self.assertTrue(support.readReply(raw).startswith(b"220 "))
            raw.sendall(b"AUTH TLS\r\n")
            self.assertTrue(support.readReply(raw).startswith(b"234 "))
        return self.assertRaises(
            ssl.SSLError, context.wrap_socket, raw, server_hostname=support.LOOPBACK
        )

    def transferBoth(self, control: ControlConnection, expectedALPN: str | None) -> None:
        """
        Download and upload over PROT P data connections that offer the
        control connection's ALPN and resume its session; bytes compared.
        """
        first, data = support.startTransfer(control, "RETR file.bin")
        self.assertEqual(first[0], 150, first)
        assert isinstance(data, ssl.SSLSocket)
        self.assertEqual(data.selected_alpn_protocol(), expectedALPN)
        self.assertTrue(data.session_reused)
        received, _ = readUntilClosed(data, 10)
        data.close()
        self.assertEqual(control.reply(10)[0], 226, self.serverLog())
        self.assertSameBytes(received, self.payload, "download")

        first, data = support.startTransfer(control, "STOR up.bin")
        self.assertEqual(first[0], 150, first)
        assert isinstance(data, ssl.SSLSocket)
        self.assertEqual(data.selected_alpn_protocol(), expectedALPN)
        self.assertTrue(data.session_reused)
        data.sendall(self.payload)
        support.finishUpload(data)
        self.assertEqual(control.reply(10)[0], 226, self.serverLog())
        self.assertSameBytes(
            readFile(os.path.join(self.server.userHome(USER), "up.bin")), self.payload, "upload"
        )


class PythonSSLExplicitTests(ALPNTestCase):
    """
    Python's C{ssl} with ALPN on the explicit port (C{AUTH TLS}).
    """

    def test_ftpSelected(self) -> None:
        """
        A client offering ALPN C{ftp} completes the handshake with C{ftp}
        selected, logs in, and downloads and uploads byte-exact over data
        connections that also offer C{ftp} and resume the session.
        """
        control = self.session(["ftp"])
        self.assertEqual(control.sock.selected_alpn_protocol(), "ftp")  # type: ignore[attr-defined]
        self.transferBoth(control, "ftp")

    def test_ftpAmongOthers(self) -> None:
        """
        A client offering C{h2}, C{http/1.1} and C{ftp} gets C{ftp}.
        """
        control = self.session(["h2", "http/1.1", "ftp"])
        self.assertEqual(control.sock.selected_alpn_protocol(), "ftp")  # type: ignore[attr-defined]

    def test_noALPN(self) -> None:
        """
        A client offering no ALPN is served as before: no protocol selected,
        transfers work.
        """
        control = self.session(None)
        self.assertIsNone(control.sock.selected_alpn_protocol())  # type: ignore[attr-defined]
        self.transferBoth(control, None)

    def test_otherProtocolRefused(self) -> None:
        """
        A client offering ALPN without C{ftp} is refused with a
        C{no_application_protocol} alert, and the server logs why.
        """
        watch = support.LogWatch(self.server)
        error = self.refusedHandshake(["http/1.1"])
        self.assertIn(_NO_APPLICATION_PROTOCOL, str(error))
        self.assertTrue(watch.waitFor("offered ALPN 'http/1.1' without ftp"), self.serverLog())

    def test_dataOtherProtocolRefused(self) -> None:
        """
        A data connection offering ALPN without C{ftp} (resuming the control
        connection's session) is refused with a C{no_application_protocol}
        alert; the download gets 425 or 522, no byte moves, and the session
        goes on.
        """
        control = self.session(["ftp"])
        self.assertOtherProtocolRefused(control, "RETR file.bin")
        control.context.set_alpn_protocols(["ftp"])
        self.transferBoth(control, "ftp")

    def assertOtherProtocolRefused(self, control: ControlConnection, command: str) -> None:
        """
        Open a data connection for C{command} that offers ALPN C{http/1.1}
        only: the server refuses its handshake with a
        C{no_application_protocol} alert, and C{command} gets 425 or 522.
        """
        port = control.epsv()
        # Python's ssl applies ALPN per connection: later sockets of the same
        # context (which the session needs) offer the new list.
        control.context.set_alpn_protocols(["http/1.1"])
        raw = socket.create_connection((support.LOOPBACK, port), timeout=5)
        self.addCleanup(raw.close)
        error = self.assertRaises(ssl.SSLError, control.secureData, raw)
        self.assertIn(_NO_APPLICATION_PROTOCOL, str(error))
        control.send(command)
        _, final = control.finalReply()
        self.assertIn(final[0], (425, 522), final)

    def test_dataUploadOtherProtocolRefused(self) -> None:
        """
        An upload whose data connection offers ALPN without C{ftp} is
        refused: 425 or 522, and no file is created.
        """
        control = self.session(["ftp"])
        self.assertOtherProtocolRefused(control, "STOR refused.bin")
        self.assertFalse(os.path.exists(os.path.join(self.server.userHome(USER), "refused.bin")))


class PythonSSLImplicitTests(PythonSSLExplicitTests):
    """
    The same on the implicit port.
    """

    implicit = True


class ExternalClientTestCase(ALPNTestCase):
    """
    Runs C{openssl s_client} and C{gnutls-cli} against the server: the
    explicit port with their FTP STARTTLS support, the implicit port plain.
    """

    def runClient(self, args: list[str], stdin: bytes) -> str:
        """
        Run a client program to its end with C{stdin}; its output, stdout
        and stderr together.
        """
        result = subprocess.run(
            args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30
        )
        return result.stdout.decode("utf-8", "replace")

    def port(self) -> str:
        return str(self.server.implicitPort if self.implicit else self.server.explicitPort)

    def openssl(self, alpn: str) -> str:
        args = [support.requireProgram("openssl"), "s_client"]
        if not self.implicit:
            args += ["-starttls", "ftp"]
        args += [
            "-connect",
            f"{support.LOOPBACK}:{self.port()}",
            "-CAfile",
            self.server.ca.caFile,
            "-verify_return_error",
            "-alpn",
            alpn,
            "-ign_eof",
        ]
        return self.runClient(args, b"QUIT\r\n")

    def gnutls(self, alpn: str) -> str:
        args = [support.requirePackagedProgram("gnutls-cli", "gnutls-bin")]
        if not self.implicit:
            args += ["--starttls-proto=ftp"]
        args += [
            f"--alpn={alpn}",
            f"--x509cafile={self.server.ca.caFile}",
            "--crlf",
            "-p",
            self.port(),
            support.LOOPBACK,
        ]
        return self.runClient(args, b"QUIT\n")


class OpenSSLClientExplicitTests(ExternalClientTestCase):
    """
    C{openssl s_client -alpn} (with C{-starttls ftp}) on the explicit port.
    """

    def test_ftpSelected(self) -> None:
        """
        With C{-alpn ftp} the certificate verifies, C{ftp} is negotiated, and
        the control channel answers C{QUIT} with 221 over TLS (implicit: after
        the 220 greeting, sent over TLS).
        """
        output = self.openssl("ftp")
        self.assertIn("ALPN protocol: ftp", output)
        self.assertIn("Verify return code: 0 (ok)", output)
        self.assertIn("221 ", output)
        if self.implicit:
            self.assertIn("220 ", output)
        self.assertNotIn("alert", output)

    def test_otherProtocolRefused(self) -> None:
        """
        With C{-alpn http/1.1} the server answers with alert 120 and no
        reply passes over TLS.
        """
        output = self.openssl("http/1.1")
        self.assertIn("alert no application protocol", output)
        self.assertIn("SSL alert number 120", output)
        self.assertNotIn("221 ", output)


class OpenSSLClientImplicitTests(OpenSSLClientExplicitTests):
    """
    C{openssl s_client -alpn} on the implicit port.
    """

    implicit = True


class GnuTLSClientExplicitTests(ExternalClientTestCase):
    """
    C{gnutls-cli --alpn} (with C{--starttls-proto=ftp}) on the explicit port:
    GnuTLS, the library FileZilla uses.
    """

    def test_ftpSelected(self) -> None:
        """
        With C{--alpn=ftp} the handshake completes with C{ftp} and C{QUIT}
        gets 221 over TLS.
        """
        output = self.gnutls("ftp")
        self.assertIn("- Application protocol: ftp", output)
        self.assertIn("- Handshake was completed", output)
        self.assertIn("221 ", output)
        self.assertNotIn("alert", output.lower())

    def test_otherProtocolRefused(self) -> None:
        """
        With C{--alpn=http/1.1} GnuTLS receives alert 120.
        """
        output = self.gnutls("http/1.1")
        self.assertIn("Received alert [120]", output)
        self.assertNotIn("Handshake was completed", output)
        self.assertNotIn("221 ", output)


class GnuTLSClientImplicitTests(GnuTLSClientExplicitTests):
    """
    C{gnutls-cli --alpn} on the implicit port.
    """

    implicit = True
