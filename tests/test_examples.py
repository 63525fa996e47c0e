"""
The examples in docs/ run as documented: docs/examples/custom_auth.py serves a
custom checker and a custom realm to a real ftplib client over TLS;
docs/examples/custom_commands.py adds a command, a transfer command and a
SITE command in a subclass; docs/examples/testing_example.py passes under
trial, run as its docstring says.
"""

from __future__ import annotations

import ftplib
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests import support
from txftps.tls import ServerTLS


def _loadExample(name: str = "custom_auth") -> Any:
    path = os.path.join(support.PROJECT_ROOT, "docs", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CustomAuthExampleTests(TestCase):
    """
    docs/examples/custom_auth.py: one-time tokens and per-project roots.
    """

    def setUp(self) -> None:
        example = _loadExample()
        self.directory = tempfile.mkdtemp(prefix="txftps-example-")
        self.ca = support.ThrowawayCA(self.directory)
        tls = ServerTLS.fromFiles(FilePath(self.ca.certFile), FilePath(self.ca.keyFile))
        self.project = FilePath(self.directory).child("apollo")
        self.project.makedirs()
        self.project.child("plan.txt").setContent(b"launch at dawn\n")
        factory = example.makeFactory(
            reactor,
            tls,
            projects={"alice": self.project, "audrey": self.project},
            tokens={"alice": "TOKEN-A", "audrey": "TOKEN-B"},
            auditors={"audrey"},
        )
        factory.settings.failedLoginDelay = 0
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def _client(self, user: str, token: str) -> ftplib.FTP_TLS:
        return support.ftplibLogin(self.ca.clientContext(), self.port.getHost().port, user, token)

    def _session(self) -> list[Any]:
        results: list[Any] = []
        client = self._client("alice", "TOKEN-A")
        results.append(client.nlst())
        data: list[bytes] = []
        client.retrbinary("RETR plan.txt", data.append)
        results.append(b"".join(data))
        client.storbinary("STOR report.txt", io.BytesIO(b"all good\n"))
        client.quit()
        try:
            self._client("alice", "TOKEN-A")
        except ftplib.error_perm as e:
            results.append(str(e))
        auditor = self._client("audrey", "TOKEN-B")
        try:
            auditor.storbinary("STOR audit.txt", io.BytesIO(b"x"))
        except ftplib.error_perm as e:
            results.append(str(e))
        auditor.quit()
        return results

    def test_tokensAndProjects(self) -> None:
        """
        A token logs its user into the project directory once; the second
        use is refused; an auditor of the same project cannot upload.
        """

        def check(results: list[Any]) -> None:
            names, content, reused, refused = results
            self.assertEqual(names, ["plan.txt"])
            self.assertEqual(content, b"launch at dawn\n")
            self.assertEqual(self.project.child("report.txt").getContent(), b"all good\n")
            self.assertTrue(reused.startswith("530"), reused)
            self.assertTrue(refused.startswith("550"), refused)
            self.assertFalse(self.project.child("audit.txt").exists())

        return threads.deferToThread(self._session).addCallback(check)


class ClientExampleTests(TestCase):
    """
    docs/examples/client_backup.py: the client API as docs/client.md shows
    it, against the real C{twistd ftps}.
    """

    def test_fetchAll(self) -> None:
        """
        Every remote file lands locally with its bytes (a partial one is
        resumed), directories are skipped, and the report is uploaded.
        """
        path = os.path.join(support.PROJECT_ROOT, "docs", "examples", "client_backup.py")
        spec = importlib.util.spec_from_file_location("client_backup_example", path)
        assert spec is not None and spec.loader is not None
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        server = support.TwistdServer(users={"alice": "secret"}).start()
        self.addCleanup(server.stop)
        home = server.userHome("alice")
        files = {"a.txt": b"alpha\n", "b.bin": os.urandom(50_000)}
        for name, data in files.items():
            support.writeFile(os.path.join(home, name), data)
        os.makedirs(os.path.join(home, "subdir"))
        local = tempfile.mkdtemp(prefix="txftps-example-")
        support.writeFile(os.path.join(local, "b.bin"), files["b.bin"][:1000])
        url = f"ftp://alice:secret@127.0.0.1:{server.explicitPort}/"

        def check(names: list[str]) -> None:
            self.assertEqual(sorted(names), ["a.txt", "b.bin"])
            for name, data in files.items():
                self.assertEqual(support.readFile(os.path.join(local, name)), data)
            self.assertEqual(
                support.readFile(os.path.join(home, "backup-report.txt")), b"a.txt\nb.bin\n"
            )

        fetching = Deferred.fromCoroutine(example.fetchAll(reactor, url, server.ca.caFile, local))
        return fetching.addCallback(check)


class TestingExampleTests(TestCase):
    """
    docs/examples/testing_example.py: a user's own tests built on
    L{txftps.testing}.
    """

    def test_passesUnderTrial(self) -> None:
        """
        C{trial docs/examples/testing_example.py} runs every test of the
        example and all of them pass.
        """
        path = os.path.join(support.PROJECT_ROOT, "docs", "examples", "testing_example.py")
        with open(path, encoding="utf-8") as f:
            count = f.read().count("    def test_")
        workdir = tempfile.mkdtemp(prefix="txftps-example-")
        env = dict(os.environ)
        env["PYTHONPATH"] = support.PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")

        def run() -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [sys.executable, "-m", "twisted.trial", path],
                capture_output=True,
                cwd=workdir,
                env=env,
                timeout=300,
            )

        def check(result: subprocess.CompletedProcess[bytes]) -> None:
            output = result.stdout.decode("utf-8", "replace")
            self.assertEqual(result.returncode, 0, output[-3000:] + result.stderr.decode())
            self.assertGreaterEqual(count, 7)
            self.assertIn(f"PASSED (successes={count})", output)

        return threads.deferToThread(run).addCallback(check)


class CustomCommandsExampleTests(TestCase):
    """
    docs/examples/custom_commands.py: commands added in a subclass, with
    their facts in the command table.
    """

    def setUp(self) -> None:
        example = _loadExample("custom_commands")
        self.directory = tempfile.mkdtemp(prefix="txftps-example-")
        self.ca = support.ThrowawayCA(self.directory)
        tls = ServerTLS.fromFiles(FilePath(self.ca.certFile), FilePath(self.ca.keyFile))
        self.files = FilePath(self.directory).child("files")
        self.files.child("docs").makedirs()
        self.files.child("docs").child("a.txt").setContent(b"alpha\n")
        self.files.child("b.bin").setContent(b"\x00" * 70000)
        factory = example.makeFactory(reactor, tls, self.files, {"alice": "secret"})
        factory.settings.failedLoginDelay = 0
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def _session(self) -> dict[str, Any]:
        client = support.ReusingFTP_TLS(context=self.ca.clientContext(), timeout=10)
        client.connect("127.0.0.1", self.port.getHost().port)
        try:
            return self._commands(client)
        finally:
            client.close()

    def _commands(self, client: ftplib.FTP_TLS) -> dict[str, Any]:
        results: dict[str, Any] = {}
        client.auth()
        results["beforeLogin"] = client.sendcmd("FEAT")
        try:
            client.sendcmd("XSHA256 b.bin")
        except ftplib.error_perm as e:
            results["refused"] = str(e)
        client.login("alice", "secret")
        results["feat"] = client.sendcmd("FEAT")
        results["sha"] = client.sendcmd("XSHA256 /b.bin")
        try:
            client.sendcmd("XSHA256 missing")
        except ftplib.error_perm as e:
            results["missing"] = str(e)
        results["whoami"] = client.sendcmd("SITE WHOAMI")
        try:
            client.sendcmd("XTREE /")
        except ftplib.error_perm as e:
            results["clear"] = str(e)
        client.prot_p()
        lines: list[str] = []
        client.retrlines("XTREE /", lines.append)
        results["tree"] = lines
        client.quit()
        return results

    def test_commands(self) -> None:
        """
        Before login the new command is refused (530) like any other; after
        it, FEAT lists XSHA256, XSHA256 hashes a file read through the
        shell (550 for a missing one), SITE WHOAMI names the user, XTREE is
        refused without PROT P (521) and with it sends the tree over the
        protected data connection.
        """

        def check(results: dict[str, Any]) -> None:
            self.assertTrue(results["refused"].startswith("530"), results["refused"])
            self.assertIn(" XSHA256", results["feat"])
            digest = hashlib.sha256(b"\x00" * 70000).hexdigest()
            self.assertEqual(results["sha"], f"213 {digest} /b.bin")
            self.assertTrue(results["missing"].startswith("550"), results["missing"])
            self.assertEqual(results["whoami"], "200 alice")
            self.assertTrue(results["clear"].startswith("521"), results["clear"])
            self.assertEqual(results["tree"], ["/b.bin", "/docs", "/docs/a.txt"])

        return threads.deferToThread(self._session).addCallback(check)


class CustomShellExampleTests(TestCase):
    """
    docs/examples/custom_shell.py: a realm that plugs in a shell of the
    application's own (not a directory on disk).
    """

    def setUp(self) -> None:
        self.example = _loadExample("custom_shell")
        self.directory = tempfile.mkdtemp(prefix="txftps-example-")
        self.ca = support.ThrowawayCA(self.directory)
        tls = ServerTLS.fromFiles(FilePath(self.ca.certFile), FilePath(self.ca.keyFile))
        factory = self.example.makeFactory(
            reactor, tls, {"alice": "secret"}, {"alice": {"2026-12-01": 1200}}
        )
        factory.settings.failedLoginDelay = 0
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def test_declaresItsInterfaces(self) -> None:
        """
        The shell provides Twisted's C{IFTPShell} and txftps's
        C{IReadOnlyShell}, as C{verifyObject} checks.
        """
        from twisted.protocols.ftp import IFTPShell
        from zope.interface.verify import verifyObject

        from txftps.interfaces import IReadOnlyShell

        shell = self.example.ReportShell({})
        self.assertTrue(verifyObject(IFTPShell, shell))
        self.assertTrue(verifyObject(IReadOnlyShell, shell))

    def _session(self) -> dict[str, Any]:
        client = support.ReusingFTP_TLS(context=self.ca.clientContext(), timeout=10)
        client.connect("127.0.0.1", self.port.getHost().port)
        results: dict[str, Any] = {}
        try:
            client.auth()
            client.login("alice", "secret")
            client.prot_p()
            results["names"] = client.nlst("reports")
            data: list[bytes] = []
            client.retrbinary("RETR reports/usage.csv", data.append)
            results["csv"] = b"".join(data)
            results["facts"] = list(client.mlsd("reports", ["perm", "size"]))
            for command in ("STOR reports/new.csv", "DELE reports/usage.csv", "SITE CHMOD 777 x"):
                try:
                    if command.startswith("STOR"):
                        client.storbinary(command, io.BytesIO(b"x"))
                    else:
                        client.sendcmd(command)
                except ftplib.error_perm as e:
                    results[command.split()[0]] = str(e)
            client.quit()
        finally:
            client.close()
        return results

    def test_servesItsTree(self) -> None:
        """
        Over a real TLS session with ftplib: the report is listed and read
        byte for byte, MLSD shows read-only permissions and the real size,
        and STOR, DELE and SITE are refused with 550.
        """

        def check(results: dict[str, Any]) -> None:
            self.assertEqual(results["names"], ["usage.csv"])
            self.assertEqual(results["csv"], b"day,bytes\r\n2026-12-01,1200\r\n")
            [(name, facts)] = results["facts"]
            self.assertEqual(name, "usage.csv")
            self.assertEqual(facts["size"], str(len(results["csv"])))
            self.assertNotIn("w", facts["perm"])
            for command in ("STOR", "DELE", "SITE"):
                self.assertTrue(results[command].startswith("550"), results[command])

        return threads.deferToThread(self._session).addCallback(check)
