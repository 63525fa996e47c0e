"""
Client certificates (SECURITY.md case 21) and logging in with them
(L{txftps._certauth}), against the real C{twistd -n ftps} on loopback.

One throwaway CA (L{support.ClientPKI}) issues the server's certificate and
the good client certificates (CN=alice, CN=bob, CN=dave); the bad ones are a
self-signed CN=alice, a CN=alice from another CA and an expired CN=alice from
the right CA. Clients are curl and lftp (C{--cert}/C{--key},
C{ssl:cert-file}) and Python's C{ssl} on raw sockets, where the test must see
exactly which replies came or that none did.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
from typing import Any

from twisted.trial import unittest

from tests import support

PASSWORD = "users-pw"

#: What the file in alice's home holds.
SECRET = os.urandom(40000)


def tlsVersions() -> list[tuple[str, ssl.TLSVersion]]:
    return [("TLS 1.2", ssl.TLSVersion.TLSv1_2), ("TLS 1.3", ssl.TLSVersion.TLSv1_3)]


class CertificateTestCase(unittest.TestCase):
    """
    Starts, for each test, a server with C{--client-ca} and C{serverArgs},
    users alice and bob (password L{PASSWORD}), and C{secret.bin} in alice's
    home.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.pki = support.ClientPKI(directory)
        self.server = self.startServer(*self.serverArgs, *self.moreArgs())

    def moreArgs(self) -> tuple[str, ...]:
        return ()

    def startServer(self, *args: str) -> support.TwistdServer:
        server = support.TwistdServer(
            "--client-ca",
            self.pki.caFile,
            *args,
            ca=self.pki.ca,
            users={"alice": PASSWORD, "bob": PASSWORD},
            anonymous=False,
        )
        os.makedirs(server.userHome("alice"))
        with open(os.path.join(server.userHome("alice"), "secret.bin"), "wb") as f:
            f.write(SECRET)
        server.start()
        self.addCleanup(server.stop)
        return server

    def serverLog(self) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-4000:]

    # clients

    def curlWith(
        self,
        certificate: support.ClientCertificate | None,
        *args: str,
        user: str = f"alice:{PASSWORD}",
        implicit: bool = False,
        path: str = "/",
    ) -> subprocess.CompletedProcess[bytes]:
        """
        curl against the server presenting C{certificate} (none if C{None}).
        """
        extra: list[str] = []
        if certificate is not None:
            extra = ["--cert", certificate.certFile, "--key", certificate.keyFile]
        return support.curl(self.server, *extra, *args, implicit=implicit, path=path, user=user)

    def context(
        self,
        certificate: support.ClientCertificate | None,
        version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """
        A verifying client context presenting C{certificate} (none if
        C{None}), limited to TLS C{version} if given.
        """
        if certificate is None:
            context = self.pki.ca.clientContext()
        else:
            context = certificate.context(self.pki.ca)
        if version is not None:
            context.minimum_version = version
            context.maximum_version = version
        return context

    def control(
        self,
        certificate: support.ClientCertificate | None,
        implicit: bool = False,
        version: ssl.TLSVersion | None = None,
    ) -> support.ControlConnection:
        """
        A raw control connection over TLS (explicit after C{AUTH TLS}, or
        implicit) presenting C{certificate}.
        """
        control = support.ControlConnection(
            self.server, implicit=implicit, context=self.context(certificate, version)
        )
        self.addCleanup(control.close)
        if not implicit:
            control.auth()
        return control

    # assertions

    def assertCurlRefused(self, certificate: support.ClientCertificate | None, what: str) -> None:
        """
        curl with C{certificate} and alice's right password fails on the
        explicit and the implicit port, listing nothing.
        """
        for implicit in (False, True):
            result = self.curlWith(certificate, "--list-only", implicit=implicit)
            label = f"{what} ({'implicit' if implicit else 'explicit'})"
            self.assertNotEqual(result.returncode, 0, label + self.serverLog())
            self.assertEqual(result.stdout, b"", label)

    def assertHandshakeRefused(
        self,
        certificate: support.ClientCertificate | None,
        what: str,
        version: ssl.TLSVersion | None = None,
    ) -> None:
        """
        With C{certificate}, neither the explicit nor the implicit port lets
        the client reach a login: the handshake fails or the server closes
        the connection before answering C{USER} (implicit: before the
        greeting).
        """
        for implicit in (False, True):
            label = f"{what} ({'implicit' if implicit else 'explicit'})"
            got: Any = None
            try:
                control = self.control(certificate, implicit=implicit, version=version)
                got = control.command("USER alice")
            except (ssl.SSLError, ConnectionError, support.PeerClosed, TimeoutError):
                pass
            if got is not None:
                self.fail(f"{label}: the server answered {got!r}" + self.serverLog())

    def assertNoLogin(self) -> None:
        self.assertNotIn("logged in", self.server.log(), self.serverLog())

    def assertSameBytes(self, actual: bytes, expected: bytes, what: str) -> None:
        if actual != expected:
            self.fail(
                f"{what}: got {len(actual)} bytes (sha256"
                f" {hashlib.sha256(actual).hexdigest()[:16]}), expected {len(expected)}"
                + self.serverLog()
            )


class RequiredClientCertificateTests(CertificateTestCase):
    """
    C{--client-cert required}: only a certificate from the client CA, valid
    now, lets a client log in (SECURITY.md case 21).
    """

    serverArgs = ("--client-cert", "required")

    def test_curlBadCertificates(self) -> None:
        """
        SECURITY 21: curl with no certificate, a self-signed one, one from
        another CA or an expired one, and alice's right password, fails on
        both ports and lists nothing; nobody logs in.
        """
        self.assertCurlRefused(None, "no certificate")
        self.assertCurlRefused(self.pki.selfSigned, "self-signed")
        self.assertCurlRefused(self.pki.foreign, "other CA")
        self.assertCurlRefused(self.pki.expired, "expired")
        self.assertNoLogin()

    def test_rawBadCertificates(self) -> None:
        """
        SECURITY 21: over TLS 1.2 and TLS 1.3, a client with no certificate,
        a self-signed one, one from another CA or an expired one never gets
        an answer to C{USER} (explicit) or a greeting (implicit).
        """
        for name, version in tlsVersions():
            self.assertHandshakeRefused(None, f"no certificate, {name}", version)
            self.assertHandshakeRefused(self.pki.selfSigned, f"self-signed, {name}", version)
            self.assertHandshakeRefused(self.pki.foreign, f"other CA, {name}", version)
            self.assertHandshakeRefused(self.pki.expired, f"expired, {name}", version)
        self.assertNoLogin()

    def test_goodCertificate(self) -> None:
        """
        A certificate from the client CA, with USER/PASS, logs in on both
        ports: curl lists alice's home and downloads her file byte for byte.
        """
        for implicit in (False, True):
            listing = self.curlWith(self.pki.alice, "--list-only", implicit=implicit)
            self.assertEqual(listing.returncode, 0, listing.stderr + self.serverLog().encode())
            self.assertEqual(listing.stdout.split(), [b"secret.bin"])
            download = self.curlWith(self.pki.alice, implicit=implicit, path="/secret.bin")
            self.assertEqual(download.returncode, 0, download.stderr)
            self.assertSameBytes(download.stdout, SECRET, "download")

    def test_goodCertificateStillNeedsPassword(self) -> None:
        """
        Without C{--cert-login}, a good certificate is not a login: C{USER}
        gets 331, and a wrong password is refused.
        """
        control = self.control(self.pki.alice)
        control.expect("USER alice", 331)
        control.expect("PASS wrong", 530)
        self.assertNoLogin()


class CertificateLoginTests(CertificateTestCase):
    """
    C{--cert-login}: a verified certificate whose CN is the C{USER} name logs
    in with 232, no C{PASS}.
    """

    serverArgs = ("--client-cert", "required", "--cert-login")

    def test_curlCertificateLogin(self) -> None:
        """
        curl with alice's certificate and C{-u alice:} logs in with 232
        without sending C{PASS}, downloads her file and uploads one, byte for
        byte.
        """
        download = self.curlWith(self.pki.alice, "-v", user="alice:", path="/secret.bin")
        self.assertEqual(download.returncode, 0, download.stderr + self.serverLog().encode())
        self.assertIn(b"< 232 ", download.stderr)
        self.assertNotIn(b"> PASS", download.stderr)
        self.assertSameBytes(download.stdout, SECRET, "download")
        local = os.path.abspath(self.mktemp())
        payload = os.urandom(50000)
        with open(local, "wb") as f:
            f.write(payload)
        upload = self.curlWith(self.pki.alice, "-v", "-T", local, user="alice:", path="/up.bin")
        self.assertEqual(upload.returncode, 0, upload.stderr + self.serverLog().encode())
        self.assertIn(b"< 232 ", upload.stderr)
        self.assertNotIn(b"> PASS", upload.stderr)
        with open(os.path.join(self.server.userHome("alice"), "up.bin"), "rb") as f:
            self.assertSameBytes(f.read(), payload, "upload")

    def test_rawCertificateLogin(self) -> None:
        """
        On the wire: C{USER alice} with alice's certificate is answered 232 at
        once; the session is alice's (C{PASS} is then out of sequence, 503),
        on the explicit and the implicit port.
        """
        for implicit in (False, True):
            control = self.control(self.pki.alice, implicit=implicit)
            control.expect("USER alice", 232)
            self.assertEqual(control.command("PASS anything")[0], 503)
            control.protect()
            _, final, listing = support.downloadOver(control, "NLST")
            self.assertEqual(final[0], 226, final)
            self.assertEqual(listing.split(), [b"secret.bin"])

    def test_otherCertificateNeedsPassword(self) -> None:
        """
        bob's certificate (CN=bob) with C{USER alice} falls back to 331: the
        right password logs in, an empty one (what curl sends for
        C{-u alice:}) does not.
        """
        control = self.control(self.pki.bob)
        control.expect("USER alice", 331)
        control.expect(f"PASS {PASSWORD}", 230)
        result = self.curlWith(self.pki.bob, "-v", "--list-only", user="alice:")
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertIn(b"< 331 ", result.stderr)
        self.assertEqual(result.stdout, b"")

    def test_certificateNamesItsOwnUser(self) -> None:
        """
        bob's certificate logs bob in (232) into bob's home: what he uploads
        lands in C{HOME/bob}, not in alice's.
        """
        control = self.control(self.pki.bob)
        control.expect("USER bob", 232)
        control.protect()
        first, final = support.uploadOver(control, "STOR bob.txt", b"bob was here\n")
        self.assertEqual(final[0], 226, (first, final))
        with open(os.path.join(self.server.userHome("bob"), "bob.txt"), "rb") as f:
            self.assertEqual(f.read(), b"bob was here\n")
        self.assertFalse(os.path.exists(os.path.join(self.server.userHome("alice"), "bob.txt")))

    def test_unusableCommonNames(self) -> None:
        """
        A good certificate whose CN is not a usable home name (C{..},
        C{../escape}, C{a/b}) does not log in by certificate: C{USER} with
        that name gets 331, and no directory appears outside the homes.
        """
        outside = sorted(os.listdir(self.server.directory))
        for number, cn in enumerate(("..", "../escape", "a/b")):
            certificate = self.pki.issue(cn, f"odd{number}")
            control = self.control(certificate)
            code, text = control.command(f"USER {cn}")
            self.assertEqual(code, 331, (cn, text))
        self.assertEqual(sorted(os.listdir(self.server.directory)), outside)
        self.assertEqual(sorted(os.listdir(self.server.home)), ["alice"])
        self.assertNoLogin()

    def test_lftpCertificateLogin(self) -> None:
        """
        lftp with C{ssl:cert-file}/C{ssl:key-file} and an empty password logs
        in by certificate (232), uploads and downloads a file byte for byte.
        """
        local = os.path.abspath(self.mktemp())
        os.makedirs(local)
        payload = os.urandom(30000)
        with open(os.path.join(local, "up.bin"), "wb") as f:
            f.write(payload)
        script = (
            f"set ssl:cert-file {self.pki.alice.certFile};"
            f" set ssl:key-file {self.pki.alice.keyFile};"
            f" debug 5; put {local}/up.bin -o up.bin;"
            f" get secret.bin -o {local}/secret.bin"
        )
        result = support.lftp(self.server, script, user="alice,")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:] + self.serverLog().encode())
        self.assertIn(b"<--- 232 ", result.stderr)
        self.assertNotIn(b"---> PASS", result.stderr)
        with open(os.path.join(self.server.userHome("alice"), "up.bin"), "rb") as f:
            self.assertSameBytes(f.read(), payload, "lftp upload")
        with open(os.path.join(local, "secret.bin"), "rb") as f:
            self.assertSameBytes(f.read(), SECRET, "lftp download")


class CertificateMapTests(CertificateTestCase):
    """
    C{--cert-map FILE}: the file, not the CN, says which user a certificate
    names.
    """

    serverArgs = ("--client-cert", "required", "--cert-login")

    def moreArgs(self) -> tuple[str, ...]:
        path = os.path.join(self.pki.directory, "cert-map")
        subject = self.pki.bob.certificate.subject.rfc4514_string()
        with open(path, "w") as f:
            f.write(
                f"# certificate map\n\n{self.pki.dave.fingerprint} alice\nsubject:{subject} bob\n"
            )
        return ("--cert-map", path)

    def test_fingerprintMapsToUser(self) -> None:
        """
        dave's certificate (CN=dave), mapped by fingerprint to alice, logs in
        as alice with 232 and sees alice's home.
        """
        control = self.control(self.pki.dave)
        control.expect("USER alice", 232)
        control.protect()
        _, final, data = support.downloadOver(control, "RETR secret.bin")
        self.assertEqual(final[0], 226, final)
        self.assertSameBytes(data, SECRET, "alice's file through dave's certificate")

    def test_subjectMapsToUser(self) -> None:
        """
        bob's certificate, mapped by its subject, logs in as bob with 232.
        """
        control = self.control(self.pki.bob)
        control.expect("USER bob", 232)
        self.assertIn("bob logged in", self.server.log())

    def test_unmappedCertificate(self) -> None:
        """
        With a map file, alice's certificate (CN=alice, not in the map) does
        not log in alice by certificate (331), and dave's certificate does not
        log in dave (its CN is no longer used).
        """
        control = self.control(self.pki.alice)
        control.expect("USER alice", 331)
        control = self.control(self.pki.dave)
        control.expect("USER dave", 331)
        self.assertNoLogin()


class OptionalClientCertificateTests(CertificateTestCase):
    """
    C{--client-cert optional}: no certificate is fine, a bad one is not.
    """

    serverArgs = ("--client-cert", "optional")

    def test_noCertificate(self) -> None:
        """
        A client without a certificate logs in with USER/PASS: raw, and curl
        on both ports.
        """
        control = self.control(None)
        control.login("alice", PASSWORD)
        for implicit in (False, True):
            result = self.curlWith(None, "--list-only", implicit=implicit)
            self.assertEqual(result.returncode, 0, result.stderr + self.serverLog().encode())
            self.assertEqual(result.stdout.split(), [b"secret.bin"])

    def test_badCertificates(self) -> None:
        """
        SECURITY 21: a self-signed certificate, one from another CA and an
        expired one are refused even though certificates are optional; curl
        and raw clients alike get no login.
        """
        for certificate, what in (
            (self.pki.selfSigned, "self-signed"),
            (self.pki.foreign, "other CA"),
            (self.pki.expired, "expired"),
        ):
            self.assertCurlRefused(certificate, what)
            self.assertHandshakeRefused(certificate, what)
        self.assertNoLogin()

    def test_goodCertificate(self) -> None:
        """
        A good certificate with USER/PASS logs in.
        """
        control = self.control(self.pki.alice)
        control.login("alice", PASSWORD)


class DataConnectionCertificateTests(CertificateTestCase):
    """
    A TLS data connection must present the same client certificate as its
    control connection (with C{--session-reuse optional}, so that a fresh
    TLS session is allowed and only the certificate decides).
    """

    serverArgs = ("--client-cert", "optional", "--session-reuse", "optional")

    def retrieve(
        self,
        controlCertificate: support.ClientCertificate | None,
        dataCertificate: support.ClientCertificate | None,
    ) -> tuple[list[int], int, bytes]:
        """
        Log in as alice over a control connection presenting
        C{controlCertificate}, then C{RETR secret.bin} over a PASV data
        connection wrapped in a fresh context presenting C{dataCertificate}
        (its TLS session is not resumed).

        @return: the preliminary reply codes, the final code, the bytes
            received on the data connection.
        """
        control = self.control(controlCertificate)
        control.login("alice", PASSWORD)
        control.protect()
        port = control.pasv()
        raw = socket.create_connection((support.LOOPBACK, port), timeout=5)
        self.addCleanup(raw.close)
        data: Any = raw
        try:
            data = self.context(dataCertificate).wrap_socket(raw, server_hostname=support.LOOPBACK)
            self.addCleanup(data.close)
            self.assertFalse(data.session_reused)
        except (ssl.SSLError, ConnectionError):
            data = None
        control.send("RETR secret.bin")
        received = b""
        if data is not None:
            received, _ = support.readUntilClosed(data, 5)
        preliminary, (final, _) = control.finalReply(10)
        return preliminary, final, received

    def test_otherCertificateRefused(self) -> None:
        """
        Control connection with alice's certificate, data connection with
        bob's (valid, same CA): 522, zero bytes.
        """
        _, final, received = self.retrieve(self.pki.alice, self.pki.bob)
        self.assertEqual(final, 522, self.serverLog())
        self.assertEqual(received, b"")

    def test_noCertificateRefused(self) -> None:
        """
        Control connection with alice's certificate, data connection with
        none: 522, zero bytes.
        """
        _, final, received = self.retrieve(self.pki.alice, None)
        self.assertEqual(final, 522, self.serverLog())
        self.assertEqual(received, b"")

    def test_certificateWithoutControlCertificateRefused(self) -> None:
        """
        Control connection without a certificate, data connection with
        alice's: 522, zero bytes.
        """
        _, final, received = self.retrieve(None, self.pki.alice)
        self.assertEqual(final, 522, self.serverLog())
        self.assertEqual(received, b"")

    def test_sameCertificate(self) -> None:
        """
        The same certificate on both connections (a fresh session on the
        data connection): the file arrives whole, 226.
        """
        preliminary, final, received = self.retrieve(self.pki.alice, self.pki.alice)
        self.assertEqual((preliminary, final), ([150], 226), self.serverLog())
        self.assertSameBytes(received, SECRET, "download")

    def test_activeOtherCertificateRefused(self) -> None:
        """
        The same rule in active mode (PORT; the server connects, the client
        runs the TLS client side): alice's control connection, bob's
        certificate on the data connection, 522 and zero bytes; alice's own
        certificate gets the file.
        """
        control = self.control(self.pki.alice)
        control.login("alice", PASSWORD)
        control.protect()
        for certificate, expected in ((self.pki.bob, 522), (self.pki.alice, 226)):
            listener = socket.create_server((support.LOOPBACK, 0))
            self.addCleanup(listener.close)
            listener.settimeout(5)
            port = listener.getsockname()[1]
            control.expect(f"PORT {support.portArgument(support.LOOPBACK, port)}", 200)
            control.send("RETR secret.bin")
            raw, _ = listener.accept()
            self.addCleanup(raw.close)
            received = b""
            try:
                data = self.context(certificate).wrap_socket(raw, server_hostname=support.LOOPBACK)
                self.addCleanup(data.close)
                received, _ = support.readUntilClosed(data, 5)
            except (ssl.SSLError, ConnectionError):
                pass
            _, (final, text) = control.finalReply(10)
            self.assertEqual(final, expected, (certificate.name, text, self.serverLog()))
            if expected == 522:
                self.assertEqual(received, b"")
            else:
                self.assertSameBytes(received, SECRET, "active download")

    def test_resumedSessionCarriesCertificate(self) -> None:
        """
        A data connection resuming the control connection's session (which
        carries alice's certificate) is accepted.
        """
        control = self.control(self.pki.alice)
        control.login("alice", PASSWORD)
        control.protect()
        _, final, received = support.downloadOver(control, "RETR secret.bin")
        self.assertEqual(final[0], 226, self.serverLog())
        self.assertSameBytes(received, SECRET, "download")


class BadCertificateOptionTests(unittest.TestCase):
    """
    Client-certificate options that cannot work stop C{twistd ftps} at once
    with one line on standard error, no traceback.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.ca = support.ThrowawayCA(self.directory)
        self.tls = ("--cert", self.ca.certFile, "--key", self.ca.keyFile)

    def refused(self, *args: str) -> str:
        return support.refusedStart(*self.tls, *args)

    def test_requiredWithoutCA(self) -> None:
        """
        C{--client-cert required} (or optional) without C{--client-ca}.
        """
        self.assertIn("--client-ca", self.refused("--client-cert", "required"))
        self.assertIn("--client-ca", self.refused("--client-cert", "optional"))

    def test_certLoginWithoutClientCertificates(self) -> None:
        """
        C{--cert-login} without C{--client-cert optional|required}.
        """
        self.assertIn("--client-cert", self.refused("--cert-login"))
        self.assertIn(
            "--client-cert",
            self.refused("--cert-login", "--client-ca", self.ca.caFile),
        )

    def test_badClientCertMode(self) -> None:
        """
        C{--client-cert sometimes}.
        """
        self.assertIn(
            "--client-cert",
            self.refused("--client-cert", "sometimes", "--client-ca", self.ca.caFile),
        )

    def test_unusableClientCA(self) -> None:
        """
        A C{--client-ca} that is missing, a directory, or holds no PEM
        certificate (a private key only).
        """
        missing = os.path.join(self.directory, "missing.pem")
        for path in (missing, self.directory, self.ca.keyFile):
            line = self.refused("--client-cert", "required", "--client-ca", path)
            self.assertIn(path, line)

    def test_malformedCertMap(self) -> None:
        """
        A C{--cert-map} line without a user, or with a fingerprint that is not
        SHA-256, names the file and line; a missing map file is named too.
        """
        base = ("--client-cert", "required", "--client-ca", self.ca.caFile, "--cert-login")
        for number, content in (
            (1, "just-one-word\n"),
            (2, "# comment\nAB:CD:EF alice\n"),
        ):
            path = os.path.join(self.directory, f"map{number}")
            with open(path, "w") as f:
                f.write(content)
            line = self.refused(*base, "--cert-map", path)
            self.assertIn(path, line)
            self.assertIn(f"line {number}", line)
        missing = os.path.join(self.directory, "no-such-map")
        self.assertIn(missing, self.refused(*base, "--cert-map", missing))
