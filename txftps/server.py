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

from txftps._datachannel import PassivePortRange
from txftps._filecommands import FileCommands
from txftps._infocommands import InformationCommands
from txftps._logincommands import LoginCommands
from txftps._policy import SessionPolicy, TLSRequirement
from txftps._proxyprotocol import ProxyProtocolFactory, TrustedProxies
from txftps._settings import ConnectionLimits, ServerSettings
from txftps._transfercommands import TransferCommands
from txftps.auth import LoginBans
from txftps.interfaces import ISessionObserver
from txftps.tls import ServerTLS

__all__ = [
    "ConnectionLimits",
    "FTPSFactory",
    "FTPSProtocol",
    "PassivePortRange",
    "ProxyProtocolFactory",
    "ServerSettings",
    "SessionPolicy",
    "TLSRequirement",
    "TrustedProxies",
]


class FTPSProtocol(TransferCommands, FileCommands, LoginCommands, InformationCommands):
    """
    The FTPS protocol interpreter of one control connection: the core
    (L{txftps._interpreter.ProtocolInterpreter}), the login commands
    (L{LoginCommands}), the informational commands
    (L{InformationCommands}), the file commands (L{FileCommands}) and the
    transfer commands (L{TransferCommands}).

    Subclass it to add C{ftp_<CMD>} or C{site_<NAME>} methods or to change
    class attributes such as C{greeting}, C{features} or
    C{dataChannelFactory}.
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
