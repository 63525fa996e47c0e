# -*- test-case-name: tests.test_policy -*-
"""
The state of one FTP session, and of the transfer it runs.

A L{txftps.server.FTPSProtocol} keeps everything its commands share in two
objects: its L{Session} (login, TLS and protection, working directory,
pending C{REST} offset and rename, MLST facts, C{EPSV ALL}) and, while a
transfer runs, that session's L{Transfer}. Command handlers, the ones of
subclasses included, read and change the session through these objects, not
through attributes of the protocol; the session policy reads the same
L{Session}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer

from txftps._listing import MLST_FACTS


@dataclass
class Transfer:
    """
    A transfer on a data connection, from its 150 to its final reply.

    @ivar command: C{RETR}, C{STOR}, C{APPE}, C{STOU}, C{LIST}, C{NLST} or
        C{MLSD}.
    @ivar path: the file or directory, as path segments from the user's
        root.
    @ivar finished: fires after the final reply.
    @ivar aborting: C{ABOR} arrived; the final reply is 426.
    @ivar connection: the data connection, once it is ready.
    """

    command: str
    path: list[str]
    finished: defer.Deferred[None] = field(default_factory=defer.Deferred)
    aborting: bool = False
    connection: Any = None

    @property
    def bytesSent(self) -> int:
        """
        Bytes sent to the client so far.
        """
        return self.connection.bytesSent if self.connection is not None else 0

    @property
    def bytesReceived(self) -> int:
        """
        Bytes received from the client so far.
        """
        return self.connection.bytesReceived if self.connection is not None else 0


@dataclass
class Session:
    """
    What one control connection's commands share.

    @ivar controlProtected: the control channel is TLS (explicit or implicit).
    @ivar pbszSeen: C{PBSZ} was accepted since TLS started.
    @ivar dataProtected: C{PROT P} is in force.
    @ivar loggedIn: the user has logged in.
    @ivar implicit: the connection was TLS from its first byte.
    @ivar cleared: C{CCC} returned the control channel to plaintext.
    @ivar user: the name sent with C{USER}, waiting for C{PASS}.
    @ivar userName: the logged-in user's name (the avatar ID).
    @ivar failedLogins: failed C{PASS} on this connection.
    @ivar workingDirectory: the current directory, as path segments.
    @ivar restOffset: the offset of a pending C{REST}, or 0.
    @ivar renameFrom: the source of a pending C{RNFR}, as path segments.
    @ivar mlstFacts: the MLST facts selected with C{OPTS MLST}.
    @ivar epsvAll: C{EPSV ALL} was sent: C{PASV}, C{PORT} and C{EPRT} are
        refused.
    @ivar serverToServer: C{SSCN ON}: this server is the TLS client on the
        data connections of C{RETR}, C{STOR}, C{APPE} and C{STOU}.
    @ivar transfer: the running L{Transfer}, or C{None}.
    """

    controlProtected: bool = False
    pbszSeen: bool = False
    dataProtected: bool = False
    loggedIn: bool = False
    implicit: bool = False
    cleared: bool = False
    user: str | None = None
    userName: str | None = None
    failedLogins: int = 0
    workingDirectory: list[str] = field(default_factory=list)
    restOffset: int = 0
    renameFrom: list[str] | None = None
    mlstFacts: tuple[str, ...] = MLST_FACTS
    epsvAll: bool = False
    serverToServer: bool = False
    transfer: Transfer | None = None

    @property
    def transferring(self) -> bool:
        """
        A transfer runs (from its 150 to its final reply).
        """
        return self.transfer is not None

    def reinitialize(self) -> None:
        """
        Forget the login and everything it set up (C{REIN}); TLS and the
        protection level stay as they are.
        """
        self.loggedIn = False
        self.user = None
        self.userName = None
        self.workingDirectory = []
        self.renameFrom = None
        self.restOffset = 0
        self.epsvAll = False
        self.serverToServer = False
        self.mlstFacts = MLST_FACTS
