# -*- test-case-name: tests.test_server -*-
"""
Informational and transfer-parameter commands of the protocol interpreter:
FEAT, OPTS, SYST, NOOP, HELP, QUIT, TYPE, MODE and STRU.
"""

from __future__ import annotations

from txftps._interpreter import ProtocolInterpreter
from txftps._listing import MLST_FACTS
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
