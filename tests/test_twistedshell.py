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
        client = support.ReusingFTP_TLS(context=self.ca.clientContext(), timeout=10)
        client.connect("127.0.0.1", self.port.getHost().port)
        client.auth()
        client.login("alice", "secret")
        client.prot_p()
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

    def test_ftpShellAvatar(self) -> None:
        """
        An L{FTPShell} avatar lists, stores and retrieves over TLS; APPE,
        which its interface cannot express, is refused with 504 and the file
        is unchanged.
        """

        def check(results: list[Any]) -> None:
            names, content, appe = results
            self.assertEqual(names, ["old.txt"])
            self.assertEqual(content, b"new content\n")
            self.assertEqual(
                self.homes.child("alice").child("new.txt").getContent(), b"new content\n"
            )
            self.assertTrue(appe.startswith("504"), appe)
            self.assertEqual(self.homes.child("alice").child("old.txt").getContent(), b"old\n")

        return threads.deferToThread(self._session).addCallback(check)
