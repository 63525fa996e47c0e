"""
A txftps server whose users see a tree that is not a directory on disk: a
shell of the application's own, plugged in through a cred realm.

L{ReportShell} serves read-only reports that the application computes when
they are read (here: one CSV per user, made from a dict). It implements
Twisted's L{IFTPShell} and declares L{IReadOnlyShell}, so the server shows
MLST permissions without write letters and refuses SITE at once; every
change (STOR, DELE, MKD, ...) is refused by the shell with 550.

Run it (explicit FTPS on port 2121, user alice, password "secret"; a
self-signed certificate under ./example-data):

    python docs/examples/custom_shell.py

then: curl --ssl-reqd -k -u alice:secret ftp://127.0.0.1:2121/reports/
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.cred import checkers, portal
from twisted.internet import defer
from twisted.protocols import ftp
from twisted.protocols.basic import FileSender
from twisted.python.filepath import FilePath, Permissions
from zope.interface import implementer

from txftps.auth import normalizeChecker
from txftps.interfaces import IReadOnlyShell
from txftps.server import FTPSFactory, ServerSettings
from txftps.tls import ServerTLS


class _Report:
    """
    A report's bytes, sent when a client reads it.
    """

    def __init__(self, content: bytes) -> None:
        self._file = io.BytesIO(content)

    def send(self, consumer: Any) -> defer.Deferred[Any]:
        return FileSender().beginFileTransfer(self._file, consumer)  # type: ignore[no-untyped-call, no-any-return]


@implementer(ftp.IFTPShell, IReadOnlyShell)
class ReportShell:
    """
    One directory, C{/reports}, with one file per report; each report is
    made by calling its function when it is read or listed.
    """

    def __init__(self, reports: dict[str, Callable[[], bytes]]) -> None:
        self.reports = reports
        self.started = time.time()

    def _report(self, path: Sequence[str]) -> Callable[[], bytes]:
        if len(path) != 2 or path[0] != "reports" or path[1] not in self.reports:
            raise ftp.FileNotFoundError("/".join(path))
        return self.reports[path[1]]

    def _isDirectory(self, path: Sequence[str]) -> bool:
        return list(path) in ([], ["reports"])

    def _attributes(self, directory: bool, size: int, keys: Sequence[str]) -> list[Any]:
        values = {
            "size": size,
            "directory": directory,
            "permissions": Permissions(0o555 if directory else 0o444),
            "hardlinks": 1,
            "modified": self.started,
            "owner": "reports",
            "group": "reports",
        }
        return [values[key] for key in keys]

    def _refuse(self, path: Sequence[str], *other: Any) -> defer.Deferred[Any]:
        return defer.fail(ftp.PermissionDeniedError("/".join(path)))

    makeDirectory = removeDirectory = removeFile = rename = _refuse

    def openForWriting(self, path: Sequence[str]) -> defer.Deferred[Any]:
        return self._refuse(path)

    def access(self, path: Sequence[str]) -> defer.Deferred[None]:
        if self._isDirectory(path):
            return defer.succeed(None)
        return defer.fail(ftp.IsNotADirectoryError("/".join(path)))

    def stat(self, path: Sequence[str], keys: Sequence[str] = ()) -> defer.Deferred[list[Any]]:
        if self._isDirectory(path):
            return defer.succeed(self._attributes(True, 0, keys))
        return defer.maybeDeferred(
            lambda: self._attributes(False, len(self._report(path)()), keys)
        )

    def list(
        self, path: Sequence[str], keys: Sequence[str] = ()
    ) -> defer.Deferred[list[tuple[str, list[Any]]]]:
        if list(path) == []:
            return defer.succeed([("reports", self._attributes(True, 0, keys))])
        if self._isDirectory(path):
            return defer.succeed(
                [
                    (name, self._attributes(False, len(make()), keys))
                    for name, make in sorted(self.reports.items())
                ]
            )
        return defer.maybeDeferred(
            lambda: [(path[-1], self._attributes(False, len(self._report(path)()), keys))]
        )

    def openForReading(self, path: Sequence[str]) -> defer.Deferred[Any]:
        if self._isDirectory(path):
            return defer.fail(ftp.IsADirectoryError("/".join(path)))
        return defer.maybeDeferred(lambda: _Report(self._report(path)()))


@implementer(portal.IRealm)
class ReportRealm:
    """
    Each user gets a L{ReportShell} with their own usage report.
    """

    def __init__(self, usage: dict[str, dict[str, int]]) -> None:
        self.usage = usage

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> Any:
        if ftp.IFTPShell not in interfaces:
            raise NotImplementedError("only FTP shells")
        rows = self.usage.get(avatarId, {})

        def usageCSV() -> bytes:
            lines = ["day,bytes"] + [f"{day},{count}" for day, count in sorted(rows.items())]
            return ("\r\n".join(lines) + "\r\n").encode()

        return ftp.IFTPShell, ReportShell({"usage.csv": usageCSV}), lambda: None


def makeFactory(
    reactor: Any, tls: ServerTLS, users: dict[str, str], usage: dict[str, dict[str, int]]
) -> FTPSFactory:
    """
    An explicit-FTPS factory serving each user's reports.
    """
    checker = normalizeChecker(
        checkers.InMemoryUsernamePasswordDatabaseDontUse(
            **{name: password.encode() for name, password in users.items()}
        )
    )
    return FTPSFactory(
        reactor, portal.Portal(ReportRealm(usage), [checker]), tls, ServerSettings()
    )


def main() -> None:
    import sys

    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    tls, _ = ServerTLS.fromDataDirectory(FilePath("example-data"))
    factory = makeFactory(
        reactor, tls, {"alice": "secret"}, {"alice": {"2026-12-01": 1200, "2026-12-02": 800}}
    )
    endpoints.serverFromString(reactor, "tcp:2121").listen(factory)
    reactor.run()


if __name__ == "__main__":
    main()
