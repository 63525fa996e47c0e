# -*- test-case-name: tests -*-
"""
txftps: FTPS for Twisted.

A server framework (L{txftps.server.FTPSFactory}, L{txftps.server.FTPSProtocol})
serving Twisted L{twisted.protocols.ftp.IFTPShell} avatars over explicit and
implicit FTPS, the C{twistd ftps} service (L{txftps.tap}), and an FTPS client
(L{txftps.client} and the C{txftps} command).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
