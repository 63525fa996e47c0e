"""
Tests for L{txftps.tap}: the C{twistd ftps} options, L{makeService}, and the
real C{twistd -n ftps} started as a subprocess for what only a process shows
(exit status, standard error, the generated certificate).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.cred import credentials, error
from twisted.logger import PredicateResult
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from tests.support import refusedStart
from txftps._datachannel import PassivePortRange
from txftps._logging import QuietPortsFilter, placeServerFiles
from txftps.auth import UsernamePassword
from txftps.server import FTPSFactory, ProxyProtocolFactory
from txftps.tap import Options, makeService
from txftps.tls import ServerTLS, fingerprint, generateSelfSigned

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_FINGERPRINT = re.compile(r"fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


class OptionsTestCase(SynchronousTestCase):
    """
    Parses options with a temporary C{--data-dir} so that nothing is
    generated in the user's real data directory.
    """

    def setUp(self) -> None:
        self.base = FilePath(self.mktemp())
        self.base.makedirs()
        self.dataDir = self.base.child("data").path

    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--data-dir", self.dataDir, *args])
        return options

    def assertOptionError(self, *args: str) -> str:
        """
        Parsing C{args} stops with L{SystemExit} and one line that starts
        with C{twistd ftps: error:}.
        """
        exit = self.assertRaises(SystemExit, self.parse, *args)
        message = exit.code
        self.assertIsInstance(message, str, f"{args}: exit code {message!r}")
        assert isinstance(message, str)
        self.assertTrue(message.startswith("twistd ftps: error: "), message)
        self.assertNotIn("\n", message.strip())
        self.assertNotIn("Traceback", message)
        return message

    def certificate(self, name: str) -> tuple[str, str]:
        """
        A fresh self-signed certificate and key, as PEM files.
        """
        directory = self.base.child(name)
        directory.makedirs()
        cert, key = directory.child("cert.pem"), directory.child("key.pem")
        generateSelfSigned(cert, key, ["localhost"])
        return cert.path, key.path


class OptionsTests(OptionsTestCase):
    """
    L{Options} parses and checks the public contract.
    """

    def test_defaults(self) -> None:
        """
        With no options: explicit FTPS on C{tcp:2121}, implicit on
        C{tcp:9990}, C{--tls-required all}, C{--session-reuse required}, and
        the documented numbers.
        """
        options = self.parse()
        self.assertEqual(options["listen"], ["tcp:2121"])
        self.assertEqual(options["implicit"], ["tcp:9990"])
        self.assertEqual(options["tls-required"], "all")
        self.assertEqual(options["session-reuse"], "required")
        self.assertIsNone(options["passive-ports"])
        self.assertIsNone(options["masquerade"])
        self.assertIsNone(options["root"])
        self.assertIsNone(options["home"])
        self.assertIsNone(options["cert"])
        self.assertIsNone(options["key"])
        expected = {
            "max-login-attempts": 3,
            "ban-after": 10,
            "ban-time": 600,
            "handshake-timeout": 30,
            "idle-timeout": 300,
            "data-timeout": 30,
            "max-clients": 1000,
            "max-clients-per-ip": 20,
        }
        for name, value in expected.items():
            self.assertEqual(options[name], value, name)
        self.assertFalse(options.get("credCheckers"))
        self.assertIsInstance(options["tls"], ServerTLS)

    def test_implicitNone(self) -> None:
        """
        C{--implicit none} (any case) turns implicit FTPS off.
        """
        self.assertEqual(self.parse("--implicit", "none")["implicit"], [])
        self.assertEqual(self.parse("--implicit", "NONE")["implicit"], [])
        self.assertEqual(self.parse("--implicit", "none")["listen"], ["tcp:2121"])

    def test_repeatableEndpoints(self) -> None:
        """
        C{--listen} and C{--implicit} may be given several times; the
        defaults are then replaced, not added to.
        """
        options = self.parse(
            "--listen",
            "tcp:2121:interface=127.0.0.1",
            "--listen",
            "tcp:2122:interface=127.0.0.2",
            "--implicit",
            "tcp:9991",
            "--implicit",
            "tcp:9992",
        )
        self.assertEqual(
            options["listen"], ["tcp:2121:interface=127.0.0.1", "tcp:2122:interface=127.0.0.2"]
        )
        self.assertEqual(options["implicit"], ["tcp:9991", "tcp:9992"])

    def test_values(self) -> None:
        """
        Good values are parsed into their types: the passive range, numbers,
        the masquerade address, the policy names.
        """
        options = self.parse(
            "--passive-ports",
            "50000-50010",
            "--masquerade",
            "203.0.113.9",
            "--tls-required",
            "data",
            "--session-reuse",
            "optional",
            "--idle-timeout",
            "7.5",
            "--max-clients",
            "5",
        )
        ports = options["passive-ports"]
        self.assertIsInstance(ports, PassivePortRange)
        self.assertEqual((ports.low, ports.high), (50000, 50010))
        self.assertEqual(options["masquerade"], "203.0.113.9")
        self.assertEqual(options["tls-required"], "data")
        self.assertEqual(options["session-reuse"], "optional")
        self.assertEqual(options["idle-timeout"], 7.5)
        self.assertEqual(options["max-clients"], 5)

    def test_badPassivePortsOrder(self) -> None:
        """
        C{--passive-ports 9-3} is refused with one line.
        """
        self.assertIn("passive-ports", self.assertOptionError("--passive-ports", "9-3"))

    def test_badPassivePortsText(self) -> None:
        """
        C{--passive-ports abc}, C{0-10} and C{1-70000} are refused with one
        line.
        """
        for value in ("abc", "0-10", "1-70000", "10"):
            self.assertIn("passive-ports", self.assertOptionError("--passive-ports", value))

    def test_badTLSRequired(self) -> None:
        """
        C{--tls-required bogus} is refused with one line.
        """
        self.assertIn("tls-required", self.assertOptionError("--tls-required", "bogus"))

    def test_badSessionReuse(self) -> None:
        """
        C{--session-reuse x} is refused with one line.
        """
        self.assertIn("session-reuse", self.assertOptionError("--session-reuse", "x"))

    def test_badMasquerade(self) -> None:
        """
        C{--masquerade 999.1.1.1} and other non-IPv4 values are refused with
        one line.
        """
        for value in ("999.1.1.1", "1.2.3", "example.com", "::1", "1.2.3.4.5"):
            self.assertIn("masquerade", self.assertOptionError("--masquerade", value))

    def test_badNumbers(self) -> None:
        """
        C{--idle-timeout -1}, zero and non-numbers for the numeric options are
        refused with one line.
        """
        for name, value in (
            ("--idle-timeout", "-1"),
            ("--idle-timeout", "0"),
            ("--idle-timeout", "soon"),
            ("--max-login-attempts", "2.5"),
            ("--max-clients", "-3"),
            ("--ban-time", "x"),
        ):
            self.assertOptionError(name, value)

    def test_nanRefused(self) -> None:
        """
        C{nan} is not a positive number: the timeouts and the ban time refuse
        it with one line (accepted, it would reach C{reactor.callLater} and
        break every connection).
        """
        for name in ("--idle-timeout", "--handshake-timeout", "--data-timeout", "--ban-time"):
            self.assertIn(name[2:], self.assertOptionError(name, "nan"))

    def test_masqueradeASCIIDigitsOnly(self) -> None:
        """
        C{--masquerade} accepts only ASCII dotted-quad addresses: other
        Unicode digits (which C{str.isdigit} accepts) would be sent verbatim
        in PASV replies.
        """
        self.assertIn("masquerade", self.assertOptionError("--masquerade", "١.٢.٣.٤"))

    def test_proxyProtocol(self) -> None:
        """
        C{--proxy-protocol} with repeated C{--trusted-proxy} addresses and
        networks: the server trusts exactly those; without the options it
        trusts none.
        """
        options = self.parse(
            "--proxy-protocol", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "192.0.2.7"
        )
        trusted = options["trusted-proxies"]
        self.assertTrue(trusted.trusts("10.1.2.3"))
        self.assertTrue(trusted.trusts("192.0.2.7"))
        self.assertFalse(trusted.trusts("192.0.2.8"))
        self.assertIsNone(self.parse()["trusted-proxies"])

    def test_badProxyProtocol(self) -> None:
        """
        C{--proxy-protocol} without C{--trusted-proxy}, C{--trusted-proxy}
        without C{--proxy-protocol}, and values that are not an address or a
        network (or a network with host bits set) are refused with one line.
        """
        self.assertIn("--trusted-proxy", self.assertOptionError("--proxy-protocol"))
        self.assertIn("--proxy-protocol", self.assertOptionError("--trusted-proxy", "10.0.0.0/8"))
        for value in ("10.0.0.1/8", "balancer.example", "10.0.0.0/40"):
            message = self.assertOptionError("--proxy-protocol", "--trusted-proxy", value)
            self.assertIn(repr(value), message)

    def test_badAuth(self) -> None:
        """
        An unknown C{--auth} checker, or a malformed one, is refused with one
        line.
        """
        self.assertOptionError("--auth", "bogus:x")
        self.assertOptionError("--auth", "memory:alice")

    def test_badEndpoint(self) -> None:
        """
        An unparseable endpoint description, for C{--listen} or
        C{--implicit}, is refused with one line naming it.
        """
        self.assertIn("bogus:xyz", self.assertOptionError("--listen", "bogus:xyz"))
        self.assertIn("tcp:abc", self.assertOptionError("--implicit", "tcp:abc"))

    def test_missingCert(self) -> None:
        """
        C{--cert} pointing to a missing file is refused with one line naming
        the file.
        """
        missing = self.base.child("missing.pem").path
        self.assertIn(missing, self.assertOptionError("--cert", missing))

    def test_notPEMCert(self) -> None:
        """
        A C{--cert} file that holds no PEM certificate is refused with one
        line.
        """
        path = self.base.child("junk.pem")
        path.setContent(b"not a certificate\n")
        self.assertOptionError("--cert", path.path)

    def test_keyDoesNotMatchCert(self) -> None:
        """
        A C{--key} that is not the key of C{--cert} is refused with one line.
        """
        cert, _ = self.certificate("one")
        _, otherKey = self.certificate("two")
        self.assertIn("does not match", self.assertOptionError("--cert", cert, "--key", otherKey))

    def test_keyWithoutCert(self) -> None:
        """
        C{--key} without C{--cert} is refused with one line.
        """
        _, key = self.certificate("one")
        self.assertOptionError("--key", key)

    def test_certAndKeyLoaded(self) -> None:
        """
        A matching C{--cert}/C{--key} pair is loaded, and nothing is generated
        under C{--data-dir}.
        """
        cert, key = self.certificate("one")
        options = self.parse("--cert", cert, "--key", key)
        expected = ServerTLS.fromFiles(FilePath(cert), FilePath(key)).fingerprint
        self.assertEqual(options["tls"].fingerprint, expected)
        self.assertFalse(FilePath(self.dataDir).exists())

    def test_rootNotADirectory(self) -> None:
        """
        C{--root} (or C{--home}) that is not a directory is refused with one
        line.
        """
        path = self.base.child("file")
        path.setContent(b"x")
        self.assertIn("root", self.assertOptionError("--root", path.path))
        self.assertIn("root", self.assertOptionError("--root", self.base.child("nope").path))
        self.assertIn("home", self.assertOptionError("--home", path.path))

    def test_unknownOption(self) -> None:
        """
        An unknown option is refused with one line.
        """
        self.assertOptionError("--bogus")

    def test_generatedCertificate(self) -> None:
        """
        Without C{--cert}, a certificate is generated under C{--data-dir}
        (C{server-cert.pem}, C{server-key.pem} with mode 0600), and parsing
        again reuses it.
        """
        first = self.parse()["tls"]
        data = FilePath(self.dataDir)
        self.assertTrue(data.child("server-cert.pem").isfile())
        key = data.child("server-key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key.path).st_mode), 0o600)
        second = self.parse()["tls"]
        self.assertEqual(first.fingerprint, second.fingerprint)

    def test_unusableDataDir(self) -> None:
        """
        A C{--data-dir} that cannot be created (a file is in the way) is
        refused with one line.
        """
        blocker = self.base.child("blocker")
        blocker.setContent(b"x")
        self.dataDir = blocker.child("data").path
        self.assertOptionError()


class MakeServiceTests(OptionsTestCase):
    """
    L{makeService} builds one listening service per endpoint, sharing one
    configuration.
    """

    def children(self, top: service.MultiService) -> list[Any]:
        return list(top)

    def test_oneChildPerEndpoint(self) -> None:
        """
        The service is a L{service.MultiService} with one
        L{StreamServerEndpointService} child per C{--listen} and
        C{--implicit} endpoint, the explicit ones with explicit factories.
        """
        options = self.parse(
            "--listen", "tcp:2121", "--listen", "tcp:2122", "--implicit", "tcp:9990"
        )
        top = makeService(options)
        self.assertIsInstance(top, service.MultiService)
        children = self.children(top)
        self.assertEqual(len(children), 3)
        for child in children:
            self.assertIsInstance(child, StreamServerEndpointService)
            self.assertIsInstance(child.factory, FTPSFactory)
        self.assertEqual([c.factory.implicit for c in children], [False, False, True])

    def test_proxyProtocolChildren(self) -> None:
        """
        With C{--proxy-protocol} every endpoint serves a
        L{ProxyProtocolFactory} around its L{FTPSFactory}, whose settings
        name the trusted proxies (the data channels read them there).
        """
        options = self.parse("--proxy-protocol", "--trusted-proxy", "192.0.2.7")
        children = self.children(makeService(options))
        self.assertEqual(len(children), 2)
        for child in children:
            self.assertIsInstance(child.factory, ProxyProtocolFactory)
            wrapped = child.factory.wrappedFactory
            self.assertIsInstance(wrapped, FTPSFactory)
            self.assertIs(wrapped.settings.trustedProxies, options["trusted-proxies"])
        self.assertEqual(
            sorted(c.factory.wrappedFactory.implicit for c in children), [False, True]
        )

    def test_allowFXP(self) -> None:
        """
        C{--allow-fxp} turns server-to-server transfers on in the settings
        every factory shares; they are off by default.
        """
        self.assertFalse(self.children(makeService(self.parse()))[0].factory.settings.allowFXP)
        children = self.children(makeService(self.parse("--allow-fxp")))
        self.assertTrue(all(c.factory.settings.allowFXP for c in children))

    def test_defaultChildren(self) -> None:
        """
        With the defaults there are two children: explicit and implicit.
        """
        top = makeService(self.parse())
        self.assertEqual(sorted(c.factory.implicit for c in self.children(top)), [False, True])

    def test_implicitNoneChildren(self) -> None:
        """
        C{--implicit none} leaves only the explicit endpoints.
        """
        top = makeService(self.parse("--implicit", "none"))
        children = self.children(top)
        self.assertEqual(len(children), 1)
        self.assertFalse(children[0].factory.implicit)

    def test_sharedConfiguration(self) -> None:
        """
        All factories share settings, caps, bans, portal and TLS material, and
        the settings carry the parsed options.
        """
        options = self.parse(
            "--tls-required",
            "control",
            "--session-reuse",
            "optional",
            "--masquerade",
            "203.0.113.9",
            "--passive-ports",
            "50000-50010",
            "--idle-timeout",
            "7",
            "--handshake-timeout",
            "8",
            "--data-timeout",
            "9",
            "--max-login-attempts",
            "4",
            "--max-clients",
            "11",
            "--max-clients-per-ip",
            "2",
            "--ban-after",
            "5",
            "--ban-time",
            "99",
        )
        factories = [c.factory for c in self.children(makeService(options))]
        first = factories[0]
        for factory in factories[1:]:
            for name in ("settings", "limits", "bans", "portal", "tls"):
                self.assertIs(getattr(factory, name), getattr(first, name), name)
        settings = first.settings
        self.assertEqual(settings.policy.tlsRequired, "control")
        self.assertFalse(settings.requireResumption)
        self.assertEqual(settings.masquerade, "203.0.113.9")
        self.assertIs(settings.passivePorts, options["passive-ports"])
        self.assertEqual(settings.idleTimeout, 7)
        self.assertEqual(settings.handshakeTimeout, 8)
        self.assertEqual(settings.dataTimeout, 9)
        self.assertEqual(settings.maxLoginAttempts, 4)
        self.assertEqual((first.limits.maxClients, first.limits.maxPerAddress), (11, 2))
        self.assertEqual((first.bans.banAfter, first.bans.banTime), (5, 99))
        self.assertIs(first.tls, options["tls"])

    def test_anonymousOnlyByDefault(self) -> None:
        """
        Without C{--auth} the portal logs in anonymous users (read-only root)
        and nobody else.
        """
        root = self.base.child("root")
        root.makedirs()
        factory = self.children(makeService(self.parse("--root", root.path)))[0].factory
        _, shell, _ = self.successResultOf(
            factory.portal.login(credentials.Anonymous(), None, IFTPShell)
        )
        self.assertEqual(shell.filesystemRoot, root)
        self.assertTrue(shell.readOnly)
        self.failureResultOf(
            factory.portal.login(UsernamePassword("alice", "secret"), None, IFTPShell),
            error.LoginFailed,
        )

    def test_authReplacesDefaults(self) -> None:
        """
        With C{--auth memory:alice:secret}, alice logs in (home under
        C{--home}) and anonymous does not.
        """
        home = self.base.child("home")
        home.makedirs()
        options = self.parse("--home", home.path, "--auth", "memory:alice:secret")
        factory = self.children(makeService(options))[0].factory
        _, shell, _ = self.successResultOf(
            factory.portal.login(UsernamePassword("alice", "secret"), None, IFTPShell)
        )
        self.assertEqual(shell.filesystemRoot, home.child("alice"))
        self.failureResultOf(
            factory.portal.login(credentials.Anonymous(), None, IFTPShell), error.LoginFailed
        )

    def test_authFileChecker(self) -> None:
        """
        C{--auth file:PATH} logs in users from the password file with the
        str credentials the protocol builds.
        """
        passwords = self.base.child("passwd")
        passwords.setContent(b"alice:secret\n")
        home = self.base.child("home")
        home.makedirs()
        options = self.parse("--home", home.path, "--auth", "file:" + passwords.path)
        factory = self.children(makeService(options))[0].factory
        _, shell, _ = self.successResultOf(
            factory.portal.login(UsernamePassword("alice", "secret"), None, IFTPShell)
        )
        self.assertEqual(shell.filesystemRoot, home.child("alice"))

    def test_homeDefaultsToRoot(self) -> None:
        """
        Without C{--home}, users' homes are under C{--root}.
        """
        root = self.base.child("root")
        root.makedirs()
        options = self.parse("--root", root.path, "--auth", "memory:alice:secret")
        factory = self.children(makeService(options))[0].factory
        _, shell, _ = self.successResultOf(
            factory.portal.login(UsernamePassword("alice", "secret"), None, IFTPShell)
        )
        self.assertEqual(shell.filesystemRoot, root.child("alice"))


class TwistdProcess:
    """
    C{twistd -n ftps ARGS} as a subprocess, run from a temporary directory
    with the project on C{PYTHONPATH}.
    """

    def __init__(self, cwd: str, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = PROJECT_ROOT
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                "ftps",
                *args,
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout = b""
        self.stderr = b""

    def waitFor(self, pattern: bytes, timeout: float = 20.0) -> re.Match[bytes] | None:
        """
        Read standard output until C{pattern} appears, the process exits or
        C{timeout} passes.
        """
        assert self.process.stdout is not None and self.process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ, "stdout")
        selector.register(self.process.stderr, selectors.EVENT_READ, "stderr")
        deadline = time.monotonic() + timeout
        try:
            while True:
                found = re.search(pattern, self.stdout)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not selector.get_map():
                    return None
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data == "stdout":
                        self.stdout += chunk
                    else:
                        self.stderr += chunk
        finally:
            selector.close()

    def finish(self, timeout: float = 20.0) -> int:
        """
        Wait for the process to exit (no signal) and collect its output.
        """
        out, err = self.process.communicate(timeout=timeout)
        self.stdout += out
        self.stderr += err
        return self.process.returncode

    def stop(self) -> int:
        """
        Stop the process with SIGTERM and collect its output.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.finish(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.finish(20)

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).decode("utf-8", "replace")


class TwistdProcessTests(SynchronousTestCase):
    """
    The real C{twistd -n ftps} (loopback only).
    """

    def setUp(self) -> None:
        self.cwd = FilePath(self.mktemp())
        self.cwd.makedirs()
        self.dataDir = self.cwd.child("data")

    def start(self, *args: str) -> TwistdProcess:
        process = TwistdProcess(self.cwd.path, *args)
        self.addCleanup(process.stop)
        return process

    def assertBadOptionExit(self, *args: str) -> str:
        """
        twistd with C{args} exits non-zero within a few seconds, with exactly
        one line on standard error starting C{twistd ftps: error:}, and no
        traceback anywhere.
        """
        process = self.start("--data-dir", self.dataDir.path, *args)
        started = time.monotonic()
        code = process.finish(timeout=15)
        self.assertLess(time.monotonic() - started, 10)
        self.assertNotEqual(code, 0, process.output)
        self.assertNotIn("Traceback", process.output)
        lines = process.stderr.decode("utf-8", "replace").splitlines()
        self.assertEqual(len(lines), 1, process.output)
        self.assertTrue(lines[0].startswith("twistd ftps: error:"), lines)
        return lines[0]

    def test_badTLSRequired(self) -> None:
        """
        C{--tls-required bogus} stops the start: non-zero exit, one line on
        standard error, no traceback.
        """
        self.assertIn("tls-required", self.assertBadOptionExit("--tls-required", "bogus"))

    def test_badPassivePorts(self) -> None:
        """
        C{--passive-ports 9-3} stops the start the same way.
        """
        self.assertIn("passive-ports", self.assertBadOptionExit("--passive-ports", "9-3"))

    def test_missingCert(self) -> None:
        """
        A missing C{--cert} file stops the start the same way.
        """
        missing = self.cwd.child("missing.pem").path
        self.assertIn(missing, self.assertBadOptionExit("--cert", missing))

    def test_unknownOption(self) -> None:
        """
        An unknown option stops the start the same way.
        """
        self.assertBadOptionExit("--no-such-option")

    def test_portTaken(self) -> None:
        """
        When the C{--listen} port is already taken, twistd exits non-zero with
        a line saying it cannot listen on that endpoint, and no traceback.
        """
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        description = f"tcp:{port}:interface=127.0.0.1"
        process = self.start(
            "--listen", description, "--implicit", "none", "--data-dir", self.dataDir.path
        )
        code = process.finish(timeout=15)
        self.assertNotEqual(code, 0, process.output)
        self.assertNotIn("Traceback", process.output)
        lines = [line for line in process.output.splitlines() if "cannot listen" in line]
        self.assertEqual(len(lines), 1, process.output)
        self.assertIn(description, lines[0])
        self.assertIn("twistd ftps: error:", lines[0])

    def startAndReadFingerprint(self) -> tuple[str, TwistdProcess]:
        process = self.start(
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--implicit",
            "none",
            "--data-dir",
            self.dataDir.path,
        )
        listening = process.waitFor(rb"explicit FTPS listening on 127\.0\.0\.1 port \d+")
        self.assertIsNotNone(listening, process.output)
        found = _FINGERPRINT.search(process.output)
        self.assertIsNotNone(found, process.output)
        assert found is not None
        process.stop()
        self.assertNotIn("Traceback", process.output)
        return found.group(1), process

    def test_generatedCertificate(self) -> None:
        """
        Without C{--cert}, the first start generates C{server-cert.pem} and
        C{server-key.pem} (mode 0600) under C{--data-dir} and logs the
        certificate's SHA-256 fingerprint; a second start reuses the same
        certificate (same fingerprint, files unchanged).
        """
        logged, first = self.startAndReadFingerprint()
        certPath = self.dataDir.child("server-cert.pem")
        keyPath = self.dataDir.child("server-key.pem")
        self.assertTrue(certPath.isfile(), first.output)
        self.assertTrue(keyPath.isfile(), first.output)
        self.assertEqual(stat.S_IMODE(os.stat(keyPath.path).st_mode), 0o600)
        tls = ServerTLS.fromFiles(certPath, keyPath)
        self.assertEqual(logged, fingerprint(tls.chain[0]))
        certBytes, keyBytes = certPath.getContent(), keyPath.getContent()

        again, second = self.startAndReadFingerprint()
        self.assertEqual(again, logged)
        self.assertEqual(certPath.getContent(), certBytes)
        self.assertEqual(keyPath.getContent(), keyBytes)
        self.assertIn("generated", first.output)
        self.assertNotIn("generated", second.output)


class ServerFilesTests(SynchronousTestCase):
    """
    twistd's pid file and daemon log never land in a served tree, and the log
    leaves out the lines Twisted's ports write for every passive listener.
    """

    def setUp(self) -> None:
        self.base = os.path.realpath(self.mktemp())
        self.served = os.path.join(self.base, "served")
        self.data = os.path.join(self.base, "data")
        os.makedirs(self.served)

    def test_pidFileInServedTreeMoves(self) -> None:
        """
        A pid file that would be inside the served tree moves to the data
        directory, which is created (mode 0700); the move is reported.
        """
        options: dict[str, Any] = {"pidfile": os.path.join(self.served, "twistd.pid")}
        options["nodaemon"] = True
        moved = placeServerFiles(options, [self.served], self.data)
        self.assertEqual(options["pidfile"], os.path.join(self.data, "twistd.pid"))
        self.assertEqual(moved, [f"pid file {options['pidfile']}"])
        self.assertEqual(stat.S_IMODE(os.stat(self.data).st_mode), 0o700)

    def test_filesElsewhereStay(self) -> None:
        """
        A pid file or log file outside the served trees stays where the
        operator put it, and nothing is created.
        """
        elsewhere = os.path.join(self.base, "run", "ftps.pid")
        log = os.path.join(self.base, "ftps.log")
        options: dict[str, Any] = {"pidfile": elsewhere, "logfile": log, "nodaemon": False}
        self.assertEqual(placeServerFiles(options, [self.served], self.data), [])
        self.assertEqual((options["pidfile"], options["logfile"]), (elsewhere, log))
        self.assertFalse(os.path.exists(self.data))

    def test_daemonLogMoves(self) -> None:
        """
        A daemon (no C{-n}) started in the served tree would write
        C{twistd.log} there: it goes to the data directory instead. With
        C{-n} and no C{--logfile} the log is standard output and nothing
        moves.
        """
        cwd = os.getcwd()
        os.chdir(self.served)
        self.addCleanup(os.chdir, cwd)
        daemon: dict[str, Any] = {"pidfile": "", "logfile": None, "nodaemon": False}
        placeServerFiles(daemon, [self.served], self.data)
        self.assertEqual(daemon["logfile"], os.path.join(self.data, "twistd.log"))
        foreground: dict[str, Any] = {"pidfile": "", "logfile": None, "nodaemon": True}
        self.assertEqual(placeServerFiles(foreground, [self.served], self.data), [])
        self.assertIsNone(foreground["logfile"])

    def test_portChatterDropped(self) -> None:
        """
        The filter drops Twisted's C{... starting on N} and C{(TCP Port N
        Closed)} lines and lets other lines through.
        """
        quiet = QuietPortsFilter()
        for text in ("_DataFactory starting on 43797", "(TCP Port 43797 Closed)"):
            event = {"log_format": "{log_text}", "log_text": text}
            self.assertEqual(quiet(event), PredicateResult.no, text)
        for text in ("alice logged in from 127.0.0.1", "starting on 12 files"):
            event = {"log_format": "{log_text}", "log_text": text}
            self.assertEqual(quiet(event), PredicateResult.maybe, text)


class UploadCloseNotifyOptionTests(OptionsTestCase):
    """
    C{--upload-close-notify required|optional}.
    """

    def settings(self, *args: str) -> Any:
        top = makeService(self.parse("--listen", "tcp:0", "--implicit", "none", *args))
        return list(top)[0].factory.settings

    def test_default(self) -> None:
        """
        By default an upload must end with the client's close_notify.
        """
        self.assertEqual(self.parse()["upload-close-notify"], "required")
        self.assertTrue(self.settings().requireUploadCloseNotify)

    def test_values(self) -> None:
        """
        C{required} and C{optional} reach the server's settings.
        """
        self.assertTrue(
            self.settings("--upload-close-notify", "required").requireUploadCloseNotify
        )
        self.assertFalse(
            self.settings("--upload-close-notify", "optional").requireUploadCloseNotify
        )

    def test_badValue(self) -> None:
        """
        C{twistd ftps --upload-close-notify sometimes} (and an empty value)
        stops at once with one C{twistd ftps: error:} line naming the option.
        """
        for value in ("sometimes", ""):
            line = refusedStart("--upload-close-notify", value)
            self.assertIn("--upload-close-notify must be required or optional", line)
