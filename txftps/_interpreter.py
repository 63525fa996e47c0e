# -*- test-case-name: tests.test_server -*-
"""
The core of the FTPS protocol interpreter (PI): connection life, explicit and
implicit TLS, line handling, dispatch to C{ftp_<CMD>} methods, replies, and
the TLS commands (AUTH PBSZ PROT).

The avatar is an L{IFTPShell<twisted.protocols.ftp.IFTPShell>}; what it offers beyond that is read from the
interfaces of L{txftps.interfaces} it provides, never from attribute names.

Explicit FTPS: C{AUTH TLS} answers 234, discards every byte that arrived in
plaintext after the AUTH line, and starts TLS. Implicit FTPS: TLS from the
first byte; the greeting comes only after the handshake.

Errors are L{FTPReplyError}s, Twisted's shell errors or storage C{OSError}s,
turned into replies in one place, L{ProtocolInterpreter._replyFailure}, by
the class's L{ErrorReplies}.

Paths are read with L{unescapeName} and shown with L{escapeName}: a name with
control characters is shown escaped, and the escaped name works in commands.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Protocol

from twisted.internet import defer, interfaces
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.protocols import ftp
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from txftps._commands import COMMANDS, CommandFacts, DuringTransfer, defaultFacts
from txftps._datachannel import DataChannel
from txftps._internals import releaseBuffers
from txftps._listing import (
    MLST_KEYS,
    displayPath,
    escapeName,
    hasControlCharacters,
    pathSegments,
)
from txftps._logging import debugWanted
from txftps._observers import handshakeFailureReason
from txftps._session import Session
from txftps._settings import ServerSettings
from txftps.errors import ErrorReplies, FileNameNotAllowedError, FTPReplyError
from txftps.interfaces import IMachineListingShell, IReadOnlyShell, ISessionObserver
from txftps.tls import fingerprint, peerCertificate


class ServerFactory(Protocol):
    """
    What a L{ProtocolInterpreter} needs of its factory
    (L{txftps.server.FTPSFactory} provides it).
    """

    reactor: Any
    portal: Any
    tls: Any
    settings: ServerSettings
    implicit: bool
    limits: Any
    bans: Any
    observer: ISessionObserver


_log = Logger()

#: Telnet IAC, IP and DM bytes (undecodable, so surrogate-escaped) that some
#: clients send before ABOR.
_TELNET_CONTROLS = ("\udcff", "\udcf4", "\udcf2")


@implementer(interfaces.IHandshakeListener)
class ProtocolInterpreter(LineReceiver):
    """
    The core of the FTPS protocol interpreter of one control connection:
    connection life, TLS, line handling and dispatch, replies, login and the
    session commands. L{txftps.server.FTPSProtocol} adds the file and
    transfer commands.

    @cvar dataChannelFactory: builds the L{DataChannel}.
    @cvar errorReplies: turns the errors of commands into replies.
    @cvar greeting: the 220 text.
    @cvar commands: the command table (L{txftps._commands}): what the
        policy, the dispatcher and C{FEAT} know about each command.
    @ivar session: the L{Session}: what this connection's commands share,
        and what the policy reads.
    @ivar shell: the logged-in user's L{IFTPShell<twisted.protocols.ftp.IFTPShell>}, or C{None}.
    @ivar peerAddress: the address of the client (for L{ISessionObserver}).
    @ivar clientAddress: the client's address when it is not the transport's
        peer (a trusted proxy's PROXY header named it); set before
        C{makeConnection}.
    @ivar peerHost: the client's IP address, for caps, bans, logs and the
        data-connection peer check.
    """

    delimiter = b"\n"
    MAX_LENGTH = 8192

    #: Seconds a closing connection may take to finish its TLS shutdown.
    closeGrace: ClassVar[float] = 2.0

    dataChannelFactory: ClassVar[Callable[..., DataChannel]] = DataChannel
    errorReplies: ClassVar[ErrorReplies] = ErrorReplies()
    greeting: ClassVar[str] = "txftps ready."
    commands: ClassVar[Mapping[str, CommandFacts]] = COMMANDS

    factory: ServerFactory
    transport: Any

    def __init__(self) -> None:
        #: Names this connection in every log event (C{session} field).
        self.sessionId = secrets.token_hex(4)
        self.session = Session()
        self.shell: ftp.IFTPShell | None = None
        self._logout: Callable[[], None] | None = None
        self._queue: list[bytes] = []
        self._busy = False
        self._closing = False
        self._admitted = False
        self.clientCertificate: Any = None
        self._tlsOptions: Any = None
        self._handshakeTimer: interfaces.IDelayedCall | None = None
        self._idleTimer: interfaces.IDelayedCall | None = None
        self._abortTimer: interfaces.IDelayedCall | None = None
        self.dataChannel: DataChannel | None = None
        self.clientAddress: IPv4Address | IPv6Address | None = None
        self.peerHost = ""
        self.peerAddress: Any = None
        self._lastReply = 0

    def logFields(self) -> dict[str, Any]:
        """
        The fields every log event of this session carries: C{session} (an
        id), C{client} (the client's address) and C{user} (once logged in).
        With C{--log-format json} they are keys of each JSON line.
        """
        return {
            "session": self.sessionId,
            "client": self.peerHost,
            "user": self.session.userName,
        }

    # settings shortcuts

    @property
    def settings(self) -> ServerSettings:
        return self.factory.settings

    @property
    def clock(self) -> interfaces.IReactorTime:
        return self.factory.reactor  # type: ignore[no-any-return]

    @property
    def observer(self) -> ISessionObserver:
        """
        The factory's L{ISessionObserver}.
        """
        return self.factory.observer

    @property
    def avatar(self) -> ftp.IFTPShell:
        """
        The logged-in user's shell.

        @raise FTPReplyError: 530 when nobody is logged in.
        """
        if self.shell is None:
            raise FTPReplyError(530, "Please log in with USER and PASS first.")
        return self.shell

    # connection life

    def connectionMade(self) -> None:
        self.peerAddress = (
            self.clientAddress if self.clientAddress is not None else self.transport.getPeer()
        )
        self.peerHost = self.peerAddress.host
        handle = getattr(self.transport, "getHandle", None)
        if handle is not None:
            try:
                # ABOR sent as urgent data must stay in the command stream.
                handle().setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            except (OSError, AttributeError):
                pass
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            # Replies are small and answered at once: no Nagle delay.
            setNoDelay(True)
        if self.factory.bans.refusesConnections(self.peerHost):
            # Refused at the door: no greeting beyond the 421, and no TLS
            # handshake for an attacker to spend our CPU on.
            _log.info(
                "refused {host}: banned after failed logins",
                host=self.peerHost,
                **self.logFields(),
            )
            self.observer.connectionRefused(self.peerAddress, "banned")
            if not self.factory.implicit:
                self.reply(421, "Too many failed logins from your address; try again later.")
            self.transport.loseConnection()
            self._closing = True
            return
        if not self.factory.limits.admit(self.peerHost):
            _log.info(
                "connection from {host} over the connection caps",
                host=self.peerHost,
                **self.logFields(),
            )
            self.observer.connectionRefused(self.peerAddress, "limit")
            if not self.factory.implicit:
                self.reply(421, "Too many connections; try again later.")
            self.transport.loseConnection()
            self._closing = True
            return
        self._admitted = True
        self.observer.sessionOpened(self.peerAddress)
        self.dataChannel = self.dataChannelFactory(
            self.factory.reactor,
            self.peerHost,
            requireResumption=self.settings.requireResumption,
            timeout=self.settings.dataTimeout,
            portRange=self.settings.passivePorts,
            requireUploadCloseNotify=self.settings.requireUploadCloseNotify,
            trustedProxies=self.settings.trustedProxies,
        )
        self.dataChannel.onRefused = self._dataConnectionRefused
        if self.factory.implicit:
            self.session.implicit = True
            self._startTLS()
        else:
            self.reply(220, self.greeting)
        self._resetIdleTimer()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        if self._handshakeTimer is not None:
            self.observer.tlsHandshakeFailed(self.peerAddress, handshakeFailureReason(reason))
        self._cancelTimers()
        if self.dataChannel is not None:
            self.dataChannel.reset()
        self._logoutShell()
        if self._admitted:
            self._admitted = False
            self.factory.limits.release(self.peerHost)
            self.observer.sessionClosed(self.peerAddress)

    def _dataConnectionRefused(self, reason: str) -> None:
        self.observer.dataConnectionRefused(self.peerAddress, reason)

    def _logoutShell(self) -> None:
        self.shell = None
        if self._logout is not None:
            logout, self._logout = self._logout, None
            logout()

    def _cancelTimers(self) -> None:
        for timer in (self._handshakeTimer, self._idleTimer, self._abortTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._handshakeTimer = self._idleTimer = self._abortTimer = None

    def _resetIdleTimer(self) -> None:
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.reset(self.settings.idleTimeout)
        else:
            self._idleTimer = self.clock.callLater(self.settings.idleTimeout, self._idleTimedOut)

    def _idleTimedOut(self) -> None:
        self._idleTimer = None
        if self.session.transferring:
            self._resetIdleTimer()
            return
        self.reply(421, "Idle timeout; closing control connection.")
        self._close()

    def _close(self) -> None:
        """
        Close after the replies written so far. Over TLS, Twisted waits for
        the client's close_notify before closing TCP; a client that never
        sends it is cut off after C{closeGrace} seconds.
        """
        self._closing = True
        if self.dataChannel is not None:
            # A closing session holds no listener or data connection, even
            # while its TLS shutdown is still running.
            self.dataChannel.reset()
        self.transport.loseConnection()
        if self._abortTimer is None:
            self._abortTimer = self.clock.callLater(self.closeGrace, self._abortClose)

    def _abortClose(self) -> None:
        self._abortTimer = None
        self.transport.abortConnection()

    # TLS

    def _startTLS(self) -> None:
        self._tlsOptions = self.factory.tls.optionsForConnection()
        self._handshakeTimer = self.clock.callLater(
            self.settings.handshakeTimeout, self._handshakeTimedOut
        )
        self.transport.startTLS(self._tlsOptions)
        handle = getattr(self.transport, "getHandle", None)
        if handle is not None:
            # Replies are small: an idle control connection keeps no TLS
            # record buffers (its data connections keep theirs).
            releaseBuffers(handle())

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        _log.info("TLS handshake with {host} timed out", host=self.peerHost, **self.logFields())
        self.observer.tlsHandshakeFailed(self.peerAddress, "timeout")
        self._closing = True
        self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        """
        The control channel's TLS handshake completed.
        """
        if self._handshakeTimer is not None and self._handshakeTimer.active():
            self._handshakeTimer.cancel()
        self._handshakeTimer = None
        self.session.controlProtected = True
        handle = getattr(self.transport, "getHandle", None)
        self.clientCertificate = peerCertificate(handle()) if handle is not None else None
        if self.dataChannel is not None and self.clientCertificate is not None:
            self.dataChannel.controlCertificate = fingerprint(self.clientCertificate)
        if self.session.implicit:
            self.session.pbszSeen = True
            self.session.dataProtected = True
            self.reply(220, self.greeting)

    # replies

    def reply(self, code: int, text: str) -> None:
        """
        Send a reply; a multi-line C{text} becomes a multi-line reply. A line
        with any other control character is written with L{escapeName}: no
        name can break a reply line.
        """
        lines = [escapeName(x) if hasControlCharacters(x) else x for x in text.split("\n")]
        if len(lines) == 1:
            out = f"{code} {lines[0]}\r\n"
        else:
            out = f"{code}-{lines[0]}\r\n"
            out += "".join(f" {line}\r\n" for line in lines[1:-1])
            out += f"{code} {lines[-1]}\r\n"
        self.transport.write(out.encode("utf-8", "surrogateescape"))
        self._lastReply = code
        if debugWanted():
            _log.debug("{host} -> {code}", host=self.peerHost, code=code, **self.logFields())
        self.observer.replySent(self.peerAddress, code, "\n".join(lines))

    def _replyFailure(self, failure: Failure) -> None:
        reply = self.errorReplies.replyFor(failure.value)  # type: ignore[arg-type]
        if reply is None:
            _log.failure("command failed", failure)
            reply = (451, "Requested action aborted: local error in processing.")
        self.reply(*reply)

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
            if (
                self.session.transferring
                and self.factsOf(command).duringTransfer is DuringTransfer.AFTER
            ):
                # It runs after the transfer's final reply; the policy refuses
                # or answers everything else at once.
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
        if debugWanted():
            _log.debug(
                "{host} <- {command}",
                host=self.peerHost,
                command=command if command != "PASS" else "PASS ***",
                **self.logFields(),
            )
        self.observer.commandReceived(
            self.peerAddress, command, argument if command != "PASS" else "***"
        )
        facts = self.factsOf(command)
        if not facts.keepsRestart:
            self.session.restOffset = 0
        try:
            self.settings.policy.checkCommand(command, self.session, facts)
            handler = getattr(self, "ftp_" + command, None)
            if handler is None:
                raise FTPReplyError(502, f"Command {command} not implemented.")
            result = handler(argument)
        except Exception:
            self._commandFailed(facts, Failure())
            return
        if isinstance(result, defer.Deferred):
            self._busy = True
            result.addErrback(lambda failure: self._commandFailed(facts, failure))
            result.addBoth(self._commandDone)

    def _commandFailed(self, facts: CommandFacts, failure: Failure) -> None:
        """
        Reply to a failed command. A transfer command refused before its 150
        also ends the data connection set up for it, so that the client is
        not left with an open one until the data timeout.
        """
        self._replyFailure(failure)
        if facts.needsDataTLS and self.session.transfer is None and self.dataChannel:
            self.dataChannel.reset()

    def _commandDone(self, _: object) -> None:
        self._busy = False
        self._processQueue()

    def factsOf(self, command: str) -> CommandFacts:
        """
        The entry of C{command} in this protocol's command table, or
        L{defaultFacts} for a command the table does not know.
        """
        return self.commands.get(command) or defaultFacts(command)

    def _async(self, coroutine: Awaitable[None]) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(coroutine)  # type: ignore[arg-type]

    # paths: the helpers command handlers of subclasses use too

    def resolvePath(self, path: str) -> list[str]:
        """
        The path a client sent, relative to the working directory, as path
        segments from the user's root (escaped names read back; C{..} never
        leaves the root).

        @raise FTPReplyError: 550 for a path that cannot name a file.
        """
        return pathSegments(self.session.workingDirectory, path)

    def checkNewName(self, segments: list[str]) -> list[str]:
        """
        C{segments} name a file or directory about to be made: no control
        characters (L{FileNameNotAllowedError}, 553).

        @return: C{segments}.
        """
        if segments and hasControlCharacters(segments[-1]):
            raise FileNameNotAllowedError("/".join(segments))  # type: ignore[no-untyped-call]
        return segments

    def displayPath(self, segments: list[str]) -> str:
        """
        How a path is shown to the client: absolute, names escaped.
        """
        return displayPath(segments)

    def callShell(
        self, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> defer.Deferred[Any]:
        """
        Call a method of the L{avatar}; a synchronous result or exception
        becomes a L{defer.Deferred}, and its failure becomes the command's
        reply when the handler returns it.
        """
        return defer.maybeDeferred(method, *args, **kwargs)

    # access control and TLS commands

    def ftp_AUTH(self, argument: str) -> None:
        self._refuseAfterCCC("AUTH")
        mechanism = argument.strip().upper()
        if not mechanism:
            raise FTPReplyError(501, "AUTH needs a mechanism: AUTH TLS.")
        if mechanism not in ("TLS", "SSL", "TLS-C", "TLS-P"):
            raise FTPReplyError(504, f"AUTH {mechanism} not supported; use AUTH TLS.")
        if self.session.controlProtected or self._tlsOptions is not None:
            raise FTPReplyError(503, "TLS is already active.")
        if self.session.loggedIn:
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
        self.session.user = None
        self.session.pbszSeen = False
        self.session.dataProtected = False
        self._startTLS()

    def ftp_PBSZ(self, argument: str) -> None:
        self._refuseAfterCCC("PBSZ")
        if not self.session.controlProtected:
            raise FTPReplyError(503, "PBSZ needs a protected control channel; AUTH TLS first.")
        if not argument.strip().isdigit():
            raise FTPReplyError(501, "PBSZ needs a number: PBSZ 0.")
        self.session.pbszSeen = True
        self.reply(200, "PBSZ=0")

    def ftp_PROT(self, argument: str) -> None:
        self._refuseAfterCCC("PROT")
        if not self.session.controlProtected or not self.session.pbszSeen:
            raise FTPReplyError(503, "PROT needs PBSZ first.")
        level = argument.strip().upper()
        if level == "C":
            self.session.dataProtected = False
            self.reply(200, "Protection level set to Clear.")
        elif level == "P":
            self.session.dataProtected = True
            self.reply(200, "Protection level set to Private.")
        elif level in ("S", "E"):
            raise FTPReplyError(536, f"Protection level {level} not supported.")
        else:
            raise FTPReplyError(504, "Unknown protection level; use C or P.")

    # navigation

    # file information and changes

    # machine listings (RFC 3659)

    def _factKeys(self) -> tuple[str, ...]:
        if IMachineListingShell.providedBy(self.shell):
            return (*MLST_KEYS, "unique")
        return MLST_KEYS

    def _writable(self) -> bool:
        return not IReadOnlyShell.providedBy(self.shell)

    # status

    # SITE, HOST, REIN, CCC, CDC

    def _refuseAfterCCC(self, command: str) -> None:
        if self.session.cleared:
            raise FTPReplyError(534, f"{command} is refused after CCC.")
