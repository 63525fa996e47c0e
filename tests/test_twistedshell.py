"""
Existing Twisted FTP avatars work with txftps (docs/design.md, decision 1): a Portal
with Twisted's own L{FTPRealm} (whose avatars are L{FTPShell}s) served by
L{FTPSFactory} over real TLS, driven by ftplib.
"""

from __future__ import annotations

import ftplib
import io
import tempfile
from typing import Any

from twisted.cred import checkers, portal
from twisted.internet import reactor, threads
from twisted.protocols.ftp import FTPRealm
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests import support
from txftps.auth import normalizeChecker
from txftps.server import FTPSFactory, ServerSettings
from txftps.tls import ServerTLS


class TwistedRealmTests(TestCase):
    """
    Twisted's L{FTPRealm} behind txftps.
    """

    def setUp(self) -> None:
        directory = FilePath(tempfile.mkdtemp(prefix="txftps-twisted-realm-"))
        self.ca = support.ThrowawayCA(directory.path)
        tls = ServerTLS.fromFiles(FilePath(self.ca.certFile), FilePath(self.ca.keyFile))
        self.anonymous = directory.child("pub")
        self.anonymous.makedirs()
        self.homes = directory.child("homes")
        self.homes.child("alice").makedirs()
        self.homes.child("alice").child("old.txt").setContent(b"old\n")
        self.homes.child("alice").child("dir").makedirs()
        self.homes.child("alice").child("dir").child("inner.txt").setContent(b"inner")
        realm = FTPRealm(self.anonymous.path, self.homes.path)
        checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser("alice", "secret")
        factory = FTPSFactory(
            reactor,
            portal.Portal(realm, [normalizeChecker(checker)]),
            tls,
            ServerSettings(failedLoginDelay=0),
        )
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def _session(self) -> list[Any]:
        client = support.ftplibLogin(
            self.ca.clientContext(), self.port.getHost().port, "alice", "secret"
        )
        results: list[Any] = [sorted(client.nlst())]
        client.storbinary("STOR new.txt", io.BytesIO(b"new content\n"))
        data: list[bytes] = []
        client.retrbinary("RETR new.txt", data.append)
        results.append(b"".join(data))
        try:
            client.storbinary("APPE old.txt", io.BytesIO(b"more"))
        except ftplib.error_perm as e:
            results.append(str(e))
        client.quit()
        return results

    def _failures(self) -> dict[str, str]:
        client = support.ftplibLogin(
            self.ca.clientContext(), self.port.getHost().port, "alice", "secret"
        )
        replies: dict[str, str] = {}
        commands: list[tuple[str, Any]] = [
            ("RMD dir", client.sendcmd),
            ("RMD missing", client.sendcmd),
            ("RMD old.txt", client.sendcmd),
            ("MKD dir", client.sendcmd),
            ("CWD missing", client.sendcmd),
            ("CWD old.txt", client.sendcmd),
            ("DELE missing", client.sendcmd),
            ("DELE dir", client.sendcmd),
            ("SIZE missing", client.sendcmd),
            ("MDTM missing", client.sendcmd),
            ("MLST missing", client.sendcmd),
            ("RNFR missing", client.sendcmd),
            ("RETR missing", lambda line: client.retrbinary(line, lambda data: None)),
            ("RETR dir", lambda line: client.retrbinary(line, lambda data: None)),
            ("STOR dir", lambda line: client.storbinary(line, io.BytesIO(b"x"))),
            ("STOR missing/x", lambda line: client.storbinary(line, io.BytesIO(b"x"))),
            ("LIST missing", lambda line: client.retrlines(line, lambda text: None)),
        ]
        for line, run in commands:
            try:
                replies[line] = str(run(line))
            except ftplib.all_errors as e:
                replies[line] = str(e)
        client.sendcmd("RNFR old.txt")
        try:
            replies["RNTO dir"] = client.sendcmd("RNTO dir")
        except ftplib.all_errors as e:
            replies["RNTO dir"] = str(e)
        client.quit()
        return replies

    def test_ftpShellAvatar(self) -> None:
        """
        An L{FTPShell} avatar lists, stores and retrieves over TLS; APPE,
        which its interface cannot express, is refused with 504 and the file
        is unchanged.
        """

        def check(results: list[Any]) -> None:
            names, content, appe = results
            self.assertEqual(names, ["dir", "old.txt"])
            self.assertEqual(content, b"new content\n")
            self.assertEqual(
                self.homes.child("alice").child("new.txt").getContent(), b"new content\n"
            )
            self.assertTrue(appe.startswith("504"), appe)
            self.assertEqual(self.homes.child("alice").child("old.txt").getContent(), b"old\n")

        return threads.deferToThread(self._session).addCallback(check)

    def test_ftpShellFailures(self) -> None:
        """
        The failures of Twisted's own L{FTPShell} get the same replies as
        txftps' shell: C{550}, never C{451}, for a directory that is not
        empty (which L{FTPShell} lets escape as a bare C{ENOTEMPTY}), a
        missing path, a file where a directory is needed and back, a name
        that exists, a rename over a non-empty directory.
        """

        def check(replies: dict[str, str]) -> None:
            self.assertEqual(
                {line: reply[:3] for line, reply in replies.items()},
                {line: "550" for line in replies},
                replies,
            )
            self.assertEqual(replies["RMD dir"], "550 Directory not empty.")
            inner = self.homes.child("alice").child("dir").child("inner.txt")
            self.assertEqual(inner.getContent(), b"inner")

        return threads.deferToThread(self._failures).addCallback(check)
