# -*- test-case-name: tests.test_memoryshell -*-
"""
A shell that keeps its files in memory, for tests that need no disk.

A L{MemoryFilesystem} is a tree of directories and files; any number of
L{MemoryShell}s serve it (one per logged-in user), each writable or
read-only. The shell provides L{IFTPShell<twisted.protocols.ftp.IFTPShell>} and every interface of
L{txftps.interfaces} that L{txftps.storage.LocalShell} provides, so the
server offers the same commands on it: REST, APPE, STOU, MFMT, the MLST
C{unique} fact; uploads replace a file only when they complete.
"""

from __future__ import annotations

import builtins
import errno
import io
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from twisted.internet import defer, interfaces
from twisted.protocols.basic import FileSender
from twisted.protocols.ftp import (
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    IsNotADirectoryError,
    PermissionDeniedError,
)
from twisted.python.filepath import Permissions
from zope.interface import alsoProvides, implementer

from txftps.errors import FTPReplyError, UploadWriteError
from txftps.interfaces import (
    IAtomicWriteFile,
    ICloseableReadFile,
    IMachineListingShell,
    IModificationTimeShell,
    IReadOnlyShell,
    IResumableShell,
    IUniqueNameShell,
)


class _Node:
    def __init__(self, identity: int, mtime: float) -> None:
        self.identity = identity
        self.mtime = mtime


class _File(_Node):
    def __init__(self, identity: int, mtime: float, content: bytes) -> None:
        super().__init__(identity, mtime)
        self.content = content


class _Directory(_Node):
    def __init__(self, identity: int, mtime: float) -> None:
        super().__init__(identity, mtime)
        self.children: dict[str, _File | _Directory] = {}


def _split(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


class MemoryFilesystem:
    """
    A tree of directories and files in memory.

    Paths given to its methods are C{/}-separated, relative to its root
    (a leading C{/} is allowed).

    @ivar capacity: the total size of all files, in bytes, beyond which an
        upload fails with 552 (disk full); C{None} for no limit.
    """

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        clock: interfaces.IReactorTime | None = None,
        capacity: int | None = None,
    ) -> None:
        """
        @param files: initial files, path to content; a path ending in C{/}
            is an empty directory.
        @param clock: gives modification times; the system clock if C{None}.
        @param capacity: see L{capacity}.
        """
        self._now: Callable[[], float] = clock.seconds if clock is not None else time.time
        self._identities = itertools.count(1)
        self.capacity = capacity
        self._root = _Directory(next(self._identities), self._now())
        for path, content in (files or {}).items():
            if path.endswith("/"):
                self.makeDirectory(path)
            else:
                self.setContent(path, content)

    # the tree, for tests

    def _node(self, segments: Sequence[str]) -> _File | _Directory:
        node: _File | _Directory = self._root
        for segment in segments:
            if not isinstance(node, _Directory):
                raise IsNotADirectoryError("/".join(segments))
            child = node.children.get(segment)
            if child is None:
                raise FileNotFoundError("/".join(segments))
            node = child
        return node

    def _directory(self, segments: Sequence[str]) -> _Directory:
        node = self._node(segments)
        if not isinstance(node, _Directory):
            raise IsNotADirectoryError("/".join(segments))
        return node

    def _newFile(self, content: bytes) -> _File:
        return _File(next(self._identities), self._now(), content)

    def _newDirectory(self) -> _Directory:
        return _Directory(next(self._identities), self._now())

    def makeDirectory(self, path: str) -> None:
        """
        Create a directory and its missing parents.
        """
        node = self._root
        for segment in _split(path):
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = self._newDirectory()
            if not isinstance(child, _Directory):
                raise IsNotADirectoryError(path)
            node = child

    def setContent(self, path: str, content: bytes) -> None:
        """
        Create or replace a file, creating missing parent directories.
        """
        *parent, name = _split(path)
        self.makeDirectory("/".join(parent))
        directory = self._directory(parent)
        if isinstance(directory.children.get(name), _Directory):
            raise IsADirectoryError(path)
        directory.children[name] = self._newFile(content)

    def getContent(self, path: str) -> bytes:
        """
        The content of a file.

        @raise FileNotFoundError: there is no such file.
        @raise IsADirectoryError: it is a directory.
        """
        node = self._node(_split(path))
        if isinstance(node, _Directory):
            raise IsADirectoryError(path)
        return node.content

    def exists(self, path: str) -> bool:
        """
        Is there a file or directory at C{path}?
        """
        try:
            self._node(_split(path))
        except (FileNotFoundError, IsNotADirectoryError):
            return False
        return True

    def isDirectory(self, path: str) -> bool:
        """
        Is there a directory at C{path}?
        """
        try:
            return isinstance(self._node(_split(path)), _Directory)
        except (FileNotFoundError, IsNotADirectoryError):
            return False

    def snapshot(self) -> dict[str, bytes | None]:
        """
        The whole tree: every path (without a leading C{/}) to its content,
        C{None} for directories.
        """

        def walk(directory: _Directory, prefix: str) -> Iterator[tuple[str, bytes | None]]:
            for name, child in sorted(directory.children.items()):
                if isinstance(child, _Directory):
                    yield prefix + name, None
                    yield from walk(child, prefix + name + "/")
                else:
                    yield prefix + name, child.content

        return dict(walk(self._root, ""))

    def _used(self) -> int:
        return sum(len(v) for v in self.snapshot().values() if v is not None)


@implementer(ICloseableReadFile)
class _MemoryReader:
    def __init__(self, content: bytes) -> None:
        self._file = io.BytesIO(content)

    def close(self) -> None:
        self._file.close()

    def send(self, consumer: interfaces.IConsumer) -> defer.Deferred[Any]:
        return FileSender().beginFileTransfer(self._file, consumer)  # type: ignore[no-any-return, no-untyped-call]


@implementer(interfaces.IConsumer)
class _MemorySink:
    def __init__(self, prefix: bytes, room: int | None) -> None:
        self._chunks = [prefix]
        self._size = len(prefix)
        self._room = room
        self._producer: Any = None
        self.full = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self.full:
            return
        if self._room is not None and self._size + len(data) > self._room:
            self.full = True
            if self._producer is not None:
                self._producer.stopProducing()
            return
        self._chunks.append(data)
        self._size += len(data)

    def content(self) -> bytes:
        return b"".join(self._chunks)


@implementer(IAtomicWriteFile)
class _MemoryWriter:
    """
    An upload kept aside until L{close} puts it in place; L{abort} drops it.
    """

    def __init__(
        self,
        filesystem: MemoryFilesystem,
        segments: list[str],
        prefix: bytes,
        exclusive: bool,
    ) -> None:
        self._filesystem = filesystem
        self._segments = segments
        self._exclusive = exclusive
        room = None
        if filesystem.capacity is not None:
            room = filesystem.capacity - filesystem._used() + len(prefix)
        self._sink = _MemorySink(prefix, room)
        self._done = False

    def receive(self) -> defer.Deferred[interfaces.IConsumer]:
        return defer.succeed(self._sink)

    def writeError(self) -> UploadWriteError | None:
        if self._sink.full:
            return UploadWriteError(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return None

    def close(self) -> defer.Deferred[None]:
        if self._done:
            return defer.succeed(None)
        self._done = True
        failure = self.writeError()
        if failure is not None:
            return defer.fail(failure)
        *parent, name = self._segments
        try:
            directory = self._filesystem._directory(parent)
        except (FileNotFoundError, IsNotADirectoryError):
            return defer.fail()
        existing = directory.children.get(name)
        if isinstance(existing, _Directory):
            return defer.fail(IsADirectoryError("/".join(self._segments)))
        if self._exclusive and existing is not None:
            return defer.fail(FTPReplyError(553, "The unique name was taken meanwhile."))
        directory.children[name] = self._filesystem._newFile(self._sink.content())
        return defer.succeed(None)

    def abort(self) -> int:
        self._done = True
        return 0


@implementer(IResumableShell, IUniqueNameShell, IModificationTimeShell, IMachineListingShell)
class MemoryShell:
    """
    An L{IFTPShell<twisted.protocols.ftp.IFTPShell>} on a L{MemoryFilesystem}.

    An interrupted upload leaves the file as it was and keeps nothing
    (C{REST} + C{STOR} resumes from what the file held before).
    """

    def __init__(self, filesystem: MemoryFilesystem, readOnly: bool = False) -> None:
        """
        @param filesystem: the tree served.
        @param readOnly: refuse every change; the shell then provides
            L{IReadOnlyShell}.
        """
        self.filesystem = filesystem
        if readOnly:
            alsoProvides(self, IReadOnlyShell)

    def _check(self, path: Sequence[str]) -> list[str]:
        for segment in path:
            if segment in ("", ".", "..") or "/" in segment or "\0" in segment:
                raise PermissionDeniedError("/".join(path))
        return list(path)

    def _refuseIfReadOnly(self, path: Sequence[str]) -> None:
        if IReadOnlyShell.providedBy(self):
            raise PermissionDeniedError("/".join(path))

    def _parentAndName(self, path: Sequence[str]) -> tuple[_Directory, str]:
        segments = self._check(path)
        if not segments:
            raise PermissionDeniedError("/")
        *parent, name = segments
        return self.filesystem._directory(parent), name

    def makeDirectory(self, path: Sequence[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._makeDirectory, path)

    def _makeDirectory(self, path: Sequence[str]) -> None:
        self._refuseIfReadOnly(path)
        directory, name = self._parentAndName(path)
        if name in directory.children:
            raise FileExistsError("/".join(path))
        directory.children[name] = self.filesystem._newDirectory()

    def removeDirectory(self, path: Sequence[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._removeDirectory, path)

    def _removeDirectory(self, path: Sequence[str]) -> None:
        self._refuseIfReadOnly(path)
        directory, name = self._parentAndName(path)
        node = directory.children.get(name)
        if node is None:
            raise FileNotFoundError("/".join(path))
        if not isinstance(node, _Directory):
            raise IsNotADirectoryError("/".join(path))
        if node.children:
            raise FTPReplyError(550, "Directory not empty.")
        del directory.children[name]

    def removeFile(self, path: Sequence[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._removeFile, path)

    def _removeFile(self, path: Sequence[str]) -> None:
        self._refuseIfReadOnly(path)
        directory, name = self._parentAndName(path)
        node = directory.children.get(name)
        if node is None:
            raise FileNotFoundError("/".join(path))
        if isinstance(node, _Directory):
            raise IsADirectoryError("/".join(path))
        del directory.children[name]

    def rename(self, fromPath: Sequence[str], toPath: Sequence[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._rename, fromPath, toPath)

    def _rename(self, fromPath: Sequence[str], toPath: Sequence[str]) -> None:
        self._refuseIfReadOnly(fromPath)
        source, name = self._parentAndName(fromPath)
        node = source.children.get(name)
        if node is None:
            raise FileNotFoundError("/".join(fromPath))
        target, newName = self._parentAndName(toPath)
        if list(toPath[: len(fromPath)]) == list(fromPath):
            raise PermissionDeniedError("/".join(toPath))
        existing = target.children.get(newName)
        if isinstance(existing, _Directory) and existing is not node:
            raise FileExistsError("/".join(toPath))
        del source.children[name]
        target.children[newName] = node

    def access(self, path: Sequence[str]) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._access, path)

    def _access(self, path: Sequence[str]) -> None:
        self.filesystem._directory(self._check(path))

    def _attributes(self, node: _File | _Directory, keys: Sequence[str]) -> list[Any]:
        directory = isinstance(node, _Directory)
        values = {
            "size": 0 if isinstance(node, _Directory) else len(node.content),
            "directory": directory,
            "permissions": Permissions(0o755 if directory else 0o644),
            "hardlinks": 1,
            "modified": node.mtime,
            "owner": "memory",
            "group": "memory",
            "unique": f"m{node.identity:x}",
        }
        return [values[key] for key in keys]

    def stat(self, path: Sequence[str], keys: Sequence[str] = ()) -> defer.Deferred[list[Any]]:
        return defer.maybeDeferred(
            lambda: self._attributes(self.filesystem._node(self._check(path)), keys)
        )

    def list(
        self, path: Sequence[str], keys: Sequence[str] = ()
    ) -> defer.Deferred[list[tuple[str, list[Any]]]]:
        return defer.maybeDeferred(self._list, path, keys)

    def _list(
        self, path: Sequence[str], keys: Sequence[str]
    ) -> builtins.list[tuple[str, builtins.list[Any]]]:
        segments = self._check(path)
        node = self.filesystem._node(segments)
        if isinstance(node, _File):
            return [(segments[-1], self._attributes(node, keys))]
        return [
            (name, self._attributes(child, keys)) for name, child in sorted(node.children.items())
        ]

    def openForReading(self, path: Sequence[str], offset: int = 0) -> defer.Deferred[Any]:
        return defer.maybeDeferred(self._openForReading, path, offset)

    def _openForReading(self, path: Sequence[str], offset: int) -> _MemoryReader:
        node = self.filesystem._node(self._check(path))
        if isinstance(node, _Directory):
            raise IsADirectoryError("/".join(path))
        if offset > len(node.content):
            raise FTPReplyError(
                554, f"Restart offset {offset} is beyond the end ({len(node.content)})."
            )
        return _MemoryReader(node.content[offset:])

    def openForWriting(
        self,
        path: Sequence[str],
        offset: int | None = None,
        append: bool = False,
        exclusive: bool = False,
    ) -> defer.Deferred[Any]:
        return defer.maybeDeferred(self._openForWriting, path, offset, append, exclusive)

    def _openForWriting(
        self, path: Sequence[str], offset: int | None, append: bool, exclusive: bool
    ) -> _MemoryWriter:
        self._refuseIfReadOnly(path)
        directory, name = self._parentAndName(path)
        existing = directory.children.get(name)
        if isinstance(existing, _Directory):
            raise IsADirectoryError("/".join(path))
        if exclusive and existing is not None:
            raise FileExistsError("/".join(path))
        content = existing.content if existing is not None else b""
        if append:
            prefix = content
        elif offset:
            if offset > len(content):
                raise FTPReplyError(
                    554, f"Restart offset {offset} is beyond the {len(content)} bytes stored."
                )
            prefix = content[:offset]
        else:
            prefix = b""
        return _MemoryWriter(self.filesystem, self._check(path), prefix, exclusive)

    def setModificationTime(self, path: Sequence[str], mtime: float) -> defer.Deferred[None]:
        return defer.maybeDeferred(self._setModificationTime, path, mtime)

    def _setModificationTime(self, path: Sequence[str], mtime: float) -> None:
        self._refuseIfReadOnly(path)
        self.filesystem._node(self._check(path)).mtime = mtime
