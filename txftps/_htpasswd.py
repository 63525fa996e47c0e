# -*- test-case-name: tests.test_htpasswd -*-
"""
Users in an Apache C{htpasswd} file with bcrypt hashes (C{htpasswd -B}).

L{HtpasswdChecker} is a cred checker for C{IUsernamePassword}; C{twistd ftps
--auth htpasswd:PATH} uses it through the strcred plugin in txftps's dropin.
The file is read again whenever it changes (its modification time, size or
inode), so operators edit users with C{htpasswd} or C{python -m
txftps.passwd} without restarting the server.

Only bcrypt hashes (C{$2y$}, C{$2b$}, C{$2a$}) are accepted: a file holding
plaintext, crypt, MD5 (C{$apr1$}) or SHA-1 (C{{SHA}}) entries is refused with a
message naming the line, at start and on every reload (the users of the
previous good version stay in force then).

bcrypt is slow on purpose, so the hash is checked in the reactor's thread
pool; an unknown user costs the same as a wrong password (a dummy hash is
checked), so timing does not tell which user names exist.
"""

from __future__ import annotations

import os
from typing import Any

import bcrypt
from twisted.cred import checkers, credentials, error, strcred
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

_log = Logger()

_BCRYPT_PREFIXES = (b"$2y$", b"$2b$", b"$2a$")


def _cost(hashed: bytes) -> int:
    try:
        return int(hashed[4:6])
    except ValueError:
        return 12


class HtpasswdError(Exception):
    """
    The file cannot be used; the message says why, in one line.
    """


def parseHtpasswd(content: bytes, name: str = "htpasswd file") -> dict[str, bytes]:
    """
    Parse C{user:hash} lines; blank lines and C{#} comments are skipped.

    @param content: the file's bytes.
    @param name: how to name the file in errors.
    @return: user name to bcrypt hash.
    @raise HtpasswdError: a line is malformed or holds a hash that is not
        bcrypt (plaintext and weak hashes are refused).
    """
    users: dict[str, bytes] = {}
    for number, raw in enumerate(content.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, hashed = line.partition(b":")
        if not sep or not user or not hashed:
            raise HtpasswdError(f"{name} line {number}: expected user:hash")
        try:
            userName = user.decode("utf-8")
        except UnicodeDecodeError:
            raise HtpasswdError(f"{name} line {number}: the user name is not UTF-8")
        if not hashed.startswith(_BCRYPT_PREFIXES):
            raise HtpasswdError(
                f"{name} line {number}: user {userName!r} has a plaintext or weak"
                " password hash; only bcrypt is accepted (htpasswd -B, or"
                " python -m txftps.passwd)"
            )
        if userName in users:
            raise HtpasswdError(f"{name} line {number}: user {userName!r} appears twice")
        users[userName] = hashed
    return users


@implementer(checkers.ICredentialsChecker)
class HtpasswdChecker:
    """
    Checks user names and passwords against a bcrypt C{htpasswd} file.

    @ivar path: the file.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, path: str, reactor: Any) -> None:
        """
        @param path: the file; it is read now.
        @param reactor: provides
            L{IReactorThreads<twisted.internet.interfaces.IReactorThreads>}
            (for bcrypt off the reactor thread).
        @raise HtpasswdError: the file cannot be read or is not acceptable.
        """
        self.path = path
        self._reactor = reactor
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, bytes] = {}
        self._dummy = b""
        self._dummyCost = -1
        self._cost = 12
        self._load(strict=True)

    def _load(self, strict: bool) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            with open(self.path, "rb") as f:
                content = f.read()
            users = parseHtpasswd(content, self.path)
        except (OSError, HtpasswdError) as e:
            message = e.strerror if isinstance(e, OSError) else str(e)
            if strict:
                raise HtpasswdError(f"cannot use {self.path}: {message}")
            _log.error(
                "htpasswd file not reloaded, the previous users stay: {message}",
                message=message,
            )
            return
        self._users = users
        self._cost = max((_cost(h) for h in users.values()), default=12)
        if self._stamp is not None:
            _log.info("reloaded {path}: {count} users", path=self.path, count=len(users))
        self._stamp = stamp

    def users(self) -> list[str]:
        """
        The user names in the file (reloaded if it changed).
        """
        self._load(strict=False)
        return sorted(self._users)

    def _check(self, password: bytes, hashed: bytes | None) -> bool:
        """
        bcrypt, in a pool thread. An unknown user is checked against a dummy
        hash of the file's highest cost, so that it costs as much as a known
        one (the dummy is made here, off the reactor thread, when the cost
        changes).
        """
        if hashed is not None:
            return bool(bcrypt.checkpw(password, hashed))
        cost = self._cost
        if cost != self._dummyCost:
            self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
            self._dummyCost = cost
        bcrypt.checkpw(password, self._dummy)
        return False

    def requestAvatarId(self, creds: Any) -> defer.Deferred[Any]:
        self._load(strict=False)
        username = creds.username
        password = creds.password
        if isinstance(username, bytes):
            username = username.decode("utf-8", "surrogateescape")
        if isinstance(password, str):
            password = password.encode("utf-8", "surrogateescape")
        hashed = self._users.get(username)
        known = hashed is not None
        d = threads.deferToThreadPool(
            self._reactor,
            self._reactor.getThreadPool(),
            self._check,
            password,
            hashed,
        )

        def checked(ok: bool) -> str:
            if ok and known:
                return str(username)
            raise error.UnauthorizedLogin("bad user name or password")

        return d.addCallback(checked)


@implementer(strcred.ICheckerFactory, IPlugin)
class HtpasswdCheckerFactory:
    """
    The strcred factory behind C{--auth htpasswd:PATH}.
    """

    authType = "htpasswd"
    authHelp = (
        "Users in an Apache htpasswd file with bcrypt hashes (htpasswd -B, or"
        " python -m txftps.passwd); reloaded when the file changes."
    )
    argStringFormat = "A path to an htpasswd file."
    credentialInterfaces = HtpasswdChecker.credentialInterfaces

    def generateChecker(self, argstring: str) -> HtpasswdChecker:
        from twisted.internet import reactor

        if not argstring:
            raise strcred.InvalidAuthArgumentString("htpasswd: needs a file path")
        try:
            return HtpasswdChecker(argstring, reactor)
        except HtpasswdError as e:
            raise strcred.InvalidAuthArgumentString(str(e))


htpasswdCheckerFactory = HtpasswdCheckerFactory()
