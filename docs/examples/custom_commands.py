"""
A txftps server with commands of its own, added in a subclass of
L{FTPSProtocol}:

- C{XSHA256 path}: a plain command; replies with the SHA-256 of a file,
  read through the user's shell.
- C{XTREE path}: a transfer command; sends the tree under a directory, one
  path per line, over the (TLS-protected) data connection, like C{NLST}.
- C{SITE WHOAMI}: a C{SITE} command; replies with the logged-in user's name.

Each command has an entry in the protocol's command table, which the session
policy, the dispatcher and C{FEAT} all read (before login they are refused;
C{XTREE} needs C{PROT P}; C{XSHA256} is listed in C{FEAT}).

Run it (explicit FTPS on port 2121 for alice, password "secret", serving
./example-data/files; a self-signed certificate under ./example-data):

    python docs/examples/custom_commands.py
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.cred import checkers, portal
from twisted.internet import defer
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from zope.interface import implementer

from txftps.auth import normalizeChecker
from txftps.errors import FTPReplyError
from txftps.server import (
    CommandFacts,
    DataConnection,
    FTPSFactory,
    FTPSProtocol,
    ServerSettings,
    commandTable,
)
from txftps.storage import LocalShell
from txftps.tls import ServerTLS


class _Hasher:
    """
    A consumer that hashes what a shell's read file writes to it.
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self._producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        if not streaming:
            # A pull producer writes one chunk per resumeProducing(), until
            # it unregisters at the end of the file.
            while self._producer is not None:
                producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        self.digest.update(data)


class ToolsProtocol(FTPSProtocol):
    """
    L{FTPSProtocol} with C{XSHA256}, C{XTREE} and C{SITE WHOAMI}.
    """

    commands = commandTable(
        FTPSProtocol.commands,
        CommandFacts("XSHA256", refusal=450, features=("XSHA256",)),
        CommandFacts("XTREE", needsDataTLS=True, usesDataChannel=True, refusal=425),
    )

    def ftp_XSHA256(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)

        async def run() -> None:
            readFile = await self.callShell(self.avatar.openForReading, segments)
            hasher = _Hasher()
            await readFile.send(hasher)
            self.reply(213, f"{hasher.digest.hexdigest()} {self.displayPath(segments)}")

        return defer.Deferred.fromCoroutine(run())

    def ftp_XTREE(self, argument: str) -> defer.Deferred[None]:
        self.checkTransfer("XTREE")
        top = self.resolvePath(argument)

        async def walk(segments: list[str], found: list[str]) -> None:
            entries = await self.callShell(self.avatar.list, segments, ("directory",))
            for name, (isDirectory,) in sorted(entries):
                found.append(self.displayPath([*segments, name]))
                if isDirectory:
                    await walk([*segments, name], found)

        async def collect() -> None:
            found: list[str] = []
            await walk(top, found)

            def send(connection: DataConnection) -> defer.Deferred[None]:
                return connection.sendBytes("".join(f"{p}\r\n" for p in found).encode())

            self.startTransfer("XTREE", top, send)

        return defer.Deferred.fromCoroutine(collect())

    def site_WHOAMI(self, argument: str) -> None:
        if self.session.userName is None:
            raise FTPReplyError(530, "Not logged in.")
        self.reply(200, self.session.userName)


class ToolsFactory(FTPSFactory):
    """
    An L{FTPSFactory} that builds L{ToolsProtocol}s.
    """

    protocol = ToolsProtocol


@implementer(portal.IRealm)
class FilesRealm:
    """
    Every user gets the same tree, read-write.
    """

    def __init__(self, root: FilePath[str]) -> None:
        self.root = root

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> Any:
        if IFTPShell not in interfaces:
            raise NotImplementedError("only FTP shells")
        return IFTPShell, LocalShell(self.root), lambda: None


def makeFactory(
    reactor: Any, tls: ServerTLS, root: FilePath[str], users: dict[str, str]
) -> ToolsFactory:
    """
    An explicit-FTPS factory with the extra commands, serving C{root} to
    C{users} (name to password).
    """
    checker = normalizeChecker(
        checkers.InMemoryUsernamePasswordDatabaseDontUse(
            **{name: password.encode() for name, password in users.items()}
        )
    )
    return ToolsFactory(reactor, portal.Portal(FilesRealm(root), [checker]), tls, ServerSettings())


def main() -> None:
    import os
    import sys

    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    tls, _ = ServerTLS.fromDataDirectory(FilePath("example-data"))
    files = FilePath(os.path.abspath("example-data/files"))
    files.makedirs(ignoreExistingDirectory=True)
    factory = makeFactory(reactor, tls, files, {"alice": "secret"})
    endpoints.serverFromString(reactor, "tcp:2121").listen(factory)
    reactor.run()


if __name__ == "__main__":
    main()
