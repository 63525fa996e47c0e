# -*- test-case-name: tests.test_testing -*-
"""
Test your FTPS code against a real txftps server, under C{trial}.

L{FTPSTestServer} is the real server listening on loopback inside the test's
reactor, with a throwaway certificate authority whose certificate your code
trusts, users with passwords or client certificates, a tree in a temporary
directory (or a L{MemoryFilesystem}) and a L{SessionRecord} of logins,
commands, replies and transfers to assert on. L{Misbehaviour} switches make
it misbehave the way real servers do, so that you can test your error
handling. L{MemoryShell} is an in-memory L{IFTPShell<twisted.protocols.ftp.IFTPShell>} for servers of your
own. See C{docs/testing.md}.

Usage::

    from twisted.internet import reactor, threads
    from twisted.trial.unittest import TestCase
    from txftps.testing import FTPSTestServer

    class DownloadTests(TestCase):
        def setUp(self):
            self.server = FTPSTestServer(
                reactor, users={"alice": "secret"}, files={"in/a.txt": b"hello"}
            )
            self.addCleanup(self.server.stop)
            return self.server.start()

        def test_download(self):
            d = threads.deferToThread(download, self.server.url("in/a.txt", "alice"))
            ...
"""

from txftps._testing.ca import CertificateAuthority, IssuedCertificate
from txftps._testing.memoryshell import MemoryFilesystem, MemoryShell
from txftps._testing.misbehaviour import Misbehaviour
from txftps._testing.record import Command, Login, Reply, SessionRecord, Transfer
from txftps._testing.server import FTPSTestServer

__all__ = [
    "CertificateAuthority",
    "Command",
    "FTPSTestServer",
    "IssuedCertificate",
    "Login",
    "MemoryFilesystem",
    "MemoryShell",
    "Misbehaviour",
    "Reply",
    "SessionRecord",
    "Transfer",
]
