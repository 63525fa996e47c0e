# -*- test-case-name: tests.test_server -*-
"""
Login commands of the protocol interpreter: C{USER} and C{PASS}, logging in
with a client certificate (C{232}), and the failed-login delay and bans.

Credentials go to the factory's cred L{Portal<twisted.cred.portal.Portal>}; the avatar is an
L{IFTPShell<twisted.protocols.ftp.IFTPShell>}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred import credentials as credtypes
from twisted.cred import error as crederror
from twisted.internet import defer, interfaces
from twisted.logger import Logger
from twisted.protocols import ftp

from txftps._certauth import ClientCertificate
from txftps._interpreter import ProtocolInterpreter
from txftps.auth import UsernamePassword
from txftps.errors import FTPReplyError

_log = Logger()


class LoginCommands(ProtocolInterpreter):
    """
    The login commands.
    """

    def ftp_USER(self, argument: str) -> defer.Deferred[None] | None:
        self.settings.policy.checkLogin(self.session)
        if self.session.loggedIn:
            raise FTPReplyError(530, "Already logged in.")
        if not argument:
            raise FTPReplyError(501, "USER needs a user name.")
        self.session.user = argument
        if (
            self.settings.certificateLogin
            and self.clientCertificate is not None
            and not self.factory.bans.isBanned(self.peerHost)
        ):
            return self._async(self._certificateLogin(argument, self.clientCertificate))
        self.reply(331, "Password required.")
        return None

    async def _certificateLogin(self, user: str, certificate: Any) -> None:
        """
        C{USER} from a client whose verified certificate names C{user}: 232,
        no password. Otherwise the usual 331 and password check.
        """
        try:
            result = await self.factory.portal.login(
                ClientCertificate(user, certificate), None, ftp.IFTPShell
            )
        except (crederror.UnauthorizedLogin, crederror.UnhandledCredentials):
            self.reply(331, "Password required.")
            return
        self.session.user = None
        self._loggedIn(user, result, checked=False)
        self.reply(232, "User logged in, authorized by the client certificate.")

    def ftp_PASS(self, argument: str) -> defer.Deferred[None] | None:
        self.settings.policy.checkLogin(self.session)
        if self.session.loggedIn:
            raise FTPReplyError(503, "Already logged in.")
        if self.session.user is None:
            raise FTPReplyError(503, "Send USER first.")
        user, self.session.user = self.session.user, None
        return self._async(self._login(user, argument))

    async def _login(self, user: str, password: str) -> None:
        started = self.clock.seconds()
        bans = self.factory.bans
        creds: Any
        if user.lower() in ("anonymous", "ftp"):
            creds = credtypes.Anonymous()
        else:
            creds = UsernamePassword(user, password)
        ok = not bans.isBanned(self.peerHost) and (
            isinstance(creds, credtypes.Anonymous)
            or 0 < len(password) <= self.settings.maxPasswordLength
        )
        result = None
        if ok:
            bans.checking(self.peerHost)
            try:
                result = await self.factory.portal.login(creds, None, ftp.IFTPShell)
            except (crederror.UnauthorizedLogin, crederror.UnhandledCredentials):
                pass
            except Exception:
                _log.failure("login failed")
        if result is None:
            await self._loginFailed(user, started, checked=ok)
            return
        self._loggedIn(user, result, checked=True)
        self.reply(230, "Login successful.")

    def _loggedIn(
        self, user: str, result: tuple[Any, Any, Callable[[], None]], checked: bool
    ) -> None:
        _, self.shell, self._logout = result
        self.session.loggedIn = True
        self.session.userName = user
        self.session.workingDirectory = []
        self.factory.bans.succeeded(self.peerHost, checked=checked)
        _log.info("{user} logged in from {host}", user=user, host=self.peerHost)
        self.observer.loginSucceeded(self.peerAddress, user)

    async def _loginFailed(self, user: str, started: float, checked: bool) -> None:
        """
        Answer a failed login C{failedLoginDelay} seconds after the PASS
        arrived, however long the check took: known and unknown users, cheap
        and costly hashes, all look the same from outside.
        """
        self.session.failedLogins += 1
        self.factory.bans.failed(self.peerHost, checked=checked)
        _log.info("failed login for {user!r} from {host}", user=user, host=self.peerHost)
        self.observer.loginFailed(self.peerAddress, user)
        delay = started + self.settings.failedLoginDelay - self.clock.seconds()
        if delay > 0:
            await defer.Deferred.fromCoroutine(_sleep(self.clock, delay))
        self.reply(530, "Login incorrect.")
        if self.session.failedLogins >= self.settings.maxLoginAttempts:
            self._close()


async def _sleep(clock: interfaces.IReactorTime, seconds: float) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    clock.callLater(seconds, d.callback, None)
    await d
