"""
Shared pieces for txftps tests: a throwaway CA, the real C{twistd ftps} in a
subprocess on loopback, clients (curl, lftp, ftplib with session reuse), and
raw-socket helpers.

Integration tests use L{TwistdServer}; a client program that is missing makes
the test fail (L{requireProgram}), never skip.
"""

from __future__ import annotations

import ftplib
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from typing import Any

import trustme
from twisted.trial import unittest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def requireProgram(name: str) -> str:
    """
    The path of program C{name}; raise (failing the test) when it is missing.
    """
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed; .ci/run installs it (apt-get install -y {name})"
        )
    return path


def writeFile(path: str, data: bytes) -> str:
    """
    Write C{data} to C{path}, creating its directory.

    @return: C{path}.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def readFile(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def readTree(base: str) -> dict[str, bytes | None]:
    """
    Everything under C{base}: relative paths (with C{/}) to contents, C{None}
    for directories.
    """
    tree: dict[str, bytes | None] = {}
    for directory, dirnames, filenames in os.walk(base):
        relativeDir = os.path.relpath(directory, base)
        prefix = "" if relativeDir == "." else relativeDir.replace(os.sep, "/") + "/"
        for name in dirnames:
            tree[prefix + name] = None
        for name in filenames:
            tree[prefix + name] = readFile(os.path.join(directory, name))
    return tree


class ServerLogTestCase(unittest.TestCase):
    """
    A test case against a L{TwistdServer} whose failure messages stay short
    (digests instead of whole contents) and end with the tail of the server's
    log (L{serverLog}, which subclasses define).
    """

    def serverLog(self, tail: int = 4000) -> str:
        raise NotImplementedError("the server log of this test case")

    def assertSameBytes(self, actual: bytes, expected: bytes, what: str = "") -> None:
        """
        Compare byte strings, reporting lengths, digests and the first
        difference instead of the whole content.
        """
        if actual == expected:
            return
        offset = next(
            (i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
            min(len(actual), len(expected)),
        )
        self.fail(
            f"{what}: got {len(actual)} bytes (sha256"
            f" {hashlib.sha256(actual).hexdigest()[:16]}), expected {len(expected)}"
            f" bytes (sha256 {hashlib.sha256(expected).hexdigest()[:16]});"
            f" first difference at offset {offset}" + self.serverLog()
        )

    def assertSucceeded(self, result: subprocess.CompletedProcess[bytes], what: str) -> None:
        """
        A client program exited with 0; otherwise fail with its standard
        error.
        """
        if result.returncode != 0:
            self.fail(
                f"{what}: exit status {result.returncode}\nstderr:"
                f" {result.stderr.decode('utf-8', 'replace')[-3000:]}" + self.serverLog()
            )


class ThrowawayCA:
    """
    A CA made for one test run, a server certificate for 127.0.0.1 and
    localhost, and the files clients and the server need.

    @ivar directory: where the PEM files are.
    @ivar caFile: the CA certificate, for clients to verify with.
    @ivar certFile: the server's chain (leaf first).
    @ivar keyFile: the server's private key.
    """

    def __init__(self, directory: str, extraNames: tuple[str, ...] = ()) -> None:
        """
        @param extraNames: host names or addresses the server certificate
            names besides 127.0.0.1, localhost and ::1 (a balancer's
            address, say).
        """
        self.directory = directory
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost", "::1", *extraNames)
        self.caFile = os.path.join(directory, "ca.pem")
        self.certFile = os.path.join(directory, "server-chain.pem")
        self.keyFile = os.path.join(directory, "server-key.pem")
        self.ca.cert_pem.write_to_path(self.caFile)
        with open(self.certFile, "wb") as f:
            for blob in self.server.cert_chain_pems:
                f.write(blob.bytes())
        self.server.private_key_pem.write_to_path(self.keyFile)

    def clientContext(self) -> ssl.SSLContext:
        """
        An C{ssl} client context that trusts only this CA.
        """
        context = ssl.create_default_context(cafile=self.caFile)
        return context


def twistdCommand(directory: str, implicit: str, *options: str) -> list[str]:
    """
    The command line of the real C{twistd -n ftps} under this Python: explicit
    FTPS on a loopback port the system chooses, implicit FTPS on the endpoint
    C{implicit} (or C{"none"}), then C{options}, then a data directory under
    C{directory}. Append any further C{ftps} options.
    """
    return [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "-n",
        "--pidfile=",
        "ftps",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--implicit",
        implicit,
        # Tests read the per-command lines, which are logged at debug.
        "--log-level",
        "debug",
        *options,
        "--data-dir",
        os.path.join(directory, "data"),
    ]


def twistdEnvironment() -> dict[str, str]:
    """
    The environment for L{twistdCommand}: this one, with the project first on
    C{PYTHONPATH}.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class TwistdServer:
    """
    The real C{twistd -n ftps} in a subprocess, listening on loopback ports it
    chose itself.

    @ivar root: the anonymous root (a fresh temporary directory).
    @ivar home: the parent of users' homes.
    @ivar explicitPort: the explicit-FTPS port.
    @ivar implicitPort: the implicit-FTPS port.
    @ivar ca: the L{ThrowawayCA} whose certificate the server presents.
    """

    def __init__(
        self,
        *extraArgs: str,
        ca: ThrowawayCA | None = None,
        users: dict[str, str] | None = None,
        anonymous: bool = True,
        implicit: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        """
        @param host: the loopback address both endpoints listen on.
        """
        self.host = host
        self.directory = tempfile.mkdtemp(prefix="txftps-test-")
        self.root = os.path.join(self.directory, "root")
        self.home = os.path.join(self.directory, "home")
        os.mkdir(self.root)
        os.mkdir(self.home)
        self.ca = ca if ca is not None else ThrowawayCA(self.directory)
        self.logFile = os.path.join(self.directory, "twistd.log")
        args = twistdCommand(
            self.directory,
            f"tcp:0:interface={host}" if implicit else "none",
            "--root",
            self.root,
            "--home",
            self.home,
            "--cert",
            self.ca.certFile,
            "--key",
            self.ca.keyFile,
        )
        if host != "127.0.0.1":
            args[args.index("tcp:0:interface=127.0.0.1")] = f"tcp:0:interface={host}"
        for name, password in (users or {}).items():
            args += ["--auth", f"memory:{name}:{password}"]
        if users and anonymous:
            args += ["--auth", "anonymous"]
        args += list(extraArgs)
        self.args = args
        self.explicitPort = 0
        self.implicitPort = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._implicit = implicit

    def start(self, timeout: float = 20.0) -> TwistdServer:
        self._log = open(self.logFile, "wb")
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=twistdEnvironment(),
        )
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"(explicit|implicit) FTPS listening on \S+ port (\d+)")
        while time.monotonic() < deadline:
            with open(self.logFile, "rb") as f:
                found = dict(pattern.findall(f.read()))
            if b"explicit" in found and (b"implicit" in found or not self._implicit):
                self.explicitPort = int(found[b"explicit"])
                self.implicitPort = int(found.get(b"implicit", 0))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log()
        self.stop()
        raise AssertionError("twistd ftps did not start:\n" + log)

    def log(self) -> str:
        with open(self.logFile, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.stopProcess()
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def stopProcess(self) -> None:
        """
        Stop the server with SIGTERM (a kill after 10 s) and keep its files
        and log.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def userHome(self, name: str) -> str:
        return os.path.join(self.home, name)


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """
    C{ftplib.FTP_TLS} that resumes the control connection's TLS session on
    data connections (CPython gh-63699), as servers requiring session reuse
    expect.
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn,
                server_hostname=self.host,
                session=self.sock.session,  # type: ignore[attr-defined]
            )
        return conn, size


def ftplibClient(
    server: TwistdServer,
    user: str = "anonymous",
    password: str = "a@b",
    cls: type[ftplib.FTP_TLS] = ReusingFTP_TLS,
    protect: bool = True,
    timeout: float = 10,
) -> ftplib.FTP_TLS:
    """
    An explicit-FTPS ftplib client of C{server}, logged in, with C{PROT P}
    unless told not.
    """
    return ftplibLogin(
        server.ca.clientContext(), server.explicitPort, user, password, cls, protect, timeout
    )


def ftplibLogin(
    context: ssl.SSLContext,
    port: int,
    user: str,
    password: str,
    cls: type[ftplib.FTP_TLS] = ReusingFTP_TLS,
    protect: bool = True,
    timeout: float = 10,
) -> ftplib.FTP_TLS:
    """
    An explicit-FTPS ftplib client of 127.0.0.1 C{port} (a server in this
    process or another), trusting what C{context} trusts, logged in, with
    C{PROT P} unless told not.
    """
    client = cls(context=context, timeout=timeout)
    client.connect("127.0.0.1", port)
    client.auth()
    client.login(user, password)
    if protect:
        client.prot_p()
    return client


def curl(
    server: TwistdServer,
    *args: str,
    implicit: bool = False,
    path: str = "/",
    user: str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run curl against the server (explicit with C{--ssl-reqd}, or C{ftps://}),
    verifying its certificate with the throwaway CA.
    """
    binary = requireProgram("curl")
    if implicit:
        url = f"ftps://127.0.0.1:{server.implicitPort}{path}"
    else:
        url = f"ftp://127.0.0.1:{server.explicitPort}{path}"
    command = [binary, "-sS", "--cacert", server.ca.caFile, "--ssl-reqd"]
    if user is not None:
        command += ["-u", user]
    command += list(args) + [url]
    return subprocess.run(command, capture_output=True, timeout=timeout)


def lftp(
    server: TwistdServer,
    script: str,
    implicit: bool = False,
    user: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run an lftp script against the server, verifying its certificate with the
    throwaway CA.
    """
    binary = requireProgram("lftp")
    if implicit:
        url = f"ftps://127.0.0.1:{server.implicitPort}"
    else:
        url = f"ftp://127.0.0.1:{server.explicitPort}"
    login = f"-u {user}" if user else ""
    settings = (
        f"set ssl:ca-file {server.ca.caFile}; set ssl:verify-certificate yes;"
        " set ftp:ssl-force yes; set ftp:ssl-protect-data yes;"
        " set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes;"
    )
    full = f"{settings} open {login} {url}; {script}"
    env = dict(os.environ, HOME=server.directory)
    return subprocess.run([binary, "-c", full], capture_output=True, timeout=timeout, env=env)


def readReply(sock: socket.socket | ssl.SSLSocket, timeout: float = 5.0) -> bytes:
    """
    Read one complete (possibly multi-line) FTP reply from a raw socket.
    """
    sock.settimeout(timeout)
    data = b""
    while True:
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if re.match(rb"^\d{3} ", line):
                return data
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def receiveAll(sock: socket.socket | ssl.SSLSocket, timeout: float = 5.0) -> bytes:
    """
    Read until the peer closes (or C{timeout} passes with nothing new).
    """
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (TimeoutError, ConnectionError, ssl.SSLError):
        return data


# In-memory TLS: pyOpenSSL connections over memory BIOs, no sockets.


def memoryServerTLS(*hostnames: str) -> Any:
    """
    A L{txftps.tls.ServerTLS} for a certificate issued by a fresh throwaway
    CA, built in memory (no files).

    @return: C{(serverTLS, ca)}, the CA being a C{trustme.CA}.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from OpenSSL.crypto import PKey

    from txftps.tls import ServerTLS

    ca = trustme.CA()
    leaf = ca.issue_cert(*(hostnames or ("localhost", "127.0.0.1")))
    chain = tuple(x509.load_pem_x509_certificate(blob.bytes()) for blob in leaf.cert_chain_pems)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return ServerTLS(chain, PKey.from_cryptography_key(key)), ca  # type: ignore[arg-type]


def memoryClientContext(maxVersion: int | None = None, minVersion: int | None = None) -> Any:
    """
    A pyOpenSSL client context (no certificate verification) limited to the
    given protocol versions (C{SSL.TLS1_2_VERSION}, ...).
    """
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if minVersion is not None:
        context.set_min_proto_version(minVersion)
    if maxVersion is not None:
        context.set_max_proto_version(maxVersion)
    return context


def memoryClient(context: Any, session: Any = None) -> Any:
    """
    A pyOpenSSL client connection over memory BIOs, optionally resuming
    C{session} (which must come from a connection of the same C{context}).
    """
    from OpenSSL import SSL

    client = SSL.Connection(context, None)
    client.set_connect_state()
    if session is not None:
        client.set_session(session)
    return client


def drainBIO(connection: Any) -> bytes:
    """
    Everything a memory-BIO connection has written so far.
    """
    from OpenSSL import SSL

    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


def stepTLS(connection: Any) -> bool:
    """
    Advance the handshake of C{connection} as far as it goes without more
    input.

    @return: whether the handshake is complete.
    """
    from OpenSSL import SSL

    try:
        connection.do_handshake()
    except SSL.WantReadError:
        return False
    return True


def readTLS(connection: Any) -> bytes:
    """
    Read all decrypted application data now available on C{connection}
    (processing any post-handshake records, such as TLS 1.3 tickets).

    @raise SSL.ZeroReturnError: the peer's close_notify arrived.
    """
    from OpenSSL import SSL

    data = []
    while True:
        try:
            data.append(connection.recv(65536))
        except SSL.WantReadError:
            return b"".join(data)


def memoryHandshake(server: Any, client: Any, rounds: int = 10) -> None:
    """
    Run a handshake between two memory-BIO connections to completion, then
    let the server send one byte so that the client also reads whatever the
    server sent after the handshake (TLS 1.3 session tickets).

    @raise AssertionError: the handshake did not complete.
    @raise SSL.Error: the handshake failed.
    """
    for _ in range(rounds):
        clientDone = stepTLS(client)
        data = drainBIO(client)
        if data:
            server.bio_write(data)
        serverDone = stepTLS(server)
        data = drainBIO(server)
        if data:
            client.bio_write(data)
        if clientDone and serverDone:
            break
    else:
        raise AssertionError("TLS handshake did not complete in memory")
    server.send(b"!")
    client.bio_write(drainBIO(server))
    if readTLS(client) != b"!":
        raise AssertionError("post-handshake byte did not arrive")


# Raw control connections and probes of the server process, for the tests of
# active mode, data-channel abuse and resource limits (tests.test_active,
# tests.test_limits).

LOOPBACK = "127.0.0.1"


class PeerClosed(AssertionError):
    """
    The server closed the control connection while a reply was expected.
    """


class ControlConnection:
    """
    A raw FTP control connection on a real socket: explicit (plaintext until
    L{auth}) or implicit (TLS from the first byte), verifying the server
    certificate with the server's throwaway CA.

    @ivar raw: the TCP socket.
    @ivar sock: the socket commands go over (an C{ssl.SSLSocket} once TLS is
        on).
    @ivar greeting: the C{(code, text)} of the first reply.
    @ivar protected: the control channel runs TLS.
    """

    def __init__(
        self,
        server: TwistdServer,
        implicit: bool = False,
        port: int | None = None,
        host: str = LOOPBACK,
        source: str | None = None,
        context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        preamble: bytes = b"",
    ) -> None:
        """
        Connect (from C{source} if given), send C{preamble} if any (a PROXY
        header, say), start TLS when C{implicit}, and read the greeting.
        """
        self.server = server
        if host == LOOPBACK:
            host = server.host
        self.host = host
        self.context = context if context is not None else server.ca.clientContext()
        if port is None:
            port = server.implicitPort if implicit else server.explicitPort
        self.raw = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.sock: socket.socket = self.raw
        self.buffer = b""
        self.protected = False
        if preamble:
            self.raw.sendall(preamble)
        if implicit:
            self.sock = self.context.wrap_socket(self.raw, server_hostname=LOOPBACK)
            self.protected = True
        self.greeting = self.reply()

    def close(self) -> None:
        for sock in (self.sock, self.raw):
            try:
                sock.close()
            except OSError:
                pass

    # replies

    def _parse(self) -> tuple[int, bytes] | None:
        end = 0
        first: bytes | None = None
        while True:
            index = self.buffer.find(b"\n", end)
            if index < 0:
                return None
            line = self.buffer[end:index].rstrip(b"\r")
            end = index + 1
            if first is None:
                first = line
                if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in b" -":
                    raise AssertionError(f"malformed reply line {line!r}")
                if line[3:4] == b" ":
                    break
            elif line[:3] == first[:3] and line[3:4] == b" ":
                break
        text = self.buffer[:end]
        self.buffer = self.buffer[end:]
        return int(first[:3]), text

    def reply(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """
        The next complete (possibly multi-line) reply: C{(code, text)}.

        @raise PeerClosed: the server closed the connection first.
        """
        self.sock.settimeout(timeout)
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLEOFError) as e:
                raise PeerClosed(f"connection closed ({e}); unparsed {self.buffer!r}")
            if not chunk:
                raise PeerClosed(f"connection closed; unparsed {self.buffer!r}")
            self.buffer += chunk

    def finalReply(self, timeout: float = 5.0) -> tuple[list[int], tuple[int, bytes]]:
        """
        Read replies until one that is not preliminary (1xx).

        @return: the preliminary codes, and the final C{(code, text)}.
        """
        preliminary = []
        while True:
            code, text = self.reply(timeout)
            if code >= 200:
                return preliminary, (code, text)
            preliminary.append(code)

    def send(self, line: bytes | str) -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.sock.sendall(line + b"\r\n")

    def command(self, line: bytes | str, timeout: float = 5.0) -> tuple[int, bytes]:
        self.send(line)
        return self.reply(timeout)

    def expect(self, line: bytes | str, code: int) -> bytes:
        """
        Send C{line}; its reply must have C{code}.

        @return: the reply text.
        """
        got, text = self.command(line)
        if got != code:
            raise AssertionError(f"{line!r}: expected {code}, got {text!r}")
        return text

    # session set-up

    def auth(self) -> None:
        self.expect("AUTH TLS", 234)
        self.sock = self.context.wrap_socket(self.raw, server_hostname=LOOPBACK)
        self.protected = True

    def login(self, user: str, password: str) -> None:
        self.expect(f"USER {user}", 331)
        self.expect(f"PASS {password}", 230)

    def protect(self) -> None:
        self.expect("PBSZ 0", 200)
        self.expect("PROT P", 200)

    # data connections

    def pasv(self) -> int:
        """
        C{PASV}; the port the server listens on.
        """
        text = self.expect("PASV", 227)
        match = re.search(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", text)
        if match is None:
            raise AssertionError(f"unparsable PASV reply {text!r}")
        numbers = [int(n) for n in match.groups()]
        return numbers[4] * 256 + numbers[5]

    def epsv(self) -> int:
        """
        C{EPSV}; the port the server listens on.
        """
        text = self.expect("EPSV", 229)
        match = re.search(rb"\(\|\|\|(\d+)\|\)", text)
        if match is None:
            raise AssertionError(f"unparsable EPSV reply {text!r}")
        return int(match.group(1))

    def secureData(self, sock: socket.socket) -> socket.socket:
        """
        Run TLS as the client on a data socket (whoever opened it), resuming
        the control connection's session, when the control channel is
        protected; otherwise return C{sock} as it is.
        """
        if not self.protected:
            return sock
        return self.context.wrap_socket(
            sock,
            server_hostname=LOOPBACK,
            session=self.sock.session,  # type: ignore[attr-defined]
        )

    def openData(self, port: int, timeout: float = 5.0) -> socket.socket:
        """
        Connect to a passive port and secure the connection (L{secureData}).
        """
        sock = socket.create_connection((self.host, port), timeout=timeout)
        try:
            return self.secureData(sock)
        except BaseException:
            sock.close()
            raise


def loggedInSession(
    server: TwistdServer,
    user: str = "anonymous",
    password: str = "a@b",
    implicit: bool = False,
    **kwargs: Any,
) -> ControlConnection:
    """
    A L{ControlConnection}, logged in over TLS with C{PROT P}: explicit
    (C{AUTH TLS}, C{PBSZ 0}, C{PROT P}) or implicit.
    """
    control = ControlConnection(server, implicit=implicit, **kwargs)
    try:
        if control.greeting[0] != 220:
            raise AssertionError(f"no 220 greeting: {control.greeting!r}")
        if not implicit:
            control.auth()
        control.login(user, password)
        control.protect()
    except BaseException:
        control.close()
        raise
    return control


def readLine(sock: socket.socket) -> bytes:
    """
    Read raw bytes from C{sock} (with its own timeout) until they end with
    CRLF or the peer closes.
    """
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def readUntilClosed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """
    Read raw bytes until the peer closes (FIN or RST) or C{timeout} passes.

    @return: the bytes, and whether the peer closed the connection.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except (ConnectionError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


def waitUntil(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """
    Poll C{predicate} until it returns true or C{timeout} seconds pass.

    @return: whether it became true.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def openFileDescriptors(pid: int) -> int:
    """
    How many file descriptors process C{pid} has open (Linux C{/proc}).
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


def residentKiB(pid: int) -> int:
    """
    The resident set size of process C{pid} in KiB (Linux C{/proc}).
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def listeningPorts() -> set[int]:
    """
    The TCP ports something listens on in this network namespace (IPv4 and
    IPv6), read from C{/proc/net/tcp*}: a way to see a server's listener
    without connecting to it.
    """
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue
    return ports


def freePortRange(count: int, low: int = 20000, high: int = 32000) -> int:
    """
    The first of C{count} consecutive TCP ports on 127.0.0.1 that are free
    now, below the kernel's ephemeral range (so that outgoing connections do
    not take them meanwhile).
    """
    import random

    for _ in range(200):
        first = random.randrange(low, high - count)
        sockets = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                sockets.append(s)
                s.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        if first not in listeningPorts():
            return first
    raise AssertionError(f"no {count} consecutive free ports in {low}-{high}")


def connectionRefused(port: int, host: str = LOOPBACK, timeout: float = 2.0) -> bool:
    """
    Whether a TCP connection to C{host}:C{port} is refused (nothing listens).
    A connection that succeeds is closed at once.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    sock.close()
    return False


def portArgument(host: str, port: int) -> str:
    """
    The C{PORT} argument C{h1,h2,h3,h4,p1,p2} for an IPv4 C{host} and C{port}.
    """
    return ",".join([*host.split("."), str(port >> 8), str(port & 0xFF)])


def abortiveClose(sock: socket.socket) -> None:
    """
    Close C{sock} with a TCP reset (C{SO_LINGER} 0) instead of a FIN.
    """
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# Transfers on raw control connections, trees, and ways to make a server run
# out of space, for the tests of the full command set and of safe uploads
# (tests.test_commands, tests.test_uploads).


def startTransfer(
    control: ControlConnection, command: str, timeout: float = 5.0
) -> tuple[tuple[int, bytes], socket.socket | None]:
    """
    C{EPSV}, open and secure the data connection, send C{command} and read
    its first reply.

    @return: the first reply, and the data socket (C{None}, and the socket
        closed, when that reply is not a 1xx).
    """
    data = control.openData(control.epsv(), timeout=timeout)
    control.send(command)
    try:
        first = control.reply(timeout)
    except BaseException:
        data.close()
        raise
    if first[0] >= 200:
        data.close()
        return first, None
    return first, data


def finishUpload(data: socket.socket) -> None:
    """
    End an upload cleanly: the client's close_notify (when the socket runs
    TLS), then the TCP close.
    """
    try:
        if isinstance(data, ssl.SSLSocket):
            data.unwrap()
    except (OSError, ValueError):
        pass
    finally:
        data.close()


def downloadOver(
    control: ControlConnection, command: str, timeout: float = 10.0
) -> tuple[tuple[int, bytes], tuple[int, bytes], bytes]:
    """
    Run a download (C{RETR}, C{LIST}, C{NLST}, C{MLSD}) over a new passive
    data connection.

    @return: the first reply, the final reply, and the bytes received (the
        final reply is the first one when the command failed at once).
    """
    first, data = startTransfer(control, command)
    if data is None:
        return first, first, b""
    try:
        received, _ = readUntilClosed(data, timeout)
    finally:
        data.close()
    return first, control.reply(timeout), received


def uploadOver(
    control: ControlConnection, command: str, payload: bytes, timeout: float = 10.0
) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """
    Run an upload (C{STOR}, C{APPE}, C{STOU}) of C{payload} over a new passive
    data connection, ending it cleanly (L{finishUpload}).

    @return: the first and the final reply (the same when the command failed
        at once).
    """
    first, data = startTransfer(control, command)
    if data is None:
        return first, first
    try:
        data.sendall(payload)
    finally:
        finishUpload(data)
    return first, control.reply(timeout)


def snapshotTree(base: str) -> dict[str, tuple[str, int, int, bytes | None]]:
    """
    Everything under C{base} (hidden files included): relative path to
    C{(kind, mode, mtime_ns, content)}, C{content} being C{None} for a
    directory, a symlink's target for a link.
    """
    tree: dict[str, tuple[str, int, int, bytes | None]] = {}
    for directory, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, base)
            if os.path.islink(path):
                tree[relative] = ("link", info.st_mode, 0, os.readlink(path).encode())
            elif os.path.isdir(path):
                tree[relative] = ("dir", info.st_mode, info.st_mtime_ns, None)
            else:
                with open(path, "rb") as f:
                    tree[relative] = ("file", info.st_mode, info.st_mtime_ns, f.read())
    return tree


def mountTmpfs(directory: str, size: str) -> Any:
    """
    Mount a tmpfs of C{size} (C{mount -o size=...}: C{"2m"}) on C{directory}:
    a real file system that fills up, for disk-full tests. Needs root (tests
    run as root in the project's containers); a failure fails the test.

    @return: a callable that unmounts it.
    """
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
        capture_output=True,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"cannot mount a tmpfs on {directory} (disk-full tests need root):"
            f" {result.stderr.decode('utf-8', 'replace')}"
        )

    def unmount() -> None:
        subprocess.run(["umount", "-l", directory], capture_output=True)

    return unmount


class FileSizeLimitedServer(TwistdServer):
    """
    A L{TwistdServer} whose process may not write files larger than
    C{limit} bytes (C{RLIMIT_FSIZE}), with C{SIGXFSZ} ignored, so that a write
    beyond the limit fails with C{EFBIG} instead of killing the server: a
    write error in the middle of an upload, without root.

    The limit also applies to the server's log file; keep tests short.
    """

    def __init__(self, *extraArgs: str, limit: int, **kwargs: Any) -> None:
        super().__init__(*extraArgs, **kwargs)
        self.limit = limit
        self.args[2] = (
            "import resource, signal;"
            " signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
            f" resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}));"
            " " + self.args[2]
        )


def tcpClosedByPeer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """
    Whether the peer closes the TCP connection under C{sock} (FIN or RST)
    within C{timeout} seconds. For a TLS socket, a close_notify alone is not
    a close: this looks at the TCP stream beneath (bytes that still arrive
    are discarded).
    """
    raw = socket.socket(fileno=os.dup(sock.fileno()))
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([raw], [], [], left)
            if not readable:
                return False
            try:
                if not raw.recv(65536, socket.MSG_DONTWAIT):
                    return True
            except BlockingIOError:
                continue
            except ConnectionError:
                return True
    finally:
        raw.close()


# Starts that must fail, credential files, client certificates and raw
# login helpers, for the tests of pluggable authentication, brute-force
# defence and CCC (tests.test_htpasswd, tests.test_certauth,
# tests.test_bruteforce, tests.test_ccc).


def refusedStart(*args: str, timeout: float = 20.0) -> str:
    """
    Run C{twistd -n ftps ARGS} (loopback ports, a throwaway data directory)
    and assert that it stops at once as a bad option should: a non-zero exit,
    exactly one line on standard error starting C{twistd ftps: error:}, and
    no traceback anywhere.

    @return: that line.
    """
    directory = tempfile.mkdtemp(prefix="txftps-refused-")
    command = [*twistdCommand(directory, "none"), *args]
    try:
        result = subprocess.run(
            command, capture_output=True, cwd=directory, env=twistdEnvironment(), timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"twistd ftps {' '.join(args)} kept running: {e.output!r}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    if result.returncode == 0:
        raise AssertionError(f"twistd ftps {' '.join(args)} exited with 0:\n{output}")
    if "Traceback" in output:
        raise AssertionError(f"twistd ftps {' '.join(args)} printed a traceback:\n{output}")
    lines = result.stderr.decode("utf-8", "replace").splitlines()
    if len(lines) != 1 or not lines[0].startswith("twistd ftps: error:"):
        raise AssertionError(
            f"twistd ftps {' '.join(args)}: expected one 'twistd ftps: error:' line on"
            f" standard error, got:\n{output}"
        )
    return lines[0]


def bcryptLine(user: str, password: str, cost: int = 4, prefix: bytes = b"$2y$") -> bytes:
    """
    An htpasswd line C{user:hash} with a bcrypt hash of C{password} (low cost
    by default, so that tests stay fast), in the C{prefix} form (C{$2y$} as
    Apache writes, C{$2b$}, C{$2a$}).
    """
    import bcrypt

    hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(cost))
    return user.encode("utf-8") + b":" + prefix + hashed[4:]


def rewriteFile(path: str, content: bytes) -> None:
    """
    Replace the content of C{path} in place and move its modification time
    forward by a second, so that a reader that watches modification times
    sees the change even on coarse-grained file systems.
    """
    before = os.stat(path).st_mtime_ns
    with open(path, "wb") as f:
        f.write(content)
    later = max(before, os.stat(path).st_mtime_ns) + 1_000_000_000
    os.utime(path, ns=(later, later))


class LogWatch:
    """
    Reads a L{TwistdServer}'s log from a mark on, to tell what the server
    logged after a point in a test.
    """

    def __init__(self, server: TwistdServer) -> None:
        self.server = server
        self.offset = 0

    def mark(self) -> None:
        """
        Forget everything logged so far.
        """
        self.offset = len(self.server.log())

    def since(self) -> str:
        """
        What the server logged since the last L{mark}.
        """
        return self.server.log()[self.offset :]

    def waitFor(self, text: str, timeout: float = 5.0) -> bool:
        """
        Wait until C{text} appears in the log after the mark.
        """
        return waitUntil(lambda: text in self.since(), timeout)


class ClientCertificate:
    """
    A client certificate and its key in PEM files, and ways to present it.

    @ivar certFile: the certificate (PEM).
    @ivar keyFile: the private key (PEM, unencrypted).
    @ivar certificate: the certificate as a C{cryptography} object.
    """

    def __init__(self, directory: str, name: str, certPEM: bytes, keyPEM: bytes) -> None:
        from cryptography import x509

        self.name = name
        self.certFile = os.path.join(directory, f"client-{name}.pem")
        self.keyFile = os.path.join(directory, f"client-{name}-key.pem")
        with open(self.certFile, "wb") as f:
            f.write(certPEM)
        with open(self.keyFile, "wb") as f:
            f.write(keyPEM)
        self.certificate = x509.load_pem_x509_certificate(certPEM)

    def context(self, ca: ThrowawayCA) -> ssl.SSLContext:
        """
        A client context that trusts C{ca} (for the server) and presents this
        certificate.
        """
        context = ca.clientContext()
        context.load_cert_chain(self.certFile, self.keyFile)
        return context

    @property
    def fingerprint(self) -> str:
        """
        The SHA-256 fingerprint as C{openssl x509 -fingerprint -sha256} prints
        it (computed here with hashlib, not with txftps).
        """
        import hashlib

        from cryptography.hazmat.primitives import serialization

        digest = hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER))
        return ":".join(f"{b:02X}" for b in digest.digest())


class ClientPKI:
    """
    A throwaway CA that issues both the server's certificate and client
    certificates, and a set of client certificates, good and bad:

     - C{alice}, C{bob}, C{dave}: issued by the CA, CN = the name;
     - C{selfSigned}: CN=alice, signed by its own key;
     - C{foreign}: CN=alice, issued by another CA;
     - C{expired}: CN=alice, issued by the CA, expired yesterday.

    @ivar ca: the L{ThrowawayCA} (pass it to L{TwistdServer}).
    @ivar caFile: the CA certificate, for C{--client-ca}.
    """

    def __init__(self, directory: str) -> None:
        import datetime

        self.directory = directory
        self.ca = ThrowawayCA(directory)
        self.caFile = self.ca.caFile
        self.alice = self._issue(self.ca.ca, "alice")
        self.bob = self._issue(self.ca.ca, "bob")
        self.dave = self._issue(self.ca.ca, "dave")
        self.foreign = self._issue(trustme.CA(), "alice", "foreign")
        now = datetime.datetime.now(datetime.UTC)
        self.expired = self._issue(
            self.ca.ca,
            "alice",
            "expired",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        self.selfSigned = self._selfSigned("alice")

    def issue(self, cn: str, label: str | None = None) -> ClientCertificate:
        """
        Another certificate from the CA, with subject CN C{cn} (any string,
        such as C{..}) and no subjectAltName identity.
        """
        leaf = self.ca.ca.issue_cert(common_name=cn)
        return ClientCertificate(
            self.directory,
            label or cn,
            leaf.cert_chain_pems[0].bytes(),
            leaf.private_key_pem.bytes(),
        )

    def _issue(self, ca: trustme.CA, cn: str, label: str | None = None, **kwargs: Any) -> Any:
        leaf = ca.issue_cert(f"{cn}@example.org", common_name=cn, **kwargs)
        return ClientCertificate(
            self.directory,
            label or cn,
            leaf.cert_chain_pems[0].bytes(),
            leaf.private_key_pem.bytes(),
        )

    def _selfSigned(self, cn: str) -> ClientCertificate:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256())
        )
        keyPEM = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return ClientCertificate(
            self.directory, "self-signed", cert.public_bytes(serialization.Encoding.PEM), keyPEM
        )


def certificateRequiringServer(
    case: unittest.TestCase, fileName: str, content: bytes
) -> tuple[ClientPKI, TwistdServer]:
    """
    A started L{TwistdServer} with C{--client-cert required} and a new
    L{ClientPKI}'s CA as C{--client-ca}, serving C{fileName} with
    C{content}; stopped when C{case} ends.
    """
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    pki = ClientPKI(directory)
    server = TwistdServer("--client-ca", pki.caFile, "--client-cert", "required", ca=pki.ca)
    server.start()
    case.addCleanup(server.stop)
    writeFile(os.path.join(server.root, fileName), content)
    return pki, server


def timedCommand(
    control: ControlConnection, line: str, timeout: float = 10.0
) -> tuple[int, bytes, float]:
    """
    Send C{line} and read its reply, timing from the send to the complete
    reply with C{time.monotonic}.

    @return: the code, the reply text, and the seconds it took.
    """
    started = time.monotonic()
    code, text = control.command(line, timeout)
    return code, text, time.monotonic() - started


def serverClosed(control: ControlConnection, timeout: float = 5.0) -> bool:
    """
    Whether the server closes C{control} without sending another reply
    within C{timeout} seconds (bytes that still arrive make it C{False}).
    """
    try:
        data, closed = readUntilClosed(control.sock, timeout)
    except ssl.SSLError:
        return True
    return closed and not data.strip()


def requirePackagedProgram(name: str, package: str) -> str:
    """
    The path of program C{name}, which Debian ships in C{package}; raise
    (failing the test) with the command that installs it when it is missing.
    Daemons live in C{/usr/sbin}, which a non-login C{PATH} may lack.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        raise AssertionError(
            f"{name} is not installed; .ci/run installs it (apt-get install -y {package})"
        )
    return path


def netkitFtp(
    server: TwistdServer, script: str, user: str, password: str, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """
    Run Debian's netkit C{ftp-ssl} (explicit FTPS required with
    C{-z secure}, the certificate verified with the throwaway CA, passive
    mode) logged in as C{user}, then the commands of C{script} (one per
    line) from its standard input.
    """
    binary = requirePackagedProgram("ftp-ssl", "ftp-ssl")
    command = [
        binary,
        "-n",
        "-v",
        "-p",
        "-z",
        "secure",
        "-z",
        "verify=1",
        "-z",
        f"cacert={server.ca.caFile}",
        LOOPBACK,
        str(server.explicitPort),
    ]
    full = f"user {user} {password}\nbinary\n{script}\nquit\n"
    return subprocess.run(command, input=full.encode(), capture_output=True, timeout=timeout)
