"""
A txftps server with an application's own cred checker and realm.

- L{OneTimeTokenChecker}: users log in with a token that works once (the
  application hands tokens out by some other channel).
- L{ProjectRealm}: each user gets the directory of their project, not a home
  directory; auditors get it read-only.

Run it (explicit FTPS on port 2121, implicit on 9990, a self-signed certificate
under ./example-data):

    python docs/examples/custom_auth.py

then: curl --ssl-reqd -k -u alice:TOKEN-A ftp://127.0.0.1:2121/
"""

from __future__ import annotations

from typing import Any

from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from zope.interface import implementer

from txftps.auth import normalizeChecker
from txftps.server import FTPSFactory, ServerSettings
from txftps.storage import LocalShell
from txftps.tls import ServerTLS


@implementer(checkers.ICredentialsChecker)
class OneTimeTokenChecker:
    """
    Accepts each user's token once.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def requestAvatarId(self, creds: Any) -> defer.Deferred[str]:
        if creds.username in self.tokens and creds.checkPassword(self.tokens[creds.username]):
            del self.tokens[creds.username]
            return defer.succeed(creds.username)
        return defer.fail(error.UnauthorizedLogin("unknown or used token"))


@implementer(portal.IRealm)
class ProjectRealm:
    """
    Gives each user the directory of their project; auditors read-only.
    """

    def __init__(self, projects: dict[str, FilePath[str]], auditors: set[str]) -> None:
        self.projects = projects
        self.auditors = auditors

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> Any:
        if IFTPShell not in interfaces or avatarId not in self.projects:
            raise NotImplementedError("no project for this user")
        shell = LocalShell(self.projects[avatarId], readOnly=avatarId in self.auditors)
        return IFTPShell, shell, lambda: None


def makeFactory(
    reactor: Any,
    tls: ServerTLS,
    projects: dict[str, FilePath[str]],
    tokens: dict[str, str],
    auditors: set[str],
) -> FTPSFactory:
    """
    An explicit-FTPS factory serving C{projects} to holders of C{tokens}.
    """
    realm = ProjectRealm(projects, auditors)
    checker = normalizeChecker(OneTimeTokenChecker(tokens))
    return FTPSFactory(reactor, portal.Portal(realm, [checker]), tls, ServerSettings())


def main() -> None:
    import os
    import sys

    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    tls, _ = ServerTLS.fromDataDirectory(FilePath("example-data"))
    apollo = FilePath(os.path.abspath("example-data/apollo"))
    apollo.makedirs(ignoreExistingDirectory=True)
    factory = makeFactory(
        reactor,
        tls,
        projects={"alice": apollo, "audrey": apollo},
        tokens={"alice": "TOKEN-A", "audrey": "TOKEN-B"},
        auditors={"audrey"},
    )
    endpoints.serverFromString(reactor, "tcp:2121").listen(factory)
    endpoints.serverFromString(reactor, "tcp:9990").listen(factory.withImplicitTLS())
    reactor.run()


if __name__ == "__main__":
    main()
