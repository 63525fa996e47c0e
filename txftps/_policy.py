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

#: Commands that set up the data connection of the next transfer.
DATA_CONNECTION_COMMANDS = frozenset({"PASV", "EPSV", "PORT", "EPRT"})

#: Commands that read or change a file or directory over the control
#: connection.
FILE_COMMANDS = frozenset({"SIZE", "MDTM", "MLST", "MKD", "RMD", "DELE", "RNFR", "RNTO", "MFMT"})

#: Commands answered at once while a transfer runs (C{STAT} reports its
#: progress). Every other command but those of L{AFTER_TRANSFER_COMMANDS} is
#: refused while a transfer runs: 425 for L{DATA_CONNECTION_COMMANDS} and
#: L{TRANSFER_COMMANDS}, 450 for L{FILE_COMMANDS}, 503 for the rest (they
#: would change the session under the transfer: C{REST}, C{TYPE}, C{PROT},
#: C{CWD}, ...).
DURING_TRANSFER_COMMANDS = frozenset({"ABOR", "STAT", "NOOP", "FEAT", "HELP"})

#: Commands that wait for the running transfer's final reply and then run
#: (RFC 959: C{QUIT} during a transfer closes after the transfer's reply).
AFTER_TRANSFER_COMMANDS = frozenset({"QUIT"})


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
    @ivar transferring: a transfer is running (from its 150 to its final
        reply).
    """

    controlProtected: bool = False
    pbszSeen: bool = False
    dataProtected: bool = False
    loggedIn: bool = False
    implicit: bool = False
    transferring: bool = False


@dataclass(frozen=True)
class SessionPolicy:
    """
    The TLS and login rules of a server.

    @ivar tlsRequired: one of L{TLSRequirement.values}.
    @ivar preLogin: the commands that answer before login.
    @ivar duringTransfer: the commands answered at once while a transfer
        runs.
    """

    tlsRequired: str = TLSRequirement.ALL
    preLogin: frozenset[str] = field(default=PRE_LOGIN_COMMANDS)
    duringTransfer: frozenset[str] = field(default=DURING_TRANSFER_COMMANDS)

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
            pre-login allow-list; while a transfer runs, 425, 450 or 503 for
            commands outside L{duringTransfer} and L{AFTER_TRANSFER_COMMANDS}
            (see L{DURING_TRANSFER_COMMANDS}).
        """
        if not state.loggedIn and command not in self.preLogin:
            raise FTPReplyError(530, "Please log in with USER and PASS first.")
        if (
            state.transferring
            and command not in self.duringTransfer
            and command not in AFTER_TRANSFER_COMMANDS
        ):
            if command in DATA_CONNECTION_COMMANDS or command in TRANSFER_COMMANDS:
                code = 425
            elif command in FILE_COMMANDS:
                code = 450
            else:
                code = 503
            raise FTPReplyError(
                code, f"{command} is refused while a transfer runs; wait for its end or ABOR."
            )

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
