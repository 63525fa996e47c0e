# -*- test-case-name: tests.test_server -*-
"""
File commands of the protocol interpreter: navigation (PWD, CWD, CDUP), file
information (SIZE, MDTM, MLST, STAT) and changes (MKD, RMD, DELE, RNFR, RNTO,
MFMT), all through the avatar's L{IFTPShell<twisted.protocols.ftp.IFTPShell>}.
"""

from __future__ import annotations

import calendar
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from txftps._listing import (
    LIST_KEYS,
    formatFacts,
    formatList,
    quotePath,
)
from txftps.errors import FTPReplyError
from txftps.interfaces import IModificationTimeShell

if TYPE_CHECKING:
    pass

from txftps._interpreter import ProtocolInterpreter


class FileCommands(ProtocolInterpreter):
    """
    The commands on files and directories that need no data connection.
    """

    def ftp_PWD(self, argument: str) -> None:
        self.reply(
            257,
            f"{quotePath(self.displayPath(self.session.workingDirectory))} is the current directory.",
        )

    def ftp_CWD(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument or "/")

        def changed(_: object) -> None:
            self.session.workingDirectory = segments
            self.reply(250, "Directory changed.")

        return self.callShell(self.avatar.access, segments).addCallback(changed)

    def ftp_CDUP(self, argument: str) -> defer.Deferred[None]:
        return self.ftp_CWD("..")

    def ftp_SIZE(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)

        def sized(result: list[Any]) -> None:
            size, directory = result
            if directory:
                raise FTPReplyError(550, "Not a regular file.")
            self.reply(213, str(size))

        return self.callShell(self.avatar.stat, segments, ("size", "directory")).addCallback(sized)

    def ftp_MDTM(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)

        def modified(result: list[Any]) -> None:
            self.reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime(result[0])))

        return self.callShell(self.avatar.stat, segments, ("modified",)).addCallback(modified)

    def ftp_MKD(self, argument: str) -> defer.Deferred[None]:
        segments = self.checkNewName(self.resolvePath(argument))

        def made(_: object) -> None:
            self.reply(257, f"{quotePath(self.displayPath(segments))} created.")

        return self.callShell(self.avatar.makeDirectory, segments).addCallback(made)

    def ftp_RMD(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)
        return self.callShell(self.avatar.removeDirectory, segments).addCallback(
            lambda _: self.reply(250, "Directory removed.")
        )

    def ftp_DELE(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)
        return self.callShell(self.avatar.removeFile, segments).addCallback(
            lambda _: self.reply(250, "File removed.")
        )

    def ftp_RNFR(self, argument: str) -> defer.Deferred[None]:
        self.session.renameFrom = None
        if not self._writable():
            raise FTPReplyError(550, "Permission denied.")
        segments = self.resolvePath(argument)

        def exists(_: object) -> None:
            self.session.renameFrom = segments
            self.reply(350, "Ready for RNTO.")

        return self.callShell(self.avatar.stat, segments, ()).addCallback(exists)

    def ftp_RNTO(self, argument: str) -> defer.Deferred[None]:
        if self.session.renameFrom is None:
            raise FTPReplyError(503, "RNTO needs RNFR first.")
        source, self.session.renameFrom = self.session.renameFrom, None
        target = self.checkNewName(self.resolvePath(argument))
        return self.callShell(self.avatar.rename, source, target).addCallback(
            lambda _: self.reply(250, "Renamed.")
        )

    def ftp_MLST(self, argument: str) -> defer.Deferred[None]:
        segments = self.resolvePath(argument)
        display = self.displayPath(segments)

        def stated(attrs: list[Any]) -> None:
            line = formatFacts(display, attrs, self.session.mlstFacts, self._writable())
            self.reply(250, f"Listing {display}\n{line}\nEnd")

        return self.callShell(self.avatar.stat, segments, self._factKeys()).addCallback(stated)

    def ftp_MFMT(self, argument: str) -> defer.Deferred[None]:
        stamp, _, path = argument.strip().partition(" ")
        try:
            moment = time.strptime(stamp[:14], "%Y%m%d%H%M%S")
        except ValueError:
            raise FTPReplyError(501, "MFMT needs YYYYMMDDHHMMSS and a path.")
        if not path or not stamp.isascii():
            raise FTPReplyError(501, "MFMT needs YYYYMMDDHHMMSS and a path.")
        segments = self.resolvePath(path)
        if not IModificationTimeShell.providedBy(self.shell):
            raise FTPReplyError(502, "MFMT is not supported by this storage.")
        mtime = calendar.timegm(moment)
        shell = IModificationTimeShell(self.shell)
        return self.callShell(shell.setModificationTime, segments, mtime).addCallback(
            lambda _: self.reply(213, f"Modify={stamp[:14]}; {self.displayPath(segments)}")
        )

    def ftp_STAT(self, argument: str) -> defer.Deferred[None] | None:
        if argument.strip() and self.session.transferring:
            raise FTPReplyError(
                450, "STAT with a path is refused while a transfer runs; STAT alone reports it."
            )
        if argument.strip():
            if not self.session.loggedIn:
                raise FTPReplyError(530, "Please log in with USER and PASS first.")
            segments = self.resolvePath(argument.strip())

            def listed(entries: list[tuple[str, list[Any]]]) -> None:
                lines = formatList(entries, self.clock.seconds()).decode(
                    "utf-8", "surrogateescape"
                )
                body = [line for line in lines.split("\r\n") if line]
                self.reply(213, "\n".join(["Status follows:", *body, "End of status."]))

            return self.callShell(self.avatar.list, segments, LIST_KEYS).addCallback(listed)
        lines = [
            "txftps status:",
            f"Connected from {self.peerHost}",
            f"Logged in as {self.session.userName}" if self.session.loggedIn else "Not logged in",
            "Control channel: " + ("TLS" if self.session.controlProtected else "clear"),
            "Data channel: " + ("PROT P" if self.session.dataProtected else "PROT C"),
            self._transferStatus(),
            "End of status.",
        ]
        self.reply(211, "\n".join(lines))
        return None

    def _transferStatus(self) -> str:
        if not self.session.transferring:
            return "No transfer in progress"
        connection = self.dataChannel.connection if self.dataChannel is not None else None
        if connection is None:
            return "Transfer in progress: waiting for the data connection"
        if connection.uploading:
            return f"Transfer in progress: {connection.bytesReceived} bytes received"
        return f"Transfer in progress: {connection.bytesSent} bytes sent"
