# -*- test-case-name: tests.test_server -*-
"""
Informational, transfer-parameter and session commands of the protocol
interpreter: FEAT, OPTS, SYST, NOOP, HELP, QUIT, TYPE, MODE, STRU, SITE,
HOST, REIN, CCC and CDC.
"""

from __future__ import annotations

from typing import Any

from txftps._ccc import clearControlChannel
from txftps._interpreter import ProtocolInterpreter
from txftps._listing import MLST_FACTS, printableName
from txftps.errors import FTPReplyError


class InformationCommands(ProtocolInterpreter):
    """
    The commands that tell the client about the server and set transfer
    parameters.
    """

    def ftp_FEAT(self, argument: str) -> None:
        self.reply(211, "\n".join(["Features:", *self.featureLines(), "End"]))

    def featureLines(self) -> list[str]:
        """
        The C{FEAT} lines: the features of every command in the command
        table that this protocol has a handler for and offers now (see
        L{offers}), in table order; the MLST line marks the facts selected
        with C{OPTS MLST}.
        """
        facts = "".join(f + ("*;" if f in self.session.mlstFacts else ";") for f in MLST_FACTS)
        lines = []
        for command in self.commands.values():
            if not hasattr(self, "ftp_" + command.name) or not self.offers(command.name):
                continue
            for feature in command.features:
                lines.append(f"MLST {facts}" if feature.startswith("MLST ") else feature)
        return lines

    def offers(self, command: str) -> bool:
        """
        Is C{command} offered on this connection now? C{CCC} only when the
        operator allows it and the connection is explicit, C{SSCN} and
        C{CPSV} only with C{--allow-fxp}; everything else always. Override it to offer a command under conditions of yours.
        """
        if command == "CCC":
            return self.settings.allowCCC and not self.session.implicit
        if command in ("SSCN", "CPSV"):
            return self.settings.allowFXP
        return True

    def ftp_OPTS(self, argument: str) -> None:
        option = argument.strip().upper()
        if option in ("UTF8 ON", "UTF-8 ON"):
            self.reply(200, "UTF8 mode is always on.")
        elif option.startswith("MLST"):
            wanted = option[4:].strip().lower().split(";")
            self.session.mlstFacts = tuple(f for f in MLST_FACTS if f in wanted)
            self.reply(200, "MLST OPTS " + "".join(f + ";" for f in self.session.mlstFacts))
        else:
            raise FTPReplyError(501, "Option not understood.")

    def ftp_SYST(self, argument: str) -> None:
        self.reply(215, "UNIX Type: L8")

    def ftp_NOOP(self, argument: str) -> None:
        self.reply(200, "NOOP ok.")

    def ftp_HELP(self, argument: str) -> None:
        names = sorted(name[4:] for name in dir(self) if name.startswith("ftp_"))
        self.reply(214, "\n".join(["Commands:", " ".join(names), "Help ok."]))

    def ftp_QUIT(self, argument: str) -> None:
        self.reply(221, "Goodbye.")
        self._close()

    def ftp_TYPE(self, argument: str) -> None:
        kind = argument.strip().upper()
        if kind in ("I", "L 8", "A", "A N"):
            self.session.binary = kind in ("I", "L 8")
            self.reply(200, f"Type set to {kind}.")
        else:
            raise FTPReplyError(504, f"Type {kind} not supported.")

    def ftp_MODE(self, argument: str) -> None:
        if argument.strip().upper() != "S":
            raise FTPReplyError(504, "Only MODE S is supported.")
        self.reply(200, "Mode set to S.")

    def ftp_STRU(self, argument: str) -> None:
        if argument.strip().upper() != "F":
            raise FTPReplyError(504, "Only STRU F is supported.")
        self.reply(200, "Structure set to F.")

    # SITE, HOST, REIN, CCC, CDC

    def ftp_SITE(self, argument: str) -> Any:
        if not self._writable():
            raise FTPReplyError(550, "SITE commands are not allowed for this user.")
        name, _, rest = argument.strip().partition(" ")
        handler = getattr(self, "site_" + name.upper(), None)
        if not name or handler is None:
            raise FTPReplyError(504, f"SITE {name.upper()} not understood; try SITE HELP.")
        return handler(rest)

    def site_HELP(self, argument: str) -> None:
        names = sorted(n[5:] for n in dir(self) if n.startswith("site_"))
        self.reply(214, "\n".join(["SITE commands:", " ".join(names), "End."]))

    def ftp_HOST(self, argument: str) -> None:
        if self.session.loggedIn or self.session.user is not None:
            raise FTPReplyError(503, "HOST must come before USER.")
        if not argument.strip() or not printableName(argument.strip()):
            raise FTPReplyError(501, "HOST needs a host name.")
        self.reply(220, "Host accepted.")

    def ftp_REIN(self, argument: str) -> None:
        self._logoutShell()
        self.session.reinitialize()
        if self.dataChannel is not None:
            self.dataChannel.reset()
        # A protected channel is never downgraded by REIN.
        channel = "TLS is still on" if self.session.controlProtected else "the channel is clear"
        self.reply(220, f"Session reinitialized; {channel}. Log in again.")

    def ftp_CCC(self, argument: str) -> None:
        if not self.session.controlProtected:
            raise FTPReplyError(533, "The control channel is not protected.")
        if not self.settings.allowCCC or self.session.implicit:
            raise FTPReplyError(534, "CCC is refused by the server policy.")
        self.reply(200, "CCC accepted; the control channel returns to plaintext.")
        self.session.cleared = True
        self.session.controlProtected = False
        clearControlChannel(self)

    def ftp_CDC(self, argument: str) -> None:
        self.ftp_PROT("C")
