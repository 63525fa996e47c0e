# -*- test-case-name: tests.test_server -*-
"""
Errors that carry their FTP reply.

Every layer raises L{FTPReplyError} (or a subclass) with the reply the client
should get; the protocol interpreter turns it into a reply line in one place.
"""

from __future__ import annotations

__all__ = ["FTPReplyError", "DataChannelRefused"]


class FTPReplyError(Exception):
    """
    A command failed; the client gets C{code} and C{text}.

    @ivar code: the three-digit FTP reply code.
    @ivar text: the reply text (one line, no CR or LF).
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class DataChannelRefused(FTPReplyError):
    """
    A data connection did not become ready: it never came, came from a
    foreign address, failed its TLS handshake or did not resume the control
    connection's TLS session.
    """
