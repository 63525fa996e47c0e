# -*- test-case-name: tests.test_server,tests.test_load -*-
"""
What an operator configures for a server, the connection caps its
factories share, and the endpoints it listens on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from txftps._datachannel import PassivePortRange
from txftps._policy import SessionPolicy
from txftps._proxyprotocol import TrustedProxies


@dataclass
class ServerSettings:
    """
    What an operator configures, shared by a server's factories.

    C{trustedProxies}: connections from these addresses start with a PROXY
    header naming the client (wrap the factory in a
    L{txftps.server.ProxyProtocolFactory}); C{None}: no PROXY
    protocol.
    """

    policy: SessionPolicy = field(default_factory=SessionPolicy)
    requireResumption: bool = True
    requireUploadCloseNotify: bool = True
    passivePorts: PassivePortRange | None = None
    masquerade: str | None = None
    handshakeTimeout: float = 30.0
    idleTimeout: float = 300.0
    dataTimeout: float = 30.0
    maxLoginAttempts: int = 3
    failedLoginDelay: float = 1.0
    maxPasswordLength: int = 1024
    allowCCC: bool = False
    allowFXP: bool = False
    certificateLogin: bool = False
    trustedProxies: TrustedProxies | None = None


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


#: The listen backlog of a C{tcp:} or C{tcp6:} endpoint whose description
#: sets none (Twisted's is 50). A burst of new connections (a thousand
#: clients after a restart, a busy reactor) waits in the kernel's accept
#: queue instead of having its SYNs dropped: a dropped SYN costs its client
#: 1 s, then 3 s, then 7 s... before it retries. The kernel caps it at
#: C{net.core.somaxconn}.
LISTEN_BACKLOG = 1024


def listeningEndpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    The endpoint C{description} names (strports syntax), as
    C{serverFromString} builds it, except that a C{tcp:} or C{tcp6:}
    endpoint without a C{backlog=} of its own listens with
    L{LISTEN_BACKLOG}.
    """
    kind, colon, rest = description.partition(":")
    if colon and kind in ("tcp", "tcp6"):
        # Keywords may stand anywhere, and the last of a name wins: this
        # one, first, gives way to a backlog= of the description's own.
        description = f"{kind}:backlog={LISTEN_BACKLOG}:{rest}"
    endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    return endpoint
