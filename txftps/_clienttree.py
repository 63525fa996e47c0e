# -*- test-case-name: tests.test_cli -*-
"""
Whole trees for the C{txftps} command (mirror down and up), and the one-line
description of any failure the command reports.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable

from OpenSSL import SSL
from twisted.internet import error as netError

from txftps._clienterrors import CertificateError, FTPClientError, FTPCommandError
from txftps._clientsession import FTPSClient

#: Starts a progress display: (name, total bytes or None, initial) -> update.
StartProgress = Callable[[str, int | None, int], Callable[[int], None]]


def _join(base: str, name: str) -> str:
    return posixpath.join(base, name) if base else name


def _safeName(name: str) -> bool:
    """
    Whether a name from a remote listing may become a local file name: not
    empty, not C{.} or C{..}, no path separator (a hostile server must not
    write outside the target directory).
    """
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


async def mirrorDown(
    client: FTPSClient, remote: str, local: str, resume: bool, start: StartProgress
) -> None:
    """
    Download the tree under C{remote} into the local directory C{local}
    (created when missing), recursively; every file lands under its final
    name only when complete.
    """
    os.makedirs(local, exist_ok=True)
    for entry in await client.list(remote):
        if not _safeName(entry.name) or os.sep in entry.name:
            continue
        remotePath = _join(remote, entry.name)
        localPath = os.path.join(local, entry.name)
        if entry.isDirectory:
            await mirrorDown(client, remotePath, localPath, resume, start)
        elif entry.isFile:
            update = start(remotePath, entry.size, 0)
            await client.retrieveFile(remotePath, localPath, resume, update)


async def mirrorUp(
    client: FTPSClient, local: str, remote: str, resume: bool, start: StartProgress
) -> None:
    """
    Upload the local tree C{local} to C{remote} (created when missing),
    recursively. Symbolic links are not followed.
    """
    try:
        existing = {entry.name: entry for entry in await client.list(remote)}
    except FTPCommandError as e:
        if e.code != 550 or not remote:
            raise
        await client.makeDirectory(remote)
        existing = {}
    for name in sorted(os.listdir(local)):
        path = os.path.join(local, name)
        remotePath = _join(remote, name)
        if os.path.islink(path):
            continue
        if os.path.isdir(path):
            entry = existing.get(name)
            if entry is None:
                await client.makeDirectory(remotePath)
            elif not entry.isDirectory:
                raise FTPClientError(f"{remotePath} exists and is not a directory")
            await mirrorUp(client, path, remotePath, resume, start)
        elif os.path.isfile(path):
            update = start(remotePath, os.path.getsize(path), 0)
            await client.storeFile(path, remotePath, resume, update)


def describeError(error: BaseException) -> str:
    """
    One line naming the cause of C{error}, for C{txftps: error: ...}.
    """
    if isinstance(error, FTPCommandError):
        return f"{error.code} {error.text}".strip()
    if isinstance(error, CertificateError):
        return error.reason
    if isinstance(error, FTPClientError):
        return str(error)
    if isinstance(error, netError.ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, netError.DNSLookupError):
        return f"cannot resolve the host name ({error})"
    if isinstance(error, netError.TimeoutError):
        return "connection timed out"
    if isinstance(error, netError.ConnectError):
        return f"cannot connect: {error}"
    if isinstance(error, SSL.Error):
        return f"TLS handshake failed: {_sslReason(error)}"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, ValueError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _sslReason(error: SSL.Error) -> str:
    entries = error.args[0] if error.args else None
    if isinstance(entries, list) and entries and isinstance(entries[-1], tuple):
        return str(entries[-1][-1])
    return str(error)
