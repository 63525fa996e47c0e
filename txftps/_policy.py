# -*- test-case-name: tests.test_policy -*-
"""
Session policy: what a control connection may do, and when.

Pure logic with no I/O and no reactor: the protocol interpreter asks a
L{SessionPolicy} before it acts, and the policy answers by returning or by
raising L{txftps.errors.FTPReplyError} with the reply to send.
"""

from __future__ import annotations

from dataclasses import dataclass

from txftps._commands import COMMANDS, CommandFacts, DuringTransfer, defaultFacts
from txftps._session import Session
from txftps.errors import FTPReplyError

#: Commands that answer before login; every other command gets 530 (from
#: the command table, L{txftps._commands.COMMANDS}).
PRE_LOGIN_COMMANDS = frozenset(name for name, f in COMMANDS.items() if f.preLogin)

#: Commands that move file data or listings over a data connection.
TRANSFER_COMMANDS = frozenset(name for name, f in COMMANDS.items() if f.needsDataTLS)

#: Commands that set up the data connection of the next transfer.
DATA_CONNECTION_COMMANDS = frozenset(
    name for name, f in COMMANDS.items() if f.usesDataChannel and not f.needsDataTLS
)

#: Commands that read or change a file or directory over the control
#: connection (refused with 450 while a transfer runs).
FILE_COMMANDS = frozenset(name for name, f in COMMANDS.items() if f.refusal == 450)

#: Commands answered at once while a transfer runs (C{STAT} reports its
#: progress).
DURING_TRANSFER_COMMANDS = frozenset(
    name for name, f in COMMANDS.items() if f.duringTransfer is DuringTransfer.ANSWER
)

#: Commands that wait for the running transfer's final reply and then run
#: (RFC 959: C{QUIT} during a transfer closes after the transfer's reply).
AFTER_TRANSFER_COMMANDS = frozenset(
    name for name, f in COMMANDS.items() if f.duringTransfer is DuringTransfer.AFTER
)


class TLSRequirement:
    """
    The values of C{--tls-required}.
    """

    NONE = "none"
    CONTROL = "control"
    DATA = "data"
    ALL = "all"
    values = (NONE, CONTROL, DATA, ALL)


@dataclass(frozen=True)
class SessionPolicy:
    """
    The TLS and login rules of a server.

    The facts about each command come from the command table
    (L{txftps._commands}): the protocol passes the entry of the command it
    is about to run.

    @ivar tlsRequired: one of L{TLSRequirement.values}.
    """

    tlsRequired: str = TLSRequirement.ALL

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

    def checkCommand(
        self, command: str, state: Session, facts: CommandFacts | None = None
    ) -> None:
        """
        May C{command} run now?

        @param command: the upper-case command verb.
        @param state: the session.
        @param facts: the command's entry in the protocol's command table;
            the default table's (or L{defaultFacts}) when C{None}.
        @raise FTPReplyError: 530 before login for commands that do not
            answer before login; while a transfer runs, the command's
            C{refusal} code (425, 450 or 503) unless it answers during a
            transfer or waits for its end.
        """
        if facts is None:
            facts = COMMANDS.get(command) or defaultFacts(command)
        if not state.loggedIn and not facts.preLogin:
            raise FTPReplyError(530, "Please log in with USER and PASS first.")
        if state.transferring and facts.duringTransfer is DuringTransfer.REFUSE:
            raise FTPReplyError(
                facts.refusal,
                f"{command} is refused while a transfer runs; wait for its end or ABOR.",
            )

    def checkLogin(self, state: Session) -> None:
        """
        May the client send C{USER} or C{PASS} now?

        @raise FTPReplyError: 530 when control TLS is required and absent; the
            password is then never looked at.
        """
        if self.controlRequired and not state.controlProtected:
            raise FTPReplyError(530, "TLS is required: send AUTH TLS before USER and PASS.")

    def checkTransfer(
        self, command: str, state: Session, facts: CommandFacts | None = None
    ) -> None:
        """
        May the transfer command C{command} open a data connection now?

        @param facts: the command's entry in the protocol's command table;
            the default table's when C{None}.
        @raise FTPReplyError: 521 when the command moves data over a data
            connection, data TLS is required and C{PROT P} is not in force.
        """
        if facts is None:
            facts = COMMANDS.get(command) or defaultFacts(command)
        if facts.needsDataTLS and self.dataRequired and not state.dataProtected:
            raise FTPReplyError(521, "Data connections must be protected: send PBSZ 0 and PROT P.")
