"""
Shared pieces for txftps tests: a throwaway CA, the real C{twistd ftps} in a
subprocess on loopback, clients (curl, lftp, ftplib with session reuse), and
raw-socket helpers.

Integration tests use L{TwistdServer}; a client program that is missing makes
the test fail (L{requireProgram}), never skip.
"""

from __future__ import annotations

import ftplib
import os
import re
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


class ThrowawayCA:
    """
    A CA made for one test run, a server certificate for 127.0.0.1 and
    localhost, and the files clients and the server need.

    @ivar directory: where the PEM files are.
    @ivar caFile: the CA certificate, for clients to verify with.
    @ivar certFile: the server's chain (leaf first).
    @ivar keyFile: the server's private key.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost", "::1")
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
    ) -> None:
        self.directory = tempfile.mkdtemp(prefix="txftps-test-")
        self.root = os.path.join(self.directory, "root")
        self.home = os.path.join(self.directory, "home")
        os.mkdir(self.root)
        os.mkdir(self.home)
        self.ca = ca if ca is not None else ThrowawayCA(self.directory)
        self.logFile = os.path.join(self.directory, "twistd.log")
        args = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "ftps",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--implicit",
            "tcp:0:interface=127.0.0.1" if implicit else "none",
            "--root",
            self.root,
            "--home",
            self.home,
            "--cert",
            self.ca.certFile,
            "--key",
            self.ca.keyFile,
            "--data-dir",
            os.path.join(self.directory, "data"),
        ]
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
        env = dict(os.environ)
        env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self._log = open(self.logFile, "wb")
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=env,
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
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

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
    An explicit-FTPS ftplib client, logged in, with C{PROT P} unless told not.
    """
    client = cls(context=server.ca.clientContext(), timeout=timeout)
    client.connect("127.0.0.1", server.explicitPort)
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
