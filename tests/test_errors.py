"""
Tests for L{txftps.errors}: L{ErrorReplies} maps every error a command can
meet (Twisted's shell errors, C{OSError}s by C{errno}, upload write errors,
names not allowed) to the reply RFC 959 means: permanent failures 5xx, only
failures that may pass 451.
"""

from __future__ import annotations

import errno
import os

from twisted.protocols import ftp
from twisted.python.filepath import InsecurePath
from twisted.trial.unittest import SynchronousTestCase

from txftps.errors import (
    ErrorReplies,
    FileNameNotAllowedError,
    FTPReplyError,
    UploadWriteError,
)


def _oserror(number: int) -> OSError:
    return OSError(number, "strerror text", "/some/path")


class ErrnoTests(SynchronousTestCase):
    """
    C{OSError}s (raw, as L{ftp.FTPShell} lets them escape, or as Python's
    subclasses) get their reply from their C{errno}.
    """

    def test_permanent(self) -> None:
        """
        Missing, not empty, exists, permission, is or is not a directory, a
        symlink loop, a read-only file system: 550.
        """
        for number in [
            errno.ENOENT,
            errno.ENOTEMPTY,
            errno.EEXIST,
            errno.EACCES,
            errno.EPERM,
            errno.EISDIR,
            errno.ENOTDIR,
            errno.ELOOP,
            errno.EROFS,
        ]:
            reply = ErrorReplies().replyFor(_oserror(number))
            assert reply is not None
            self.assertEqual(reply[0], 550, errno.errorcode[number])

    def test_texts(self) -> None:
        """
        The reply texts say what happened, in one line.
        """
        replies = ErrorReplies()
        self.assertEqual(
            replies.replyFor(_oserror(errno.ENOTEMPTY)), (550, "Directory not empty.")
        )
        self.assertEqual(
            replies.replyFor(FileNotFoundError(errno.ENOENT, "x")),
            (550, "No such file or directory."),
        )

    def test_storageFull(self) -> None:
        """
        No space, quota exceeded, file too large: 552.
        """
        for number in [errno.ENOSPC, errno.EDQUOT, errno.EFBIG]:
            reply = ErrorReplies().replyFor(_oserror(number))
            assert reply is not None
            self.assertEqual(reply[0], 552, errno.errorcode[number])

    def test_namesNotAllowed(self) -> None:
        """
        A name too long for the file system: 553.
        """
        reply = ErrorReplies().replyFor(_oserror(errno.ENAMETOOLONG))
        self.assertEqual(reply, (553, "File name not allowed: too long."))

    def test_transient(self) -> None:
        """
        Only errors that may pass are 451, with what happened.
        """
        for number in [errno.EIO, errno.EAGAIN, errno.ENFILE, errno.EMFILE]:
            reply = ErrorReplies().replyFor(_oserror(number))
            self.assertEqual(
                reply,
                (451, f"Requested action aborted: local error: {os.strerror(number)}."),
            )

    def test_otherErrnoPermanent(self) -> None:
        """
        Any other C{errno} (here C{EXDEV}, C{EINVAL}) is permanent: 550 with
        its C{strerror}.
        """
        self.assertEqual(
            ErrorReplies().replyFor(_oserror(errno.EXDEV)),
            (550, "Requested action not taken: Invalid cross-device link."),
        )
        reply = ErrorReplies().replyFor(_oserror(errno.EINVAL))
        assert reply is not None
        self.assertEqual(reply[0], 550)


class TypeTests(SynchronousTestCase):
    """
    L{FTPReplyError}s give their own reply; Twisted's shell errors and ours
    get theirs from the table.
    """

    def test_replyError(self) -> None:
        """
        An L{FTPReplyError} carries its reply.
        """
        self.assertEqual(ErrorReplies().replyFor(FTPReplyError(554, "No.")), (554, "No."))

    def test_twistedShellErrors(self) -> None:
        """
        Each of Twisted's shell errors has its reply; the file errors are
        all 550.
        """
        expected = [
            (ftp.FileNotFoundError("x"), 550),
            (ftp.PermissionDeniedError("x"), 550),
            (ftp.AnonUserDeniedError(), 550),
            (ftp.IsNotADirectoryError("x"), 550),
            (ftp.IsADirectoryError("x"), 550),
            (ftp.FileExistsError("x"), 550),
            (ftp.InvalidPath("x"), 550),
            (InsecurePath("x"), 550),
            (ftp.CmdArgSyntaxError("x"), 501),
            (ftp.BadCmdSequenceError("x"), 503),
            (ftp.CmdNotImplementedError("x"), 502),
        ]
        for error, code in expected:
            reply = ErrorReplies().replyFor(error)
            assert reply is not None, error
            self.assertEqual(reply[0], code, repr(error))

    def test_fileNameNotAllowed(self) -> None:
        """
        A name a shell does not allow: 553.
        """
        self.assertEqual(
            ErrorReplies().replyFor(FileNameNotAllowedError("x")),
            (553, "File name not allowed."),
        )

    def test_uploadWriteErrors(self) -> None:
        """
        An upload whose write failed: 552 when the storage is full, 452
        otherwise.
        """
        replies = ErrorReplies()
        self.assertEqual(
            replies.replyFor(UploadWriteError(OSError(errno.ENOSPC, "No space left on device"))),
            (552, "Exceeded storage allocation: no space left on device."),
        )
        self.assertEqual(
            replies.replyFor(UploadWriteError(OSError(errno.EIO, "Input/output error"))),
            (452, "Write failed: Input/output error."),
        )

    def test_unknown(self) -> None:
        """
        Anything else is no known failure: C{None} (the protocol logs it).
        """
        self.assertIsNone(ErrorReplies().replyFor(ValueError("bug")))
        self.assertIsNone(ErrorReplies().replyFor(OSError("no errno")))

    def test_subclassChangesText(self) -> None:
        """
        A subclass changes a reply through the class attributes.
        """

        class Replies(ErrorReplies):
            byErrno = {**ErrorReplies.byErrno, errno.ENOTEMPTY: (550, "Still has files.")}

        self.assertEqual(Replies().replyFor(_oserror(errno.ENOTEMPTY)), (550, "Still has files."))
        self.assertEqual(Replies().replyFor(_oserror(errno.ENOENT))[0], 550)  # type: ignore[index]
