# -*- test-case-name: tests.test_policy -*-
"""
Session policy: what a control connection may do, and when.

Pure logic with no I/O and no reactor: the protocol interpreter asks a
L{SessionPolicy} before it acts, and the policy answers by returning or by
raising L{txftps.errors.FTPReplyError} with the reply to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from txftps.errors import FTPReplyError

__all__ = [
    "PRE_LOGIN_COMMANDS",
    "TRANSFER_COMMANDS",
    "SessionPolicy",
    "SessionState",
    "TLSRequirement",
]

#: Commands that answer before login; every other command gets 530.
PRE_LOGIN_COMMANDS = frozenset(
    {
        "USER",
        "PASS",
        "AUTH",
        "PBSZ",
        "PROT",
        "FEAT",
        "SYST",
        "HELP",
        "NOOP",
        "OPTS",
        "HOST",
        "QUIT",
    }
)

#: Commands that move file data or listings over a data connection.
TRANSFER_COMMANDS = frozenset({"LIST", "NLST", "MLSD", "RETR", "STOR", "STOU", "APPE"})


class TLSRequirement:
    """
    The values of C{--tls-required}.
    """

    NONE = "none"
    CONTROL = "control"
    DATA = "data"
    ALL = "all"
    values = (NONE, CONTROL, DATA, ALL)


@dataclass
class SessionState:
    """
    What the policy needs to know about one control connection.

    @ivar controlProtected: the control channel is TLS (explicit or implicit).
    @ivar pbszSeen: C{PBSZ} was accepted since TLS started.
    @ivar dataProtected: C{PROT P} is in force.
    @ivar loggedIn: the user has logged in.
    @ivar implicit: the connection was TLS from its first byte.
    """

    controlProtected: bool = False
    pbszSeen: bool = False
    dataProtected: bool = False
    loggedIn: bool = False
    implicit: bool = False


@dataclass(frozen=True)
class SessionPolicy:
    """
    The TLS and login rules of a server.

    @ivar tlsRequired: one of L{TLSRequirement.values}.
    @ivar preLogin: the commands that answer before login.
    """

    tlsRequired: str = TLSRequirement.ALL
    preLogin: frozenset[str] = field(default=PRE_LOGIN_COMMANDS)

    def __post_init__(self) -> None:
        if self.tlsRequired not in TLSRequirement.values:
            raise ValueError(
                f"tls-required must be one of {', '.join(TLSRequirement.values)},"
                f" not {self.tlsRequired!r}"
            )

    @property
    def controlRequired(self) -> bool:
        """
        C{USER}/C{PASS} are refused before the control channel is TLS.
        """
        return self.tlsRequired in (TLSRequirement.CONTROL, TLSRequirement.ALL)

    @property
    def dataRequired(self) -> bool:
        """
        Transfers are refused unless C{PROT P} is in force.
        """
        return self.tlsRequired in (TLSRequirement.DATA, TLSRequirement.ALL)

    def checkCommand(self, command: str, state: SessionState) -> None:
        """
        May C{command} run now?

        @param command: the upper-case command verb.
        @param state: the session.
        @raise FTPReplyError: 530 before login for commands outside the
            pre-login allow-list.
        """
        if not state.loggedIn and command not in self.preLogin:
            raise FTPReplyError(530, "Please log in with USER and PASS first.")

    def checkLogin(self, state: SessionState) -> None:
        """
        May the client send C{USER} or C{PASS} now?

        @raise FTPReplyError: 530 when control TLS is required and absent; the
            password is then never looked at.
        """
        if self.controlRequired and not state.controlProtected:
            raise FTPReplyError(530, "TLS is required: send AUTH TLS before USER and PASS.")

    def checkTransfer(self, command: str, state: SessionState) -> None:
        """
        May a transfer command open a data connection now?

        @raise FTPReplyError: 521 when data TLS is required and C{PROT P} is not
            in force.
        """
        if self.dataRequired and not state.dataProtected:
            raise FTPReplyError(521, "Data connections must be protected: send PBSZ 0 and PROT P.")
