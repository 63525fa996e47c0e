"""
Interoperability tests: the real C{twistd -n ftps} in a subprocess, driven by
real clients (curl, lftp, Python's ftplib, a hand-made TLS 1.3 upload client
and a GnuTLS client with FileZilla's TLS settings), comparing bytes.

Every client verifies the server certificate against the throwaway CA of
L{support.TwistdServer}. Each test starts its own server: trial does not call
C{setUpClass}, and a server starts in well under a second.
"""

from __future__ import annotations

import ftplib
import hashlib
import os
import select
import socket
import ssl
import subprocess
from typing import Any

from tests import gnutlsclient, support
from tests.support import readFile, readTree, writeFile

USER = "alice"
PASSWORD = "secret"


def randomBytes(size: int) -> bytes:
    """
    C{size} random bytes: content no transfer can get right by accident.
    """
    return os.urandom(size)


def writeTree(base: str, files: dict[str, bytes | None]) -> None:
    """
    Create C{files} under C{base}: relative paths (with C{/}) to contents, or
    C{None} for a directory.
    """
    os.makedirs(base, exist_ok=True)
    for relative, data in files.items():
        path = os.path.join(base, *relative.split("/"))
        if data is None:
            os.makedirs(path, exist_ok=True)
        else:
            writeFile(path, data)


def describeTree(tree: dict[str, bytes | None]) -> dict[str, str]:
    """
    A readable summary of a tree: sizes and digests instead of contents.
    """
    return {
        name: "dir"
        if data is None
        else f"{len(data)} bytes sha256={hashlib.sha256(data).hexdigest()[:16]}"
        for name, data in sorted(tree.items())
    }


def finalReply(client: ftplib.FTP) -> str:
    """
    Read the next reply on the control connection, whatever its code (ftplib
    raises on 4xx/5xx; the text is the reply either way).
    """
    try:
        return client.getresp()
    except ftplib.Error as e:
        return str(e)


class InteropTestCase(support.ServerLogTestCase):
    """
    Starts a server with user C{alice} (and anonymous access to the root) for
    each test, and offers byte comparisons that keep failure messages short.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.server = self.startServer(*self.serverArgs)
        self.local = os.path.abspath(self.mktemp())
        os.makedirs(self.local)

    def startServer(self, *extraArgs: str) -> support.TwistdServer:
        server = support.TwistdServer(*extraArgs, users={USER: PASSWORD})
        server.start()
        self.addCleanup(server.stop)
        return server

    def serverLog(self, tail: int = 6000) -> str:
        return "\n--- server log (tail) ---\n" + self.server.log()[-tail:]

    def assertSameTree(
        self, actual: dict[str, bytes | None], expected: dict[str, bytes | None], what: str
    ) -> None:
        if actual != expected:
            self.fail(
                f"{what}: trees differ\n got:      {describeTree(actual)}\n"
                f" expected: {describeTree(expected)}" + self.serverLog()
            )


class CurlExplicitTests(InteropTestCase):
    """
    curl with C{--ssl-reqd ftp://}: AUTH TLS on the explicit port.
    """

    implicit = False

    def setUp(self) -> None:
        super().setUp()
        self.small = b"small file\r\nwith a CRLF and \x00 a NUL\n"
        self.big = randomBytes(3 * 1024 * 1024 + 17)
        writeFile(os.path.join(self.server.root, "small.txt"), self.small)
        writeFile(os.path.join(self.server.root, "big.bin"), self.big)
        os.mkdir(os.path.join(self.server.root, "subdir"))

    def curl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return support.curl(self.server, *args, implicit=self.implicit, **kwargs)

    def test_list(self) -> None:
        """
        A directory URL makes curl send LIST over a protected data connection;
        every line is a long listing whose last field is one of the root's
        entries, and there is one line per entry, directories marked C{d}.
        """
        result = self.curl(path="/")
        self.assertSucceeded(result, "curl LIST")
        lines = result.stdout.decode("utf-8").splitlines()
        names = {line.split()[-1]: line for line in lines}
        self.assertEqual(sorted(names), ["big.bin", "small.txt", "subdir"], lines)
        self.assertEqual(len(lines), 3, lines)
        self.assertTrue(names["subdir"].startswith("d"), names["subdir"])
        self.assertTrue(names["big.bin"].startswith("-"), names["big.bin"])
        self.assertIn(str(len(self.big)), names["big.bin"].split())

    def test_nameList(self) -> None:
        """
        C{curl -l} sends NLST: exactly the root's entry names, one a line.
        """
        result = self.curl("-l", path="/")
        self.assertSucceeded(result, "curl NLST")
        self.assertEqual(
            sorted(result.stdout.decode("utf-8").splitlines()),
            ["big.bin", "small.txt", "subdir"],
        )

    def test_download(self) -> None:
        """
        RETR of a 3 MiB random file delivers exactly its bytes; a small file
        with CR, LF and NUL comes back unchanged (binary mode).
        """
        result = self.curl(path="/big.bin")
        self.assertSucceeded(result, "curl RETR big.bin")
        self.assertSameBytes(result.stdout, self.big, "downloaded big.bin")
        result = self.curl(path="/small.txt")
        self.assertSucceeded(result, "curl RETR small.txt")
        self.assertSameBytes(result.stdout, self.small, "downloaded small.txt")

    def test_upload(self) -> None:
        """
        C{curl -T} as a user stores a 3 MiB random file byte-identical in the
        user's home (created on first login), under the name in the URL, and
        leaves nothing else there.
        """
        source = writeFile(os.path.join(self.local, "source.bin"), self.big)
        result = self.curl("-T", source, path="/uploaded.bin", user=f"{USER}:{PASSWORD}")
        self.assertSucceeded(result, "curl -T")
        home = self.server.userHome(USER)
        self.assertEqual(sorted(os.listdir(home)), ["uploaded.bin"])
        self.assertSameBytes(
            readFile(os.path.join(home, "uploaded.bin")), self.big, "uploaded file"
        )

    def test_uploadThenDownload(self) -> None:
        """
        A file a user uploaded with curl comes back byte-identical when the
        same user downloads it with curl.
        """
        data = randomBytes(512 * 1024 + 3)
        source = writeFile(os.path.join(self.local, "roundtrip.bin"), data)
        login = f"{USER}:{PASSWORD}"
        self.assertSucceeded(self.curl("-T", source, path="/rt.bin", user=login), "upload")
        result = self.curl(path="/rt.bin", user=login)
        self.assertSucceeded(result, "download")
        self.assertSameBytes(result.stdout, data, "round trip")


class CurlImplicitTests(CurlExplicitTests):
    """
    curl with C{ftps://}: implicit FTPS, TLS from the first byte.
    """

    implicit = True


class LftpMirrorTests(InteropTestCase):
    """
    lftp C{mirror -R} a tree up into a user's home, then C{mirror} it down.
    """

    def tree(self) -> dict[str, bytes | None]:
        return {
            "readme.txt": b"hello from lftp\n",
            "big.bin": randomBytes(1024 * 1024 + 5),
            "empty.dat": b"",
            "nested": None,
            "nested/inner.txt": b"inner\r\nfile\n",
            "nested/deeper": None,
            "nested/deeper/data.bin": randomBytes(70_000),
            "emptydir": None,
        }

    def mirrorRoundTrip(self, implicit: bool) -> None:
        source = os.path.join(self.local, "source")
        target = os.path.join(self.local, "target")
        tree = self.tree()
        writeTree(source, tree)
        login = f"{USER},{PASSWORD}"
        result = support.lftp(
            self.server, f"mirror -R {source} uptree", implicit=implicit, user=login
        )
        self.assertSucceeded(result, "lftp mirror -R")
        uploaded = readTree(os.path.join(self.server.userHome(USER), "uptree"))
        self.assertSameTree(uploaded, tree, "tree on the server after mirror -R")
        result = support.lftp(
            self.server, f"mirror uptree {target}", implicit=implicit, user=login
        )
        self.assertSucceeded(result, "lftp mirror")
        self.assertSameTree(readTree(target), tree, "tree mirrored back down")

    def test_mirrorExplicit(self) -> None:
        """
        Over explicit FTPS, lftp's C{mirror -R} stores a tree (nested
        directories, an empty file and directory, a 1 MiB random file)
        byte-identical in the user's home, and C{mirror} brings the same tree
        back.
        """
        self.mirrorRoundTrip(implicit=False)

    def test_mirrorImplicit(self) -> None:
        """
        The same round trip over implicit FTPS (C{ftps://}).
        """
        self.mirrorRoundTrip(implicit=True)


class FtplibSessionReuseTests(InteropTestCase):
    """
    Python's ftplib with the session-resuming subclass L{support.ReusingFTP_TLS}
    against the default C{--session-reuse required}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.data = randomBytes(1024 * 1024 + 11)
        writeFile(os.path.join(self.server.root, "file.bin"), self.data)
        writeFile(os.path.join(self.server.root, "other.txt"), b"x")

    def client(self, user: str = "anonymous", password: str = "a@b") -> ftplib.FTP_TLS:
        client = support.ftplibClient(self.server, user, password)
        self.addCleanup(client.close)
        return client

    def test_nlst(self) -> None:
        """
        C{nlst()} returns exactly the root's names.
        """
        self.assertEqual(sorted(self.client().nlst()), ["file.bin", "other.txt"])

    def test_retrbinary(self) -> None:
        """
        C{retrbinary} of a 1 MiB random file delivers exactly its bytes and
        ends with 226.
        """
        client = self.client()
        chunks: list[bytes] = []
        reply = client.retrbinary("RETR file.bin", chunks.append)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertSameBytes(b"".join(chunks), self.data, "retrbinary")

    def test_storbinary(self) -> None:
        """
        C{storbinary} as a user stores a 1 MiB random file byte-identical in
        the user's home; C{retrbinary} of it on the same control connection
        brings the same bytes back (a second resumed data connection).
        """
        client = self.client(USER, PASSWORD)
        data = randomBytes(1024 * 1024 + 7)
        source = writeFile(os.path.join(self.local, "up.bin"), data)
        with open(source, "rb") as f:
            reply = client.storbinary("STOR up.bin", f)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertSameBytes(
            readFile(os.path.join(self.server.userHome(USER), "up.bin")), data, "stored"
        )
        chunks: list[bytes] = []
        client.retrbinary("RETR up.bin", chunks.append)
        self.assertSameBytes(b"".join(chunks), data, "read back")


class StockFtplibRequiredTests(InteropTestCase):
    """
    Stock C{ftplib.FTP_TLS}, which never resumes the control connection's TLS
    session on data connections, against the default
    C{--session-reuse required}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.data = randomBytes(1024 * 1024)
        writeFile(os.path.join(self.server.root, "file.bin"), self.data)

    def refusedDownload(self, context: ssl.SSLContext) -> None:
        client = ftplib.FTP_TLS(context=context, timeout=10)
        self.addCleanup(client.close)
        client.connect("127.0.0.1", self.server.explicitPort)
        client.auth()
        client.login("anonymous", "a@b")
        client.prot_p()
        chunks: list[bytes] = []
        try:
            reply = client.retrbinary("RETR file.bin", chunks.append)
        except ftplib.error_perm as e:
            # The data socket ended cleanly and ftplib read the reply itself.
            reply = str(e)
        except (OSError, EOFError):
            # BrokenPipe, ConnectionReset or an SSL error on the data socket;
            # the reply is still waiting on the control connection.
            reply = finalReply(client)
        else:
            self.fail(f"retrbinary succeeded without session reuse: {reply!r}")
        self.assertTrue(reply.startswith("522"), reply + self.serverLog())
        self.assertEqual(sum(map(len, chunks)), 0, "file bytes reached the client")
        # The control connection is still usable afterwards.
        self.assertTrue(client.voidcmd("NOOP").startswith("200"))

    def test_refusedTLS13(self) -> None:
        """
        A TLS 1.3 data connection that does not resume the control session:
        RETR fails, the control connection answers 522, and not one byte of
        the file reaches the client.
        """
        context = self.server.ca.clientContext()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.refusedDownload(context)

    def test_refusedTLS12(self) -> None:
        """
        The same with TLS 1.2 on both connections: 522 and zero bytes.
        """
        context = self.server.ca.clientContext()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.refusedDownload(context)


class StockFtplibOptionalTests(InteropTestCase):
    """
    Stock C{ftplib.FTP_TLS} against C{--session-reuse optional}.
    """

    serverArgs = ("--session-reuse", "optional")

    def test_download(self) -> None:
        """
        With C{--session-reuse optional} a data connection that does a full
        handshake is accepted: C{nlst()} and C{retrbinary} of a 1 MiB random
        file work and deliver exact bytes.
        """
        data = randomBytes(1024 * 1024 + 1)
        writeFile(os.path.join(self.server.root, "file.bin"), data)
        client = support.ftplibClient(self.server, cls=ftplib.FTP_TLS)
        self.addCleanup(client.close)
        self.assertEqual(client.nlst(), ["file.bin"])
        chunks: list[bytes] = []
        reply = client.retrbinary("RETR file.bin", chunks.append)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertSameBytes(b"".join(chunks), data, "stock ftplib download")


class CurlRepeatedUploadTests(InteropTestCase):
    """
    curl uploads with the TLS version pinned, many times in a row: none may
    fail or lose its tail.

    An upload client that leaves the server's TLS 1.3 session tickets unread
    closes with a TCP reset that destroys the tail of its upload. curl 7.88
    happens to read once before its close (curl issue 6149), so these tests
    alone do not catch a server that sends the tickets; L{RawTLS13UploadTests}
    does.
    """

    def repeatUploads(self, count: int, tlsArgs: tuple[str, ...], version: str) -> None:
        login = f"{USER}:{PASSWORD}"
        home = self.server.userHome(USER)
        for i in range(count):
            data = randomBytes(2 * 1024 * 1024)
            source = writeFile(os.path.join(self.local, f"up{i}.bin"), data)
            result = support.curl(
                self.server, "-v", *tlsArgs, "-T", source, path=f"/up{i}.bin", user=login
            )
            self.assertSucceeded(result, f"upload {i + 1} of {count}")
            if i == 0:
                self.assertIn(f"SSL connection using {version}".encode(), result.stderr)
            self.assertSameBytes(
                readFile(os.path.join(home, f"up{i}.bin")), data, f"upload {i + 1} of {count}"
            )
        self.assertEqual(sorted(os.listdir(home)), sorted(f"up{i}.bin" for i in range(count)))

    def test_tls13(self) -> None:
        """
        25 consecutive 2 MiB uploads with curl forced to TLS 1.3 all exit 0
        and land byte-identical, with no stray files.
        """
        self.repeatUploads(25, ("--tlsv1.3",), "TLSv1.3")

    def test_tls12(self) -> None:
        """
        5 consecutive 2 MiB uploads with curl limited to TLS 1.2 all exit 0
        and land byte-identical.
        """
        self.repeatUploads(5, ("--tlsv1.2", "--tls-max", "1.2"), "TLSv1.2")


class RawTLS13UploadTests(InteropTestCase):
    """
    A hand-made TLS 1.3 upload client that never reads anything from the
    data connection after its handshake: it sends the file, its close_notify,
    and closes the socket.
    """

    def controlClient(self) -> support.ReusingFTP_TLS:
        context = self.server.ca.clientContext()
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        client = support.ReusingFTP_TLS(context=context, timeout=10)
        self.addCleanup(client.close)
        client.connect("127.0.0.1", self.server.explicitPort)
        client.auth()
        client.login(USER, PASSWORD)  # reads replies: the TLS 1.3 tickets arrived
        client.prot_p()
        client.voidcmd("TYPE I")
        self.assertEqual(client.sock.version(), "TLSv1.3")
        self.assertIsNotNone(client.sock.session)
        return client

    def uploadWithoutReading(self, client: support.ReusingFTP_TLS, name: str, data: bytes) -> str:
        """
        STOR C{data} as C{name} over a TLS connection built on memory BIOs, so
        that exactly the handshake is read and nothing after it.

        @return: the reply that ends the transfer.
        """
        host, port = client.makepasv()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            reply = client.sendcmd(f"STOR {name}")
            self.assertTrue(reply.startswith("150"), reply)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client.context.wrap_bio(
                incoming, outgoing, server_hostname="127.0.0.1", session=client.sock.session
            )
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    received = sock.recv(65536)
                    if not received:
                        self.fail("data connection closed during the handshake" + self.serverLog())
                    incoming.write(received)
            self.assertEqual(tls.version(), "TLSv1.3")
            self.assertTrue(tls.session_reused, "data connection did not resume the session")
            # Our Finished goes now, as any client sends it before its data;
            # a server that answers it with session tickets has them on their
            # way here while we upload.
            sock.sendall(outgoing.read())
            select.select([sock], [], [], 0.1)
            for start in range(0, len(data), 65536):
                tls.write(data[start : start + 65536])
                sock.sendall(outgoing.read())
            try:
                tls.unwrap()
            except ssl.SSLWantReadError:
                pass  # our close_notify is written; the server's is never read
            sock.sendall(outgoing.read())
            # Look (without consuming) at what the server sent that we leave
            # unread: anything makes our close a TCP reset.
            sock.setblocking(False)
            try:
                pending = len(sock.recv(65536, socket.MSG_PEEK))
            except BlockingIOError:
                pending = 0
        finally:
            sock.close()
        reply = finalReply(client)
        if not reply.startswith("226"):
            reply += f" ({pending} unread bytes from the server were pending at close)"
        return reply

    def test_closeWithoutReading(self) -> None:
        """
        Ten times on one control connection: a 1 MiB upload whose client
        reads nothing after the handshake (so never reads TLS 1.3 session
        tickets), sends close_notify and closes at once gets 226 and is
        stored byte-identical.
        """
        client = self.controlClient()
        home = self.server.userHome(USER)
        for i in range(10):
            data = randomBytes(1024 * 1024)
            reply = self.uploadWithoutReading(client, f"raw{i}.bin", data)
            self.assertTrue(reply.startswith("226"), f"upload {i + 1}: {reply}" + self.serverLog())
            self.assertSameBytes(
                readFile(os.path.join(home, f"raw{i}.bin")), data, f"upload {i + 1}"
            )

    def test_closeWithoutReadingFreshControl(self) -> None:
        """
        The same upload, each on a new control connection (so each data
        connection resumes a session whose tickets were only just issued).
        """
        home = self.server.userHome(USER)
        for i in range(5):
            client = self.controlClient()
            data = randomBytes(1024 * 1024)
            reply = self.uploadWithoutReading(client, f"fresh{i}.bin", data)
            self.assertTrue(reply.startswith("226"), f"upload {i + 1}: {reply}" + self.serverLog())
            self.assertSameBytes(
                readFile(os.path.join(home, f"fresh{i}.bin")), data, f"upload {i + 1}"
            )
            client.quit()


class FileZillaLikeGnuTLSExplicitTests(InteropTestCase):
    """
    A GnuTLS client with FileZilla 3.63's TLS settings
    (L{tests.gnutlsclient.FileZillaLikeClient}): ALPN C{ftp} and
    C{x-filezilla-ftp} on the control connection, data connections resuming
    its session, downloads complete only with the server's close_notify.
    FileZilla failed to connect at all before txftps selected ALPN itself.
    """

    implicit = False

    def setUp(self) -> None:
        super().setUp()
        self.payload = randomBytes(2 * 1024 * 1024 + 5)
        writeFile(os.path.join(self.server.userHome(USER), "file.bin"), self.payload)

    def client(self, dataALPN: tuple[bytes, ...] = ()) -> gnutlsclient.FileZillaLikeClient:
        port = self.server.implicitPort if self.implicit else self.server.explicitPort
        client = gnutlsclient.FileZillaLikeClient(
            support.LOOPBACK, port, self.server.ca.caFile, self.implicit, dataALPN=dataALPN
        )
        self.addCleanup(client.control.close)
        self.assertEqual(client.greeting[0], 220)
        client.login(USER, PASSWORD)
        return client

    def session(self, dataALPN: tuple[bytes, ...]) -> None:
        """
        C{MLSD}, C{RETR} and C{STOR} byte-exact; every data connection
        resumed the control session and got the expected ALPN.
        """
        client = self.client(dataALPN)
        self.assertEqual(client.control.alpn, "ftp")
        listing, code = client.download("MLSD")
        self.assertEqual(code, 226, self.serverLog())
        self.assertIn(b"; file.bin\r\n", listing)
        self.assertIn(f"size={len(self.payload)};".encode(), listing)
        received, code = client.download("RETR file.bin")
        self.assertEqual(code, 226, self.serverLog())
        self.assertSameBytes(received, self.payload, "RETR")
        self.assertEqual(client.upload("STOR up.bin", self.payload), 226, self.serverLog())
        self.assertSameBytes(
            readFile(os.path.join(self.server.userHome(USER), "up.bin")), self.payload, "STOR"
        )
        expectedALPN = "ftp" if dataALPN else None
        self.assertEqual(
            [(d.resumed, d.alpn) for d in client.dataConnections], [(True, expectedALPN)] * 3
        )
        client.quit()

    def test_fileZillaSettings(self) -> None:
        """
        FileZilla's settings as they are: ALPN on the control connection
        only.
        """
        self.session(())

    def test_alpnOnDataConnections(self) -> None:
        """
        The same with ALPN C{ftp} offered on every data connection as well.
        """
        self.session((b"ftp",))

    def test_refusedWithoutFtp(self) -> None:
        """
        A GnuTLS client offering only C{http/1.1} gets alert 120
        (no_application_protocol) on the control connection.
        """
        port = self.server.implicitPort if self.implicit else self.server.explicitPort
        error = self.assertRaises(
            gnutlsclient.GnuTLSError,
            gnutlsclient.FileZillaLikeClient,
            support.LOOPBACK,
            port,
            self.server.ca.caFile,
            self.implicit,
            controlALPN=(b"http/1.1",),
        )
        self.assertEqual(error.alert, 120, str(error))


class FileZillaLikeGnuTLSImplicitTests(FileZillaLikeGnuTLSExplicitTests):
    """
    The same on the implicit port.
    """

    implicit = True
