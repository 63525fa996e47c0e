# -*- test-case-name: tests.test_client -*-
"""
Whole-file transfers of the FTPS client: download to a local file that
appears under its final name only when complete, upload from a local file,
both resumable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from txftps._clienterrors import FTPClientError, FTPCommandError

if TYPE_CHECKING:
    from txftps._clientsession import FTPSClient

#: The suffix of a download in progress.
PARTIAL_SUFFIX = ".part"


def partialPath(localPath: str) -> str:
    """
    Where a download of C{localPath} is written until it is complete.
    """
    return localPath + PARTIAL_SUFFIX


def retrieveFile(
    client: FTPSClient,
    path: str,
    localPath: str,
    resume: bool,
    onProgress: Callable[[int], None] | None,
) -> Deferred[int]:
    """
    See L{FTPSClient.retrieveFile}.
    """

    async def run() -> int:
        from txftps._clientsession import FileConsumer

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
    client: FTPSClient,
    localPath: str,
    path: str,
    resume: bool,
    onProgress: Callable[[int], None] | None,
) -> Deferred[int]:
    """
    See L{FTPSClient.storeFile}.
    """

    async def run() -> int:
        from txftps._clientsession import FileProducer

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
