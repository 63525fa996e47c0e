"""
The declared interfaces of L{txftps.interfaces}: every implementation in
txftps verifies against the interfaces it declares, and the server reads what
a shell offers from those declarations only, never from attribute names.
"""

from __future__ import annotations

import ftplib
import io
import tempfile
from typing import Any

from twisted.cred import checkers, portal
from twisted.internet import reactor, threads
from twisted.internet.interfaces import IConsumer
from twisted.protocols.ftp import FTPShell, IFTPShell
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import alsoProvides, directlyProvidedBy, implementer
from zope.interface.verify import verifyObject

from tests import support
from txftps._testing.memoryshell import _MemorySink
from txftps._testing.misbehaviour import _Collector, _TruncatingSink
from txftps._testing.server import _SharedTreeRealm
from txftps.auth import ANONYMOUS, normalizeChecker
from txftps.interfaces import (
    IAtomicWriteFile,
    ICloseableReadFile,
    IMachineListingShell,
    IModificationTimeShell,
    IReadOnlyShell,
    IResumableShell,
    ISessionObserver,
    IUniqueNameShell,
)
from txftps.server import FTPSFactory, ServerSettings, _SilentObserver
from txftps.storage import LocalShell
from txftps.testing import SessionRecord
from txftps.tls import ServerTLS

_SHELL_INTERFACES = (
    IResumableShell,
    IUniqueNameShell,
    IModificationTimeShell,
    IMachineListingShell,
)


class LocalShellInterfaceTests(SynchronousTestCase):
    """
    L{LocalShell} and the files it opens provide the interfaces they declare.
    """

    def setUp(self) -> None:
        self.root = FilePath(self.mktemp())
        self.root.makedirs()
        self.root.child("a.txt").setContent(b"abc")

    def test_shellInterfaces(self) -> None:
        """
        A writable L{LocalShell} verifies against every shell interface but
        L{IReadOnlyShell}, which it does not provide.
        """
        shell = LocalShell(self.root)
        for interface in _SHELL_INTERFACES:
            self.assertTrue(verifyObject(interface, shell), interface)
        self.assertFalse(IReadOnlyShell.providedBy(shell))
        self.assertFalse(shell.readOnly)

    def test_readOnly(self) -> None:
        """
        A read-only L{LocalShell} provides L{IReadOnlyShell}; setting
        C{readOnly} later adds or removes it.
        """
        shell = LocalShell(self.root, readOnly=True)
        self.assertTrue(verifyObject(IReadOnlyShell, shell))
        self.assertTrue(shell.readOnly)
        shell.readOnly = False
        self.assertFalse(IReadOnlyShell.providedBy(shell))
        shell.readOnly = True
        self.assertTrue(IReadOnlyShell.providedBy(shell))
        self.assertFalse(IReadOnlyShell.providedBy(LocalShell(self.root)))

    def test_readWriteShellDeclaresNothingOfItsOwn(self) -> None:
        """
        A read-write L{LocalShell} (one per session) carries no per-instance
        interface declaration: it provides exactly what its class declares.
        """
        shell = LocalShell(self.root)
        self.assertNotIn("__provides__", vars(shell))
        self.assertEqual(list(directlyProvidedBy(shell)), [])

    def test_files(self) -> None:
        """
        Downloads are L{ICloseableReadFile}s and uploads
        L{IAtomicWriteFile}s.
        """
        shell = LocalShell(self.root)
        readFile = self.successResultOf(shell.openForReading(["a.txt"]))
        self.assertTrue(verifyObject(ICloseableReadFile, readFile))
        readFile.close()
        writeFile = self.successResultOf(shell.openForWriting(["b.txt"]))
        self.assertTrue(verifyObject(IAtomicWriteFile, writeFile))
        self.assertEqual(writeFile.abort(), 0)
        self.assertFalse(self.root.child("b.txt").exists())

    def test_twistedShell(self) -> None:
        """
        Twisted's L{FTPShell} provides none of the txftps interfaces.
        """
        shell = FTPShell(self.root)
        for interface in (*_SHELL_INTERFACES, IReadOnlyShell):
            self.assertFalse(interface.providedBy(shell), interface)

    def test_silentObserver(self) -> None:
        """
        The observer of a factory without one provides L{ISessionObserver}.
        """
        self.assertTrue(verifyObject(ISessionObserver, _SilentObserver()))
        self.assertIsInstance(FTPSFactory(None, None, None).observer, _SilentObserver)


class TestingImplementationTests(SynchronousTestCase):
    """
    The private classes behind L{txftps.testing} provide what they declare.
    """

    def test_record(self) -> None:
        """
        L{SessionRecord} is an L{ISessionObserver}.
        """
        self.assertTrue(verifyObject(ISessionObserver, SessionRecord()))

    def test_consumers(self) -> None:
        """
        The consumers of the memory shell and the misbehaving data
        connection are L{IConsumer}s.
        """
        for consumer in (
            _MemorySink(b"", None),
            _Collector(),
            _TruncatingSink(_Collector(), 1, lambda: None),
        ):
            self.assertTrue(verifyObject(IConsumer, consumer), consumer)

    def test_realm(self) -> None:
        """
        The test server's realm is an L{IRealm} handing out L{LocalShell}s,
        read-only for anonymous users.
        """
        root = FilePath(self.mktemp())
        root.makedirs()
        realm = _SharedTreeRealm(root, None, frozenset())
        self.assertTrue(verifyObject(portal.IRealm, realm))
        _, shell, _ = realm.requestAvatar(ANONYMOUS, None, IFTPShell)
        self.assertIsInstance(shell, LocalShell)
        self.assertTrue(IReadOnlyShell.providedBy(shell))


class _NamedLikeLocalShell(FTPShell):  # type: ignore[misc]
    """
    A shell with the attribute names the server once probed (C{resumable},
    C{readOnly}, C{_stat_unique}) but none of the interfaces.
    """

    resumable = True
    readOnly = True

    def _stat_unique(self, fp: FilePath[str]) -> str:
        return "unique-by-name"


@implementer(portal.IRealm)
class _Realm:
    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        return IFTPShell, self.shell, lambda: None


class ProbingTests(TestCase):
    """
    The server reads a shell's features from its interfaces only.
    """

    def setUp(self) -> None:
        directory = FilePath(tempfile.mkdtemp(prefix="txftps-interfaces-"))
        self.ca = support.ThrowawayCA(directory.path)
        tls = ServerTLS.fromFiles(FilePath(self.ca.certFile), FilePath(self.ca.keyFile))
        self.root = directory.child("root")
        self.root.makedirs()
        self.root.child("data.txt").setContent(b"0123456789")
        checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser("alice", "secret")
        self.realm = _Realm(_NamedLikeLocalShell(self.root))
        factory = FTPSFactory(
            reactor,
            portal.Portal(self.realm, [normalizeChecker(checker)]),
            tls,
            ServerSettings(failedLoginDelay=0),
        )
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    def _session(self) -> list[Any]:
        client = support.ftplibLogin(
            self.ca.clientContext(), self.port.getHost().port, "alice", "secret"
        )
        results: list[Any] = []
        try:
            results.append(client.sendcmd("MFMT 20200101000000 data.txt"))
        except ftplib.error_perm as e:
            results.append(str(e))
        try:
            client.retrbinary("RETR data.txt", lambda _: None, rest=3)
        except ftplib.error_perm as e:
            results.append(str(e))
        results.append(client.sendcmd("MLST data.txt"))
        try:
            client.storbinary("APPE data.txt", io.BytesIO(b"more"))
        except ftplib.error_perm as e:
            results.append(str(e))
        client.quit()
        return results

    def test_attributeNamesIgnored(self) -> None:
        """
        A shell that has C{resumable}, C{readOnly} and C{_stat_unique} but
        declares no interface gets REST + RETR, MFMT and APPE refused, no
        C{unique} fact, and write permissions in its C{perm} fact.
        """

        def check(results: list[Any]) -> None:
            mfmt, retr, mlst, appe = results
            self.assertTrue(mfmt.startswith("502"), mfmt)
            self.assertTrue(retr.startswith("504"), retr)
            self.assertTrue(appe.startswith("504"), appe)
            fact = mlst.splitlines()[1]
            self.assertNotIn("unique=", fact)
            self.assertIn("perm=r", fact)
            self.assertIn("w", fact.split("perm=")[1].split(";")[0])
            self.assertEqual(self.root.child("data.txt").getContent(), b"0123456789")

        return threads.deferToThread(self._session).addCallback(check)

    def test_declaredInterfaces(self) -> None:
        """
        The same shell declaring L{IMachineListingShell} and
        L{IReadOnlyShell} gets a C{unique} fact and no write permissions.
        """
        shell = _NamedLikeLocalShell(self.root)
        alsoProvides(shell, IMachineListingShell, IReadOnlyShell)
        self.realm.shell = shell

        def check(results: list[Any]) -> None:
            fact = results[2].splitlines()[1]
            self.assertIn("unique=unique-by-name;", fact)
            self.assertIn("perm=r;", fact)

        return threads.deferToThread(self._session).addCallback(check)
