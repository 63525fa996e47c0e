# -*- test-case-name: tests -*-
"""
txftps: FTPS for Twisted.

A server framework (L{txftps.server.FTPSFactory}, L{txftps.server.FTPSProtocol})
serving Twisted L{twisted.protocols.ftp.IFTPShell} avatars over explicit and
implicit FTPS, and the C{twistd ftps} service (L{txftps.tap}).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
