# -*- test-case-name: tests.test_client -*-
"""
An FTPS client for Twisted.

Explicit (C{AUTH TLS}) and implicit FTPS; the server's certificate and host
name verified by default; every data connection resumes the control
connection's TLS session (so servers that require it, such as vsftpd with
C{require_ssl_reuse=YES}, accept it); EPSV with PASV fallback or active
mode; MLSD listings with a LIST fallback; resumable transfers; clean ABOR on
cancellation::

    from twisted.internet.defer import Deferred
    from twisted.internet.task import react
    from txftps.client import ClientTLS, connect

    async def main(reactor):
        client = await connect(reactor, "ftp://alice:secret@ftp.example.com/",
                               ClientTLS(caFile="ca.pem"))
        for entry in await client.list():
            print(entry.name, entry.size)
        await client.retrieveFile("report.pdf", "report.pdf")
        await client.quit()

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""

from txftps._clientconnect import FTPURL, connect, connectEndpoint
from txftps._clienterrors import (
    CertificateError,
    ControlConnectionLost,
    FTPClientError,
    FTPCommandError,
    FTPTimeoutError,
    TransferTruncated,
    UnsupportedFeature,
)
from txftps._clientfiles import FileConsumer, FileProducer
from txftps._clientfxp import copyBetweenServers
from txftps._clientlisting import RemoteEntry, parseLIST, parseMLSD
from txftps._clientprotocol import FTPControlProtocol, Reply
from txftps._clientsession import FTPSClient
from txftps._clienttls import ClientTLS, TLSSession, normalizeFingerprint

__all__ = [
    "FTPURL",
    "CertificateError",
    "ClientTLS",
    "ControlConnectionLost",
    "FTPClientError",
    "FTPCommandError",
    "FTPControlProtocol",
    "FTPSClient",
    "FTPTimeoutError",
    "FileConsumer",
    "FileProducer",
    "RemoteEntry",
    "Reply",
    "TLSSession",
    "TransferTruncated",
    "UnsupportedFeature",
    "connect",
    "connectEndpoint",
    "copyBetweenServers",
    "normalizeFingerprint",
    "parseLIST",
    "parseMLSD",
]
