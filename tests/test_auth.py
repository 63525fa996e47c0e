"""
Tests for L{txftps.auth}: credential normalisation across Twisted's cred
checkers, the realm that hands out filesystem shells, and login bans.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from twisted.cred import checkers, credentials, error, strcred
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txftps.auth import (
    ANONYMOUS,
    CheckerChain,
    FTPSRealm,
    LoginBans,
    UsernamePassword,
    normalizeChecker,
    validUsername,
)
from txftps.storage import LocalShell


class UsernamePasswordTests(SynchronousTestCase):
    """
    L{UsernamePassword} compares passwords whatever their type.
    """

    def test_interface(self) -> None:
        """
        It provides L{credentials.IUsernamePassword}.
        """
        verifyObject(credentials.IUsernamePassword, UsernamePassword("a", "b"))

    def test_checkPasswordMixedTypes(self) -> None:
        """
        A C{str} password matches the same password stored as C{str} or as
        UTF-8 C{bytes}, and a different one does not.
        """
        creds = UsernamePassword("alice", "pässword")
        self.assertTrue(creds.checkPassword("pässword"))
        self.assertTrue(creds.checkPassword("pässword".encode()))
        self.assertFalse(creds.checkPassword("password"))
        self.assertFalse(creds.checkPassword(b"p\xe4ssword"))
        self.assertFalse(creds.checkPassword(""))


class NormalizeCheckerTests(SynchronousTestCase):
    """
    L{normalizeChecker} lets the protocol use C{str} credentials and get
    C{str} avatar IDs with every kind of checker.
    """

    def login(self, checker: Any, username: str, password: str) -> defer.Deferred[Any]:
        return normalizeChecker(checker).requestAvatarId(UsernamePassword(username, password))

    def assertAvatarId(self, checker: Any, username: str, password: str) -> None:
        avatarId = self.successResultOf(self.login(checker, username, password))
        self.assertIsInstance(avatarId, str)
        self.assertEqual(avatarId, username)

    def assertRefused(self, checker: Any, username: str, password: str) -> None:
        self.failureResultOf(self.login(checker, username, password), error.UnauthorizedLogin)

    def passwordFile(self, content: bytes) -> str:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(content)
        return path

    def test_wrapperProvidesInterface(self) -> None:
        """
        The wrapper is an L{checkers.ICredentialsChecker} with the wrapped
        checker's credential interfaces.
        """
        inner = strcred.makeChecker("memory:alice:secret")
        wrapped = normalizeChecker(inner)
        verifyObject(checkers.ICredentialsChecker, wrapped)
        self.assertEqual(tuple(wrapped.credentialInterfaces), tuple(inner.credentialInterfaces))

    def test_memoryStrcred(self) -> None:
        """
        The C{memory:} strcred checker (C{--auth memory:alice:secret}) gives
        the str avatar ID C{"alice"}; a wrong password or user fails.
        """
        checker = strcred.makeChecker("memory:alice:secret")
        self.assertAvatarId(checker, "alice", "secret")
        self.assertRefused(checker, "alice", "wrong")
        self.assertRefused(checker, "bob", "secret")

    def test_inMemoryKeywordConstructor(self) -> None:
        """
        C{InMemoryUsernamePasswordDatabaseDontUse(alice="secret")} (the
        documented constructor, which stores the user name as bytes) gives the
        str avatar ID C{"alice"}; a wrong password fails.
        """
        checker = checkers.InMemoryUsernamePasswordDatabaseDontUse(alice="secret")
        self.assertAvatarId(checker, "alice", "secret")
        self.assertRefused(checker, "alice", "wrong")

    def test_inMemoryKeywordConstructorBytesPassword(self) -> None:
        """
        The same with the password given as bytes, as Twisted's docstring asks
        (C{alice=b"secret"}).
        """
        checker = checkers.InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
        self.assertAvatarId(checker, "alice", "secret")
        self.assertRefused(checker, "alice", "wrong")

    def test_filePasswordDB(self) -> None:
        """
        L{checkers.FilePasswordDB} (which compares bytes) gives the str avatar
        ID C{"alice"} for the same str credentials; a wrong password or an
        unknown user fails.
        """
        checker = checkers.FilePasswordDB(self.passwordFile(b"alice:secret\nbob:other\n"))
        self.assertAvatarId(checker, "alice", "secret")
        self.assertAvatarId(checker, "bob", "other")
        self.assertRefused(checker, "alice", "wrong")
        self.assertRefused(checker, "alice", "other")
        self.assertRefused(checker, "carol", "secret")

    def test_fileStrcred(self) -> None:
        """
        The C{file:} strcred checker (C{--auth file:PATH}) works the same way.
        """
        path = self.passwordFile(b"alice:secret\n")
        checker = strcred.makeChecker("file:" + path)
        self.assertAvatarId(checker, "alice", "secret")
        self.assertRefused(checker, "alice", "wrong")

    def test_fileNonASCII(self) -> None:
        """
        Non-ASCII user names and passwords in a UTF-8 password file match the
        str credentials typed by the client, and come back as str.
        """
        path = self.passwordFile("jürgen:pässword\n".encode())
        checker = checkers.FilePasswordDB(path)
        self.assertAvatarId(checker, "jürgen", "pässword")
        self.assertRefused(checker, "jürgen", "password")

    def test_sameAvatarIdForBothKinds(self) -> None:
        """
        The memory and file checkers give equal avatar IDs (same type, same
        value) for the same credentials, so the realm gives the same home.
        """
        memory = strcred.makeChecker("memory:alice:secret")
        file = checkers.FilePasswordDB(self.passwordFile(b"alice:secret\n"))
        first = self.successResultOf(self.login(memory, "alice", "secret"))
        second = self.successResultOf(self.login(file, "alice", "secret"))
        self.assertEqual((type(first), first), (type(second), second))

    def test_anonymousPassesThrough(self) -> None:
        """
        The anonymous checker wrapped still returns L{ANONYMOUS} itself (the
        realm tests identity).
        """
        checker = normalizeChecker(checkers.AllowAnonymousAccess())
        avatarId = self.successResultOf(checker.requestAvatarId(credentials.Anonymous()))
        self.assertIs(avatarId, ANONYMOUS)

    def test_unixChecker(self) -> None:
        """
        The C{unix} strcred checker wrapped by L{normalizeChecker} constructs,
        accepts username/password credentials, and refuses a user that does
        not exist.
        """
        checker = normalizeChecker(strcred.makeChecker("unix"))
        self.assertIn(credentials.IUsernamePassword, checker.credentialInterfaces)
        d = checker.requestAvatarId(UsernamePassword("txftps-no-such-user-x9", "secret"))
        self.failureResultOf(d, error.UnauthorizedLogin)


class CheckerChainTests(SynchronousTestCase):
    """
    Tests for L{CheckerChain}: repeated C{--auth} checkers all count.
    """

    def setUp(self) -> None:
        first = strcred.makeChecker("memory:alice:secret")
        second = strcred.makeChecker("memory:bob:pw-bob")
        anonymous = strcred.makeChecker("anonymous")
        self.chain = CheckerChain([normalizeChecker(c) for c in (first, second, anonymous)])

    def test_provides(self) -> None:
        """
        The chain is a credentials checker for every interface of its links.
        """
        verifyObject(checkers.ICredentialsChecker, self.chain)
        self.assertTrue(
            {credentials.IUsernamePassword, credentials.IAnonymous}
            <= set(self.chain.credentialInterfaces)
        )

    def test_everyCheckerCounts(self) -> None:
        """
        Users of the first and of the second checker both log in; anonymous
        too.
        """
        for name, password in (("alice", "secret"), ("bob", "pw-bob")):
            avatar = self.successResultOf(
                self.chain.requestAvatarId(UsernamePassword(name, password))
            )
            self.assertEqual(avatar, name)
        self.assertIs(
            self.successResultOf(self.chain.requestAvatarId(credentials.Anonymous())),
            checkers.ANONYMOUS,
        )

    def test_wrongPasswordFails(self) -> None:
        """
        A password that no checker accepts (here bob's password for alice)
        fails with L{error.UnauthorizedLogin}.
        """
        self.failureResultOf(
            self.chain.requestAvatarId(UsernamePassword("alice", "pw-bob")),
            error.UnauthorizedLogin,
        )


class ValidUsernameTests(SynchronousTestCase):
    """
    L{validUsername} decides which names can be home directories.
    """

    def test_valid(self) -> None:
        """
        Ordinary names, including dots inside and non-ASCII letters, are
        valid.
        """
        for name in ("alice", "a.b", "jürgen", "x" * 255, "..a"):
            self.assertTrue(validUsername(name), name)

    def test_invalid(self) -> None:
        """
        Empty, dot names, separators, NUL, control characters and names over
        255 characters are invalid.
        """
        for name in ("", ".", "..", "a/b", "a\\b", "a\0b", "a\nb", "x" * 256, "/"):
            self.assertFalse(validUsername(name), repr(name))


class FTPSRealmTests(SynchronousTestCase):
    """
    L{FTPSRealm} hands out L{LocalShell} avatars.
    """

    def setUp(self) -> None:
        base = FilePath(self.mktemp())
        self.root = base.child("root")
        self.root.makedirs()
        self.home = base.child("home")
        self.home.makedirs()
        self.realm = FTPSRealm(self.root, self.home)

    def test_homeCreatedOnFirstLogin(self) -> None:
        """
        The first login of a user creates C{home/USERNAME} with mode 0700 and
        serves a writable L{LocalShell} rooted there.
        """
        self.assertFalse(self.home.child("alice").exists())
        interface, shell, logout = self.realm.requestAvatar("alice", None, IFTPShell)
        self.assertIs(interface, IFTPShell)
        verifyObject(IFTPShell, shell)
        self.assertIsInstance(shell, LocalShell)
        home = self.home.child("alice")
        self.assertTrue(home.isdir())
        self.assertEqual(stat.S_IMODE(os.stat(home.path).st_mode), 0o700)
        self.assertEqual(shell.filesystemRoot, home)
        self.assertFalse(shell.readOnly)
        self.successResultOf(shell.makeDirectory(["made"]))
        self.assertTrue(home.child("made").isdir())
        logout()

    def test_homeModeIgnoresUmask(self) -> None:
        """
        The home is 0700 even when the process umask is 0.
        """
        old = os.umask(0)
        try:
            self.realm.requestAvatar("bob", None, IFTPShell)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.home.child("bob").path).st_mode), 0o700)

    def test_existingHomeKept(self) -> None:
        """
        A second login reuses the existing home and its files.
        """
        self.realm.requestAvatar("alice", None, IFTPShell)
        self.home.child("alice").child("f").setContent(b"kept")
        _, shell, _ = self.realm.requestAvatar("alice", None, IFTPShell)
        self.assertEqual(self.home.child("alice").child("f").getContent(), b"kept")
        self.assertEqual(shell.filesystemRoot, self.home.child("alice"))

    def test_badUserNamesRefused(self) -> None:
        """
        The user names C{..}, C{a/b}, C{.} and the empty name are refused with
        L{error.UnauthorizedLogin} and create nothing, inside the home root or
        next to it.
        """
        before = sorted(self.home.parent().listdir())
        for name in ("..", "a/b", "", ".", "../escape"):
            self.assertRaises(
                error.UnauthorizedLogin, self.realm.requestAvatar, name, None, IFTPShell
            )
        self.assertEqual(self.home.listdir(), [])
        self.assertEqual(sorted(self.home.parent().listdir()), before)

    def test_badUserNameThroughPortal(self) -> None:
        """
        Through a portal, a checker that accepts the user C{..} still does not
        log in: the login fails with L{error.UnauthorizedLogin}.
        """
        database = checkers.InMemoryUsernamePasswordDatabaseDontUse()
        database.addUser("..", "pw")  # type: ignore[arg-type]
        portal = Portal(self.realm, [normalizeChecker(database)])
        d = portal.login(UsernamePassword("..", "pw"), None, IFTPShell)
        self.failureResultOf(d, error.UnauthorizedLogin)

    def test_anonymousReadOnlyRoot(self) -> None:
        """
        Anonymous gets a read-only shell of the anonymous root: it reads, and
        every change fails with a permission error, leaving the root as it
        was; no home is created.
        """
        self.root.child("pub.txt").setContent(b"public")
        _, shell, _ = self.realm.requestAvatar(ANONYMOUS, None, IFTPShell)
        self.assertEqual(shell.filesystemRoot, self.root)
        self.assertTrue(shell.readOnly)
        listing = self.successResultOf(shell.list([], ("size",)))
        self.assertEqual(listing, [("pub.txt", [6])])
        from twisted.protocols.ftp import PermissionDeniedError

        self.failureResultOf(shell.makeDirectory(["new"]), PermissionDeniedError)
        self.failureResultOf(shell.removeFile(["pub.txt"]), PermissionDeniedError)
        self.failureResultOf(shell.rename(["pub.txt"], ["x.txt"]), PermissionDeniedError)
        self.failureResultOf(shell.openForWriting(["up.txt"]), PermissionDeniedError)
        self.assertEqual(self.root.listdir(), ["pub.txt"])
        self.assertEqual(self.home.listdir(), [])

    def test_userNamedAnonymousIsNotAnonymous(self) -> None:
        """
        Only the L{ANONYMOUS} marker means anonymous: an avatar ID that is
        the string C{"anonymous"} gets a writable home of its own.
        """
        _, shell, _ = self.realm.requestAvatar("anonymous", None, IFTPShell)
        self.assertFalse(shell.readOnly)
        self.assertEqual(shell.filesystemRoot, self.home.child("anonymous"))

    def test_otherInterfaceRefused(self) -> None:
        """
        The realm only provides L{IFTPShell}.
        """
        from zope.interface import Interface

        class IOther(Interface):
            pass

        self.assertRaises(NotImplementedError, self.realm.requestAvatar, "alice", None, IOther)

    def test_portalLoginWithFileChecker(self) -> None:
        """
        A portal with a normalised C{file:} checker logs alice in with str
        credentials and serves her home (not a C{b'alice'} directory).
        """
        path = self.mktemp()
        FilePath(path).setContent(b"alice:secret\n")
        portal = Portal(self.realm, [normalizeChecker(checkers.FilePasswordDB(path))])
        result = self.successResultOf(
            portal.login(UsernamePassword("alice", "secret"), None, IFTPShell)
        )
        self.assertEqual(result[1].filesystemRoot, self.home.child("alice"))
        self.assertEqual(self.home.listdir(), ["alice"])


class LoginBansTests(SynchronousTestCase):
    """
    L{LoginBans} bans an address after repeated failures, for a while.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.bans = LoginBans(self.clock, banAfter=3, banTime=60)

    def test_banAfterNFailures(self) -> None:
        """
        An address is not banned after N-1 failures and is banned after N.
        """
        for _ in range(2):
            self.bans.failed("192.0.2.1")
            self.assertFalse(self.bans.isBanned("192.0.2.1"))
        self.bans.failed("192.0.2.1")
        self.assertTrue(self.bans.isBanned("192.0.2.1"))

    def test_runningChecksCount(self) -> None:
        """
        Checks still running count towards the limit: with N-1 failures and
        one check running, the address gets no further check; when that
        check succeeds, it may try again.
        """
        for _ in range(2):
            self.bans.failed("192.0.2.1", checked=False)
        self.bans.checking("192.0.2.1")
        self.assertTrue(self.bans.isBanned("192.0.2.1"))
        self.assertFalse(self.bans.isBanned("192.0.2.2"))
        self.bans.succeeded("192.0.2.1")
        self.assertFalse(self.bans.isBanned("192.0.2.1"))

    def test_oldFailuresForgotten(self) -> None:
        """
        Failures older than C{banTime} no longer count towards a ban.
        """
        for _ in range(2):
            self.bans.failed("192.0.2.1", checked=False)
        self.clock.advance(60)
        self.bans.failed("192.0.2.1", checked=False)
        self.assertFalse(self.bans.isBanned("192.0.2.1"))

    def test_tableSwept(self) -> None:
        """
        Expired entries are dropped when the table grows past C{sweepAt}, so
        many addresses cannot grow memory without bound.
        """
        self.bans.sweepAt = 10
        for n in range(10):
            self.bans.failed(f"192.0.2.{n}", checked=False)
        self.clock.advance(61)
        self.bans.failed("198.51.100.1", checked=False)
        self.assertEqual(list(self.bans._failures), ["198.51.100.1"])

    def test_banExpires(self) -> None:
        """
        A ban lasts C{banTime} seconds: still banned just before, lifted at
        C{banTime}.
        """
        for _ in range(3):
            self.bans.failed("192.0.2.1")
        self.clock.advance(59.9)
        self.assertTrue(self.bans.isBanned("192.0.2.1"))
        self.clock.advance(0.1)
        self.assertFalse(self.bans.isBanned("192.0.2.1"))

    def test_refusesConnectionsOnlyWhenBanned(self) -> None:
        """
        New connections are refused only under a real ban, for C{banTime}
        seconds: N-1 failures with a check still running hold back further
        checks but do not turn a second connection away.
        """
        for _ in range(2):
            self.bans.failed("192.0.2.1", checked=False)
        self.bans.checking("192.0.2.1")
        self.assertTrue(self.bans.isBanned("192.0.2.1"))
        self.assertFalse(self.bans.refusesConnections("192.0.2.1"))
        self.bans.failed("192.0.2.1")
        self.assertTrue(self.bans.refusesConnections("192.0.2.1"))
        self.assertFalse(self.bans.refusesConnections("192.0.2.2"))
        self.clock.advance(59.9)
        self.assertTrue(self.bans.refusesConnections("192.0.2.1"))
        self.clock.advance(0.1)
        self.assertFalse(self.bans.refusesConnections("192.0.2.1"))

    def test_countStartsAfresh(self) -> None:
        """
        After a ban expires, it takes N new failures to ban again.
        """
        for _ in range(3):
            self.bans.failed("192.0.2.1")
        self.clock.advance(60)
        self.assertFalse(self.bans.isBanned("192.0.2.1"))
        for _ in range(2):
            self.bans.failed("192.0.2.1")
        self.assertFalse(self.bans.isBanned("192.0.2.1"))
        self.bans.failed("192.0.2.1")
        self.assertTrue(self.bans.isBanned("192.0.2.1"))

    def test_successResetsCount(self) -> None:
        """
        A successful login forgets earlier failures: N-1 failures, a success,
        then N-1 failures again do not ban.
        """
        for _ in range(2):
            self.bans.failed("192.0.2.1")
        self.bans.succeeded("192.0.2.1")
        for _ in range(2):
            self.bans.failed("192.0.2.1")
        self.assertFalse(self.bans.isBanned("192.0.2.1"))

    def test_perAddress(self) -> None:
        """
        Failures from one address do not count against another.
        """
        for _ in range(3):
            self.bans.failed("192.0.2.1")
        self.bans.failed("192.0.2.2")
        self.assertTrue(self.bans.isBanned("192.0.2.1"))
        self.assertFalse(self.bans.isBanned("192.0.2.2"))

    def test_zeroDisables(self) -> None:
        """
        C{banAfter=0} never bans.
        """
        bans = LoginBans(self.clock, banAfter=0, banTime=60)
        for _ in range(100):
            bans.failed("192.0.2.1")
        self.assertFalse(bans.isBanned("192.0.2.1"))
