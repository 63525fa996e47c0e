"""
Tests for L{txftps._policy}: the TLS and login rules, with no reactor and no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txftps._commands import COMMANDS, CommandFacts, DuringTransfer, commandTable
from txftps._policy import (
    AFTER_TRANSFER_COMMANDS,
    DATA_CONNECTION_COMMANDS,
    DURING_TRANSFER_COMMANDS,
    FILE_COMMANDS,
    PRE_LOGIN_COMMANDS,
    TRANSFER_COMMANDS,
    SessionPolicy,
    TLSRequirement,
)
from txftps._session import Session, Transfer
from txftps.errors import FTPReplyError

#: Commands that must not answer before login.
_POST_LOGIN_COMMANDS = (
    "PWD",
    "CWD",
    "CDUP",
    "LIST",
    "NLST",
    "MLSD",
    "RETR",
    "STOR",
    "STOU",
    "APPE",
    "MKD",
    "RMD",
    "DELE",
    "RNFR",
    "RNTO",
    "SIZE",
    "MDTM",
    "PASV",
    "EPSV",
    "PORT",
    "EPRT",
    "TYPE",
    "MODE",
    "STRU",
    "REST",
    "SITE",
    "XYZZY",
)


class SessionPolicyTests(SynchronousTestCase):
    """
    L{SessionPolicy} answers by returning or by raising L{FTPReplyError}.
    """

    def assertReply(self, code: int, f: Callable[..., Any], *args: Any) -> FTPReplyError:
        """
        Assert that C{f(*args)} raises L{FTPReplyError} with C{code}.
        """
        error = self.assertRaises(FTPReplyError, f, *args)
        self.assertEqual(error.code, code, f"expected {code}, got {error}")
        self.assertNotIn("\n", error.text)
        self.assertNotIn("\r", error.text)
        return error

    def test_defaultIsAll(self) -> None:
        """
        The default policy requires TLS on both channels (the C{--tls-required}
        default is C{all}).
        """
        policy = SessionPolicy()
        self.assertEqual(policy.tlsRequired, TLSRequirement.ALL)
        self.assertTrue(policy.controlRequired)
        self.assertTrue(policy.dataRequired)

    def test_requirementValues(self) -> None:
        """
        The accepted C{--tls-required} values are exactly none, control, data
        and all.
        """
        self.assertEqual(set(TLSRequirement.values), {"none", "control", "data", "all"})

    def test_invalidTLSRequiredRaisesValueError(self) -> None:
        """
        A C{tlsRequired} outside the four values is refused at construction
        with L{ValueError}, whose message names the accepted values.
        """
        for bad in ("bogus", "", "al", "None", None, "ALL "):
            error = self.assertRaises(ValueError, SessionPolicy, tlsRequired=bad)
            for value in TLSRequirement.values:
                self.assertIn(value, str(error))

    def test_loginMatrix(self) -> None:
        """
        C{checkLogin} raises 530 exactly when control TLS is required
        (C{control}, C{all}) and the control channel is not protected; data
        protection plays no part.
        """
        for required in TLSRequirement.values:
            policy = SessionPolicy(tlsRequired=required)
            for controlProtected in (False, True):
                for dataProtected in (False, True):
                    state = Session(
                        controlProtected=controlProtected,
                        pbszSeen=dataProtected,
                        dataProtected=dataProtected,
                    )
                    refused = required in ("control", "all") and not controlProtected
                    if refused:
                        self.assertReply(530, policy.checkLogin, state)
                    else:
                        self.assertIsNone(policy.checkLogin(state))

    def test_transferMatrix(self) -> None:
        """
        C{checkTransfer} raises 521 for every transfer command exactly when
        data TLS is required (C{data}, C{all}) and C{PROT P} is not in force,
        whether or not the control channel is protected.
        """
        self.assertEqual(
            TRANSFER_COMMANDS, {"LIST", "NLST", "MLSD", "RETR", "STOR", "STOU", "APPE"}
        )
        for required in TLSRequirement.values:
            policy = SessionPolicy(tlsRequired=required)
            for command in sorted(TRANSFER_COMMANDS):
                for controlProtected in (False, True):
                    for dataProtected in (False, True):
                        state = Session(
                            controlProtected=controlProtected,
                            pbszSeen=controlProtected,
                            dataProtected=dataProtected,
                            loggedIn=True,
                        )
                        refused = required in ("data", "all") and not dataProtected
                        if refused:
                            self.assertReply(521, policy.checkTransfer, command, state)
                        else:
                            self.assertIsNone(policy.checkTransfer(command, state))

    def test_controlOnlyAllowsClearData(self) -> None:
        """
        With C{control}, a logged-in session over TLS may transfer with
        C{PROT C}; with C{data}, a plaintext login is allowed.
        """
        state = Session(controlProtected=True, pbszSeen=True, loggedIn=True)
        SessionPolicy(tlsRequired="control").checkTransfer("RETR", state)
        SessionPolicy(tlsRequired="data").checkLogin(Session())

    def test_preLoginAllowList(self) -> None:
        """
        Before login, exactly the commands needed to set up TLS and log in (and
        harmless informational ones) answer; everything else gets 530.
        """
        self.assertEqual(
            PRE_LOGIN_COMMANDS,
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
            },
        )
        for required in TLSRequirement.values:
            policy = SessionPolicy(tlsRequired=required)
            for controlProtected in (False, True):
                state = Session(controlProtected=controlProtected)
                for command in sorted(PRE_LOGIN_COMMANDS):
                    self.assertIsNone(policy.checkCommand(command, state))
                for command in _POST_LOGIN_COMMANDS:
                    self.assertReply(530, policy.checkCommand, command, state)

    def test_everythingPassesAfterLogin(self) -> None:
        """
        After login C{checkCommand} lets every command through (unknown ones
        are the protocol's business: 502).
        """
        for required in TLSRequirement.values:
            policy = SessionPolicy(tlsRequired=required)
            state = Session(loggedIn=True)
            for command in (*sorted(PRE_LOGIN_COMMANDS), *_POST_LOGIN_COMMANDS):
                self.assertIsNone(policy.checkCommand(command, state))

    def test_factsFromTheTable(self) -> None:
        """
        The policy follows the command facts it is given: a command the
        table marks as answering before login runs before login, and one the
        table does not know is refused (530) like any other.
        """
        policy = SessionPolicy(tlsRequired="none")
        table = commandTable(COMMANDS, CommandFacts("XCRC", preLogin=True))
        policy.checkCommand("XCRC", Session(), table["XCRC"])
        self.assertReply(530, policy.checkCommand, "XSHA", Session())
        self.assertEqual(PRE_LOGIN_COMMANDS, {name for name, f in COMMANDS.items() if f.preLogin})

    def test_duringTransfer(self) -> None:
        """
        While a transfer runs, C{checkCommand} lets through only ABOR, STAT,
        NOOP, FEAT, HELP and QUIT (which the protocol holds until the
        transfer's reply); it refuses data-connection and transfer commands
        with 425, file commands with 450 and every other command (session
        state, unknown verbs) with 503.
        """
        self.assertEqual(DURING_TRANSFER_COMMANDS, {"ABOR", "STAT", "NOOP", "FEAT", "HELP"})
        self.assertEqual(AFTER_TRANSFER_COMMANDS, {"QUIT"})
        policy = SessionPolicy(tlsRequired="none")
        state = Session(loggedIn=True, transfer=Transfer("RETR", ["f"]))
        for command in ("ABOR", "STAT", "NOOP", "FEAT", "HELP", "QUIT"):
            self.assertIsNone(policy.checkCommand(command, state))
        for command in ("PASV", "EPSV", "PORT", "EPRT", *sorted(TRANSFER_COMMANDS)):
            self.assertIn(command, DATA_CONNECTION_COMMANDS | TRANSFER_COMMANDS)
            self.assertReply(425, policy.checkCommand, command, state)
        for command in ("DELE", "RNFR", "RNTO", "MKD", "RMD", "SIZE", "MDTM", "MLST", "MFMT"):
            self.assertIn(command, FILE_COMMANDS)
            self.assertReply(450, policy.checkCommand, command, state)
        for command in ("REST", "TYPE", "PROT", "PBSZ", "CWD", "USER", "REIN", "XYZZY"):
            self.assertReply(503, policy.checkCommand, command, state)
        state.transfer = None
        for command in ("PASV", "DELE", "REST"):
            self.assertIsNone(policy.checkCommand(command, state))

    def test_customDuringTransfer(self) -> None:
        """
        The facts given for a command decide what happens to it during a
        transfer: answered, or refused with its own code.
        """
        policy = SessionPolicy(tlsRequired="none")
        state = Session(loggedIn=True, transfer=Transfer("RETR", ["f"]))
        policy.checkCommand(
            "PWD", state, CommandFacts("PWD", duringTransfer=DuringTransfer.ANSWER)
        )
        self.assertReply(
            450, policy.checkCommand, "NOOP", state, CommandFacts("NOOP", refusal=450)
        )

    def test_policyIsImmutable(self) -> None:
        """
        A policy is shared by every connection of a server, so it cannot be
        changed after construction.
        """
        policy = SessionPolicy(tlsRequired="none")
        self.assertRaises(FrozenInstanceError, setattr, policy, "tlsRequired", "all")
        self.assertEqual(policy.tlsRequired, "none")
