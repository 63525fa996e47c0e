# -*- test-case-name: tests.test_errors -*-
"""
Errors that carry their FTP reply, and the one mapping from every other
error a command can meet to the reply RFC 959 means.

Every layer raises L{FTPReplyError} (or a subclass) with the reply the client
should get, or lets a storage error through: an C{OSError}, one of Twisted's
L{twisted.protocols.ftp.FTPCmdError}s, a L{FileNameNotAllowedError}, an
L{UploadWriteError}. L{ErrorReplies} turns those into replies, for every
shell (Twisted's own L{twisted.protocols.ftp.FTPShell} avatars included);
the protocol interpreter asks it in one place.

The rule: a failure that will not pass by itself is permanent (5xx): C{550}
for a missing path, a directory that is not empty, a name that exists, a
directory where a file is needed or back, a symlink loop, a path outside the
root, a permission; C{553} for a name the server does not allow; C{552} when
the storage is full. Only errors that may pass (C{EIO}, C{EAGAIN},
C{ENFILE}, C{EMFILE}, ...) are C{451}, "try again later".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from typing import ClassVar

from twisted.protocols import ftp
from twisted.python.filepath import InsecurePath

__all__ = [
    "DataChannelRefused",
    "ErrorReplies",
    "FTPReplyError",
    "FileNameNotAllowedError",
    "UploadWriteError",
]


class FTPReplyError(Exception):
    """
    A command failed; the client gets C{code} and C{text}.

    @ivar code: the three-digit FTP reply code.
    @ivar text: the reply text (one line, no CR or LF).
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class DataChannelRefused(FTPReplyError):
    """
    A data connection did not become ready: it never came, came from a
    foreign address, failed its TLS handshake or did not resume the control
    connection's TLS session.
    """


class FileNameNotAllowedError(ftp.FTPCmdError):
    """
    A shell refuses a name for a new file or directory (a reserved name, a
    name with control characters): C{553}.
    """


class UploadWriteError(Exception):
    """
    Writing the bytes of an upload failed.

    @ivar error: the C{OSError} of the failed write.
    """

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


#: The C{errno} values of failures that may pass by themselves.
_TRANSIENT = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EINTR,
        errno.ENFILE,
        errno.EMFILE,
        errno.ENOMEM,
        errno.EBUSY,
        errno.ETXTBSY,
        errno.ETIMEDOUT,
    }
)


class ErrorReplies:
    """
    The replies for the errors that commands meet: L{FTPReplyError}s give
    their own; Twisted's shell errors, C{OSError}s and the other errors of
    this module are looked up in the class attributes below.

    A subclass changes a reply without touching anyone else's server: set it
    as the protocol's C{errorReplies}::

        class GermanReplies(ErrorReplies):
            byErrno = {**ErrorReplies.byErrno,
                       errno.ENOTEMPTY: (550, "Verzeichnis nicht leer.")}

    @cvar byType: C{(exception type, code, text)}, the first match wins;
        checked before C{byErrno}.
    @cvar byErrno: C{errno} value to C{(code, text)}.
    @cvar transient: the reply for any other C{errno} that may pass (its
        C{strerror} is added).
    @cvar permanent: the reply for any other C{errno} (its C{strerror} is
        added).
    @cvar writeFailed: the reply for an upload whose bytes could not be
        written, unless the storage is full (its C{strerror} is added).
    """

    byType: ClassVar[Sequence[tuple[type[BaseException], int, str]]] = (
        (FileNameNotAllowedError, 553, "File name not allowed."),
        (ftp.FileNotFoundError, 550, "No such file or directory."),
        (ftp.PermissionDeniedError, 550, "Permission denied."),
        (ftp.AnonUserDeniedError, 550, "Permission denied."),
        (ftp.IsNotADirectoryError, 550, "Not a directory."),
        (ftp.IsADirectoryError, 550, "Is a directory."),
        (ftp.FileExistsError, 550, "File exists."),
        (ftp.InvalidPath, 550, "Invalid path."),
        (InsecurePath, 550, "Invalid path."),
        (ftp.CmdArgSyntaxError, 501, "Syntax error in arguments."),
        (ftp.CmdSyntaxError, 500, "Syntax error, command unrecognized."),
        (ftp.BadCmdSequenceError, 503, "Bad sequence of commands."),
        (ftp.CmdNotImplementedError, 502, "Command not implemented."),
        (ftp.CmdNotImplementedForArgError, 504, "Command not implemented for that parameter."),
    )

    byErrno: ClassVar[Mapping[int, tuple[int, str]]] = {
        errno.ENOENT: (550, "No such file or directory."),
        errno.ENOTEMPTY: (550, "Directory not empty."),
        errno.EEXIST: (550, "File exists."),
        errno.EACCES: (550, "Permission denied."),
        errno.EPERM: (550, "Permission denied."),
        errno.EISDIR: (550, "Is a directory."),
        errno.ENOTDIR: (550, "Not a directory."),
        errno.ELOOP: (550, "Too many levels of symbolic links."),
        errno.EROFS: (550, "Read-only file system."),
        errno.ENAMETOOLONG: (553, "File name not allowed: too long."),
        errno.EILSEQ: (553, "File name not allowed: not valid in this file system."),
        errno.ENOSPC: (552, "Exceeded storage allocation: no space left on device."),
        errno.EDQUOT: (552, "Exceeded storage allocation: disk quota exceeded."),
        errno.EFBIG: (552, "Exceeded storage allocation: file too large."),
    }

    transient: ClassVar[tuple[int, str]] = (451, "Requested action aborted: local error")
    permanent: ClassVar[tuple[int, str]] = (550, "Requested action not taken")
    writeFailed: ClassVar[tuple[int, str]] = (452, "Write failed")

    def replyFor(self, error: BaseException) -> tuple[int, str] | None:
        """
        The reply for C{error}, or C{None} when it is none of the errors
        above (a bug: the caller logs it and answers C{451}).
        """
        if isinstance(error, FTPReplyError):
            return error.code, error.text
        for kind, code, text in self.byType:
            if isinstance(error, kind):
                return code, text
        if isinstance(error, UploadWriteError):
            return self.replyForWrite(error.error)
        if isinstance(error, OSError) and error.errno is not None:
            return self.replyForErrno(error.errno)
        return None

    def replyForErrno(self, number: int) -> tuple[int, str]:
        """
        The reply for a failure with C{errno} C{number}.
        """
        if number in self.byErrno:
            return self.byErrno[number]
        code, text = self.transient if number in _TRANSIENT else self.permanent
        return code, f"{text}: {os.strerror(number)}."

    def replyForWrite(self, error: OSError) -> tuple[int, str]:
        """
        The reply for an upload whose write failed with C{error}: the
        C{byErrno} reply when the storage is full (C{552}), else
        C{writeFailed}.
        """
        if error.errno is not None:
            code, text = self.replyForErrno(error.errno)
            if code == 552:
                return code, text
        code, text = self.writeFailed
        return code, f"{text}: {error.strerror or error}."
