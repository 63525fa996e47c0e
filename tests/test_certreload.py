"""
Tests for L{txftps._certreload}: SIGHUP reloads the certificate, the key and
the client CAs; new connections get the new material, open sessions keep
theirs (and their data connections still resume), and a broken file keeps
the old material with one error line. In memory with a fake reactor, and
against the real C{twistd -n ftps} with a real signal.
"""

from __future__ import annotations

import hashlib
import os
import signal
import ssl
from typing import Any

import trustme
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.cred.portal import Portal
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from tests import support
from tests.support import memoryClient, memoryClientContext, memoryHandshake
from tests.test_tlsprofiles import writeSelfSigned
from txftps._certreload import CertificateReloader
from txftps.server import FTPSFactory
from txftps.tap import FTPSService, Options, makeService
from txftps.tls import FIPS, CertificateFiles, ServerTLS

PAYLOAD = os.urandom(200_000)
DER = Encoding.DER


def derFingerprint(der: bytes) -> str:
    """
    The SHA-256 fingerprint of a DER certificate as txftps logs it
    (computed here with hashlib).
    """
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def pemFingerprint(pem: bytes) -> str:
    """
    The SHA-256 fingerprint of the first certificate in C{pem}.
    """
    return derFingerprint(ssl.PEM_cert_to_DER_cert(pem.decode("ascii")))


def installCertificate(leaf: trustme.LeafCert, certFile: str, keyFile: str) -> str:
    """
    Overwrite a server's certificate and key files with C{leaf}.

    @return: the new certificate's fingerprint.
    """
    support.writeFile(keyFile, leaf.private_key_pem.bytes())
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    support.writeFile(certFile, chain)
    return pemFingerprint(chain)


class _FakeReactor:
    """
    Records what a signal handler hands to C{callFromThread}.
    """

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def callFromThread(self, f: Any, *args: Any) -> None:
        self.calls.append(f)


class ReloaderTests(SynchronousTestCase):
    """
    L{CertificateReloader.reload} swaps the material of every factory, or
    nothing.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.ca = trustme.CA()
        self.certFile = os.path.join(self.directory, "cert.pem")
        self.keyFile = os.path.join(self.directory, "key.pem")
        self.first = installCertificate(
            self.ca.issue_cert("localhost"), self.certFile, self.keyFile
        )
        self.files = CertificateFiles(FilePath(self.certFile), FilePath(self.keyFile))
        reactor = MemoryReactorClock()
        self.explicit = FTPSFactory(reactor, Portal(None), self.files.load())  # type: ignore[arg-type]
        self.implicit = self.explicit.withImplicitTLS()
        self.reloader = CertificateReloader(
            _FakeReactor(), self.files, [self.explicit, self.implicit]
        )

    def reload(self) -> tuple[ServerTLS | None, list[str], list[str]]:
        """
        Reload, capturing the log.

        @return: the result, the info lines and the error lines.
        """
        with capturedLogs() as events:
            result = self.reloader.reload()
        info = [formatEvent(e) for e in events if e["log_level"] == LogLevel.info]
        errors = [formatEvent(e) for e in events if e["log_level"] == LogLevel.error]
        return result, info, errors

    def test_swapsEveryFactory(self) -> None:
        """
        After the files change, a reload gives the explicit and the implicit
        factory the same new material and logs its fingerprint.
        """
        second = installCertificate(self.ca.issue_cert("localhost"), self.certFile, self.keyFile)
        tls, info, errors = self.reload()
        assert tls is not None
        self.assertEqual(tls.fingerprint, second)
        self.assertIs(self.explicit.tls, tls)
        self.assertIs(self.implicit.tls, tls)
        self.assertEqual(info, [f"certificate reloaded: SHA-256 fingerprint {second}"])
        self.assertEqual(errors, [])

    def test_optionsMadeBeforeKeepTheirCertificate(self) -> None:
        """
        Options a connection took before the reload keep serving the old
        certificate; options taken after serve the new one.
        """
        before = self.explicit.tls.optionsForConnection()
        second = installCertificate(self.ca.issue_cert("localhost"), self.certFile, self.keyFile)
        self.reload()
        after = self.explicit.tls.optionsForConnection()
        for options, expected in ((before, self.first), (after, second)):
            server = SSL.Connection(options.getContext(), None)
            server.set_accept_state()
            client = memoryClient(memoryClientContext())
            memoryHandshake(server, client)
            der = client.get_peer_certificate(as_cryptography=True).public_bytes(DER)
            self.assertEqual(derFingerprint(der), expected)

    def test_brokenCertificateKeepsOld(self) -> None:
        """
        A certificate file that holds no PEM certificate: the reload fails,
        both factories keep the old material, and one error line says why
        and which certificate is still served.
        """
        old = self.explicit.tls
        support.writeFile(self.certFile, b"not a certificate\n")
        tls, info, errors = self.reload()
        self.assertIsNone(tls)
        self.assertIs(self.explicit.tls, old)
        self.assertIs(self.implicit.tls, old)
        self.assertEqual(info, [])
        self.assertEqual(
            errors,
            [
                f"certificate reload failed: no PEM certificate in {self.certFile};"
                f" still serving the certificate with SHA-256 fingerprint {self.first}"
            ],
        )

    def test_keyMismatchKeepsOld(self) -> None:
        """
        A new certificate with the old key (the operator copied one file of
        two): the reload fails and names the mismatch.
        """
        old = self.explicit.tls
        leaf = self.ca.issue_cert("localhost")
        support.writeFile(self.certFile, leaf.cert_chain_pems[0].bytes())
        tls, _, errors = self.reload()
        self.assertIsNone(tls)
        self.assertIs(self.explicit.tls, old)
        self.assertEqual(len(errors), 1)
        self.assertIn("does not match certificate", errors[0])

    def test_profileChecked(self) -> None:
        """
        A reload checks the new material against the profile: an RSA 1024
        certificate is refused and the old one stays.
        """
        cert, key = writeSelfSigned(self.directory, "weak", rsa.generate_private_key(65537, 1024))
        os.replace(cert, self.certFile)
        os.replace(key, self.keyFile)
        tls, _, errors = self.reload()
        self.assertIsNone(tls)
        self.assertEqual(len(errors), 1)
        self.assertIn("does not fit TLS profile compatible", errors[0])
        self.assertIn("RSA key of 1024 bits", errors[0])

    def test_clientCAReloaded(self) -> None:
        """
        With client certificates on, a reload reads the client CA file
        again.
        """
        caFile = os.path.join(self.directory, "clients.pem")
        first, second = trustme.CA(), trustme.CA()
        support.writeFile(caFile, first.cert_pem.bytes())
        files = CertificateFiles(
            FilePath(self.certFile),
            FilePath(self.keyFile),
            clientCA=FilePath(caFile),
            clientCertificates="required",
        )
        self.reloader.files = files
        support.writeFile(caFile, second.cert_pem.bytes())
        tls, info, _ = self.reload()
        assert tls is not None
        self.assertEqual(
            [pemFingerprint(second.cert_pem.bytes())],
            [derFingerprint(c.public_bytes(DER)) for c in tls.clientCAs],
        )
        self.assertIn("1 client CA certificate(s)", info[0])

    def test_signalHandsReloadToReactor(self) -> None:
        """
        Once installed, SIGHUP hands L{CertificateReloader.reload} to the
        reactor (not running it inside the signal handler); removing the
        handler restores the previous one.
        """
        reactor = _FakeReactor()
        reloader = CertificateReloader(reactor, self.files, [self.explicit])
        original = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, original)
        # A handler of the test's own stands for whatever was there before
        # (and keeps a missing reload handler from killing the test run).
        caught: list[int] = []

        def previous(number: int, frame: Any) -> None:
            caught.append(number)

        signal.signal(signal.SIGHUP, previous)
        reloader.installSignalHandler()
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual((reactor.calls, caught), ([reloader.reload], []))
        reloader.removeSignalHandler()
        self.assertIs(signal.getsignal(signal.SIGHUP), previous)
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual((reactor.calls, caught), ([reloader.reload], [signal.SIGHUP]))


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} reloads the material of every endpoint's factory.
    """

    def test_reloaderCoversEveryFactory(self) -> None:
        """
        The service is an L{FTPSService} whose reloader holds the factories
        of the explicit and the implicit endpoints and the files given with
        C{--cert}, C{--key} and C{--tls-profile}; a reload reaches the
        factories the listeners use.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = trustme.CA()
        certFile, keyFile = os.path.join(directory, "c.pem"), os.path.join(directory, "k.pem")
        installCertificate(ca.issue_cert("localhost"), certFile, keyFile)
        options = Options()
        options.parseOptions(
            [
                "--data-dir",
                os.path.join(directory, "data"),
                "--cert",
                certFile,
                "--key",
                keyFile,
                "--tls-profile",
                "fips",
                "--listen",
                "tcp:0",
                "--implicit",
                "tcp:0",
            ]
        )
        top = makeService(options)
        assert isinstance(top, FTPSService)
        factories = [child.factory for child in top]
        self.assertEqual(top.reloader.factories, factories)
        self.assertIs(top.reloader.files.profile, FIPS)
        self.assertEqual(top.reloader.files.certificate.path, certFile)
        second = installCertificate(ca.issue_cert("localhost"), certFile, keyFile)
        with capturedLogs():
            top.reloader.reload()
        self.assertEqual([f.tls.fingerprint for f in factories], [second, second])
        self.assertTrue(all(f.tls.profile is FIPS for f in factories))


class SIGHUPTests(support.ServerLogTestCase):
    """
    A real SIGHUP to a running C{twistd -n ftps}.
    """

    def startServer(self, *args: str) -> support.TwistdServer:
        self.server = support.TwistdServer(*args).start()
        self.addCleanup(self.server.stop)
        support.writeFile(os.path.join(self.server.root, "file.bin"), PAYLOAD)
        self.log = support.LogWatch(self.server)
        return self.server

    def serverLog(self, tail: int = 4000) -> str:
        return "\nserver log:\n" + self.server.log()[-tail:]

    def hangUp(self, expected: str) -> None:
        """
        Send SIGHUP and wait until the server logs C{expected}.
        """
        self.log.mark()
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGHUP)
        if not self.log.waitFor(expected, 10):
            self.fail(f"no {expected!r} after SIGHUP" + self.serverLog())

    def presented(self, implicit: bool) -> str:
        """
        The fingerprint of the certificate a new connection sees.
        """
        control = support.ControlConnection(self.server, implicit=implicit)
        self.addCleanup(control.close)
        if not implicit:
            control.auth()
        assert isinstance(control.sock, ssl.SSLSocket)
        der = control.sock.getpeercert(binary_form=True)
        assert der is not None
        return derFingerprint(der)

    def download(self, control: support.ControlConnection) -> bool:
        """
        Download C{file.bin} on C{control}; the bytes must be right.

        @return: whether the data connection resumed the control session.
        """
        first, data = support.startTransfer(control, "RETR file.bin")
        self.assertEqual(first[0], 150, first)
        assert isinstance(data, ssl.SSLSocket)
        resumed = data.session_reused
        received, _ = support.readUntilClosed(data, 10)
        data.close()
        self.assertEqual(control.reply(10)[0], 226)
        self.assertSameBytes(received, PAYLOAD, "RETR file.bin")
        return resumed

    def test_newCertificate(self) -> None:
        """
        After SIGHUP with a new certificate and key in the files: the server
        logs the new fingerprint; new explicit and implicit connections (and
        curl) get the new certificate; a session opened before still has the
        old one, and its next data connection still resumes its session and
        delivers the file.
        """
        self.startServer()
        ca = self.server.ca
        old = pemFingerprint(support.readFile(ca.certFile))
        session = support.loggedInSession(self.server)
        self.addCleanup(session.close)
        self.assertTrue(self.download(session))
        self.assertEqual(self.presented(implicit=False), old)

        new = installCertificate(ca.ca.issue_cert("127.0.0.1"), ca.certFile, ca.keyFile)
        self.assertNotEqual(new, old)
        self.hangUp(f"certificate reloaded: SHA-256 fingerprint {new}")

        self.assertEqual(self.presented(implicit=False), new)
        self.assertEqual(self.presented(implicit=True), new)
        assert isinstance(session.sock, ssl.SSLSocket)
        der = session.sock.getpeercert(binary_form=True)
        assert der is not None
        self.assertEqual(derFingerprint(der), old)
        self.assertTrue(self.download(session), "old session's data connection not resumed")
        self.assertEqual(session.command("NOOP")[0], 200)
        result = support.curl(self.server, "-o", "-", path="/file.bin")
        self.assertSucceeded(result, "curl after reload")
        self.assertSameBytes(result.stdout, PAYLOAD, "curl after reload")

    def test_brokenCertificateKeepsOld(self) -> None:
        """
        SIGHUP while the certificate file holds garbage: one error line
        (C{certificate reload failed: ...}) and no traceback; new connections
        still get the old certificate. Once the files are right, the next
        SIGHUP serves the new certificate.
        """
        self.startServer()
        ca = self.server.ca
        old = pemFingerprint(support.readFile(ca.certFile))
        support.writeFile(ca.certFile, b"-----BEGIN CERTIFICATE-----\ngarbage\n")
        self.hangUp("certificate reload failed:")
        self.assertTrue(support.waitUntil(lambda: "still serving" in self.log.since(), 5))
        since = self.log.since()
        failures = [line for line in since.splitlines() if "certificate reload" in line]
        self.assertEqual(len(failures), 1, since)
        self.assertIn(f"no PEM certificate in {ca.certFile}", failures[0])
        self.assertIn(f"still serving the certificate with SHA-256 fingerprint {old}", since)
        self.assertNotIn("Traceback", since)
        self.assertEqual(self.presented(implicit=True), old)
        self.assertEqual(self.presented(implicit=False), old)

        new = installCertificate(ca.ca.issue_cert("127.0.0.1"), ca.certFile, ca.keyFile)
        self.hangUp(f"certificate reloaded: SHA-256 fingerprint {new}")
        self.assertEqual(self.presented(implicit=True), new)

    def test_clientCA(self) -> None:
        """
        With C{--client-cert required}, SIGHUP after the C{--client-ca} file
        changed to another CA: a client certificate from the new CA logs in
        on a new connection, one from the old CA no longer does.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        oldCA, newCA = trustme.CA(), trustme.CA()
        caFile = os.path.join(directory, "client-ca.pem")
        support.writeFile(caFile, oldCA.cert_pem.bytes())

        def clientCertificate(ca: trustme.CA, label: str) -> support.ClientCertificate:
            leaf = ca.issue_cert("alice@example.org", common_name="alice")
            return support.ClientCertificate(
                directory, label, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()
            )

        oldClient = clientCertificate(oldCA, "old")
        newClient = clientCertificate(newCA, "new")
        self.startServer("--client-cert", "required", "--client-ca", caFile)

        def logsIn(client: support.ClientCertificate) -> bool:
            try:
                control = support.ControlConnection(
                    self.server, implicit=True, context=client.context(self.server.ca)
                )
            except (ssl.SSLError, ConnectionError, support.PeerClosed):
                return False
            self.addCleanup(control.close)
            try:
                control.login("anonymous", "a@b")
            except (ssl.SSLError, ConnectionError, support.PeerClosed):
                return False
            return True

        self.assertTrue(logsIn(oldClient))
        self.assertFalse(logsIn(newClient))
        support.writeFile(caFile, newCA.cert_pem.bytes())
        self.hangUp("certificate reloaded: SHA-256 fingerprint")
        self.assertIn("1 client CA certificate(s)", self.log.since())
        self.assertTrue(logsIn(newClient))
        self.assertFalse(logsIn(oldClient))
