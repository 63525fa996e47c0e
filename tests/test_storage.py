"""
Tests for L{txftps.storage}: L{LocalShell} keeps every path inside its root,
hides in-progress uploads, honours C{readOnly}; L{SafeWriteFile} replaces a
file only when the upload completed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, interfaces
from twisted.protocols.ftp import (
    FileNotFoundError,
    IFTPShell,
    IReadFile,
    IsADirectoryError,
    IWriteFile,
    PermissionDeniedError,
)
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txftps._listing import LIST_KEYS
from txftps.errors import (
    ErrorReplies,
    FileNameNotAllowedError,
    FTPReplyError,
    UploadWriteError,
)
from txftps.storage import PARTIAL_PREFIX, TEMPORARY_PREFIX, LocalShell, SafeWriteFile, partialPath


@implementer(interfaces.IConsumer)
class _PullConsumer:
    """
    An L{IConsumer} that pulls everything from a non-streaming producer.
    """

    def __init__(self) -> None:
        self.data = b""
        self.producer: Any = None
        self.unregistered = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        if not streaming:
            while self.producer is not None:
                producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self.producer = None
        self.unregistered = True

    def write(self, data: bytes) -> None:
        self.data += data


class _FullDisk:
    """
    Stands in for an open file whose writes fail with C{ENOSPC} (or another
    errno); closing closes the real file.
    """

    def __init__(self, real: Any, code: int = errno.ENOSPC) -> None:
        self._real = real
        self._code = code

    def write(self, data: bytes) -> int:
        raise OSError(self._code, os.strerror(self._code))

    def close(self) -> None:
        self._real.close()


class _Producer:
    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class _Tree:
    """
    A root directory and, beside it, an outside directory, with symlinks from
    the root to both::

        base/outside/secret.txt
        base/outside/outdir/x.txt
        base/root/inside.txt
        base/root/sub/deep.txt
        base/root/linkIn -> inside.txt
        base/root/linkDirIn -> sub
        base/root/linkFileOut -> ../outside/secret.txt
        base/root/linkDirOut -> ../outside/outdir
        base/root/dangling -> nothing-here (inside the root)
        base/root/danglingOut -> ../outside/nothing-here
    """

    def __init__(self, base: FilePath[str]) -> None:
        self.base = base
        self.root = base.child("root")
        self.outside = base.child("outside")
        self.root.makedirs()
        self.outside.child("outdir").makedirs()
        self.outside.child("secret.txt").setContent(b"secret")
        self.outside.child("outdir").child("x.txt").setContent(b"outside x")
        self.root.child("inside.txt").setContent(b"inside")
        self.root.child("sub").makedirs()
        self.root.child("sub").child("deep.txt").setContent(b"deep")
        links = {
            "linkIn": "inside.txt",
            "linkDirIn": "sub",
            "linkFileOut": "../outside/secret.txt",
            "linkDirOut": "../outside/outdir",
            "dangling": "nothing-here",
            "danglingOut": "../outside/nothing-here",
        }
        for name, target in links.items():
            os.symlink(target, self.root.child(name).path)

    def snapshot(self) -> dict[str, bytes | None]:
        """
        Every path under the base (symlinks not followed), with file contents.
        """
        result: dict[str, bytes | None] = {}
        for directory, dirnames, filenames in os.walk(self.base.path):
            for name in dirnames + filenames:
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, self.base.path)
                if os.path.islink(path):
                    result[relative] = os.readlink(path).encode()
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        result[relative] = f.read()
                else:
                    result[relative] = None
        return result


class ConfinementTests(SynchronousTestCase):
    """
    Every L{LocalShell} operation refuses paths that leave the root, through
    C{..}, NUL bytes or symlinks, with L{PermissionDeniedError}, and changes
    nothing.
    """

    #: Paths that lead outside the root, or are not paths at all.
    escaping = [
        [".."],
        ["..", "outside", "secret.txt"],
        ["sub", "..", "..", "outside", "secret.txt"],
        ["inside\0.txt"],
        ["linkFileOut"],
        ["linkDirOut"],
        ["linkDirOut", "x.txt"],
        ["danglingOut"],
    ]

    def setUp(self) -> None:
        self.tree = _Tree(FilePath(self.mktemp()))
        self.shell = LocalShell(self.tree.root)
        self.before = self.tree.snapshot()

    def _refused(self, call: Callable[..., Any], *args: Any) -> None:
        """
        C{call(*args)} fails with L{PermissionDeniedError} (raised or as a
        failed Deferred, the way the protocol calls it) and nothing on disk
        changed.
        """
        d = defer.maybeDeferred(call, *args)
        self.failureResultOf(d, PermissionDeniedError)
        self.assertEqual(self.tree.snapshot(), self.before, f"{call.__name__}{args!r}")

    def test_provides(self) -> None:
        """
        L{LocalShell} provides L{IFTPShell}.
        """
        self.assertTrue(verifyObject(IFTPShell, self.shell))

    def test_openForReading(self) -> None:
        """
        C{openForReading} refuses every escaping path.
        """
        for path in self.escaping:
            self._refused(self.shell.openForReading, path)

    def test_openForWriting(self) -> None:
        """
        C{openForWriting} refuses every escaping path and a new file inside
        a directory outside the root; no temporary file is left anywhere.
        """
        for path in self.escaping + [["linkDirOut", "new.txt"]]:
            self._refused(self.shell.openForWriting, path)

    def test_list(self) -> None:
        """
        C{list} refuses every escaping path, with and without stat keys.
        """
        for path in self.escaping:
            self._refused(self.shell.list, path)
            self._refused(self.shell.list, path, LIST_KEYS)

    def test_stat(self) -> None:
        """
        C{stat} refuses every escaping path.
        """
        for path in self.escaping:
            self._refused(self.shell.stat, path, ("size",))

    def test_access(self) -> None:
        """
        C{access} (CWD) refuses every escaping path.
        """
        for path in self.escaping:
            self._refused(self.shell.access, path)

    def test_makeDirectory(self) -> None:
        """
        C{makeDirectory} refuses to create a directory outside the root.
        """
        for path in self.escaping + [["linkDirOut", "newdir"], ["..", "newdir"]]:
            self._refused(self.shell.makeDirectory, path)

    def test_removeFile(self) -> None:
        """
        C{removeFile} refuses every escaping path; the outside files and the
        symlinks stay.
        """
        for path in self.escaping:
            self._refused(self.shell.removeFile, path)

    def test_removeDirectory(self) -> None:
        """
        C{removeDirectory} refuses every escaping path.
        """
        for path in self.escaping:
            self._refused(self.shell.removeDirectory, path)

    def test_renameSourceOutside(self) -> None:
        """
        C{rename} refuses a source outside the root (nothing is moved in).
        """
        for path in self.escaping:
            self._refused(self.shell.rename, path, ["moved-in"])

    def test_renameTargetOutside(self) -> None:
        """
        C{rename} refuses a target outside the root (nothing is moved out).
        """
        for path in self.escaping + [["linkDirOut", "stolen.txt"]]:
            self._refused(self.shell.rename, ["inside.txt"], path)


class InsideTests(SynchronousTestCase):
    """
    Paths inside the root, symlinks within the root included, work.
    """

    def setUp(self) -> None:
        self.tree = _Tree(FilePath(self.mktemp()))
        self.shell = LocalShell(self.tree.root)

    def _read(self, path: list[str]) -> bytes:
        readFile = self.successResultOf(self.shell.openForReading(path))
        consumer = _PullConsumer()
        self.successResultOf(readFile.send(consumer))
        return consumer.data

    def test_readThroughInsideSymlink(self) -> None:
        """
        A symlink to a file inside the root can be read.
        """
        self.assertEqual(self._read(["linkIn"]), b"inside")

    def test_readThroughInsideDirectorySymlink(self) -> None:
        """
        A file under a symlink to a directory inside the root can be read,
        listed and stat'ed.
        """
        self.assertEqual(self._read(["linkDirIn", "deep.txt"]), b"deep")
        names = [name for name, _ in self.successResultOf(self.shell.list(["linkDirIn"]))]
        self.assertEqual(names, ["deep.txt"])
        [size] = self.successResultOf(self.shell.stat(["linkDirIn", "deep.txt"], ("size",)))
        self.assertEqual(size, 4)
        self.assertIsNone(self.successResultOf(self.shell.access(["linkDirIn"])))

    def test_openForReadingExactBytes(self) -> None:
        """
        C{openForReading} sends the file's exact bytes (several chunks' worth,
        every byte value) to the consumer, unregisters, and closes the file.
        """
        content = os.urandom(700 * 1024) + bytes(range(256))
        self.tree.root.child("blob.bin").setContent(content)
        readFile = self.successResultOf(self.shell.openForReading(["blob.bin"]))
        self.assertTrue(verifyObject(IReadFile, readFile))
        consumer = _PullConsumer()
        self.successResultOf(readFile.send(consumer))
        self.assertEqual(consumer.data, content)
        self.assertTrue(consumer.unregistered)
        self.assertTrue(readFile._fObj.closed)

    def test_openForReadingDirectory(self) -> None:
        """
        A directory cannot be opened for reading.
        """
        self.failureResultOf(self.shell.openForReading(["sub"]), IsADirectoryError)

    def test_openForReadingMissing(self) -> None:
        """
        A missing file fails with L{FileNotFoundError}.
        """
        self.failureResultOf(self.shell.openForReading(["missing"]), FileNotFoundError)

    def test_writeInsideSubdirectory(self) -> None:
        """
        An upload into a subdirectory reaches its final name on close.
        """
        writeFile = self.successResultOf(self.shell.openForWriting(["sub", "up.txt"]))
        self.assertTrue(verifyObject(IWriteFile, writeFile))
        consumer = self.successResultOf(writeFile.receive())
        consumer.write(b"uploaded")
        self.successResultOf(writeFile.close())
        self.assertEqual(self.tree.root.child("sub").child("up.txt").getContent(), b"uploaded")

    def test_renameAndMakeDirectoryInside(self) -> None:
        """
        C{rename}, C{makeDirectory}, C{removeFile} and C{removeDirectory}
        work inside the root.
        """
        self.successResultOf(self.shell.rename(["inside.txt"], ["sub", "moved.txt"]))
        self.assertEqual(self.tree.root.child("sub").child("moved.txt").getContent(), b"inside")
        self.successResultOf(self.shell.makeDirectory(["newdir"]))
        self.assertTrue(self.tree.root.child("newdir").isdir())
        self.successResultOf(self.shell.removeDirectory(["newdir"]))
        self.assertFalse(self.tree.root.child("newdir").exists())
        self.successResultOf(self.shell.removeFile(["sub", "moved.txt"]))
        self.assertFalse(self.tree.root.child("sub").child("moved.txt").exists())


class ListTests(SynchronousTestCase):
    """
    L{LocalShell.list} shows only what can be used: no symlinks leading
    outside, no dangling symlinks, no in-progress uploads.
    """

    visible = ["inside.txt", "linkDirIn", "linkIn", "sub"]

    def setUp(self) -> None:
        self.tree = _Tree(FilePath(self.mktemp()))
        self.shell = LocalShell(self.tree.root)
        self.upload = self.successResultOf(self.shell.openForWriting(["new.txt"]))
        self.assertTrue(self.upload.temporary.exists())

    def test_listWithKeys(self) -> None:
        """
        A LIST-style listing (with stat keys) leaves out outside symlinks,
        dangling symlinks and the in-progress upload.
        """
        entries = self.successResultOf(self.shell.list([], LIST_KEYS))
        self.assertEqual(sorted(name for name, _ in entries), self.visible)
        for name, attrs in entries:
            self.assertEqual(len(attrs), len(LIST_KEYS), name)

    def test_listWithoutKeys(self) -> None:
        """
        An NLST-style listing (no stat keys) leaves out the same entries:
        dangling symlinks included.
        """
        entries = self.successResultOf(self.shell.list([]))
        self.assertEqual(sorted(name for name, _ in entries), self.visible)

    def test_temporaryNamePrefix(self) -> None:
        """
        The in-progress upload is a hidden file whose name starts with
        C{TEMPORARY_PREFIX}.
        """
        self.assertTrue(self.upload.temporary.basename().startswith(TEMPORARY_PREFIX))
        self.assertTrue(TEMPORARY_PREFIX.startswith("."))

    def test_listSingleFile(self) -> None:
        """
        Listing a file gives that one file.
        """
        entries = self.successResultOf(self.shell.list(["inside.txt"], ("size",)))
        self.assertEqual(entries, [("inside.txt", [6])])


class ReservedNameTests(SynchronousTestCase):
    """
    A new file or directory may not take a name reserved for in-progress
    uploads: L{FileNameNotAllowedError} (553), and nothing is made.
    """

    def test_newNamesRefused(self) -> None:
        """
        MKD, an upload and a rename to a reserved name are refused with
        L{FileNameNotAllowedError}.
        """
        root = FilePath(self.mktemp())
        root.makedirs()
        root.child("file.txt").setContent(b"x")
        shell = LocalShell(root)
        name = TEMPORARY_PREFIX + "mine"
        self.failureResultOf(shell.makeDirectory([name]), FileNameNotAllowedError)
        self.failureResultOf(shell.openForWriting([name]), FileNameNotAllowedError)
        self.failureResultOf(shell.rename(["file.txt"], [name]), FileNameNotAllowedError)
        self.assertEqual(root.listdir(), ["file.txt"])


class ReadOnlyTests(SynchronousTestCase):
    """
    A read-only L{LocalShell} refuses every change and changes nothing, but
    reads.
    """

    def setUp(self) -> None:
        self.tree = _Tree(FilePath(self.mktemp()))
        self.shell = LocalShell(self.tree.root, readOnly=True)
        self.before = self.tree.snapshot()

    def _refused(self, call: Callable[..., Any], *args: Any) -> None:
        d = defer.maybeDeferred(call, *args)
        self.failureResultOf(d, PermissionDeniedError)
        self.assertEqual(self.tree.snapshot(), self.before, f"{call.__name__}{args!r}")

    def test_changesRefused(self) -> None:
        """
        Writing a new or existing file, making and removing directories,
        removing files and renaming are all refused, leaving the tree as it
        was (no temporary file either).
        """
        self._refused(self.shell.openForWriting, ["new.txt"])
        self._refused(self.shell.openForWriting, ["inside.txt"])
        self._refused(self.shell.makeDirectory, ["newdir"])
        self._refused(self.shell.removeDirectory, ["sub"])
        self._refused(self.shell.removeFile, ["inside.txt"])
        self._refused(self.shell.rename, ["inside.txt"], ["renamed.txt"])

    def test_readsWork(self) -> None:
        """
        Reading, listing, stat and access still work.
        """
        self.successResultOf(self.shell.openForReading(["inside.txt"]))
        self.successResultOf(self.shell.list([], LIST_KEYS))
        self.successResultOf(self.shell.stat(["inside.txt"], ("size",)))
        self.successResultOf(self.shell.access(["sub"]))


class SafeWriteFileTests(SynchronousTestCase):
    """
    L{SafeWriteFile} writes to a hidden sibling and replaces the final file
    only on a successful C{close}.
    """

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.final = self.directory.child("file.txt")
        self.final.setContent(b"old content")

    def test_closeReplaces(self) -> None:
        """
        Before C{close} the final file keeps its old content and the bytes
        sit in a hidden sibling; C{close} moves that very file into place
        (same inode: a rename, not a copy) and removes the temporary name.
        """
        writeFile = SafeWriteFile(self.final)
        consumer = self.successResultOf(writeFile.receive())
        consumer.write(b"new ")
        consumer.write(b"content")
        temporary = writeFile.temporary
        self.assertEqual(temporary.parent(), self.final.parent())
        self.assertTrue(temporary.basename().startswith("."))
        self.assertTrue(temporary.basename().startswith(TEMPORARY_PREFIX))
        self.assertEqual(self.final.getContent(), b"old content")
        inode = os.stat(temporary.path).st_ino
        self.successResultOf(writeFile.close())
        self.assertEqual(self.final.getContent(), b"new content")
        self.assertEqual(os.stat(self.final.path).st_ino, inode)
        self.assertFalse(os.path.exists(temporary.path))
        self.assertEqual(self.directory.listdir(), ["file.txt"])

    def test_newFile(self) -> None:
        """
        An upload to a new name creates it on C{close}, not before.
        """
        final = self.directory.child("new.txt")
        writeFile = SafeWriteFile(final)
        self.successResultOf(writeFile.receive()).write(b"fresh")
        self.assertFalse(final.exists())
        self.successResultOf(writeFile.close())
        self.assertEqual(final.getContent(), b"fresh")

    def test_abort(self) -> None:
        """
        C{abort} leaves the final file as it was and keeps what was stored in
        the hidden partial file (never under the final name); a later
        C{close} does not move anything into place.
        """
        writeFile = SafeWriteFile(self.final)
        self.successResultOf(writeFile.receive()).write(b"partial")
        self.assertEqual(writeFile.abort(), len(b"partial"))
        self.assertFalse(os.path.exists(writeFile.temporary.path))
        self.assertEqual(self.final.getContent(), b"old content")
        writeFile.close()
        self.assertEqual(self.final.getContent(), b"old content")
        self.assertEqual(
            sorted(self.directory.listdir()), sorted(["file.txt", PARTIAL_PREFIX + "file.txt"])
        )
        self.assertEqual(partialPath(self.final).getContent(), b"partial")

    def test_abortNothingStored(self) -> None:
        """
        An upload aborted before any byte arrived keeps nothing.
        """
        writeFile = SafeWriteFile(self.final)
        self.assertEqual(writeFile.abort(), 0)
        self.assertEqual(self.directory.listdir(), ["file.txt"])

    def test_resumeKeptPartial(self) -> None:
        """
        C{REST n} + C{STOR} continues the kept partial upload at byte C{n};
        the final file changes only when the resumed upload completes, and
        the partial file is gone then.
        """
        first = SafeWriteFile(self.final)
        self.successResultOf(first.receive()).write(b"new conte")
        first.abort()
        resumed = SafeWriteFile(self.final, offset=len(b"new con"))
        self.successResultOf(resumed.receive()).write(b"tent!")
        self.assertEqual(self.final.getContent(), b"old content")
        self.successResultOf(resumed.close())
        self.assertEqual(self.final.getContent(), b"new content!")
        self.assertEqual(self.directory.listdir(), ["file.txt"])

    def test_resumeBeyondStored(self) -> None:
        """
        A restart offset beyond what is stored (a sparse hole) is refused with
        554 and nothing is created.
        """
        error = self.assertRaises(FTPReplyError, SafeWriteFile, self.final, offset=1000)
        self.assertEqual(error.code, 554)
        self.assertEqual(self.directory.listdir(), ["file.txt"])

    def test_append(self) -> None:
        """
        C{APPE} appends to a copy of the final file, which changes only when
        the upload completes.
        """
        writeFile = SafeWriteFile(self.final, append=True)
        self.successResultOf(writeFile.receive()).write(b", more")
        self.assertEqual(self.final.getContent(), b"old content")
        self.successResultOf(writeFile.close())
        self.assertEqual(self.final.getContent(), b"old content, more")

    def _failingWrite(self, code: int) -> tuple[SafeWriteFile, _Producer]:
        writeFile = SafeWriteFile(self.final)
        consumer = self.successResultOf(writeFile.receive())
        producer = _Producer()
        consumer.registerProducer(producer, True)
        consumer.write(b"first chunk ")
        consumer._fObj = _FullDisk(writeFile._fObj, code)
        consumer.write(b"second chunk")
        return writeFile, producer

    def test_diskFull(self) -> None:
        """
        A write failing with C{ENOSPC} stops the producer; C{close} then fails
        with it, answered with 552, the final file is untouched and the temporary file is gone.
        """
        writeFile, producer = self._failingWrite(errno.ENOSPC)
        self.assertTrue(producer.stopped)
        failure = self.failureResultOf(writeFile.close(), UploadWriteError)
        self.assertEqual(failure.value.error.errno, errno.ENOSPC)
        self.assertEqual(ErrorReplies().replyFor(failure.value)[0], 552)
        self.assertEqual(self.final.getContent(), b"old content")
        self.assertFalse(os.path.exists(writeFile.temporary.path))
        self.assertEqual(self.directory.listdir(), ["file.txt"])

    def test_ioError(self) -> None:
        """
        Another write error (C{EIO}) fails C{close}, answered with 452, leaving the
        final file untouched.
        """
        writeFile, _ = self._failingWrite(errno.EIO)
        failure = self.failureResultOf(writeFile.close(), UploadWriteError)
        self.assertEqual(
            ErrorReplies().replyFor(failure.value), (452, "Write failed: Input/output error.")
        )
        self.assertEqual(self.final.getContent(), b"old content")
        self.assertFalse(os.path.exists(writeFile.temporary.path))
