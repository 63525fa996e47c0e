# -*- test-case-name: tests.test_interfaces -*-
"""
What the txftps server relies on beyond Twisted's L{IFTPShell<twisted.protocols.ftp.IFTPShell>}, L{IReadFile}
and L{IWriteFile}, declared as interfaces.

An avatar only has to provide L{IFTPShell<twisted.protocols.ftp.IFTPShell>}: Twisted's own L{FTPShell<twisted.protocols.ftp.FTPShell>} works.
Each interface here that a shell (or the files it opens) also provides turns
on a feature, and the server checks for it with C{providedBy}, never by
looking for an attribute:

 - L{IResumableShell}: C{REST} + C{RETR}/C{STOR}, and C{APPE};
 - L{IUniqueNameShell}: C{STOU};
 - L{IModificationTimeShell}: C{MFMT};
 - L{IMachineListingShell}: the C{unique} fact of C{MLST}/C{MLSD};
 - L{IReadOnlyShell}: the shell refuses every change; C{MLST} C{perm} facts
   say so and C{RNFR} and C{SITE} are refused at once;
 - L{IAtomicWriteFile}: an upload that did not complete leaves the target
   untouched (all-or-nothing uploads), and write errors get their own reply;
 - L{ICloseableReadFile}: a download that never started closes its file at
   once.

A shell without one of them gets the feature refused (C{504} or C{502}), as
Twisted's L{FTPShell<twisted.protocols.ftp.FTPShell>} does.

L{ISessionObserver} is the other way round: an object the server tells what
happens in its sessions (logins, commands, replies, transfers), set on
L{txftps.server.FTPSFactory}; L{txftps.testing} records sessions with one.

Usage::

    from zope.interface import implementer
    from txftps.interfaces import IResumableShell

    @implementer(IResumableShell)
    class MyShell:
        ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.protocols.ftp import IFTPShell, IReadFile, IWriteFile
from zope.interface import Interface

__all__ = [
    "IAtomicWriteFile",
    "ICloseableReadFile",
    "IMachineListingShell",
    "IModificationTimeShell",
    "IReadOnlyShell",
    "IResumableShell",
    "ISessionObserver",
    "IUniqueNameShell",
]


class IResumableShell(IFTPShell):
    """
    A shell that reads and writes from an offset: C{REST} + C{RETR},
    C{REST} + C{STOR} and C{APPE}.
    """

    def openForReading(path: Sequence[str], offset: int = 0) -> Deferred[Any]:
        """
        Open a file for a download that starts at byte C{offset}.

        @param path: the path, as a list of segments.
        @param offset: the first byte to send.
        @return: a L{Deferred} firing with an L{IReadFile}; it fails with
            L{txftps.errors.FTPReplyError} (554) when C{offset} is beyond
            the end of the file.
        """

    def openForWriting(
        path: Sequence[str], offset: int | None = None, append: bool = False
    ) -> Deferred[Any]:
        """
        Open a file for an upload.

        @param path: the path, as a list of segments.
        @param offset: C{None} for a new file; else the upload's first byte
            is written at this offset, the bytes before it kept (C{REST}).
        @param append: the upload is appended to the file (C{APPE}).
        @return: a L{Deferred} firing with an L{IWriteFile}.
        """


class IUniqueNameShell(IFTPShell):
    """
    A shell that creates a file only under a name nobody uses (C{STOU}).
    """

    def openForWriting(path: Sequence[str], *, exclusive: bool = False) -> Deferred[Any]:
        """
        Open a file for an upload.

        @param path: the path, as a list of segments.
        @param exclusive: fail (L{twisted.protocols.ftp.FileExistsError}, or
            L{txftps.errors.FTPReplyError} 450) when C{path} exists, now or
            when the upload completes; the server then tries another name.
        @return: a L{Deferred} firing with an L{IWriteFile}.
        """


class IModificationTimeShell(IFTPShell):
    """
    A shell that sets modification times (C{MFMT}).
    """

    def setModificationTime(path: Sequence[str], mtime: float) -> Deferred[Any]:
        """
        Set the modification time of a file.

        @param path: the path, as a list of segments.
        @param mtime: seconds since the epoch.
        @return: a L{Deferred} firing when it is set.
        """


class IMachineListingShell(IFTPShell):
    """
    A shell whose C{stat} and C{list} also answer the key C{"unique"}: a
    string that identifies the file itself, not its name (the RFC 3659
    C{unique} fact of C{MLST} and C{MLSD}).
    """


class IReadOnlyShell(IFTPShell):
    """
    A shell that refuses every change (a marker: it declares no method).
    """


class IAtomicWriteFile(IWriteFile):
    """
    An upload that replaces its target only when it completed: what was
    written goes into place at C{close()}; after C{abort()} the target is
    untouched.
    """

    def abort() -> int:  # type: ignore[misc]
        """
        The upload did not complete (truncated, aborted, timed out): leave
        the target untouched. Called at most once, instead of C{close}.

        @return: how many bytes are kept for a later C{REST} + C{STOR} of the
            same name (C{0} for none); the server tells the client.
        @rtype: C{int}
        """

    def writeError() -> Exception | None:  # type: ignore[misc]
        """
        The failure of a write while the upload ran (a full disk), if any;
        the server answers it instead of "transfer aborted".

        @return: an L{txftps.errors.UploadWriteError} (answered C{552} for a
            full disk, else C{452}), an L{txftps.errors.FTPReplyError}
            (answered as it says), or C{None}.
        """


class ICloseableReadFile(IReadFile):
    """
    A download whose file can be closed before C{send} was called (the data
    connection failed first).
    """

    def close() -> None:  # type: ignore[misc]
        """
        Close the file now; calling it again does nothing.
        """


class ISessionObserver(Interface):
    """
    Told what happens in the sessions of a server, as it happens. Every
    method gets C{peer}, the L{IAddress} of the client's control connection,
    which tells sessions apart. Methods must not raise and must not block.
    """

    def loginSucceeded(peer: IAddress, user: str) -> None:
        """
        A user logged in (C{230}, or C{232} with a client certificate).

        @param user: the name sent with C{USER}.
        """

    def loginFailed(peer: IAddress, user: str) -> None:
        """
        A login was refused (C{530}).

        @param user: the name sent with C{USER}.
        """

    def commandReceived(peer: IAddress, command: str, argument: str) -> None:
        """
        A command is about to run.

        @param command: the upper-case command name.
        @param argument: its argument; C{"***"} for C{PASS}.
        """

    def replySent(peer: IAddress, code: int, text: str) -> None:
        """
        A reply was sent.

        @param code: the reply code.
        @param text: its text, lines joined with C{"\\n"}.
        """

    def transferEnded(
        peer: IAddress, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        """
        A transfer on a data connection ended, after its final reply.

        @param command: C{RETR}, C{STOR}, C{APPE}, C{STOU}, C{LIST},
            C{NLST} or C{MLSD}.
        @param path: the file or directory, as an absolute FTP path.
        @param sent: bytes sent to the client.
        @param received: bytes received from the client.
        @param code: the final reply: C{226} when it completed, else the
            error's code (425, 426, 522, 550, ...).
        """
