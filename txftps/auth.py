# -*- test-case-name: tests.test_auth -*-
"""
Authentication: the realm that hands out L{IFTPShell<twisted.protocols.ftp.IFTPShell>} avatars, the one place
where credentials are adapted to what each cred checker expects, and the
per-address ban of repeated failed logins.

Twisted's strcred checkers disagree on types: C{memory:} compares C{str},
C{file:} compares C{bytes}. L{normalizeChecker} wraps a checker so that the
protocol always builds C{str} credentials and always gets a C{str} avatar ID
back (or L{ANONYMOUS}).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from zope.interface import implementer

from txftps._certauth import (
    CertificateMapError,
    ClientCertificate,
    ClientCertificateChecker,
    IClientCertificate,
    parseCertificateMap,
)
from txftps._htpasswd import (
    HtpasswdChecker,
    HtpasswdCheckerFactory,
    HtpasswdError,
    parseHtpasswd,
)
from txftps.storage import LocalShell

__all__ = [
    "ANONYMOUS",
    "CertificateMapError",
    "CheckerChain",
    "ClientCertificate",
    "ClientCertificateChecker",
    "FTPSRealm",
    "HtpasswdChecker",
    "HtpasswdCheckerFactory",
    "HtpasswdError",
    "IClientCertificate",
    "LoginBans",
    "UsernamePassword",
    "normalizeChecker",
    "parseCertificateMap",
    "parseHtpasswd",
    "validUsername",
]

#: The avatar ID of an anonymous login.
ANONYMOUS = checkers.ANONYMOUS


@implementer(credentials.IUsernamePassword)
class UsernamePassword:
    """
    A user name and password as typed by the client.

    @ivar username: the name, C{str} (C{bytes} for checkers that want it).
    @ivar password: the password, same type as C{username}.
    """

    def __init__(self, username: Any, password: Any) -> None:
        self.username = username
        self.password = password

    def checkPassword(self, password: Any) -> bool:
        mine = self.password
        if isinstance(password, str):
            password = password.encode("utf-8", "surrogateescape")
        if isinstance(mine, str):
            mine = mine.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(mine, password)


def _wantsBytes(checker: checkers.ICredentialsChecker) -> bool:
    """
    Does C{checker} compare user names as C{bytes}? Twisted's C{FilePasswordDB}
    does; its in-memory checker does when built with keyword arguments (its
    strcred C{memory:} form adds C{str} names).
    """
    if isinstance(checker, checkers.FilePasswordDB):
        return True
    users = getattr(checker, "users", None)
    if isinstance(checker, checkers.InMemoryUsernamePasswordDatabaseDontUse) and users:
        return any(isinstance(name, bytes) for name in users)
    return False


@implementer(checkers.ICredentialsChecker)
class _NormalizedChecker:
    def __init__(self, checker: checkers.ICredentialsChecker) -> None:
        self._checker = checker
        self.credentialInterfaces = checker.credentialInterfaces

    def requestAvatarId(self, creds: Any) -> defer.Deferred[Any]:
        if isinstance(creds, UsernamePassword) and _wantsBytes(self._checker):
            creds = UsernamePassword(
                creds.username.encode("utf-8", "surrogateescape"),
                creds.password.encode("utf-8", "surrogateescape"),
            )
        d = defer.maybeDeferred(self._checker.requestAvatarId, creds)
        return d.addCallback(_normalAvatarId)


def _normalAvatarId(avatarId: Any) -> Any:
    if isinstance(avatarId, bytes):
        return avatarId.decode("utf-8", "surrogateescape")
    return avatarId


def normalizeChecker(checker: checkers.ICredentialsChecker) -> checkers.ICredentialsChecker:
    """
    Wrap C{checker} so that it accepts L{UsernamePassword} with C{str} fields
    and returns C{str} avatar IDs, whatever types it uses itself.
    """
    return _NormalizedChecker(checker)


@implementer(checkers.ICredentialsChecker)
class CheckerChain:
    """
    Several checkers as one: a L{Portal<twisted.cred.portal.Portal>} keeps
    one checker per credentials interface, so repeated C{--auth} options are
    chained here. Each checker that handles the credentials is tried in
    order; the first avatar ID wins.
    """

    def __init__(self, chain: list[checkers.ICredentialsChecker]) -> None:
        self.chain = chain
        interfaces: list[Any] = []
        for checker in chain:
            for interface in checker.credentialInterfaces:
                if interface not in interfaces:
                    interfaces.append(interface)
        self.credentialInterfaces = tuple(interfaces)

    async def _check(self, creds: Any) -> Any:
        for checker in self.chain:
            if any(i.providedBy(creds) for i in checker.credentialInterfaces):
                try:
                    return await defer.maybeDeferred(checker.requestAvatarId, creds)
                except error.UnauthorizedLogin:
                    continue
        raise error.UnauthorizedLogin("no checker accepted the credentials")

    def requestAvatarId(self, creds: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self._check(creds))


def validUsername(name: str) -> bool:
    """
    Can C{name} be a home directory name? No separators, NUL or dot names.
    """
    return (
        bool(name)
        and len(name) <= 255
        and name not in (".", "..")
        and not any(c in name for c in "/\\\0")
        and all(c.isprintable() for c in name)
    )


@implementer(portal.IRealm)
class FTPSRealm:
    """
    Hands out L{LocalShell} avatars: anonymous users get C{anonymousRoot}
    read-only, an authenticated user gets C{homeRoot/USERNAME}, created (mode
    0700) on first login.

    @cvar shellFactory: builds the shell; subclasses may return any
        L{IFTPShell<twisted.protocols.ftp.IFTPShell>}.
    """

    shellFactory: Callable[..., Any] = LocalShell

    def __init__(
        self,
        anonymousRoot: FilePath[str],
        homeRoot: FilePath[str],
        readOnlyUsers: frozenset[str] = frozenset(),
    ) -> None:
        """
        @param anonymousRoot: served read-only to anonymous users.
        @param homeRoot: the parent of users' homes.
        @param readOnlyUsers: users who get their home read-only.
        """
        self.anonymousRoot = anonymousRoot
        self.homeRoot = homeRoot
        self.readOnlyUsers = readOnlyUsers

    def getHomeDirectory(self, avatarId: str) -> FilePath[str]:
        """
        The home of C{avatarId}, created if missing.
        """
        if not validUsername(avatarId):
            raise error.UnauthorizedLogin("unusable user name")
        home = self.homeRoot.child(avatarId)
        if not home.isdir():
            os.makedirs(home.path, mode=0o700, exist_ok=True)
        return home

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, Any, Callable[[], None]]:
        if IFTPShell not in interfaces:
            raise NotImplementedError("FTPSRealm only provides IFTPShell")
        if avatarId is ANONYMOUS:
            shell = self.shellFactory(self.anonymousRoot, readOnly=True)
        else:
            shell = self.shellFactory(
                self.getHomeDirectory(avatarId), readOnly=avatarId in self.readOnlyUsers
            )
        return IFTPShell, shell, lambda: None


class LoginBans:
    """
    Counts failed logins per address and bans an address for C{banTime}
    seconds after C{banAfter} failures.

    Checks still running count too: an address with C{banAfter} failures and
    running checks together gets no further check until one ends, so
    parallel connections cannot guess more passwords than the ban allows.
    Failures older than C{banTime} are forgotten.
    """

    #: Expired entries are swept when the table grows past this many.
    sweepAt = 10_000

    def __init__(self, clock: IReactorTime, banAfter: int = 10, banTime: float = 600) -> None:
        self._clock = clock
        self.banAfter = banAfter
        self.banTime = banTime
        self._failures: dict[str, tuple[int, float]] = {}
        self._running: dict[str, int] = {}
        self._bannedUntil: dict[str, float] = {}

    def _failureCount(self, host: str) -> int:
        count, since = self._failures.get(host, (0, 0.0))
        if count and self._clock.seconds() - since >= self.banTime:
            del self._failures[host]
            return 0
        return count

    def isBanned(self, host: str) -> bool:
        """
        Is C{host} refused now (banned, or at its limit with checks running)?
        """
        if self.refusesConnections(host):
            return True
        if self.banAfter <= 0:
            return False
        return self._failureCount(host) + self._running.get(host, 0) >= self.banAfter

    def refusesConnections(self, host: str) -> bool:
        """
        Is C{host} under a ban now, so that its new connections are refused
        before the greeting and before any TLS handshake?

        Unlike L{isBanned}, checks still running do not count here: they may
        yet succeed, and a client that opens a second connection while its
        first logs in must not be turned away.
        """
        until = self._bannedUntil.get(host)
        if until is None:
            return False
        if self._clock.seconds() < until:
            return True
        del self._bannedUntil[host]
        return False

    def checking(self, host: str) -> None:
        """
        A password check for C{host} started; call L{failed} or L{succeeded}
        when it ends.
        """
        self._running[host] = self._running.get(host, 0) + 1

    def beginCheck(self, host: str) -> defer.Deferred[bool]:
        """
        Start a password check for C{host} unless L{isBanned} refuses it:
        the question and L{checking} in one step, so that checks running in
        parallel (on several connections, or in several worker processes)
        cannot pass the limit together.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} that fires
            with whether the check may run; when it may, call L{failed} or
            L{succeeded} when it ends. Here it has fired already; a
            subclass may answer later.
        """
        if self.isBanned(host):
            return defer.succeed(False)
        self.checking(host)
        return defer.succeed(True)

    def abandon(self, host: str) -> None:
        """
        A check announced with L{checking} ended with no verdict (the worker
        process that ran it died): it no longer counts, and no failure is
        recorded.
        """
        self._checked(host)

    def ban(self, host: str, seconds: float) -> None:
        """
        Refuse C{host} for C{seconds} from now: a ban decided elsewhere (by
        the parent of worker processes) that this table enforces.
        """
        until = self._clock.seconds() + seconds
        self._bannedUntil[host] = max(until, self._bannedUntil.get(host, until))

    def _checked(self, host: str) -> None:
        left = self._running.get(host, 0) - 1
        if left > 0:
            self._running[host] = left
        else:
            self._running.pop(host, None)

    def failed(self, host: str, checked: bool = True) -> bool:
        """
        Record a failed login from C{host}.

        @param checked: the failure ends a check announced with L{checking}.
        @return: whether this failure started a ban of C{host}.
        """
        if checked:
            self._checked(host)
        if self.banAfter <= 0:
            return False
        banned = False
        now = self._clock.seconds()
        count = self._failureCount(host) + 1
        if count >= self.banAfter:
            self._failures.pop(host, None)
            banned = host not in self._bannedUntil or self._bannedUntil[host] <= now
            self._bannedUntil[host] = now + self.banTime
        else:
            since = self._failures.get(host, (0, now))[1]
            self._failures[host] = (count, since)
        if len(self._failures) + len(self._bannedUntil) > self.sweepAt:
            self._sweep(now)
        return banned

    def succeeded(self, host: str, checked: bool = True) -> None:
        """
        Record a successful login from C{host}: its failures are forgotten.
        """
        if checked:
            self._checked(host)
        self._failures.pop(host, None)

    def _sweep(self, now: float) -> None:
        self._failures = {
            host: (count, since)
            for host, (count, since) in self._failures.items()
            if now - since < self.banTime
        }
        self._bannedUntil = {
            host: until for host, until in self._bannedUntil.items() if until > now
        }
