# -*- test-case-name: tests.test_server -*-
"""
The FTPS control channel: protocol interpreter and factory.

L{FTPSProtocol} parses commands, dispatches them to C{ftp_<CMD>} methods, owns
the session state and writes replies. It serves L{IFTPShell} avatars from a
cred L{Portal}, asks a L{SessionPolicy} what is allowed, and leaves data
connections to a L{DataChannel}. It never stops reading while a data
connection is pending.

Explicit FTPS: C{AUTH TLS} answers 234, discards every byte that arrived in
plaintext after the AUTH line, and starts TLS. Implicit FTPS
(L{FTPSFactory} with C{implicit=True}): TLS from the first byte; the greeting
comes only after the handshake.

Usage::

    factory = FTPSFactory(reactor, portal, ServerTLS.fromFiles(cert, key))
    reactor.listenTCP(2121, factory)
"""

from __future__ import annotations

import calendar
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.cred import credentials as credtypes
from twisted.cred import error as crederror
from twisted.cred.portal import Portal
from twisted.internet import defer, interfaces
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import ftp
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps.auth import LoginBans, UsernamePassword
from txftps.datachannel import DataChannel, DataConnection, PassivePortRange
from txftps.errors import FTPReplyError
from txftps.listing import (
    LIST_KEYS,
    MLST_FACTS,
    MLST_KEYS,
    formatFacts,
    formatList,
    formatMLSD,
    formatNames,
    printableName,
    quotePath,
)
from txftps.policy import SessionPolicy, SessionState
from txftps.tls import ServerTLS

__all__ = ["ConnectionLimits", "FTPSFactory", "FTPSProtocol", "ServerSettings"]

_log = Logger()

#: Telnet IAC, IP and DM bytes (undecodable, so surrogate-escaped) that some
#: clients send before ABOR.
_TELNET_CONTROLS = ("\udcff", "\udcf4", "\udcf2")

#: Twisted shell errors and the replies they become.
_SHELL_ERRORS: list[tuple[type[Exception], int, str]] = [
    (ftp.FileNotFoundError, 550, "No such file or directory."),
    (ftp.PermissionDeniedError, 550, "Permission denied."),
    (ftp.AnonUserDeniedError, 550, "Permission denied."),
    (ftp.IsNotADirectoryError, 550, "Not a directory."),
    (ftp.IsADirectoryError, 550, "Is a directory."),
    (ftp.FileExistsError, 550, "File exists."),
    (ftp.InvalidPath, 550, "Invalid path."),
    (ftp.CmdArgSyntaxError, 501, "Syntax error in arguments."),
    (ftp.BadCmdSequenceError, 503, "Bad sequence of commands."),
]

#: Commands answered while a transfer is running; others wait for its end.
_DURING_TRANSFER = frozenset({"ABOR", "STAT", "NOOP", "QUIT"})


@dataclass
class ServerSettings:
    """
    What an operator configures, shared by a server's factories.
    """

    policy: SessionPolicy = field(default_factory=SessionPolicy)
    requireResumption: bool = True
    passivePorts: PassivePortRange | None = None
    masquerade: str | None = None
    handshakeTimeout: float = 30.0
    idleTimeout: float = 300.0
    dataTimeout: float = 30.0
    maxLoginAttempts: int = 3
    failedLoginDelay: float = 1.0
    maxPasswordLength: int = 1024


class ConnectionLimits:
    """
    Caps on control connections, in total and per peer address.
    """

    def __init__(self, maxClients: int = 1000, maxPerAddress: int = 20) -> None:
        self.maxClients = maxClients
        self.maxPerAddress = maxPerAddress
        self.total = 0
        self._perAddress: dict[str, int] = {}

    def admit(self, host: str) -> bool:
        """
        Count a new connection from C{host}; C{False} if it is over a cap (and
        then it is not counted).
        """
        if self.total >= self.maxClients:
            return False
        if self._perAddress.get(host, 0) >= self.maxPerAddress:
            return False
        self.total += 1
        self._perAddress[host] = self._perAddress.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        """
        A connection admitted for C{host} ended.
        """
        self.total -= 1
        left = self._perAddress.get(host, 1) - 1
        if left:
            self._perAddress[host] = left
        else:
            self._perAddress.pop(host, None)


@implementer(interfaces.IHandshakeListener)
class FTPSProtocol(LineReceiver):
    """
    The FTPS protocol interpreter of one control connection.

    @cvar dataChannelFactory: builds the L{DataChannel}.
    @cvar greeting: the 220 text.
    @cvar features: the FEAT lines.
    @ivar state: the L{SessionState} the policy reads.
    @ivar shell: the logged-in user's L{IFTPShell}, or C{None}.
    @ivar workingDirectory: the current directory as path segments.
    """

    delimiter = b"\n"
    MAX_LENGTH = 8192

    dataChannelFactory: ClassVar[Callable[..., DataChannel]] = DataChannel
    greeting: ClassVar[str] = "txftps ready."
    features: ClassVar[tuple[str, ...]] = (
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "EPSV",
        "EPRT",
        "UTF8",
        "SIZE",
        "MDTM",
        "MFMT",
        "REST STREAM",
        "MLST type*;size*;modify*;perm*;unique*;",
        "HOST",
        "TVFS",
    )

    factory: FTPSFactory
    transport: Any

    def __init__(self) -> None:
        self.state = SessionState()
        self.shell: Any = None
        self._logout: Callable[[], None] | None = None
        self.workingDirectory: list[str] = []
        self._user: str | None = None
        self._failedLogins = 0
        self._renameFrom: list[str] | None = None
        self._queue: list[bytes] = []
        self._busy = False
        self._transferring = False
        self._transferFinished: defer.Deferred[None] | None = None
        self._aborting = False
        self._restOffset = 0
        self._mlstFacts: tuple[str, ...] = MLST_FACTS
        self._userName: str | None = None
        self._epsvAll = False
        self._closing = False
        self._admitted = False
        self._tlsOptions: Any = None
        self._handshakeTimer: interfaces.IDelayedCall | None = None
        self._idleTimer: interfaces.IDelayedCall | None = None
        self.dataChannel: DataChannel | None = None
        self.peerHost = ""

    # settings shortcuts

    @property
    def settings(self) -> ServerSettings:
        return self.factory.settings

    @property
    def clock(self) -> interfaces.IReactorTime:
        return self.factory.reactor  # type: ignore[no-any-return]

    # connection life

    def connectionMade(self) -> None:
        self.peerHost = self.transport.getPeer().host
        handle = getattr(self.transport, "getHandle", None)
        if handle is not None:
            try:
                # ABOR sent as urgent data must stay in the command stream.
                handle().setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            except (OSError, AttributeError):
                pass
        if not self.factory.limits.admit(self.peerHost):
            _log.info("connection from {host} over the connection caps", host=self.peerHost)
            if not self.factory.implicit:
                self.reply(421, "Too many connections; try again later.")
            self.transport.loseConnection()
            self._closing = True
            return
        self._admitted = True
        self.dataChannel = self.dataChannelFactory(
            self.factory.reactor,
            self.peerHost,
            requireResumption=self.settings.requireResumption,
            timeout=self.settings.dataTimeout,
            portRange=self.settings.passivePorts,
        )
        if self.factory.implicit:
            self.state.implicit = True
            self._startTLS()
        else:
            self.reply(220, self.greeting)
        self._resetIdleTimer()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        self._cancelTimers()
        if self.dataChannel is not None:
            self.dataChannel.reset()
        self._logoutShell()
        if self._admitted:
            self._admitted = False
            self.factory.limits.release(self.peerHost)

    def _logoutShell(self) -> None:
        self.shell = None
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()

    def _cancelTimers(self) -> None:
        for timer in (self._handshakeTimer, self._idleTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._handshakeTimer = self._idleTimer = None

    def _resetIdleTimer(self) -> None:
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.cancel()
        self._idleTimer = self.clock.callLater(self.settings.idleTimeout, self._idleTimedOut)

    def _idleTimedOut(self) -> None:
        self._idleTimer = None
        if self._transferring:
            self._resetIdleTimer()
            return
        self.reply(421, "Idle timeout; closing control connection.")
        self._close()

    def _close(self) -> None:
        self._closing = True
        self.transport.loseConnection()

    # TLS

    def _startTLS(self) -> None:
        self._tlsOptions = self.factory.tls.optionsForConnection()
        self._handshakeTimer = self.clock.callLater(
            self.settings.handshakeTimeout, self._handshakeTimedOut
        )
        self.transport.startTLS(self._tlsOptions)

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        _log.info("TLS handshake with {host} timed out", host=self.peerHost)
        self._closing = True
        self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        """
        The control channel's TLS handshake completed.
        """
        if self._handshakeTimer is not None and self._handshakeTimer.active():
            self._handshakeTimer.cancel()
        self._handshakeTimer = None
        self.state.controlProtected = True
        if self.state.implicit:
            self.state.pbszSeen = True
            self.state.dataProtected = True
            self.reply(220, self.greeting)

    # replies

    def reply(self, code: int, text: str) -> None:
        """
        Send a reply; a multi-line C{text} becomes a multi-line reply.
        """
        lines = text.replace("\r", "").split("\n")
        if len(lines) == 1:
            out = f"{code} {lines[0]}\r\n"
        else:
            out = f"{code}-{lines[0]}\r\n"
            out += "".join(f" {line}\r\n" for line in lines[1:-1])
            out += f"{code} {lines[-1]}\r\n"
        self.transport.write(out.encode("utf-8", "surrogateescape"))

    def _replyFailure(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, FTPReplyError):
            self.reply(error.code, error.text)
            return
        for kind, code, text in _SHELL_ERRORS:
            if isinstance(error, kind):
                self.reply(code, text)
                return
        _log.failure("command failed", failure)
        self.reply(451, "Requested action aborted: local error in processing.")

    # line handling

    def lineLengthExceeded(self, line: bytes) -> None:
        self.reply(500, "Command line too long.")
        self._close()

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        self._resetIdleTimer()
        self._queue.append(line)
        self._processQueue()

    def _processQueue(self) -> None:
        while self._queue and not self._busy and not self._closing:
            command, _ = self._parse(self._queue[0])
            if self._transferring and command not in _DURING_TRANSFER:
                return
            line = self._queue.pop(0)
            self._runLine(line)

    @staticmethod
    def _parse(line: bytes) -> tuple[str, str]:
        text = line.rstrip(b"\r").decode("utf-8", "surrogateescape")
        # Telnet IP/DM sent before ABOR by some clients.
        text = text.lstrip("".join(_TELNET_CONTROLS))
        command, _, argument = text.partition(" ")
        return command.upper(), argument

    def _runLine(self, line: bytes) -> None:
        command, argument = self._parse(line)
        if not command:
            return
        _log.debug(
            "{host} <- {command}",
            host=self.peerHost,
            command=command if command != "PASS" else "PASS ***",
        )
        try:
            self.settings.policy.checkCommand(command, self.state)
            handler = getattr(self, "ftp_" + command, None)
            if handler is None:
                raise FTPReplyError(502, f"Command {command} not implemented.")
            result = handler(argument)
        except Exception:
            self._replyFailure(Failure())
            return
        if isinstance(result, defer.Deferred):
            self._busy = True
            result.addErrback(self._replyFailure)
            result.addBoth(self._commandDone)

    def _commandDone(self, _: object) -> None:
        self._busy = False
        self._processQueue()

    def _async(self, coroutine: Awaitable[None]) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(coroutine)  # type: ignore[arg-type]

    # paths

    def _segments(self, path: str) -> list[str]:
        if "\0" in path:
            raise FTPReplyError(550, "Invalid path.")
        return ftp.toSegments(self.workingDirectory, path)  # type: ignore[no-any-return]

    def _shellCall(self, name: str, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.maybeDeferred(getattr(self.shell, name), *args, **kwargs)

    # access control and TLS commands

    def ftp_AUTH(self, argument: str) -> None:
        mechanism = argument.strip().upper()
        if not mechanism:
            raise FTPReplyError(501, "AUTH needs a mechanism: AUTH TLS.")
        if mechanism not in ("TLS", "SSL", "TLS-C", "TLS-P"):
            raise FTPReplyError(504, f"AUTH {mechanism} not supported; use AUTH TLS.")
        if self.state.controlProtected or self._tlsOptions is not None:
            raise FTPReplyError(503, "TLS is already active.")
        if self.state.loggedIn:
            raise FTPReplyError(534, "AUTH after a plaintext login is refused.")
        self.reply(234, f"AUTH {mechanism} successful; starting TLS.")
        dropped = len(self.clearLineBuffer()) + sum(len(q) for q in self._queue)  # type: ignore[no-untyped-call]
        self._queue.clear()
        if dropped:
            _log.warn(
                "discarded {count} plaintext bytes pipelined after AUTH from {host}",
                count=dropped,
                host=self.peerHost,
            )
        self._user = None
        self.state.pbszSeen = False
        self.state.dataProtected = False
        self._startTLS()

    def ftp_PBSZ(self, argument: str) -> None:
        if not self.state.controlProtected:
            raise FTPReplyError(503, "PBSZ needs a protected control channel; AUTH TLS first.")
        if not argument.strip().isdigit():
            raise FTPReplyError(501, "PBSZ needs a number: PBSZ 0.")
        self.state.pbszSeen = True
        self.reply(200, "PBSZ=0")

    def ftp_PROT(self, argument: str) -> None:
        if not self.state.controlProtected or not self.state.pbszSeen:
            raise FTPReplyError(503, "PROT needs PBSZ first.")
        level = argument.strip().upper()
        if level == "C":
            self.state.dataProtected = False
            self.reply(200, "Protection level set to Clear.")
        elif level == "P":
            self.state.dataProtected = True
            self.reply(200, "Protection level set to Private.")
        elif level in ("S", "E"):
            raise FTPReplyError(536, f"Protection level {level} not supported.")
        else:
            raise FTPReplyError(504, "Unknown protection level; use C or P.")

    def ftp_USER(self, argument: str) -> None:
        self.settings.policy.checkLogin(self.state)
        if self.state.loggedIn:
            raise FTPReplyError(530, "Already logged in.")
        if not argument:
            raise FTPReplyError(501, "USER needs a user name.")
        self._user = argument
        self.reply(331, "Password required.")

    def ftp_PASS(self, argument: str) -> defer.Deferred[None] | None:
        self.settings.policy.checkLogin(self.state)
        if self.state.loggedIn:
            raise FTPReplyError(503, "Already logged in.")
        if self._user is None:
            raise FTPReplyError(503, "Send USER first.")
        user, self._user = self._user, None
        return self._async(self._login(user, argument))

    async def _login(self, user: str, password: str) -> None:
        bans = self.factory.bans
        creds: Any
        if user.lower() in ("anonymous", "ftp"):
            creds = credtypes.Anonymous()
        else:
            creds = UsernamePassword(user, password)
        ok = not bans.isBanned(self.peerHost) and (
            isinstance(creds, credtypes.Anonymous)
            or 0 < len(password) <= self.settings.maxPasswordLength
        )
        result = None
        if ok:
            try:
                result = await self.factory.portal.login(creds, None, ftp.IFTPShell)
            except (crederror.UnauthorizedLogin, crederror.UnhandledCredentials):
                pass
            except Exception:
                _log.failure("login failed")
        if result is None:
            await self._loginFailed(user)
            return
        _, self.shell, self._logout = result
        self.state.loggedIn = True
        self._userName = user
        self.workingDirectory = []
        bans.succeeded(self.peerHost)
        _log.info("{user} logged in from {host}", user=user, host=self.peerHost)
        self.reply(230, "Login successful.")

    async def _loginFailed(self, user: str) -> None:
        self._failedLogins += 1
        self.factory.bans.failed(self.peerHost)
        _log.info("failed login for {user!r} from {host}", user=user, host=self.peerHost)
        delay = self.settings.failedLoginDelay
        if delay > 0:
            await defer.Deferred.fromCoroutine(_sleep(self.clock, delay))
        self.reply(530, "Login incorrect.")
        if self._failedLogins >= self.settings.maxLoginAttempts:
            self._close()

    # informational commands

    def ftp_FEAT(self, argument: str) -> None:
        self.reply(211, "\n".join(["Features:", *self.features, "End"]))

    def ftp_OPTS(self, argument: str) -> None:
        option = argument.strip().upper()
        if option in ("UTF8 ON", "UTF-8 ON"):
            self.reply(200, "UTF8 mode is always on.")
        elif option.startswith("MLST"):
            wanted = option[4:].strip().lower().split(";")
            self._mlstFacts = tuple(f for f in MLST_FACTS if f in wanted)
            self.reply(200, "MLST OPTS " + "".join(f + ";" for f in self._mlstFacts))
        else:
            raise FTPReplyError(501, "Option not understood.")

    def ftp_SYST(self, argument: str) -> None:
        self.reply(215, "UNIX Type: L8")

    def ftp_NOOP(self, argument: str) -> None:
        self.reply(200, "NOOP ok.")

    def ftp_HELP(self, argument: str) -> None:
        names = sorted(name[4:] for name in dir(self) if name.startswith("ftp_"))
        self.reply(214, "\n".join(["Commands:", " ".join(names), "Help ok."]))

    def ftp_QUIT(self, argument: str) -> None:
        self.reply(221, "Goodbye.")
        self._close()

    def ftp_TYPE(self, argument: str) -> None:
        kind = argument.strip().upper()
        if kind in ("I", "L 8", "A", "A N"):
            self.reply(200, f"Type set to {kind}.")
        else:
            raise FTPReplyError(504, f"Type {kind} not supported.")

    def ftp_MODE(self, argument: str) -> None:
        if argument.strip().upper() != "S":
            raise FTPReplyError(504, "Only MODE S is supported.")
        self.reply(200, "Mode set to S.")

    def ftp_STRU(self, argument: str) -> None:
        if argument.strip().upper() != "F":
            raise FTPReplyError(504, "Only STRU F is supported.")
        self.reply(200, "Structure set to F.")

    # navigation

    def _displayPath(self, segments: list[str]) -> str:
        return "/" + "/".join(segments)

    def ftp_PWD(self, argument: str) -> None:
        self.reply(
            257, f"{quotePath(self._displayPath(self.workingDirectory))} is the current directory."
        )

    def ftp_CWD(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument or "/")

        def changed(_: object) -> None:
            self.workingDirectory = segments
            self.reply(250, "Directory changed.")

        return self._shellCall("access", segments).addCallback(changed)

    def ftp_CDUP(self, argument: str) -> defer.Deferred[None]:
        return self.ftp_CWD("..")

    # file information and changes

    def ftp_SIZE(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)

        def sized(result: list[Any]) -> None:
            size, directory = result
            if directory:
                raise FTPReplyError(550, "Not a regular file.")
            self.reply(213, str(size))

        return self._shellCall("stat", segments, ("size", "directory")).addCallback(sized)

    def ftp_MDTM(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)

        def modified(result: list[Any]) -> None:
            self.reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime(result[0])))

        return self._shellCall("stat", segments, ("modified",)).addCallback(modified)

    def ftp_MKD(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)

        def made(_: object) -> None:
            self.reply(257, f"{quotePath(self._displayPath(segments))} created.")

        return self._shellCall("makeDirectory", segments).addCallback(made)

    def ftp_RMD(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)
        return self._shellCall("removeDirectory", segments).addCallback(
            lambda _: self.reply(250, "Directory removed.")
        )

    def ftp_DELE(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)
        return self._shellCall("removeFile", segments).addCallback(
            lambda _: self.reply(250, "File removed.")
        )

    def ftp_RNFR(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)
        self._renameFrom = None

        def exists(_: object) -> None:
            self._renameFrom = segments
            self.reply(350, "Ready for RNTO.")

        return self._shellCall("stat", segments, ()).addCallback(exists)

    def ftp_RNTO(self, argument: str) -> defer.Deferred[None]:
        if self._renameFrom is None:
            raise FTPReplyError(503, "RNTO needs RNFR first.")
        source, self._renameFrom = self._renameFrom, None
        target = self._segments(argument)
        return self._shellCall("rename", source, target).addCallback(
            lambda _: self.reply(250, "Renamed.")
        )

    # data connections

    def _passiveInterface(self) -> str:
        host: str = self.transport.getHost().host
        if host.startswith("::ffff:"):
            host = host[7:]
        return host

    def _listen(self) -> int:
        assert self.dataChannel is not None
        context = self._tlsOptions.getContext() if self.state.dataProtected else None
        return self.dataChannel.listenPassive(self._passiveInterface(), context)

    def ftp_PASV(self, argument: str) -> None:
        self._refuseAfterEPSVAll("PASV")
        interface = self._passiveInterface()
        if ":" in interface:
            raise FTPReplyError(522, "Use EPSV on IPv6 connections (2).")
        port = self._listen()
        announced = self.settings.masquerade or interface
        numbers = announced.split(".") + [str(port >> 8), str(port & 0xFF)]
        self.reply(227, f"Entering Passive Mode ({','.join(numbers)}).")

    def ftp_EPSV(self, argument: str) -> None:
        argument = argument.strip().upper()
        if argument == "ALL":
            self._epsvAll = True
            self.reply(200, "EPSV ALL accepted.")
            return
        family = "2" if ":" in self._passiveInterface() else "1"
        if argument and argument != family:
            raise FTPReplyError(522, f"Network protocol not supported, use ({family}).")
        port = self._listen()
        self.reply(229, f"Entering Extended Passive Mode (|||{port}|)")

    def _active(self, host: str, port: int) -> None:
        assert self.dataChannel is not None
        context = self._tlsOptions.getContext() if self.state.dataProtected else None
        self.dataChannel.connectActive(host, port, context)

    def _refuseAfterEPSVAll(self, command: str) -> None:
        if self._epsvAll:
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

    def _checkTransfer(self, command: str) -> None:
        self.settings.policy.checkTransfer(command, self.state)
        assert self.dataChannel is not None
        if not self.dataChannel.configured:
            raise FTPReplyError(425, "Use PASV, EPSV, PORT or EPRT first.")

    def _startTransfer(
        self,
        action: Callable[[DataConnection], defer.Deferred[None]],
        onFailure: Callable[[], str | None] = lambda: None,
        onSuccess: Callable[[], defer.Deferred[None]] | None = None,
        preliminary: str = "Opening data connection.",
        complete: str = "Transfer complete.",
    ) -> None:
        """
        Send 150, then run C{action} on the data connection once it is ready,
        and end with 226 (or the failure's reply: 425, 426, 522, ...). Commands
        other than ABOR, STAT, NOOP and QUIT wait until it ends.

        @param onFailure: called when the transfer failed or was aborted; may
            return a sentence added to the failure's reply.
        @param onSuccess: called after C{action} succeeded; its failure is the
            transfer's failure.
        """
        assert self.dataChannel is not None
        channel = self.dataChannel
        self._transferring = True
        self._aborting = False
        finished: defer.Deferred[None] = defer.Deferred()
        self._transferFinished = finished
        self.reply(150, preliminary)

        async def run() -> None:
            try:
                connection = await channel.whenReady(self.state.dataProtected)
                await action(connection)
                if self._aborting:
                    raise FTPReplyError(426, "Transfer aborted.")
                if onSuccess is not None:
                    await onSuccess()
            except Exception:
                failure = Failure()
                extra = onFailure()
                error = failure.value
                if self._aborting:
                    error = FTPReplyError(426, "Transfer aborted.")
                if extra and isinstance(error, FTPReplyError):
                    error = FTPReplyError(error.code, f"{error.text} {extra}")
                    failure = Failure(error)
                elif self._aborting:
                    failure = Failure(error)
                self._replyFailure(failure)
            else:
                self.reply(226, complete)
            finally:
                channel.transferDone()
                self._transferring = False
                self._transferFinished = None
                finished.callback(None)
                self._processQueue()

        self._async(run())

    def _consumeRestart(self) -> int:
        offset, self._restOffset = self._restOffset, 0
        return offset

    def ftp_REST(self, argument: str) -> None:
        argument = argument.strip()
        if not argument.isdigit() or not argument.isascii():
            raise FTPReplyError(501, "REST needs a non-negative byte offset.")
        self._restOffset = int(argument)
        self.reply(350, f"Restarting at {self._restOffset}. Send RETR or STOR to continue.")

    def ftp_ABOR(self, argument: str) -> defer.Deferred[None] | None:
        self._restOffset = 0
        finished = self._transferFinished
        if finished is None:
            assert self.dataChannel is not None
            self.dataChannel.reset()
            self.reply(225, "No transfer to abort.")
            return None
        self._aborting = True
        assert self.dataChannel is not None
        self.dataChannel.abortTransfer()
        result: defer.Deferred[None] = defer.Deferred()

        def replied(_: object) -> None:
            self.reply(226, "ABOR successful.")
            result.callback(None)

        finished.addCallback(replied)
        return result

    def _listing(self, argument: str, names: bool) -> defer.Deferred[None]:
        self._checkTransfer("NLST" if names else "LIST")
        words = argument.split(" ")
        while words and words[0].startswith("-"):
            words.pop(0)
        segments = self._segments(" ".join(words))
        keys = () if names else LIST_KEYS

        def listed(entries: list[tuple[str, list[Any]]]) -> None:
            data = formatNames(entries) if names else formatList(entries, self.clock.seconds())
            self._startTransfer(lambda connection: connection.sendBytes(data))

        return self._shellCall("list", segments, keys).addCallback(listed)

    def ftp_LIST(self, argument: str) -> defer.Deferred[None]:
        return self._listing(argument, names=False)

    def ftp_NLST(self, argument: str) -> defer.Deferred[None]:
        return self._listing(argument, names=True)

    def _resumable(self) -> bool:
        return bool(getattr(self.shell, "resumable", False))

    def ftp_RETR(self, argument: str) -> defer.Deferred[None]:
        self._checkTransfer("RETR")
        segments = self._segments(argument)
        offset = self._consumeRestart()
        if offset and not self._resumable():
            raise FTPReplyError(504, "REST is not supported by this storage.")
        args: tuple[Any, ...] = (segments, offset) if offset else (segments,)

        def opened(readFile: Any) -> None:
            self._startTransfer(lambda connection: connection.sendFile(readFile))

        return self._shellCall("openForReading", *args).addCallback(opened)

    def _upload(
        self,
        command: str,
        segments: list[str],
        preliminary: str = "Ready to receive.",
        complete: str = "Transfer complete.",
        **options: Any,
    ) -> defer.Deferred[None]:
        if options and not self._resumable():
            raise FTPReplyError(504, f"{command} is not supported by this storage.")

        def opened(writeFile: Any) -> None:
            async def receive(connection: DataConnection) -> None:
                consumer = await writeFile.receive()
                await connection.receiveInto(consumer)

            def failed() -> str | None:
                abort = getattr(writeFile, "abort", None)
                kept = abort() if abort is not None else None
                if kept:
                    return (
                        f"{kept} bytes kept: resume with REST {kept} and STOR"
                        f" {'/'.join(segments)}."
                    )
                return None

            self._startTransfer(
                lambda connection: self._async(receive(connection)),
                onFailure=failed,
                onSuccess=writeFile.close,
                preliminary=preliminary,
                complete=complete,
            )

        return self._shellCall("openForWriting", segments, **options).addCallback(opened)

    def ftp_STOR(self, argument: str) -> defer.Deferred[None]:
        self._checkTransfer("STOR")
        segments = self._segments(argument)
        offset = self._consumeRestart()
        if offset:
            return self._upload("REST", segments, offset=offset)
        return self._upload("STOR", segments)

    def ftp_APPE(self, argument: str) -> defer.Deferred[None]:
        self._checkTransfer("APPE")
        segments = self._segments(argument)
        self._consumeRestart()
        return self._upload("APPE", segments, append=True)

    def ftp_STOU(self, argument: str) -> defer.Deferred[None]:
        self._checkTransfer("STOU")
        self._consumeRestart()
        base = self._segments(argument.strip() or "file")
        if not base:
            raise FTPReplyError(553, "STOU needs a file name.")
        return self._async(self._storeUnique(base))

    async def _storeUnique(self, base: list[str]) -> None:
        for n in range(1000):
            candidate = base[:-1] + [base[-1] if n == 0 else f"{base[-1]}.{n}"]
            try:
                await self._shellCall("stat", candidate, ())
            except ftp.FileNotFoundError:
                name = candidate[-1]
                await self._upload(
                    "STOU",
                    candidate,
                    preliminary=f"FILE: {name}",
                    complete=f"Transfer complete (unique file name: {name}).",
                )
                return
        raise FTPReplyError(553, "Could not find a unique file name.")

    # machine listings (RFC 3659)

    def _factKeys(self) -> tuple[str, ...]:
        if hasattr(self.shell, "_stat_unique"):
            return (*MLST_KEYS, "unique")
        return MLST_KEYS

    def _writable(self) -> bool:
        return not getattr(self.shell, "readOnly", False)

    def ftp_MLSD(self, argument: str) -> defer.Deferred[None]:
        self._checkTransfer("MLSD")
        segments = self._segments(argument)

        def listed(entries: list[tuple[str, list[Any]]]) -> None:
            data = formatMLSD(entries, self._mlstFacts, self._writable())
            self._startTransfer(lambda connection: connection.sendBytes(data))

        def checked(result: list[Any]) -> defer.Deferred[None]:
            if not result[0]:
                raise FTPReplyError(501, "MLSD needs a directory; use MLST for a file.")
            return self._shellCall("list", segments, self._factKeys()).addCallback(listed)

        return self._shellCall("stat", segments, ("directory",)).addCallback(checked)

    def ftp_MLST(self, argument: str) -> defer.Deferred[None]:
        segments = self._segments(argument)
        display = self._displayPath(segments)
        if not printableName(display):
            raise FTPReplyError(550, "Unprintable name.")

        def stated(attrs: list[Any]) -> None:
            line = formatFacts(display, attrs, self._mlstFacts, self._writable())
            self.reply(250, f"Listing {display}\n{line}\nEnd")

        return self._shellCall("stat", segments, self._factKeys()).addCallback(stated)

    def ftp_MFMT(self, argument: str) -> defer.Deferred[None]:
        stamp, _, path = argument.strip().partition(" ")
        try:
            moment = time.strptime(stamp[:14], "%Y%m%d%H%M%S")
        except ValueError:
            raise FTPReplyError(501, "MFMT needs YYYYMMDDHHMMSS and a path.")
        if not path or not stamp.isascii():
            raise FTPReplyError(501, "MFMT needs YYYYMMDDHHMMSS and a path.")
        segments = self._segments(path)
        if not self._resumable():
            raise FTPReplyError(502, "MFMT is not supported by this storage.")
        mtime = calendar.timegm(moment)
        return self._shellCall("setModificationTime", segments, mtime).addCallback(
            lambda _: self.reply(213, f"Modify={stamp[:14]}; {self._displayPath(segments)}")
        )

    def ftp_ALLO(self, argument: str) -> None:
        self.reply(202, "No storage allocation necessary.")

    # status

    def ftp_STAT(self, argument: str) -> defer.Deferred[None] | None:
        if argument.strip():
            if not self.state.loggedIn:
                raise FTPReplyError(530, "Please log in with USER and PASS first.")
            segments = self._segments(argument.strip())

            def listed(entries: list[tuple[str, list[Any]]]) -> None:
                lines = formatList(entries, self.clock.seconds()).decode(
                    "utf-8", "surrogateescape"
                )
                body = [line for line in lines.split("\r\n") if line]
                self.reply(213, "\n".join(["Status follows:", *body, "End of status."]))

            return self._shellCall("list", segments, LIST_KEYS).addCallback(listed)
        lines = [
            "txftps status:",
            f"Connected from {self.peerHost}",
            f"Logged in as {self._userName}" if self.state.loggedIn else "Not logged in",
            "Control channel: " + ("TLS" if self.state.controlProtected else "clear"),
            "Data channel: " + ("PROT P" if self.state.dataProtected else "PROT C"),
            "Transfer in progress" if self._transferring else "No transfer in progress",
            "End of status.",
        ]
        self.reply(211, "\n".join(lines))
        return None

    # SITE, HOST, REIN, CCC, CDC

    def ftp_SITE(self, argument: str) -> Any:
        if not self._writable():
            raise FTPReplyError(550, "SITE commands are not allowed for this user.")
        name, _, rest = argument.strip().partition(" ")
        handler = getattr(self, "site_" + name.upper(), None)
        if not name or handler is None:
            raise FTPReplyError(504, f"SITE {name.upper()} not understood; try SITE HELP.")
        return handler(rest)

    def site_HELP(self, argument: str) -> None:
        names = sorted(n[5:] for n in dir(self) if n.startswith("site_"))
        self.reply(214, "\n".join(["SITE commands:", " ".join(names), "End."]))

    def ftp_HOST(self, argument: str) -> None:
        if self.state.loggedIn or self._user is not None:
            raise FTPReplyError(503, "HOST must come before USER.")
        if not argument.strip() or not printableName(argument.strip()):
            raise FTPReplyError(501, "HOST needs a host name.")
        self.reply(220, "Host accepted.")

    def ftp_REIN(self, argument: str) -> None:
        if self._transferring:
            raise FTPReplyError(450, "REIN during a transfer is refused; ABOR first.")
        self._logoutShell()
        self.state.loggedIn = False
        self._user = None
        self._userName = None
        self.workingDirectory = []
        self._renameFrom = None
        self._restOffset = 0
        self._epsvAll = False
        self._mlstFacts = MLST_FACTS
        if self.dataChannel is not None:
            self.dataChannel.reset()
        # TLS stays on: a protected channel is never downgraded by REIN.
        self.reply(220, "Session reinitialized; TLS is still on. Log in again.")

    def ftp_CCC(self, argument: str) -> None:
        if not self.state.controlProtected:
            raise FTPReplyError(533, "The control channel is not protected.")
        raise FTPReplyError(534, "CCC is refused by the server policy.")

    def ftp_CDC(self, argument: str) -> None:
        self.ftp_PROT("C")


async def _sleep(clock: interfaces.IReactorTime, seconds: float) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    clock.callLater(seconds, d.callback, None)
    await d


class FTPSFactory(Factory):
    """
    Builds L{FTPSProtocol}s for one listening endpoint.

    @ivar reactor: the reactor (and clock) every connection uses.
    @ivar portal: logs users in; avatars are L{IFTPShell}s.
    @ivar tls: the certificate and key.
    @ivar implicit: TLS from the first byte.
    @ivar settings: the operator's settings.
    @ivar limits: connection caps, shared with the server's other factories.
    @ivar bans: failed-login bans, shared likewise.
    """

    protocol = FTPSProtocol  # type: ignore[assignment]

    def __init__(
        self,
        reactor: Any,
        portal: Portal,
        tls: ServerTLS,
        settings: ServerSettings | None = None,
        implicit: bool = False,
        limits: ConnectionLimits | None = None,
        bans: LoginBans | None = None,
    ) -> None:
        self.reactor = reactor
        self.portal = portal
        self.tls = tls
        self.settings = settings if settings is not None else ServerSettings()
        self.implicit = implicit
        self.limits = limits if limits is not None else ConnectionLimits()
        self.bans = bans if bans is not None else LoginBans(reactor)

    def withImplicitTLS(self) -> FTPSFactory:
        """
        A factory for an implicit-FTPS endpoint that shares this one's
        settings, caps and bans.
        """
        return type(self)(
            self.reactor,
            self.portal,
            self.tls,
            self.settings,
            implicit=True,
            limits=self.limits,
            bans=self.bans,
        )
