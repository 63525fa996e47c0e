# -*- test-case-name: tests.test_client -*-
"""
Local files for the FTPS client: a consumer that writes to a file and a
producer that reads one, and whole-file transfers: download to a local file
that appears under its final name only when complete, upload from a local
file, both resumable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from txftps._clienterrors import FTPClientError, FTPCommandError


class _Transfers(Protocol):
    """
    What whole-file transfers need of a session (an
    L{txftps._clientsession.FTPSClient}).
    """

    features: dict[str, str]

    def size(self, path: str) -> Deferred[int]: ...

    def retrieve(
        self,
        path: str,
        consumer: IConsumer,
        offset: int = 0,
        onProgress: Callable[[int], None] | None = None,
    ) -> Deferred[int]: ...

    def store(
        self,
        path: str,
        producer: IBodyProducer,
        offset: int = 0,
        append: bool = False,
        onProgress: Callable[[int], None] | None = None,
    ) -> Deferred[int]: ...


@implementer(IConsumer)
class _CollectingConsumer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


@implementer(IConsumer)
class FileConsumer:
    """
    An C{IConsumer} that writes what it receives to an open binary file.

    @ivar file: the file object.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.file.write(data)


@implementer(IBodyProducer)
class FileProducer:
    """
    An C{IBodyProducer} that sends an open binary file from its current
    position to its end, as a streaming producer: it writes until the
    transport pauses it (its buffer is full) and goes on when resumed.

    @ivar length: the bytes left to send, or C{UNKNOWN_LENGTH}.
    """

    chunkSize = 2**16

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        try:
            self.length: int | object = os.fstat(file.fileno()).st_size - file.tell()
        except (OSError, ValueError, AttributeError):
            self.length = UNKNOWN_LENGTH
        self._consumer: IConsumer | None = None
        self._finished: Deferred[None] | None = None
        self._paused = False
        self._writing = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        finished: Deferred[None] = Deferred()
        self._finished = finished
        consumer.registerProducer(self, True)
        self.resumeProducing()
        return finished

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._writing:
            # Resumed from inside our own write: the loop below goes on.
            return
        self._writing = True
        try:
            while not self._paused and self._finished is not None:
                try:
                    chunk = self.file.read(self.chunkSize)
                except OSError as e:
                    self._end(e)
                    return
                if not chunk:
                    self._end(None)
                    return
                assert self._consumer is not None
                self._consumer.write(chunk)
        finally:
            self._writing = False

    def stopProducing(self) -> None:
        finished, self._finished = self._finished, None
        if finished is not None:
            finished.errback(CancelledError("the upload was stopped"))

    def _end(self, error: Exception | None) -> None:
        finished, self._finished = self._finished, None
        if self._consumer is not None:
            self._consumer.unregisterProducer()
        if finished is not None:
            if error is None:
                finished.callback(None)
            else:
                finished.errback(error)


#: The suffix of a download in progress.
PARTIAL_SUFFIX = ".part"


def partialPath(localPath: str) -> str:
    """
    Where a download of C{localPath} is written until it is complete.
    """
    return localPath + PARTIAL_SUFFIX


def retrieveFile(
    client: _Transfers,
    path: str,
    localPath: str,
    resume: bool,
    onProgress: Callable[[int], None] | None,
) -> Deferred[int]:
    """
    See L{FTPSClient.retrieveFile}.
    """

    async def run() -> int:
        partial = partialPath(localPath)
        offset = 0
        if resume:
            if not os.path.exists(partial) and os.path.isfile(localPath):
                os.replace(localPath, partial)
            if os.path.exists(partial):
                offset = os.path.getsize(partial)
        if offset:
            remoteSize = await client.size(path)
            if offset > remoteSize:
                raise FTPClientError(
                    f"cannot resume: the local file ({offset} bytes) is larger than"
                    f" {path} ({remoteSize} bytes)"
                )
            if offset == remoteSize:
                os.replace(partial, localPath)
                return 0
        try:
            with open(partial, "ab" if offset else "wb") as f:
                count = await client.retrieve(path, FileConsumer(f), offset, onProgress)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            # Keep received bytes for a later resume, but no empty file.
            if os.path.exists(partial) and os.path.getsize(partial) == 0:
                os.unlink(partial)
            raise
        os.replace(partial, localPath)
        return count

    return Deferred.fromCoroutine(run())


def storeFile(
    client: _Transfers,
    localPath: str,
    path: str,
    resume: bool,
    onProgress: Callable[[int], None] | None,
) -> Deferred[int]:
    """
    See L{FTPSClient.storeFile}.
    """

    async def run() -> int:
        with open(localPath, "rb") as f:
            offset = 0
            if resume:
                try:
                    offset = await client.size(path)
                except FTPCommandError as e:
                    if e.code != 550:
                        raise
                localSize = os.fstat(f.fileno()).st_size
                if offset > localSize:
                    raise FTPClientError(
                        f"cannot resume: {path} ({offset} bytes) is larger than the local"
                        f" file ({localSize} bytes)"
                    )
                if offset == localSize:
                    return 0
                f.seek(offset)
            append = bool(offset) and "REST" not in client.features
            return await client.store(
                path,
                FileProducer(f),
                offset=0 if append else offset,
                append=append,
                onProgress=onProgress,
            )

    return Deferred.fromCoroutine(run())
