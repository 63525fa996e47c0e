"""
Testing your own FTPS code with txftps.testing, under trial.

C{fetch} below stands for the code you want to test: it downloads one file
over explicit FTPS with Python's ftplib and must never return a short or
broken file. The tests start a real txftps server on loopback in trial's
reactor, point C{fetch} at it, and make the server misbehave to check that
every failure becomes a L{DownloadFailed}.

Run it with::

    trial docs/examples/testing_example.py
"""

from __future__ import annotations

import ftplib
import ssl
from typing import Any

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from txftps.testing import FTPSTestServer, Misbehaviour

# The code under test.


class DownloadFailed(Exception):
    """
    The file could not be fetched whole.
    """


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """
    ftplib that resumes the control connection's TLS session on data
    connections, as FTPS servers expect (CPython gh-63699).
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[Any, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn,
                server_hostname=self.host,
                session=self.sock.session,  # type: ignore[attr-defined]
            )
        return conn, size


def fetch(
    host: str, port: int, user: str, password: str, path: str, context: ssl.SSLContext
) -> bytes:
    """
    Download C{path}, checked against the size the server announces.

    @raise DownloadFailed: for any failure, including a short download.
    """
    try:
        client = ReusingFTP_TLS(context=context, timeout=10)
        client.connect(host, port)
        client.auth()
        client.login(user, password)
        client.prot_p()
        client.voidcmd("TYPE I")
        size = client.size(path)
        chunks: list[bytes] = []
        client.retrbinary(f"RETR {path}", chunks.append)
        client.quit()
    except (*ftplib.all_errors, ssl.SSLError) as e:
        raise DownloadFailed(str(e)) from e
    data = b"".join(chunks)
    if size is not None and len(data) != size:
        raise DownloadFailed(f"got {len(data)} of {size} bytes")
    return data


# Its tests.

REPORT = b"quarterly numbers\n" * 10_000


class FetchTests(TestCase):
    """
    C{fetch} against a real FTPS server, well-behaved and not.
    """

    def setUp(self) -> Any:
        self.server = FTPSTestServer(
            reactor, users={"alice": "secret"}, files={"reports/q3.txt": REPORT}
        )
        self.addCleanup(self.server.stop)
        return self.server.start()

    def fetch(self, path: str = "reports/q3.txt", password: str = "secret") -> Any:
        # ftplib blocks: run it in a thread while the server runs in the reactor.
        return threads.deferToThread(
            fetch,
            self.server.host,
            self.server.port,
            "alice",
            password,
            path,
            self.server.clientContext(),
        )

    def test_fetch(self) -> Any:
        """
        The whole file arrives, and the server saw one complete download.
        """

        def check(data: bytes) -> None:
            self.assertEqual(data, REPORT)
            [transfer] = self.server.record.transfers
            self.assertEqual(transfer.path, "/reports/q3.txt")
            self.assertEqual(transfer.bytes, len(REPORT))
            self.assertTrue(transfer.completed)

        return self.fetch().addCallback(check)

    def test_wrongPassword(self) -> Any:
        """
        A refused login is a L{DownloadFailed}.
        """
        return self.assertFailure(self.fetch(password="guess"), DownloadFailed)

    def test_missingFile(self) -> Any:
        """
        A missing file is a L{DownloadFailed}.
        """
        return self.assertFailure(self.fetch("reports/q4.txt"), DownloadFailed)

    def test_truncatedDownload(self) -> Any:
        """
        A server that cuts the download short and still says 226 does not
        make C{fetch} return a short file.
        """
        self.server.misbehaviour = Misbehaviour(truncateDownloadsAt=1000)
        return self.assertFailure(self.fetch(), DownloadFailed)

    def test_serverHangsUp(self) -> Any:
        """
        A 421 in the middle of the session is a L{DownloadFailed}.
        """
        self.server.misbehaviour = Misbehaviour(closeAfterCommands=7)
        return self.assertFailure(self.fetch(), DownloadFailed)

    def test_passiveRefused(self) -> Any:
        """
        A server that refuses passive mode is a L{DownloadFailed}.
        """
        self.server.misbehaviour = Misbehaviour(refusePassive=True)
        return self.assertFailure(self.fetch(), DownloadFailed)

    def test_slowServer(self) -> Any:
        """
        A slow data connection still delivers the whole file.
        """
        self.server.misbehaviour = Misbehaviour(slowDataChunk=64_000, slowDataInterval=0.01)
        return self.fetch().addCallback(self.assertEqual, REPORT)
