# -*- test-case-name: tests.test_storage -*-
"""
Storage: a local-filesystem L{IFTPShell<twisted.protocols.ftp.IFTPShell>}
that keeps every path inside its root and never leaves a half-written file
under its final name.

L{LocalShell} is Twisted's L{FTPShell<twisted.protocols.ftp.FTPShell>} with these changes:

 - every path is resolved (symlinks included) and refused unless it stays
   inside the root; Twisted's shell follows symlinks anywhere;
 - a new file or directory may not take a name reserved for in-progress
   uploads (L{FileNameNotAllowedError}, C{553});
 - uploads go to a hidden temporary file in the target's directory and are
   moved into place only by L{IWriteFile.close<twisted.protocols.ftp.IWriteFile.close>}; L{SafeWriteFile.abort}
   removes them;
 - a read-only flag refuses every change.

L{LocalShell} provides the interfaces of L{txftps.interfaces} (offsets for
REST and APPE, exclusive creation for STOU, MFMT, the MLST unique fact, and
L{IReadOnlyShell} when read-only); its write files are L{IAtomicWriteFile}s.
Any other L{IFTPShell<twisted.protocols.ftp.IFTPShell>} works with txftps too; a write file that provides
L{IAtomicWriteFile} gets the same all-or-nothing upload guarantee.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from collections.abc import Sequence
from typing import IO, Any

from twisted.internet import defer, interfaces
from twisted.protocols.basic import FileSender
from twisted.protocols.ftp import (
    FileNotFoundError,
    FTPShell,
    IsADirectoryError,
    PermissionDeniedError,
    errnoToFailure,
)
from twisted.python.filepath import FilePath, InsecurePath
from zope.interface import alsoProvides, implementer, noLongerProvides

from txftps.errors import FileNameNotAllowedError, FTPReplyError, UploadWriteError
from txftps.interfaces import (
    IAtomicWriteFile,
    ICloseableReadFile,
    IMachineListingShell,
    IModificationTimeShell,
    IReadOnlyShell,
    IResumableShell,
    IUniqueNameShell,
)

__all__ = ["LocalShell", "PARTIAL_PREFIX", "SafeWriteFile", "TEMPORARY_PREFIX", "partialPath"]

#: Name prefix of in-progress uploads; such names are hidden from listings and
#: refused in every path a client sends.
TEMPORARY_PREFIX = ".txftps-upload-"

#: Name prefix of the kept part of an interrupted upload.
PARTIAL_PREFIX = TEMPORARY_PREFIX + "partial-"

#: Name prefix of the lock file of a file being uploaded.
LOCK_PREFIX = TEMPORARY_PREFIX + "lock-"


class _ChunkedFileSender(FileSender):
    CHUNK_SIZE = 256 * 1024  # type: ignore[assignment]


@implementer(ICloseableReadFile)
class _FileReader:
    """
    A download from an open file; the file is closed when the send ends, or
    by L{close} when the transfer fails before it started.
    """

    def __init__(self, fObj: IO[bytes]) -> None:
        self._fObj = fObj

    def close(self) -> None:
        """
        Close the file now (idempotent).
        """
        self._fObj.close()

    def send(self, consumer: interfaces.IConsumer) -> defer.Deferred[Any]:
        d = _ChunkedFileSender().beginFileTransfer(self._fObj, consumer)  # type: ignore[no-untyped-call]

        def close(passthrough: object) -> object:
            self._fObj.close()
            return passthrough

        return d.addBoth(close)  # type: ignore[no-any-return]


@implementer(interfaces.IConsumer)
class _FileSink:
    """
    Writes an upload into an open file; a write error stops the producer and
    is kept for L{SafeWriteFile.close} to report.
    """

    def __init__(self, fObj: IO[bytes]) -> None:
        self._fObj = fObj
        self._producer: Any = None
        self.error: OSError | None = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._fObj.write(data)
        except OSError as e:
            self.error = e
            if self._producer is not None:
                self._producer.stopProducing()


def partialPath(final: FilePath[str]) -> FilePath[str]:
    """
    Where the kept bytes of an interrupted upload to C{final} wait for a
    C{REST} + C{STOR} resumption (hidden, like every in-progress upload).
    """
    return final.sibling(PARTIAL_PREFIX + final.basename())


def _lockPath(final: FilePath[str]) -> str:
    return final.sibling(LOCK_PREFIX + final.basename()).path


class _UploadLock:
    """
    One upload at a time per file, across sessions: an exclusive C{flock} on
    a hidden lock file beside the target (released by the kernel if the
    server dies, so it never goes stale).
    """

    def __init__(self, final: FilePath[str]) -> None:
        self._path = _lockPath(final)
        while True:
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FTPReplyError(450, "Another upload to this file is in progress.")
            try:
                same = os.fstat(fd).st_ino == os.stat(self._path).st_ino
            except OSError:
                same = False
            if same:
                self._fd: int | None = fd
                return
            # The previous holder removed the file between our open and lock.
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self._path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def _copyPrefix(source: str, target: IO[bytes], length: int) -> None:
    with open(source, "rb") as f:
        left = length
        while left:
            chunk = f.read(min(left, 1024 * 1024))
            if not chunk:
                break
            target.write(chunk)
            left -= len(chunk)


@implementer(IAtomicWriteFile)
class SafeWriteFile:
    """
    An upload written to a hidden temporary file, moved over C{final} by
    L{close}; L{abort} leaves C{final} untouched.

    The rule for interrupted uploads: what a truncated, aborted or timed-out
    upload stored is kept in a hidden partial file (L{partialPath}); a later
    C{REST n} + C{STOR} of the same name with C{n} no larger than what was
    kept continues from byte C{n}, and only its completion replaces C{final}.
    A plain C{STOR} starts afresh; a write error (disk full) keeps nothing.

    @ivar final: where the file goes when the upload completes.
    @ivar temporary: where its bytes are written meanwhile.
    @ivar offset: the byte of the file the upload's first byte is written at.
    """

    def __init__(
        self,
        final: FilePath[str],
        offset: int | None = None,
        append: bool = False,
        exclusive: bool = False,
    ) -> None:
        """
        @param final: the target.
        @param offset: resume at this byte (C{REST}): the bytes before it come
            from the kept partial upload when there is one that long, else
            from C{final}.
        @param append: append to C{final} (C{APPE}).
        @param exclusive: C{final} must not exist, now or when the upload
            completes (C{STOU}); the upload lock keeps other uploads off the
            name meanwhile.
        @raise FTPReplyError: 554 when C{offset} is beyond what is stored
            (no sparse holes); 450 while another upload to C{final} runs.
        @raise OSError: C{EEXIST} when C{exclusive} and C{final} exists.
        """
        self.final = final
        self._exclusive = exclusive
        self._lock = _UploadLock(final)
        try:
            if exclusive and os.path.lexists(final.path):
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), final.path)
            self._prepare(final, offset, append)
        except BaseException:
            self._lock.release()
            raise

    def _prepare(self, final: FilePath[str], offset: int | None, append: bool) -> None:
        self.temporary = final.sibling(TEMPORARY_PREFIX + secrets.token_hex(8))
        partial = partialPath(final)
        source: str | None = None
        if append:
            offset = final.getsize() if final.isfile() else 0
            source = final.path if offset else None
        elif offset:
            if partial.isfile() and offset <= partial.getsize():
                source = partial.path
            elif final.isfile() and offset <= final.getsize():
                source = final.path
            else:
                have = max(
                    partial.getsize() if partial.isfile() else 0,
                    final.getsize() if final.isfile() else 0,
                )
                raise FTPReplyError(
                    554, f"Restart offset {offset} is beyond the {have} bytes stored."
                )
        self.offset = offset or 0
        fd = os.open(
            self.temporary.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666
        )
        self._fObj = os.fdopen(fd, "wb")
        try:
            if source is not None:
                _copyPrefix(source, self._fObj, self.offset)
        except OSError:
            self._discard()
            raise
        self._sink = _FileSink(self._fObj)
        self._done = False

    def receive(self) -> defer.Deferred[interfaces.IConsumer]:
        return defer.succeed(self._sink)

    def close(self) -> defer.Deferred[None]:
        """
        The upload completed: move it into place.
        """
        if self._done:
            return defer.succeed(None)
        self._done = True
        try:
            if self._sink.error is None:
                self._fObj.close()
        except OSError as e:
            self._sink.error = e
        failure = self.writeError()
        if failure is not None:
            self._discard()
            return defer.fail(failure)
        try:
            if self._exclusive:
                os.link(self.temporary.path, self.final.path)
                os.unlink(self.temporary.path)
            else:
                os.replace(self.temporary.path, self.final.path)
        except OSError as e:
            self._discard()
            return defer.fail(e)
        self._lock.release()
        try:
            os.unlink(partialPath(self.final).path)
        except OSError:
            pass
        return defer.succeed(None)

    def writeError(self) -> UploadWriteError | None:
        """
        The write that failed during the upload, if one did (the protocol's
        L{txftps.errors.ErrorReplies} answers it: disk full C{552}, another
        write error C{452}), or C{None}.
        """
        error = self._sink.error
        if error is None:
            return None
        return UploadWriteError(error)

    def abort(self) -> int:
        """
        The upload did not complete: C{final} is untouched; what was stored is
        kept for resumption (see the class docstring), unless a write failed.

        @return: how many bytes are kept (0 for none).
        """
        if self._done:
            return 0
        self._done = True
        if self._sink.error is None:
            try:
                self._fObj.close()
                size = os.path.getsize(self.temporary.path)
                if size > 0:
                    os.replace(self.temporary.path, partialPath(self.final).path)
                    self._lock.release()
                    return size
            except OSError:
                pass
        self._discard()
        return 0

    def _discard(self) -> None:
        try:
            self._fObj.close()
        except OSError:
            pass
        try:
            os.unlink(self.temporary.path)
        except OSError:
            pass
        self._lock.release()


@implementer(IResumableShell, IUniqueNameShell, IModificationTimeShell, IMachineListingShell)
class LocalShell(FTPShell):  # type: ignore[misc]
    """
    A confined local-filesystem shell.

    @ivar filesystemRoot: the root; C{/} of the FTP namespace.
    """

    def __init__(self, filesystemRoot: FilePath[str], readOnly: bool = False) -> None:
        super().__init__(filesystemRoot)  # type: ignore[no-untyped-call]
        self.readOnly = readOnly
        self._realRoot = os.path.realpath(filesystemRoot.path)

    @property
    def readOnly(self) -> bool:
        """
        Refuse every change; a read-only shell provides L{IReadOnlyShell}.
        """
        return IReadOnlyShell.providedBy(self)

    @readOnly.setter
    def readOnly(self, value: bool) -> None:
        # A shell that provides nothing of its own keeps no per-instance
        # interface declaration: making one for every session costs CPU and
        # memory, so only an actual change makes one.
        if value:
            alsoProvides(self, IReadOnlyShell)
        elif IReadOnlyShell.providedBy(self):
            noLongerProvides(self, IReadOnlyShell)

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self._realRoot or real.startswith(self._realRoot + os.sep)

    def _path(self, path: Sequence[str]) -> FilePath[str]:
        """
        Map segments to a path inside the root.

        @raise PermissionDeniedError: the path (after following symlinks)
            leaves the root, or a segment is unsafe.
        """
        for segment in path:
            if (
                "\0" in segment
                or "/" in segment
                or segment in ("", ".", "..")
                or segment.startswith(TEMPORARY_PREFIX)
            ):
                raise PermissionDeniedError("/".join(path))
        try:
            p = self.filesystemRoot.descendant(list(path))
        except InsecurePath:
            raise PermissionDeniedError("/".join(path))
        if not self._inside(p.path):
            raise PermissionDeniedError("/".join(path))
        return p  # type: ignore[no-any-return]

    def _refuseName(self, path: Sequence[str]) -> defer.Deferred[Any] | None:
        """
        A new file or directory may not take a reserved name.
        """
        if path and path[-1].startswith(TEMPORARY_PREFIX):
            return defer.fail(FileNameNotAllowedError("/".join(path)))  # type: ignore[no-untyped-call]
        return None

    def _refuseIfReadOnly(self, path: Sequence[str]) -> defer.Deferred[Any] | None:
        if self.readOnly:
            return defer.fail(PermissionDeniedError("/".join(path)))
        return None

    def makeDirectory(self, path: Sequence[str]) -> defer.Deferred[Any]:
        return (
            self._refuseIfReadOnly(path) or self._refuseName(path) or super().makeDirectory(path)  # type: ignore[no-untyped-call]
        )

    def removeDirectory(self, path: Sequence[str]) -> defer.Deferred[Any]:
        return self._refuseIfReadOnly(path) or super().removeDirectory(path)  # type: ignore[no-untyped-call]

    def _dropPartial(self, path: Sequence[str], result: object) -> object:
        """
        The file at C{path} was removed or renamed: what an interrupted
        upload kept for it goes too.
        """
        try:
            os.unlink(partialPath(self._path(path)).path)
        except OSError:
            pass
        return result

    def removeFile(self, path: Sequence[str]) -> defer.Deferred[Any]:
        refused = self._refuseIfReadOnly(path)
        if refused is not None:
            return refused
        d = super().removeFile(path)  # type: ignore[no-untyped-call]
        return d.addCallback(lambda result: self._dropPartial(path, result))  # type: ignore[no-any-return]

    def rename(self, fromPath: Sequence[str], toPath: Sequence[str]) -> defer.Deferred[Any]:
        refused = self._refuseIfReadOnly(fromPath) or self._refuseName(toPath)
        if refused is not None:
            return refused
        d = super().rename(fromPath, toPath)  # type: ignore[no-untyped-call]
        return d.addCallback(lambda result: self._dropPartial(fromPath, result))  # type: ignore[no-any-return]

    def openForReading(self, path: Sequence[str], offset: int = 0) -> defer.Deferred[Any]:
        """
        Open a file for a download, from byte C{offset} (C{REST}).

        @raise FTPReplyError: 554 when C{offset} is beyond the end of the file.
        """
        p = self._path(path)
        if p.isdir():
            return defer.fail(IsADirectoryError("/".join(path)))
        try:
            f = open(p.path, "rb")
        except OSError as e:
            return errnoToFailure(e.errno, path)  # type: ignore[no-any-return]
        if offset:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                f.close()
                return defer.fail(
                    FTPReplyError(554, f"Restart offset {offset} is beyond the end ({size}).")
                )
            f.seek(offset)
        return defer.succeed(_FileReader(f))

    def openForWriting(
        self,
        path: Sequence[str],
        offset: int | None = None,
        append: bool = False,
        exclusive: bool = False,
    ) -> defer.Deferred[Any]:
        """
        Open a file for an upload: a L{SafeWriteFile}, resumed at C{offset}
        (C{REST} + C{STOR}) or appending (C{APPE}) when asked.
        """
        refused = self._refuseIfReadOnly(path) or self._refuseName(path)
        if refused is not None:
            return refused
        p = self._path(path)
        if p.isdir():
            return defer.fail(IsADirectoryError("/".join(path)))
        try:
            return defer.succeed(
                SafeWriteFile(p, offset=offset, append=append, exclusive=exclusive)
            )
        except OSError as e:
            return errnoToFailure(e.errno, path)  # type: ignore[no-any-return]
        except FTPReplyError:
            return defer.fail()

    def setModificationTime(self, path: Sequence[str], mtime: float) -> defer.Deferred[None]:
        """
        Set the modification time of a file (C{MFMT}).
        """
        refused = self._refuseIfReadOnly(path)
        if refused is not None:
            return refused
        p = self._path(path)
        try:
            os.utime(p.path, (mtime, mtime), follow_symlinks=False)
        except OSError as e:
            return errnoToFailure(e.errno, path)  # type: ignore[no-any-return]
        return defer.succeed(None)

    def _stat_unique(self, fp: FilePath[str]) -> str:
        st = os.stat(fp.path)
        return f"{st.st_dev:x}g{st.st_ino:x}"

    def list(self, path: Sequence[str], keys: Sequence[str] = ()) -> defer.Deferred[Any]:
        """
        List a directory (or one file), leaving out in-progress uploads,
        entries that lead outside the root and entries that cannot be read.
        """
        target = self._path(path)
        if target.isdir():
            try:
                names = sorted(target.listdir())
            except OSError as e:
                return errnoToFailure(e.errno, path)  # type: ignore[no-any-return]
            entries = [
                (name, target.child(name))
                for name in names
                if not name.startswith(TEMPORARY_PREFIX)
                and os.path.exists(os.path.join(target.path, name))
                and self._inside(os.path.join(target.path, name))
            ]
        elif target.isfile():
            entries = [(target.basename(), target)]
        else:
            return defer.fail(FileNotFoundError("/".join(path)))
        results = []
        for name, child in entries:
            try:
                attrs = self._statNode(child, keys) if keys else []  # type: ignore[no-untyped-call]
            except OSError:
                continue
            results.append((name, attrs))
        return defer.succeed(results)
