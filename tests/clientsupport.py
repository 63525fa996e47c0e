"""
Servers and helpers for the FTPS client's tests (tests.test_client,
tests.test_cli): pyftpdlib and Debian's vsftpd started by the tests on
loopback with the throwaway CA's certificate, a tiny FTPS server that
truncates downloads, and a way to run the installed C{txftps} script.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

from tests import support

PYFTPDLIB_SERVER = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
home, cert, key, mode = sys.argv[1:5]
authorizer = DummyAuthorizer()
authorizer.add_user("alice", "secret", home, perm="elradfmwMT")
class Handler(TLS_FTPHandler):
    certfile = cert
    keyfile = key
    tls_control_required = True
    tls_data_required = True
Handler.authorizer = authorizer
if mode == "nat-no-epsv":
    # An old server behind NAT: no EPSV, PASV announces an inside address.
    Handler.proto_cmds = {k: v for k, v in Handler.proto_cmds.items() if k != "EPSV"}
    Handler.masquerade_address = "10.255.0.1"
server = FTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.address[1], flush=True)
server.serve_forever()
"""


class PyftpdlibServer:
    """
    pyftpdlib's C{TLS_FTPHandler} (explicit FTPS, TLS required on control and
    data) in a subprocess, user C{alice}/C{secret}, home L{home}.
    """

    def __init__(self, mode: str = "plain") -> None:
        self.mode = mode
        self.directory = tempfile.mkdtemp(prefix="txftps-pyftpdlib-")
        self.home = os.path.join(self.directory, "home")
        os.mkdir(self.home)
        self.ca = support.ThrowawayCA(self.directory)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> PyftpdlibServer:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PYFTPDLIB_SERVER,
                self.home,
                self.ca.certFile,
                self.ca.keyFile,
                self.mode,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != b"PORT":
            self.stop()
            raise AssertionError(
                "pyftpdlib did not start (is it installed? pip install pyftpdlib)"
            )
        self.port = int(line[1])
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


VSFTPD_PASSWORD = "vs-secret-42"


class VsftpdServer:
    """
    Debian's vsftpd as root on a loopback port: explicit FTPS with
    C{ssl_enable=YES}, C{require_ssl_reuse=YES}, C{force_local_data_ssl=YES},
    C{force_local_logins_ssl=YES}; a local user L{user} with password
    L{VSFTPD_PASSWORD} (made with C{useradd}, removed afterwards; a name of
    its own, so that tests running in parallel do not share it) whose home is
    L{home}.
    """

    def __init__(self) -> None:
        self.binary = support.requirePackagedProgram("vsftpd", "vsftpd")
        self.user = "txvs" + os.urandom(4).hex()
        self.password = VSFTPD_PASSWORD
        if os.geteuid() != 0:
            raise AssertionError("the vsftpd tests start vsftpd and create a user: they need root")
        self.directory = tempfile.mkdtemp(prefix="txftps-vsftpd-")
        os.chmod(self.directory, 0o755)
        self.home = os.path.join(self.directory, "home")
        self.ca = support.ThrowawayCA(self.directory)
        self.port = support.freePortRange(1)
        self.passive = support.freePortRange(20)
        self.logFile = os.path.join(self.directory, "vsftpd.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._userMade = False

    def _makeUser(self) -> None:
        useradd = support.requirePackagedProgram("useradd", "passwd")
        chpasswd = support.requirePackagedProgram("chpasswd", "passwd")
        made = subprocess.run(
            [useradd, "-m", "-d", self.home, "-s", "/bin/sh", self.user], capture_output=True
        )
        if made.returncode != 0:
            raise AssertionError(f"useradd failed: {made.stderr!r}")
        self._userMade = True
        result = subprocess.run(
            [chpasswd], input=f"{self.user}:{VSFTPD_PASSWORD}\n".encode(), capture_output=True
        )
        if result.returncode != 0:
            raise AssertionError(f"chpasswd failed: {result.stderr!r}")

    def start(self) -> VsftpdServer:
        self._makeUser()
        empty = os.path.join(self.directory, "empty")
        os.mkdir(empty, 0o755)
        config = os.path.join(self.directory, "vsftpd.conf")
        with open(config, "w") as f:
            f.write(
                "\n".join(
                    [
                        "listen=YES",
                        "listen_ipv6=NO",
                        "listen_address=127.0.0.1",
                        f"listen_port={self.port}",
                        "background=NO",
                        "anonymous_enable=NO",
                        "local_enable=YES",
                        "write_enable=YES",
                        "local_umask=022",
                        "ssl_enable=YES",
                        "require_ssl_reuse=YES",
                        "force_local_data_ssl=YES",
                        "force_local_logins_ssl=YES",
                        "ssl_ciphers=HIGH",
                        f"rsa_cert_file={self.ca.certFile}",
                        f"rsa_private_key_file={self.ca.keyFile}",
                        "pasv_enable=YES",
                        f"pasv_min_port={self.passive}",
                        f"pasv_max_port={self.passive + 19}",
                        "port_enable=YES",
                        "connect_from_port_20=NO",
                        "seccomp_sandbox=NO",
                        f"secure_chroot_dir={empty}",
                        "pam_service_name=vsftpd",
                        "xferlog_enable=YES",
                        f"vsftpd_log_file={self.logFile}",
                        "log_ftp_protocol=YES",
                        "dual_log_enable=NO",
                        "syslog_enable=NO",
                        "",
                    ]
                )
            )
        os.chmod(config, 0o600)
        self.process = subprocess.Popen(
            [self.binary, config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        if not support.waitUntil(lambda: self.port in support.listeningPorts(), 10):
            output = b""
            if self.process.poll() is not None and self.process.stdout is not None:
                output = self.process.stdout.read()
            self.stop()
            raise AssertionError(f"vsftpd did not start: {output!r}")
        return self

    def log(self) -> str:
        try:
            with open(self.logFile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._userMade:
            # vsftpd's per-session processes run as the user: end them first.
            subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True)
            support.waitUntil(
                lambda: (
                    subprocess.run(["pgrep", "-u", self.user], capture_output=True).returncode != 0
                ),
                10,
            )
            removed = subprocess.run(["userdel", "-f", "-r", self.user], capture_output=True)
            if removed.returncode not in (0, 12):
                raise AssertionError(f"userdel {self.user} failed: {removed.stderr!r}")
        shutil.rmtree(self.directory, ignore_errors=True)


class TruncatingServer:
    """
    A minimal implicit-FTPS server in a thread that answers a download by
    sending L{payload} over TLS and closing the data connection's TCP
    without a TLS close_notify, then replying C{226} as if all went well:
    the truncation a client must not take for a complete file.

    @ivar port: the control port (implicit TLS).
    """

    payload = b"x" * 100000

    def __init__(self, ca: support.ThrowawayCA) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(ca.certFile, ca.keyFile)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        try:
            control = self.context.wrap_socket(raw, server_side=True)
            self._session(control)
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()

    def _session(self, control: ssl.SSLSocket) -> None:
        reader = control.makefile("rb")
        control.sendall(b"220 truncating test server\r\n")
        dataListener: socket.socket | None = None
        while True:
            line = reader.readline()
            if not line:
                return
            verb = line.split()[0].upper().decode() if line.split() else ""
            if verb == "USER":
                control.sendall(b"331 password please\r\n")
            elif verb == "PASS":
                control.sendall(b"230 in\r\n")
            elif verb == "FEAT":
                control.sendall(b"211-Features:\r\n EPSV\r\n SIZE\r\n211 End\r\n")
            elif verb == "SIZE":
                control.sendall(f"213 {len(self.payload)}\r\n".encode())
            elif verb == "EPSV":
                dataListener = socket.create_server(("127.0.0.1", 0))
                port = dataListener.getsockname()[1]
                control.sendall(f"229 Entering Extended Passive Mode (|||{port}|)\r\n".encode())
            elif verb == "RETR" and dataListener is not None:
                data, _ = dataListener.accept()
                dataListener.close()
                control.sendall(b"150 here it comes\r\n")
                secured = self.context.wrap_socket(data, server_side=True)
                secured.sendall(self.payload)
                # No unwrap(): the TCP connection ends without close_notify.
                secured.close()
                control.sendall(b"226 Transfer complete\r\n")
            elif verb == "RETR":
                # After PORT: promise the data and never connect.
                control.sendall(b"150 connecting (not really)\r\n")
            elif verb == "QUIT":
                control.sendall(b"221 bye\r\n")
                return
            else:
                control.sendall(b"200 OK\r\n")


def txftpsScript() -> str:
    """
    The installed C{txftps} console script of this Python's environment.
    """
    path = os.path.join(os.path.dirname(sys.executable), "txftps")
    if not os.path.exists(path):
        found = shutil.which("txftps")
        if found is None:
            raise AssertionError("txftps is not installed: pip install -e .")
        path = found
    return path


def runTxftps(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 60,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run the installed C{txftps} script with C{args}; standard input is empty
    (not a terminal) unless C{stdin} is given.
    """
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONPATH", support.PROJECT_ROOT)
    return subprocess.run(
        [txftpsScript(), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=environment,
        cwd=cwd,
        timeout=timeout,
    )


def errorLine(result: subprocess.CompletedProcess[bytes]) -> str:
    """
    The one C{txftps: error:} line of a failed run; raise when the run did
    not fail that way (status 0, several lines, a traceback).
    """
    text = result.stderr.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if not line.startswith("txftps: warning:")]
    if result.returncode == 0:
        raise AssertionError(f"txftps succeeded; stderr: {text}")
    if len(lines) != 1 or not lines[0].startswith("txftps: error: "):
        raise AssertionError(f"expected one 'txftps: error:' line, got:\n{text}")
    return lines[0]


def stopProcess(process: subprocess.Popen[bytes]) -> None:
    """
    Stop a process we started.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def certificateOnlyFor(directory: str, ca: support.ThrowawayCA, *names: str) -> tuple[str, str]:
    """
    A server certificate from C{ca} valid only for C{names}.

    @return: the chain file and the key file.
    """
    leaf = ca.ca.issue_cert(*names)
    label = re.sub(r"[^A-Za-z0-9]", "_", "-".join(names))
    certFile = os.path.join(directory, f"only-{label}.pem")
    keyFile = os.path.join(directory, f"only-{label}-key.pem")
    with open(certFile, "wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(keyFile)
    return certFile, keyFile


def waitForGrowth(path: str, timeout: float = 20.0) -> bool:
    """
    Wait until C{path} exists with some bytes in it.
    """
    return support.waitUntil(
        lambda: os.path.exists(path) and os.path.getsize(path) > 0, timeout, interval=0.01
    )


def fingerprintOf(certFile: str) -> str:
    """
    The SHA-256 fingerprint of the first certificate in a PEM file, as
    C{twistd ftps} logs it (computed here with hashlib).
    """
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate = x509.load_pem_x509_certificate(support.readFile(certFile))
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    return ":".join(f"{b:02X}" for b in digest)
