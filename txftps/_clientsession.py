# -*- test-case-name: tests.test_client -*-
"""
L{FTPSClient}: a logged-in FTPS session and everything it can do: listings,
downloads and uploads (with resume), file management, raw commands.

Operations run one at a time, in the order they were called (FTP has one
transfer per control connection). Each returns a L{Deferred}; cancelling a
transfer's Deferred ABORts it on the server and closes its data connection.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.internet.interfaces import IConsumer, IListeningPort
from twisted.logger import Logger
from twisted.web.iweb import IBodyProducer

from txftps._clientdata import (
    DataProtocol,
    connectPassive,
    eprtArgument,
    listenActive,
    parseEPSV,
    parsePASV,
    passiveHost,
    portArgument,
)
from txftps._clienterrors import FTPClientError, FTPCommandError
from txftps._clientfiles import _CollectingConsumer, retrieveFile, storeFile
from txftps._clientlisting import RemoteEntry, parseLIST, parseMLSD, parseMLSxTime
from txftps._clientprotocol import FTPControlProtocol, Reply
from txftps._clienttls import TLSSession

_log = Logger()
_T = TypeVar("_T")

_EntryList = list[RemoteEntry]
_NameList = list[str]

#: Called with the number of bytes each time a transfer moves some.
ProgressCallback = Callable[[int], None]


class FTPSClient:
    """
    A logged-in FTPS session: explicit or implicit TLS on the control
    connection, PROT P, and TLS on every data connection, resuming the
    control connection's session.

    Make one with L{txftps.client.connect} (or L{txftps.client.connectEndpoint}).

    Paths are sent as given: relative to the login directory, or absolute.

    @ivar features: the server's FEAT lines, upper-case keyword to the rest
        of the line (e.g. C{{"MLST": "type*;size*;", "EPSV": ""}}).
    @ivar active: use PORT/EPRT (the server connects to us) instead of
        EPSV/PASV.
    @ivar stallTimeout: seconds without a byte on a data connection before
        the transfer fails.
    """

    def __init__(
        self,
        reactor: Any,
        protocol: FTPControlProtocol,
        session: TLSSession,
        active: bool = False,
        stallTimeout: float = 60.0,
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.session = session
        self.active = active
        self.stallTimeout = stallTimeout
        self.features: dict[str, str] = {}
        self._lock = DeferredLock()
        self._epsv: bool | None = None
        assert protocol.transport is not None
        self.peerHost: str = getattr(protocol.transport.getPeer(), "host", "")
        self.localHost: str = getattr(protocol.transport.getHost(), "host", "")

    def _run(self, coroutine: Callable[[], Coroutine[Any, Any, _T]]) -> Deferred[_T]:
        return self._lock.run(lambda: Deferred.fromCoroutine(coroutine()))

    # plain commands

    def quote(self, line: str) -> Deferred[Reply]:
        """
        Send a raw command and return its final reply (a failure reply fails
        with L{FTPCommandError}). Do not start transfers this way.
        """

        async def run() -> Reply:
            return await self.protocol.sendCommand(line)

        return self._run(run)

    def site(self, arguments: str) -> Deferred[Reply]:
        """
        C{SITE arguments}: the server's reply.
        """
        return self.quote(f"SITE {arguments}")

    def cwd(self, path: str) -> Deferred[Reply]:
        """
        Change the working directory.
        """
        return self.quote(f"CWD {path}")

    def pwd(self) -> Deferred[str]:
        """
        The working directory (from the quoted name of the C{257} reply).
        """
        return self.quote("PWD").addCallback(lambda reply: _quotedPath(reply.lastText))

    def makeDirectory(self, path: str) -> Deferred[str]:
        """
        C{MKD}: create a directory; its path as the server names it.
        """
        return self.quote(f"MKD {path}").addCallback(lambda reply: _quotedPath(reply.lastText))

    def removeDirectory(self, path: str) -> Deferred[Reply]:
        """
        C{RMD}: remove an empty directory.
        """
        return self.quote(f"RMD {path}")

    def delete(self, path: str) -> Deferred[Reply]:
        """
        C{DELE}: remove a file.
        """
        return self.quote(f"DELE {path}")

    def rename(self, source: str, destination: str) -> Deferred[Reply]:
        """
        C{RNFR} then C{RNTO}.
        """

        async def run() -> Reply:
            await self.protocol.sendCommand(f"RNFR {source}")
            return await self.protocol.sendCommand(f"RNTO {destination}")

        return self._run(run)

    def size(self, path: str) -> Deferred[int]:
        """
        C{SIZE}: the size of a file in bytes.
        """

        def parse(reply: Reply) -> int:
            value = reply.text.strip()
            if not value.isdigit():
                raise FTPClientError(f"unparsable SIZE reply: {reply.lines[0]!r}")
            return int(value)

        return self.quote(f"SIZE {path}").addCallback(parse)

    def modificationTime(self, path: str) -> Deferred[datetime.datetime]:
        """
        C{MDTM}: a file's modification time (UTC).
        """

        def parse(reply: Reply) -> datetime.datetime:
            moment = parseMLSxTime(reply.text.strip())
            if moment is None:
                raise FTPClientError(f"unparsable MDTM reply: {reply.lines[0]!r}")
            return moment

        return self.quote(f"MDTM {path}").addCallback(parse)

    def setModificationTime(self, path: str, when: datetime.datetime) -> Deferred[Reply]:
        """
        C{MFMT}: set a file's modification time (C{when} is taken as UTC
        when naive).
        """
        if when.tzinfo is not None:
            when = when.astimezone(datetime.UTC)
        return self.quote(f"MFMT {when.strftime('%Y%m%d%H%M%S')} {path}")

    def quit(self) -> Deferred[None]:
        """
        C{QUIT} and close the connection (with a TLS close_notify).
        """

        async def run() -> None:
            try:
                await self.protocol.sendCommand("QUIT")
            except FTPClientError:
                pass
            if self.protocol.transport is not None:
                self.protocol.transport.loseConnection()

        return self._run(run)

    # listings

    def list(self, path: str = "") -> Deferred[_EntryList]:
        """
        The entries of a directory: C{MLSD} when the server lists C{MLST}
        in FEAT (or answers it), otherwise C{LIST} parsed in Unix or Windows
        format.
        """

        async def run() -> _EntryList:
            if "MLST" in self.features or not self.features:
                try:
                    text = await self._collect(_withPath("MLSD", path))
                    return parseMLSD(text)
                except FTPCommandError as e:
                    if e.code not in (500, 501, 502, 504) or "MLST" in self.features:
                        raise
            return parseLIST(await self._collect(_withPath("LIST", path)))

        return self._run(run)

    def names(self, path: str = "") -> Deferred[_NameList]:
        """
        C{NLST}: the names in a directory.
        """

        async def run() -> _NameList:
            text = await self._collect(_withPath("NLST", path))
            return [line for line in text.splitlines() if line]

        return self._run(run)

    async def _collect(self, command: str) -> str:
        consumer = _CollectingConsumer()
        await self._transfer(command, consumer=consumer)
        return b"".join(consumer.chunks).decode("utf-8", "replace")

    # downloads and uploads

    def retrieve(
        self,
        path: str,
        consumer: IConsumer,
        offset: int = 0,
        onProgress: ProgressCallback | None = None,
    ) -> Deferred[int]:
        """
        Download a file to C{consumer}, from byte C{offset} on (C{REST}).

        @return: fires with the number of bytes received once the data
            connection ended with a TLS close_notify and the server
            confirmed; fails with L{TransferTruncated} when the data
            connection ended without close_notify.
        """

        async def run() -> int:
            return await self._transfer(
                f"RETR {path}", consumer=consumer, offset=offset, onProgress=onProgress
            )

        return self._run(run)

    def store(
        self,
        path: str,
        producer: IBodyProducer,
        offset: int = 0,
        append: bool = False,
        onProgress: ProgressCallback | None = None,
    ) -> Deferred[int]:
        """
        Upload from C{producer} to C{path}: C{STOR}, after C{REST offset}
        when C{offset} is not 0 (resume), or C{APPE} when C{append}.

        @return: fires with the number of bytes sent once the server
            confirmed.
        """
        verb = "APPE" if append else "STOR"

        async def run() -> int:
            return await self._transfer(
                f"{verb} {path}", producer=producer, offset=offset, onProgress=onProgress
            )

        return self._run(run)

    def retrieveFile(
        self,
        path: str,
        localPath: str,
        resume: bool = False,
        onProgress: ProgressCallback | None = None,
    ) -> Deferred[int]:
        """
        Download C{path} to the local file C{localPath}. The data goes to
        C{localPath + ".part"} and is renamed to C{localPath} only once the
        transfer completed, so a failed download never leaves a file under
        the final name. With C{resume}, continue from the partial file (or
        from C{localPath} itself) with C{REST}.

        @return: fires with the bytes received in this call.
        """
        return retrieveFile(self, path, localPath, resume, onProgress)

    def storeFile(
        self,
        localPath: str,
        path: str,
        resume: bool = False,
        onProgress: ProgressCallback | None = None,
    ) -> Deferred[int]:
        """
        Upload the local file C{localPath} to C{path}. With C{resume}, send
        only what the remote file (C{SIZE}) lacks, with C{REST}+C{STOR}, or
        C{APPE} when FEAT does not list C{REST STREAM}.

        @return: fires with the bytes sent in this call.
        """
        return storeFile(self, localPath, path, resume, onProgress)

    async def _dataChannel(self, protocol: DataProtocol) -> IListeningPort | None:
        """
        Prepare the data connection of a transfer: listen and send PORT/EPRT
        (active), or EPSV/PASV and connect (passive).

        @return: the listening port to close afterwards (active mode).
        """
        if self.active:
            port = listenActive(
                self.reactor, self.localHost, self.peerHost, self.session, protocol
            )
            protocol.expectConnection()
            address: Any = port.getHost()
            try:
                if ":" in self.localHost:
                    await self.protocol.sendCommand(
                        f"EPRT {eprtArgument(self.localHost, address.port)}"
                    )
                else:
                    await self.protocol.sendCommand(
                        f"PORT {portArgument(self.localHost, address.port)}"
                    )
            except BaseException:
                await _stopListening(port)
                raise
            return port
        host, dataPort = await self._passive()
        await connectPassive(self.reactor, host, dataPort, self.session, protocol)
        return None

    async def _passive(self) -> tuple[str, int]:
        if self._epsv is not False:
            try:
                reply = await self.protocol.sendCommand("EPSV")
            except FTPCommandError as e:
                if not 500 <= e.code < 600 or self._epsv:
                    raise
                self._epsv = False
            else:
                self._epsv = True
                return self.peerHost, parseEPSV(reply.lastText)
        reply = await self.protocol.sendCommand("PASV")
        announced, port = parsePASV(reply.lastText)
        return passiveHost(announced, self.peerHost), port

    async def _transfer(
        self,
        command: str,
        consumer: IConsumer | None = None,
        producer: IBodyProducer | None = None,
        offset: int = 0,
        onProgress: ProgressCallback | None = None,
    ) -> int:
        if offset:
            await self.protocol.sendCommand(f"REST {offset}")
        protocol = DataProtocol(
            self.reactor, self.session, consumer, producer, self.stallTimeout, onProgress
        )
        port = await self._dataChannel(protocol)

        def commandFailed(failure: Any) -> Any:
            if protocol.transport is None and not protocol.done.called:
                protocol.done.errback(failure)
            else:
                protocol.abort()
            return failure

        final = self.protocol.sendCommand(command, preliminary=lambda reply: None)
        final.addErrback(commandFailed)
        try:
            try:
                count = await protocol.done
            except BaseException as dataError:
                if isinstance(dataError, CancelledError):
                    raise
                # The transfer failed already: wait for the server's word on
                # it no longer than for the data.
                self.protocol.armReplyTimeout(min(self.stallTimeout, self.protocol.replyTimeout))
                try:
                    await final
                except FTPCommandError as replyError:
                    raise replyError from None
                except BaseException:
                    pass
                raise
            self.protocol.armReplyTimeout()
            await final
            return count
        except CancelledError:
            final.addErrback(lambda _: None)
            protocol.abort()
            await self._abort()
            raise
        finally:
            if port is not None:
                await _stopListening(port)

    async def _abort(self) -> None:
        try:
            await self.protocol.sendCommand("ABOR")
        except FTPClientError as e:
            _log.debug("ABOR: {error}", error=e)


async def _stopListening(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped


def _withPath(verb: str, path: str) -> str:
    return f"{verb} {path}" if path else verb


def _quotedPath(text: str) -> str:
    start = text.find('"')
    if start < 0:
        return text.strip()
    result = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == '"':
            if text[index + 1 : index + 2] == '"':
                result.append('"')
                index += 2
                continue
            break
        result.append(char)
        index += 1
    return "".join(result)
