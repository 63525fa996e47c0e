# -*- test-case-name: tests.test_server -*-
"""
The FTPS control channel: protocol interpreter and factory.

L{FTPSProtocol} parses commands, dispatches them to C{ftp_<CMD>} methods, owns
the session state and writes replies. It serves
L{IFTPShell<twisted.protocols.ftp.IFTPShell>} avatars from a cred L{Portal<twisted.cred.portal.Portal>},
asks a L{SessionPolicy} what is allowed, and leaves data connections to a
L{DataChannel}. It never stops reading while a data connection is pending.

Explicit FTPS: C{AUTH TLS} answers 234, discards every byte that arrived in
plaintext after the AUTH line, and starts TLS. Implicit FTPS
(L{FTPSFactory} with C{implicit=True}): TLS from the first byte; the greeting
comes only after the handshake.

Usage::

    factory = FTPSFactory(reactor, portal, ServerTLS.fromFiles(cert, key))
    reactor.listenTCP(2121, factory)

Behind a TCP load balancer that sends PROXY headers (see C{docs/scaling.md})::

    settings = ServerSettings(trustedProxies=TrustedProxies.fromStrings(["10.0.0.5"]))
    factory = FTPSFactory(reactor, portal, tls, settings)
    reactor.listenTCP(2121, ProxyProtocolFactory(factory))
"""

from __future__ import annotations

from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.protocol import Factory
from zope.interface import implementer

from txftps._commands import CommandFacts, DuringTransfer, commandTable
from txftps._datachannel import PassivePortRange
from txftps._dataconnection import DataConnection
from txftps._filecommands import FileCommands
from txftps._infocommands import InformationCommands
from txftps._logincommands import LoginCommands
from txftps._policy import SessionPolicy, TLSRequirement
from txftps._proxyprotocol import ProxyProtocolFactory, TrustedProxies
from txftps._session import Session, Transfer
from txftps._settings import ConnectionLimits, ServerSettings
from txftps._transfercommands import TransferCommands
from txftps.auth import LoginBans
from txftps.interfaces import ISessionObserver
from txftps.tls import ServerTLS

__all__ = [
    "CommandFacts",
    "ConnectionLimits",
    "DataConnection",
    "DuringTransfer",
    "FTPSFactory",
    "FTPSProtocol",
    "PassivePortRange",
    "ProxyProtocolFactory",
    "ServerSettings",
    "Session",
    "SessionPolicy",
    "TLSRequirement",
    "Transfer",
    "TrustedProxies",
    "commandTable",
]


class FTPSProtocol(TransferCommands, FileCommands, LoginCommands, InformationCommands):
    """
    The FTPS protocol interpreter of one control connection.

    Its commands are grouped by role in private modules (the core, login,
    information, file and transfer commands); everything they share is in
    its L{Session} (C{self.session}) and, while a transfer runs, that
    session's L{Transfer}.

    Subclass it to add commands or change class attributes (C{greeting},
    C{errorReplies}, C{dataChannelFactory}, C{commands}):

      - a command is a method C{ftp_<NAME>(self, argument)}; it replies with
        C{self.reply(code, text)}, refuses by raising
        L{FTPReplyError<txftps.errors.FTPReplyError>}, and may return a
        Deferred (the next command waits for it; its failure becomes the
        reply);
      - a C{SITE} command is a method C{site_<NAME>(self, argument)};
      - a transfer command calls C{self.checkTransfer(name)}, then
        C{self.startTransfer(name, segments, action)}, where C{action} gets
        the ready L{DataConnection} and returns a Deferred (use its
        C{sendBytes}, C{sendFile} or C{receiveInto});
      - C{self.resolvePath(path)} turns a client's path into segments from
        the user's root, C{self.displayPath(segments)} shows one,
        C{self.callShell(self.avatar.method, ...)} calls the user's shell;
      - what the policy, the dispatcher and C{FEAT} know of a command is its
        L{CommandFacts} in the class's C{commands} table: extend it with
        C{commands = commandTable(FTPSProtocol.commands, CommandFacts(...))}.
        A command without an entry is refused before login and during
        transfers.

    C{docs/examples/custom_commands.py} shows all of it.
    """


@implementer(ISessionObserver)
class _SilentObserver:
    """
    The observer of a factory given none: ignores everything.
    """

    def loginSucceeded(self, peer: Any, user: str) -> None:
        pass

    def loginFailed(self, peer: Any, user: str) -> None:
        pass

    def commandReceived(self, peer: Any, command: str, argument: str) -> None:
        pass

    def replySent(self, peer: Any, code: int, text: str) -> None:
        pass

    def transferEnded(
        self, peer: Any, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        pass


_SILENT = _SilentObserver()


class FTPSFactory(Factory):
    """
    Builds L{FTPSProtocol}s for one listening endpoint.

    @ivar reactor: the reactor (and clock) every connection uses.
    @ivar portal: logs users in; avatars are
        L{IFTPShell<twisted.protocols.ftp.IFTPShell>}s.
    @ivar tls: the certificate and key.
    @ivar implicit: TLS from the first byte.
    @ivar settings: the operator's settings.
    @ivar limits: connection caps, shared with the server's other factories.
    @ivar bans: failed-login bans, shared likewise.
    @ivar observer: the L{ISessionObserver} told about logins, commands,
        replies and transfers (one that ignores them when none is given).
    """

    protocol = FTPSProtocol  # type: ignore[assignment]
    #: Our own "listening on" line says what an operator needs.
    noisy = False

    def __init__(
        self,
        reactor: Any,
        portal: Portal,
        tls: ServerTLS,
        settings: ServerSettings | None = None,
        implicit: bool = False,
        limits: ConnectionLimits | None = None,
        bans: LoginBans | None = None,
        observer: ISessionObserver | None = None,
    ) -> None:
        self.reactor = reactor
        self.portal = portal
        self.tls = tls
        self.settings = settings if settings is not None else ServerSettings()
        self.implicit = implicit
        self.limits = limits if limits is not None else ConnectionLimits()
        self.bans = bans if bans is not None else LoginBans(reactor)
        self.observer: ISessionObserver = observer if observer is not None else _SilentObserver()

    def withImplicitTLS(self) -> FTPSFactory:
        """
        A factory for an implicit-FTPS endpoint that shares this one's
        settings, caps, bans and observer.
        """
        return type(self)(
            self.reactor,
            self.portal,
            self.tls,
            self.settings,
            implicit=True,
            limits=self.limits,
            bans=self.bans,
            observer=self.observer,
        )
