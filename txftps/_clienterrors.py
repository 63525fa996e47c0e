# -*- test-case-name: tests.test_client -*-
"""
The exceptions of the FTPS client (L{txftps.client}).

Every failure a caller can act on is one of these: a server reply that says
no (L{FTPCommandError}, with the reply code and text), a TLS trust failure
(L{CertificateError}), a transfer that did not end cleanly
(L{TransferTruncated}), a timeout, or a lost control connection.
"""

from __future__ import annotations


class FTPClientError(Exception):
    """
    Base class of every error the FTPS client raises.
    """


class FTPCommandError(FTPClientError):
    """
    The server answered a command with a failure reply (4xx or 5xx), or with
    a reply the client did not expect.

    @ivar code: the three-digit reply code.
    @ivar lines: the reply's lines, without CR LF.
    @ivar command: the command that got this reply (a password is masked).
    """

    def __init__(self, code: int, lines: list[str], command: str = "") -> None:
        super().__init__(code, lines, command)
        self.code = code
        self.lines = lines
        self.command = command

    @property
    def text(self) -> str:
        """
        The reply's first line without its code, e.g. C{"No such file"}.
        """
        first = self.lines[0] if self.lines else ""
        return first[4:] if first[:3].isdigit() else first

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class CertificateError(FTPClientError):
    """
    The server's certificate was refused: not trusted by the CA, not valid
    for the host name, or not matching the pinned fingerprint.

    @ivar reason: a short explanation, e.g. C{"certificate not trusted
        (self-signed certificate)"}.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class TransferTruncated(FTPClientError):
    """
    A data connection ended without a TLS close_notify, or the server's final
    reply was missing: the transfer may be incomplete.
    """


class FTPTimeoutError(FTPClientError):
    """
    The server did not answer, or a data connection stalled, for longer than
    the configured timeout.
    """


class ControlConnectionLost(FTPClientError):
    """
    The control connection closed while a reply was expected.
    """


class UnsupportedFeature(FTPClientError):
    """
    The server lacks an extension an operation needs (e.g. SSCN or CPSV for a
    protected server-to-server copy).
    """
