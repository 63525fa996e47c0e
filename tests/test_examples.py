"""
The examples in docs/ run as documented: docs/examples/custom_auth.py serves a
custom checker and a custom realm to a real ftplib client over TLS.
"""

from __future__ import annotations

import ftplib
import importlib.util
import io
import os
import tempfile
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests import support
from txftps.tls import ServerTLS


def _loadExample() -> Any:
    path = os.path.join(support.PROJECT_ROOT, "docs", "examples", "custom_auth.py")
    spec = importlib.util.spec_from_file_location("custom_auth_example", path)
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
        client = support.ReusingFTP_TLS(context=self.ca.clientContext(), timeout=10)
        client.connect("127.0.0.1", self.port.getHost().port)
        client.auth()
        client.login(user, token)
        client.prot_p()
        return client

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
