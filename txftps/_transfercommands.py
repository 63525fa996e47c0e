# -*- test-case-name: tests.test_server -*-
"""
Transfer commands of the protocol interpreter: data-connection setup (PASV,
EPSV, PORT, EPRT), REST and ABOR, and the commands that move data (LIST, NLST,
MLSD, RETR, STOR, APPE, STOU).

A transfer sends 150, waits for L{DataChannel.whenReady} (the data
connection's TLS handshake done and the gate passed), runs, and ends with 226
or the failure's reply; the control channel keeps reading meanwhile.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols import ftp
from twisted.python.failure import Failure

from txftps._dataconnection import DataConnection, TransferAborted
from txftps._interpreter import ProtocolInterpreter
from txftps._listing import (
    LIST_KEYS,
    formatList,
    formatMLSD,
    formatNames,
)
from txftps._session import Transfer
from txftps.errors import FTPReplyError
from txftps.interfaces import (
    IAtomicWriteFile,
    ICloseableReadFile,
    IResumableShell,
    IUniqueNameShell,
)
from txftps.tls import ConnectionTLS

_log = Logger()


class TransferCommands(ProtocolInterpreter):
    """
    The data-connection and transfer commands.
    """

    def _passiveInterface(self) -> str:
        host: str = self.transport.getHost().host
        if host.startswith("::ffff:"):
            host = host[7:]
        return host

    #: Transfer commands whose data connection runs TLS as the client after
    #: C{SSCN ON} (listings keep the server role, as in ProFTPD).
    serverToServerCommands: tuple[str, ...] = ("RETR", "STOR", "APPE", "STOU")

    def _prepareChannel(self) -> ConnectionTLS | None:
        """
        Set the data channel up for the next connection: its TLS context
        (C{None} for clear) and, with C{--allow-fxp}, server-to-server
        transfers.
        """
        assert self.dataChannel is not None
        channel = self.dataChannel
        fxp = self.settings.allowFXP
        channel.allowForeignPeers = fxp
        channel.serverToServerContext = self.factory.tls.serverToServerContext if fxp else None
        return self._tlsOptions if self.session.dataProtected else None

    def _tlsRole(self) -> bool | None:
        return None if self.session.serverToServer else False

    def _listen(self, tlsClient: bool | None = False) -> int:
        assert self.dataChannel is not None
        context = self._prepareChannel()
        return self.dataChannel.listenPassive(self._passiveInterface(), context, tlsClient)

    def _announcePassive(self, port: int) -> None:
        interface = self._passiveInterface()
        announced = self.settings.masquerade or interface
        numbers = announced.split(".") + [str(port >> 8), str(port & 0xFF)]
        self.reply(227, f"Entering Passive Mode ({','.join(numbers)}).")

    def ftp_SSCN(self, argument: str) -> None:
        if not self.settings.allowFXP:
            raise FTPReplyError(502, "SSCN is off on this server (--allow-fxp).")
        mode = argument.strip().upper()
        if mode == "ON":
            if not self.session.controlProtected:
                raise FTPReplyError(503, "SSCN ON needs a protected control channel.")
            self.session.serverToServer = True
        elif mode == "OFF":
            self.session.serverToServer = False
        elif mode:
            raise FTPReplyError(501, "SSCN takes ON or OFF.")
        method = "CLIENT" if self.session.serverToServer else "SERVER"
        self.reply(200, f"SSCN:{method} METHOD")

    def ftp_CPSV(self, argument: str) -> None:
        if not self.settings.allowFXP:
            raise FTPReplyError(502, "CPSV is off on this server (--allow-fxp).")
        self._refuseAfterEPSVAll("CPSV")
        if not self.session.dataProtected:
            raise FTPReplyError(503, "CPSV needs PROT P; use PASV for clear data.")
        if ":" in self._passiveInterface():
            raise FTPReplyError(522, "CPSV is for IPv4 connections.")
        self._announcePassive(self._listen(tlsClient=True))

    def ftp_PASV(self, argument: str) -> None:
        self._refuseAfterEPSVAll("PASV")
        interface = self._passiveInterface()
        if ":" in interface:
            raise FTPReplyError(522, "Use EPSV on IPv6 connections (2).")
        self._announcePassive(self._listen(self._tlsRole()))

    def ftp_EPSV(self, argument: str) -> None:
        argument = argument.strip().upper()
        if argument == "ALL":
            self.session.epsvAll = True
            self.reply(200, "EPSV ALL accepted.")
            return
        family = "2" if ":" in self._passiveInterface() else "1"
        if argument and argument != family:
            self._malformedTarget("")
            raise FTPReplyError(522, f"Network protocol not supported, use ({family}).")
        port = self._listen(self._tlsRole())
        self.reply(229, f"Entering Extended Passive Mode (|||{port}|)")

    def _active(self, host: str, port: int) -> None:
        assert self.dataChannel is not None
        context = self._prepareChannel()
        self.dataChannel.connectActive(
            host, port, context, self._tlsRole(), bindHost=self._passiveInterface()
        )

    def _refuseAfterEPSVAll(self, command: str) -> None:
        if self.session.epsvAll:
            assert self.dataChannel is not None
            self.dataChannel.reset()
            raise FTPReplyError(503, f"{command} not allowed after EPSV ALL.")

    def _malformedTarget(self, text: str) -> FTPReplyError:
        assert self.dataChannel is not None
        self.dataChannel.reset()
        return FTPReplyError(501, text)

    def ftp_PORT(self, argument: str) -> None:
        self._refuseAfterEPSVAll("PORT")
        fields = argument.strip().split(",")
        if len(fields) != 6 or not all(f.strip().isdigit() and int(f) < 256 for f in fields):
            raise self._malformedTarget("PORT needs h1,h2,h3,h4,p1,p2.")
        numbers = [int(f) for f in fields]
        host = ".".join(str(n) for n in numbers[:4])
        self._active(host, numbers[4] * 256 + numbers[5])
        self.reply(200, "PORT command successful.")

    def ftp_EPRT(self, argument: str) -> None:
        self._refuseAfterEPSVAll("EPRT")
        argument = argument.strip()
        if len(argument) < 4:
            raise self._malformedTarget("EPRT needs |protocol|address|port|.")
        fields = argument[1:-1].split(argument[0]) if argument[-1] == argument[0] else []
        if len(fields) != 3 or not fields[2].isdigit():
            raise self._malformedTarget("EPRT needs |protocol|address|port|.")
        protocol, host, port = fields
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise self._malformedTarget("EPRT address is not an IP address.")
        if protocol not in ("1", "2"):
            self._malformedTarget("")
            raise FTPReplyError(522, "Network protocol not supported, use (1,2).")
        if (protocol == "1") != (address.version == 4):
            raise self._malformedTarget("EPRT protocol and address do not match.")
        self._active(host, int(port))
        self.reply(200, "EPRT command successful.")

    def checkTransfer(self, command: str) -> None:
        """
        May the transfer command C{command} start now?

        @raise FTPReplyError: 521 without C{PROT P} when data TLS is required
            (for commands whose table entry says they move data), 425 when no
            data connection was set up with PASV, EPSV, PORT or EPRT.
        """
        self.settings.policy.checkTransfer(command, self.session, self.factsOf(command))
        assert self.dataChannel is not None
        if not self.dataChannel.configured:
            raise FTPReplyError(425, "Use PASV, EPSV, PORT or EPRT first.")

    def startTransfer(
        self,
        command: str,
        path: list[str],
        action: Callable[[DataConnection], defer.Deferred[None]],
        onFailure: Callable[[], str | None] = lambda: None,
        onSuccess: Callable[[], defer.Deferred[None]] | None = None,
        preliminary: str = "Opening data connection.",
        complete: str = "Transfer complete.",
    ) -> None:
        """
        Send 150, then run C{action} on the data connection once it is ready,
        and end with 226 (or the failure's reply: 425, 426, 522, ...). Meanwhile
        the policy answers or refuses each command at once; C{QUIT} waits for
        the final reply. The C{observer} hears of C{command} on C{path} after
        the final reply.

        Call L{checkTransfer} first. The running transfer is the session's
        L{Transfer<txftps._session.Transfer>} until its final reply.

        @param command: the transfer command (C{RETR}, C{STOR}, ...).
        @param path: the file or directory, as path segments.
        @param action: moves the data on the ready data connection; its
            Deferred fires when the data has moved.
        @param onFailure: called when the transfer failed or was aborted; may
            return a sentence added to the failure's reply.
        @param onSuccess: called after C{action} succeeded; its failure is the
            transfer's failure.
        """
        assert self.dataChannel is not None
        channel = self.dataChannel
        transfer = Transfer(command, path, started=self.clock.seconds())
        self.session.transfer = transfer
        self.reply(150, preliminary)
        self.observer.transferStarted(
            self.peerAddress,
            command,
            self.displayPath(path),
            self.session.userName or "",
            self.session.anonymous,
            self.session.binary,
        )

        async def run() -> None:
            try:
                connection = await channel.whenReady(
                    self.session.dataProtected,
                    tlsClient=self.session.serverToServer
                    and command in self.serverToServerCommands,
                )
                transfer.connection = connection
                await action(connection)
                if transfer.aborting:
                    raise FTPReplyError(426, "Transfer aborted.")
                if onSuccess is not None:
                    await onSuccess()
            except Exception:
                failure = Failure()
                extra = onFailure()
                if transfer.aborting:
                    failure = Failure(FTPReplyError(426, "Transfer aborted."))
                error = failure.value
                if extra and isinstance(error, FTPReplyError):
                    failure = Failure(FTPReplyError(error.code, f"{error.text} {extra}"))
                self._replyFailure(failure)
            else:
                self.reply(226, complete)
            finally:
                channel.transferDone()
                self.observer.transferEnded(
                    self.peerAddress,
                    command,
                    self.displayPath(path),
                    transfer.bytesSent,
                    transfer.bytesReceived,
                    self._lastReply,
                )
                _log.info(
                    "{command} {path}: {bytes} bytes in {duration:.3f} s, reply {code}",
                    command=command,
                    path=self.displayPath(path),
                    bytes=transfer.bytesSent + transfer.bytesReceived,
                    duration=self.clock.seconds() - transfer.started,
                    code=self._lastReply,
                    **self.logFields(),
                )
                self.session.transfer = None
                if not self._closing:
                    self._resetIdleTimer()
                transfer.finished.callback(None)
                self._processQueue()

        self._async(run())

    def _consumeRestart(self) -> int:
        offset, self.session.restOffset = self.session.restOffset, 0
        return offset

    def ftp_REST(self, argument: str) -> None:
        argument = argument.strip()
        if not argument.isdigit() or not argument.isascii():
            raise FTPReplyError(501, "REST needs a non-negative byte offset.")
        self.session.restOffset = int(argument)
        self.reply(350, f"Restarting at {self.session.restOffset}. Send RETR or STOR to continue.")

    def ftp_ABOR(self, argument: str) -> defer.Deferred[None] | None:
        self.session.restOffset = 0
        transfer = self.session.transfer
        if transfer is None:
            assert self.dataChannel is not None
            self.dataChannel.reset()
            self.reply(225, "No transfer to abort.")
            return None
        transfer.aborting = True
        assert self.dataChannel is not None
        self.dataChannel.abortTransfer()
        result: defer.Deferred[None] = defer.Deferred()

        def replied(_: object) -> None:
            self.reply(226, "ABOR successful.")
            result.callback(None)

        transfer.finished.addCallback(replied)
        return result

    def _listing(self, argument: str, names: bool) -> defer.Deferred[None]:
        self.checkTransfer("NLST" if names else "LIST")
        words = argument.split(" ")
        while words and words[0].startswith("-"):
            words.pop(0)
        segments = self.resolvePath(" ".join(words))
        keys = () if names else LIST_KEYS

        def listed(entries: list[tuple[str, list[Any]]]) -> None:
            data = formatNames(entries) if names else formatList(entries, self.clock.seconds())
            self.startTransfer(
                "NLST" if names else "LIST",
                segments,
                lambda connection: connection.sendBytes(data),
            )

        return self.callShell(self.avatar.list, segments, keys).addCallback(listed)

    def ftp_LIST(self, argument: str) -> defer.Deferred[None]:
        return self._listing(argument, names=False)

    def ftp_NLST(self, argument: str) -> defer.Deferred[None]:
        return self._listing(argument, names=True)

    def ftp_RETR(self, argument: str) -> defer.Deferred[None]:
        offset = self._consumeRestart()
        self.checkTransfer("RETR")
        segments = self.resolvePath(argument)
        if offset and not IResumableShell.providedBy(self.shell):
            raise FTPReplyError(504, "REST is not supported by this storage.")
        args: tuple[Any, ...] = (segments, offset) if offset else (segments,)

        def opened(readFile: Any) -> None:
            def failed() -> None:
                # A transfer that failed before the send started (no data
                # connection, refused by the gate) must not keep the file
                # open until the garbage collector finds it.
                if ICloseableReadFile.providedBy(readFile):
                    readFile.close()

            self.startTransfer(
                "RETR",
                segments,
                lambda connection: connection.sendFile(readFile),
                onFailure=failed,
            )

        return self.callShell(self.avatar.openForReading, *args).addCallback(opened)

    def _upload(
        self,
        command: str,
        segments: list[str],
        preliminary: str = "Ready to receive.",
        complete: str = "Transfer complete.",
        **options: Any,
    ) -> defer.Deferred[None]:
        needed = IUniqueNameShell if options.get("exclusive") else IResumableShell
        if options and not needed.providedBy(self.shell):
            raise FTPReplyError(504, f"{command} is not supported by this storage.")
        self.checkNewName(segments)

        def opened(writeFile: Any) -> None:
            async def receive(connection: DataConnection) -> None:
                consumer = await writeFile.receive()
                try:
                    await connection.receiveInto(consumer)
                except TransferAborted:
                    if IAtomicWriteFile.providedBy(writeFile):
                        failure = writeFile.writeError()
                        if failure is not None:
                            raise failure
                    raise

            def failed() -> str | None:
                if not IAtomicWriteFile.providedBy(writeFile):
                    return None
                kept = writeFile.abort()
                if kept:
                    return (
                        f"{kept} bytes kept: resume with REST {kept} and STOR"
                        f" {self.displayPath(segments)}."
                    )
                return None

            self.startTransfer(
                "STOR" if command == "REST" else command,
                segments,
                lambda connection: self._async(receive(connection)),
                onFailure=failed,
                onSuccess=writeFile.close,
                preliminary=preliminary,
                complete=complete,
            )

        return self.callShell(self.avatar.openForWriting, segments, **options).addCallback(opened)

    def ftp_STOR(self, argument: str) -> defer.Deferred[None]:
        offset = self._consumeRestart()
        self.checkTransfer("STOR")
        segments = self.resolvePath(argument)
        if offset:
            return self._upload("REST", segments, offset=offset)
        return self._upload("STOR", segments)

    def ftp_APPE(self, argument: str) -> defer.Deferred[None]:
        self._consumeRestart()
        self.checkTransfer("APPE")
        segments = self.resolvePath(argument)
        return self._upload("APPE", segments, append=True)

    def ftp_STOU(self, argument: str) -> defer.Deferred[None]:
        self._consumeRestart()
        self.checkTransfer("STOU")
        base = self.resolvePath(argument.strip() or "file")
        if not base:
            raise FTPReplyError(553, "STOU needs a file name.")
        return self._async(self._storeUnique(base))

    async def _storeUnique(self, base: list[str]) -> None:
        for n in range(1000):
            candidate = base[:-1] + [base[-1] if n == 0 else f"{base[-1]}.{n}"]
            name = candidate[-1]
            try:
                await self._upload(
                    "STOU",
                    candidate,
                    preliminary=f"FILE: {name}",
                    complete=f"Transfer complete (unique file name: {name}).",
                    exclusive=True,
                )
            except ftp.FileExistsError:
                continue
            except FTPReplyError as e:
                if e.code != 450:
                    raise
                continue
            return
        raise FTPReplyError(553, "Could not find a unique file name.")

    def ftp_MLSD(self, argument: str) -> defer.Deferred[None]:
        self.checkTransfer("MLSD")
        segments = self.resolvePath(argument)

        def listed(entries: list[tuple[str, list[Any]]]) -> None:
            data = formatMLSD(entries, self.session.mlstFacts, self._writable())
            self.startTransfer("MLSD", segments, lambda connection: connection.sendBytes(data))

        def checked(result: list[Any]) -> defer.Deferred[None]:
            if not result[0]:
                raise FTPReplyError(501, "MLSD needs a directory; use MLST for a file.")
            return self.callShell(self.avatar.list, segments, self._factKeys()).addCallback(listed)

        return self.callShell(self.avatar.stat, segments, ("directory",)).addCallback(checked)

    def ftp_ALLO(self, argument: str) -> None:
        self.reply(202, "No storage allocation necessary.")
