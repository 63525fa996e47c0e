"""
L{txftps.testing.MemoryShell} and L{txftps.testing.MemoryFilesystem}: the
interfaces they declare, their file operations, and a real server serving
them to curl (upload, download, resume, append, list, rename, delete).
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.ftp import (
    FileExistsError,
    FileNotFoundError,
    IFTPShell,
    IsADirectoryError,
    IsNotADirectoryError,
    PermissionDeniedError,
)
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.support import requireProgram
from txftps.errors import ErrorReplies, FTPReplyError, UploadWriteError
from txftps.interfaces import (
    IAtomicWriteFile,
    ICloseableReadFile,
    IMachineListingShell,
    IModificationTimeShell,
    IReadOnlyShell,
    IResumableShell,
    IUniqueNameShell,
)
from txftps.testing import FTPSTestServer, MemoryFilesystem, MemoryShell


def _upload(shell: MemoryShell, path: list[str], data: bytes, **options: Any) -> Any:
    """
    Upload C{data} through the shell as the server does; the write file.
    """
    test = SynchronousTestCase()
    writeFile = test.successResultOf(shell.openForWriting(path, **options))
    consumer = test.successResultOf(writeFile.receive())
    consumer.registerProducer(None, True)
    consumer.write(data)
    consumer.unregisterProducer()
    return writeFile


def _download(shell: MemoryShell, path: list[str], offset: int = 0) -> bytes:
    test = SynchronousTestCase()
    readFile = test.successResultOf(shell.openForReading(path, offset))
    chunks: list[bytes] = []

    class Consumer:
        def registerProducer(self, producer: Any, streaming: bool) -> None:
            while producer is not None and not streaming and self.producer is None:
                before = len(chunks)
                producer.resumeProducing()
                if len(chunks) == before:
                    break

        producer = None

        def unregisterProducer(self) -> None:
            self.producer = "done"

        def write(self, data: bytes) -> None:
            chunks.append(data)

    test.successResultOf(readFile.send(Consumer()))
    return b"".join(chunks)


class InterfaceTests(SynchronousTestCase):
    """
    What L{MemoryShell} declares, it provides.
    """

    def setUp(self) -> None:
        self.filesystem = MemoryFilesystem({"a.txt": b"abc"})

    def test_shell(self) -> None:
        """
        A writable shell verifies against L{IFTPShell} and every shell
        interface but L{IReadOnlyShell}.
        """
        shell = MemoryShell(self.filesystem)
        for interface in (
            IFTPShell,
            IResumableShell,
            IUniqueNameShell,
            IModificationTimeShell,
            IMachineListingShell,
        ):
            self.assertTrue(verifyObject(interface, shell), interface)
        self.assertFalse(IReadOnlyShell.providedBy(shell))

    def test_readOnly(self) -> None:
        """
        A read-only shell provides L{IReadOnlyShell} and refuses every
        change, leaving the tree as it was.
        """
        shell = MemoryShell(self.filesystem, readOnly=True)
        self.assertTrue(verifyObject(IReadOnlyShell, shell))
        for call, args in [
            (shell.makeDirectory, (["d"],)),
            (shell.removeFile, (["a.txt"],)),
            (shell.rename, (["a.txt"], ["b.txt"])),
            (shell.openForWriting, (["b.txt"],)),
            (shell.setModificationTime, (["a.txt"], 0)),
        ]:
            self.failureResultOf(call(*args), PermissionDeniedError)
        self.assertEqual(self.filesystem.snapshot(), {"a.txt": b"abc"})

    def test_files(self) -> None:
        """
        Downloads are L{ICloseableReadFile}s, uploads L{IAtomicWriteFile}s.
        """
        shell = MemoryShell(self.filesystem)
        readFile = self.successResultOf(shell.openForReading(["a.txt"]))
        self.assertTrue(verifyObject(ICloseableReadFile, readFile))
        readFile.close()
        readFile.close()
        writeFile = self.successResultOf(shell.openForWriting(["a.txt"]))
        self.assertTrue(verifyObject(IAtomicWriteFile, writeFile))


class OperationTests(SynchronousTestCase):
    """
    The file operations of L{MemoryShell} on a L{MemoryFilesystem}.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.filesystem = MemoryFilesystem(
            {"a.txt": b"0123456789", "dir/b.txt": b"b", "empty/": b""}, clock=self.clock
        )
        self.shell = MemoryShell(self.filesystem)

    def test_snapshot(self) -> None:
        """
        Initial files create their parents; a path ending in C{/} is an
        empty directory.
        """
        self.assertEqual(
            self.filesystem.snapshot(),
            {"a.txt": b"0123456789", "dir": None, "dir/b.txt": b"b", "empty": None},
        )

    def test_uploadReplacesOnClose(self) -> None:
        """
        An upload is invisible until C{close}; after C{abort} the old content
        stays and nothing is kept.
        """
        writeFile = _upload(self.shell, ["a.txt"], b"new")
        self.assertEqual(self.filesystem.getContent("a.txt"), b"0123456789")
        self.successResultOf(writeFile.close())
        self.assertEqual(self.filesystem.getContent("a.txt"), b"new")
        aborted = _upload(self.shell, ["a.txt"], b"other")
        self.assertEqual(aborted.abort(), 0)
        self.assertEqual(self.filesystem.getContent("a.txt"), b"new")

    def test_offsetsAndAppend(self) -> None:
        """
        C{REST} reads and writes from an offset, C{APPE} appends, and an
        offset beyond the end is refused with 554.
        """
        self.assertEqual(_download(self.shell, ["a.txt"], 7), b"789")
        self.successResultOf(_upload(self.shell, ["a.txt"], b"xy", offset=4).close())
        self.assertEqual(self.filesystem.getContent("a.txt"), b"0123xy")
        self.successResultOf(_upload(self.shell, ["a.txt"], b"!", append=True).close())
        self.assertEqual(self.filesystem.getContent("a.txt"), b"0123xy!")
        failure = self.failureResultOf(self.shell.openForReading(["a.txt"], 99), FTPReplyError)
        self.assertEqual(failure.value.code, 554)
        failure = self.failureResultOf(self.shell.openForWriting(["a.txt"], 99), FTPReplyError)
        self.assertEqual(failure.value.code, 554)

    def test_exclusive(self) -> None:
        """
        An exclusive upload (STOU) refuses an existing name, at open and at
        close.
        """
        self.failureResultOf(self.shell.openForWriting(["a.txt"], exclusive=True), FileExistsError)
        writeFile = _upload(self.shell, ["c.txt"], b"c", exclusive=True)
        self.filesystem.setContent("c.txt", b"taken")
        failure = self.failureResultOf(writeFile.close(), FTPReplyError)
        self.assertEqual(failure.value.code, 553)
        self.assertEqual(self.filesystem.getContent("c.txt"), b"taken")

    def test_capacity(self) -> None:
        """
        An upload past the filesystem's capacity fails with 552 and stores
        nothing.
        """
        self.filesystem.capacity = 20
        writeFile = _upload(self.shell, ["big.txt"], b"x" * 100)
        error = writeFile.writeError()
        self.assertEqual(error.error.errno, errno.ENOSPC)
        self.assertEqual(ErrorReplies().replyFor(error)[0], 552)
        self.failureResultOf(writeFile.close(), UploadWriteError)
        self.assertFalse(self.filesystem.exists("big.txt"))

    def test_directories(self) -> None:
        """
        Directories are made, listed and removed when empty; errors are
        Twisted's shell errors.
        """
        self.successResultOf(self.shell.makeDirectory(["new"]))
        self.failureResultOf(self.shell.makeDirectory(["new"]), FileExistsError)
        self.failureResultOf(self.shell.makeDirectory(["no", "such"]), FileNotFoundError)
        failure = self.failureResultOf(self.shell.removeDirectory(["dir"]), FTPReplyError)
        self.assertEqual(failure.value.code, 550)
        self.failureResultOf(self.shell.removeDirectory(["a.txt"]), IsNotADirectoryError)
        self.failureResultOf(self.shell.removeFile(["dir"]), IsADirectoryError)
        self.failureResultOf(self.shell.access(["a.txt"]), IsNotADirectoryError)
        self.successResultOf(self.shell.removeDirectory(["new"]))
        self.successResultOf(self.shell.access(["dir"]))
        names = self.successResultOf(self.shell.list([], ("size", "directory")))
        self.assertEqual(
            names,
            [("a.txt", [10, False]), ("dir", [0, True]), ("empty", [0, True])],
        )
        self.assertEqual(
            self.successResultOf(self.shell.list(["a.txt"], ("size",))), [("a.txt", [10])]
        )

    def test_renameKeepsIdentity(self) -> None:
        """
        A rename moves the file and keeps its C{unique} fact; a directory
        cannot move into itself.
        """
        [before] = self.successResultOf(self.shell.stat(["a.txt"], ("unique",)))
        self.successResultOf(self.shell.rename(["a.txt"], ["dir", "moved.txt"]))
        [after] = self.successResultOf(self.shell.stat(["dir", "moved.txt"], ("unique",)))
        self.assertEqual(before, after)
        self.assertFalse(self.filesystem.exists("a.txt"))
        self.failureResultOf(self.shell.rename(["dir"], ["dir", "sub"]), PermissionDeniedError)

    def test_modificationTime(self) -> None:
        """
        Files carry the clock's time when written; MFMT sets it.
        """
        [modified] = self.successResultOf(self.shell.stat(["a.txt"], ("modified",)))
        self.assertEqual(modified, 1_000_000)
        self.successResultOf(self.shell.setModificationTime(["a.txt"], 42))
        self.assertEqual(self.successResultOf(self.shell.stat(["a.txt"], ("modified",))), [42])

    def test_unsafeSegments(self) -> None:
        """
        Segments that are empty, dot names or hold a slash or NUL are
        refused.
        """
        for path in (["..", "a.txt"], [""], ["a/b"], ["a\0"]):
            self.failureResultOf(self.shell.stat(path, ()), PermissionDeniedError)


class ServedByCurlTests(TestCase):
    """
    A real server on a L{MemoryFilesystem}, driven by curl.
    """

    def setUp(self) -> Any:
        self.filesystem = MemoryFilesystem({"pub/readme.txt": b"read me\n"})
        self.server = FTPSTestServer(
            reactor, users={"alice": "secret"}, filesystem=self.filesystem
        )
        self.addCleanup(self.server.stop)
        return self.server.start()

    def curl(self, path: str, *args: str) -> defer.Deferred[subprocess.CompletedProcess[bytes]]:
        binary = requireProgram("curl")
        command = [
            binary,
            "-sS",
            "--ssl-reqd",
            "--cacert",
            self.server.caCertificatePath.path,
            *args,
            self.server.url(path, "alice"),
        ]
        return threads.deferToThread(subprocess.run, command, capture_output=True, timeout=30)

    @defer.inlineCallbacks
    def test_roundTrip(self) -> Any:
        """
        Upload, resume, append, list, rename and delete through curl, each
        checked against the bytes in memory; nothing touches the disk tree.
        """
        blob = os.urandom(300_000)
        source = self.server.directory.child("blob.bin")
        source.setContent(blob)
        result = yield self.curl("pub/blob.bin", "-T", source.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.filesystem.getContent("pub/blob.bin"), blob)

        result = yield self.curl("pub/blob.bin")
        self.assertEqual(hashlib.sha256(result.stdout).digest(), hashlib.sha256(blob).digest())

        partial = self.server.directory.child("partial.bin")
        partial.setContent(blob[:100_000])
        result = yield self.curl("pub/blob.bin", "-C", "-", "-o", partial.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(partial.getContent(), blob)

        tail = self.server.directory.child("tail.bin")
        tail.setContent(b"tail")
        result = yield self.curl("pub/blob.bin", "--append", "-T", tail.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.filesystem.getContent("pub/blob.bin"), blob + b"tail")

        result = yield self.curl("pub/", "-l")
        self.assertEqual(result.stdout.split(), [b"blob.bin", b"readme.txt"])

        result = yield self.curl(
            "pub/", "-Q", "RNFR pub/blob.bin", "-Q", "RNTO pub/renamed.bin", "-l"
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split(), [b"readme.txt", b"renamed.bin"])
        self.assertEqual(self.filesystem.getContent("pub/renamed.bin"), blob + b"tail")

        result = yield self.curl("pub/", "-Q", "DELE pub/renamed.bin", "-l")
        self.assertEqual(result.stdout.split(), [b"readme.txt"])
        self.assertEqual(self.filesystem.snapshot(), {"pub": None, "pub/readme.txt": b"read me\n"})
        self.assertEqual(self.server.root.listdir(), [])
