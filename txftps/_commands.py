# -*- test-case-name: tests.test_policy -*-
"""
What the server knows about each command, in one table.

Every fact the session policy, the dispatcher and C{FEAT} need about a
command lives in its L{CommandFacts}: whether it answers before login,
whether it needs C{PROT P} when data TLS is required, whether it uses the
data channel, what happens to it while a transfer runs, whether it keeps a
pending C{REST} offset, and which C{FEAT} lines it brings.

A command with a handler (C{ftp_<NAME>}) but no entry gets L{defaultFacts}:
refused before login (530) and while a transfer runs (503), no C{FEAT} line.
So a command added by a subclass is safe by default; to say more about it,
give the protocol class a table with an entry for it::

    class MyProtocol(FTPSProtocol):
        commands = commandTable(
            FTPSProtocol.commands, CommandFacts("XCRC", feature="XCRC")
        )

        def ftp_XCRC(self, argument: str) -> None:
            ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from constantly import NamedConstant, Names


class DuringTransfer(Names):
    """
    What happens to a command that arrives while a transfer runs.

    @cvar ANSWER: it runs at once (C{ABOR}, C{STAT}, C{NOOP}, ...).
    @cvar AFTER: it waits for the transfer's final reply, then runs
        (C{QUIT}, as RFC 959 says).
    @cvar REFUSE: it is refused at once with the command's C{refusal} code.
    """

    ANSWER = NamedConstant()
    AFTER = NamedConstant()
    REFUSE = NamedConstant()


@dataclass(frozen=True)
class CommandFacts:
    """
    The facts about one command.

    @ivar name: the upper-case command name.
    @ivar preLogin: it answers before login; every other command gets 530.
    @ivar needsDataTLS: it moves data over a data connection, so it is
        refused with 521 unless C{PROT P} is in force when the server
        requires data TLS.
    @ivar usesDataChannel: it sets up or uses the data channel.
    @ivar duringTransfer: a L{DuringTransfer} constant.
    @ivar refusal: the reply code when it is refused during a transfer:
        425 for data-channel commands, 450 for file commands, 503 for
        commands that would change the session under the transfer.
    @ivar keepsRestart: a pending C{REST} offset survives it.
    @ivar features: its lines in the C{FEAT} reply, in order.
    """

    name: str
    preLogin: bool = False
    needsDataTLS: bool = False
    usesDataChannel: bool = False
    duringTransfer: NamedConstant = DuringTransfer.REFUSE
    refusal: int = 503
    keepsRestart: bool = False
    features: tuple[str, ...] = ()


def defaultFacts(name: str) -> CommandFacts:
    """
    The facts of a command that has no entry in the table: refused before
    login and during transfers, no C{FEAT} line.
    """
    return CommandFacts(name)


def commandTable(
    base: Mapping[str, CommandFacts] | None, *facts: CommandFacts
) -> Mapping[str, CommandFacts]:
    """
    A command table: C{base} with C{facts} added or replaced, in order.

    @param base: the table to start from (for example the protocol class's
        C{commands}), or C{None}.
    @param facts: entries to add; an entry replaces one of the same name.
    """
    table = dict(base or {})
    for fact in facts:
        table[fact.name] = fact
    return table


def _transfer(name: str, *features: str) -> CommandFacts:
    return CommandFacts(
        name,
        needsDataTLS=True,
        usesDataChannel=True,
        refusal=425,
        keepsRestart=name in ("RETR", "STOR", "APPE", "STOU"),
        features=features,
    )


def _dataSetup(name: str, *features: str) -> CommandFacts:
    return CommandFacts(
        name, usesDataChannel=True, refusal=425, keepsRestart=True, features=features
    )


def _file(name: str, *features: str, keepsRestart: bool = False) -> CommandFacts:
    return CommandFacts(name, refusal=450, keepsRestart=keepsRestart, features=features)


#: The commands of L{txftps.server.FTPSProtocol}. Its C{FEAT} reply lists
#: their features in this order.
COMMANDS: Mapping[str, CommandFacts] = commandTable(
    None,
    CommandFacts("AUTH", preLogin=True, features=("AUTH TLS",)),
    CommandFacts("PBSZ", preLogin=True, features=("PBSZ",)),
    CommandFacts("PROT", preLogin=True, features=("PROT",)),
    _dataSetup("EPSV", "EPSV"),
    _dataSetup("EPRT", "EPRT"),
    CommandFacts("OPTS", preLogin=True, keepsRestart=True, features=("UTF8",)),
    _file("SIZE", "SIZE", keepsRestart=True),
    _file("MDTM", "MDTM", keepsRestart=True),
    _file("MFMT", "MFMT"),
    CommandFacts("REST", keepsRestart=True, features=("REST STREAM",)),
    _file("MLST", "MLST type*;size*;modify*;perm*;unique*;"),
    CommandFacts("HOST", preLogin=True, features=("HOST",)),
    CommandFacts("CWD", features=("TVFS",)),
    CommandFacts("CCC", features=("CCC",)),
    CommandFacts("SSCN", features=("SSCN",)),
    _dataSetup("CPSV", "CPSV"),
    CommandFacts("USER", preLogin=True),
    CommandFacts("PASS", preLogin=True),
    CommandFacts("FEAT", preLogin=True, duringTransfer=DuringTransfer.ANSWER, keepsRestart=True),
    CommandFacts("SYST", preLogin=True),
    CommandFacts("HELP", preLogin=True, duringTransfer=DuringTransfer.ANSWER),
    CommandFacts("NOOP", preLogin=True, duringTransfer=DuringTransfer.ANSWER, keepsRestart=True),
    CommandFacts("QUIT", preLogin=True, duringTransfer=DuringTransfer.AFTER),
    CommandFacts("ABOR", duringTransfer=DuringTransfer.ANSWER),
    CommandFacts("STAT", duringTransfer=DuringTransfer.ANSWER, keepsRestart=True),
    CommandFacts("TYPE", keepsRestart=True),
    CommandFacts("MODE", keepsRestart=True),
    CommandFacts("STRU", keepsRestart=True),
    _dataSetup("PASV"),
    _dataSetup("PORT"),
    _transfer("LIST"),
    _transfer("NLST"),
    _transfer("MLSD"),
    _transfer("RETR"),
    _transfer("STOR"),
    _transfer("STOU"),
    _transfer("APPE"),
    _file("MKD"),
    _file("RMD"),
    _file("DELE"),
    _file("RNFR"),
    _file("RNTO"),
)
