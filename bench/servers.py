"""
The servers the benchmarks compare, started the same way: txftps, pyftpdlib
and (when installed) vsftpd, each on loopback with TLS required on control
and data, the same ECDSA P-256 certificate and one served directory.

Each L{Server} knows its listening port, the directory a logged-in bench user
sees, how to log in, and how much CPU and memory it used so far (its whole
process tree: vsftpd forks twice per session). CPU comes from a cgroup of its
own when the machine lets us make one (root, cgroup v1 C{cpuacct} or cgroup
v2), which counts every process the server ever forked, even one that exited
between two readings; otherwise from C{/proc} (live processes plus the
children they reaped).
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field

from twisted.python.filepath import FilePath

from txftps.testing import CertificateAuthority

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PYFTPDLIB_SERVER = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
home, cert, key, maxCons = sys.argv[1:5]
authorizer = DummyAuthorizer()
authorizer.add_user("bench", "bench", home, perm="elradfmw")
class Handler(TLS_FTPHandler):
    certfile = cert
    keyfile = key
    tls_control_required = True
    tls_data_required = True
Handler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), Handler)
server.max_cons = server.max_cons_per_ip = int(maxCons)
print("PORT", server.address[1], flush=True)
server.serve_forever()
"""


@dataclass
class Server:
    """
    One running server under test.

    @ivar name: C{txftps}, C{pyftpdlib} or C{vsftpd}.
    @ivar process: the listening process.
    @ivar port: its control port on 127.0.0.1.
    @ivar home: the directory the bench user's C{/} is.
    @ivar user: the login name; C{password} its password.
    """

    name: str
    process: subprocess.Popen[bytes]
    port: int
    home: str
    user: str = "bench"
    password: str = "bench"
    cleanup: list[str] = field(default_factory=list)
    cgroup: str | None = None

    def __post_init__(self) -> None:
        self.cgroup = _joinCgroup(self.name, self.process.pid)

    def tree(self) -> list[int]:
        """
        The listening process and every descendant, by pid.
        """
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def cpuSeconds(self) -> float:
        """
        CPU seconds (user and system) of the server: its cgroup's, or else
        the process tree's with the children it already reaped.
        """
        if self.cgroup is not None:
            return _cgroupCPU(self.cgroup)
        return sum(self.cpuSplit())

    def cpuSplit(self) -> tuple[float, float]:
        """
        User and system CPU seconds of the server, from the same source as
        L{cpuSeconds}.
        """
        if self.cgroup is not None:
            return _cgroupSplit(self.cgroup)
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
        return user / ticks, system / ticks

    def pssKiB(self) -> int:
        """
        Proportional set size of the process tree, in KiB.
        """
        total = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
            except OSError:
                continue
            if m:
                total += int(m.group(1))
        return total

    def fileDescriptors(self) -> int:
        """
        Open file descriptors of the process tree.
        """
        total = 0
        for pid in self.tree():
            try:
                total += len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                pass
        return total

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)
        if self.cgroup is not None:
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass


def childrenCPU() -> float:
    """
    CPU seconds (user and system) of the child processes this program has
    reaped: the client programs a benchmark ran.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_CGROUP_V2 = "/sys/fs/cgroup/unified"
_CGROUP_V1 = "/sys/fs/cgroup/cpuacct"


def _joinCgroup(name: str, pid: int) -> str | None:
    """
    Put C{pid} (before it forks anything) into a new cgroup; C{None} when
    no cgroup can be made here.
    """
    for root in (_CGROUP_V2, "/sys/fs/cgroup", _CGROUP_V1):
        if not os.path.isfile(os.path.join(root, "cgroup.procs")):
            continue
        if root != _CGROUP_V1 and not os.path.isfile(os.path.join(root, "cgroup.controllers")):
            continue
        path = os.path.join(root, f"txftps-bench-{name}-{pid}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
            _cgroupCPU(path)
        except OSError:
            try:
                os.rmdir(path)
            except OSError:
                pass
            continue
        return path
    return None


def _cgroupSplit(path: str) -> tuple[float, float]:
    """
    User and system CPU seconds a cgroup used: v2's C{cpu.stat} or v1's
    C{cpuacct.stat} (in clock ticks).
    """
    stat = os.path.join(path, "cpu.stat")
    if os.path.exists(stat):
        with open(stat) as f:
            values = dict(line.split() for line in f if line.strip())
        return int(values["user_usec"]) / 1e6, int(values["system_usec"]) / 1e6
    with open(os.path.join(path, "cpuacct.stat")) as f:
        values = dict(line.split() for line in f if line.strip())
    ticks = os.sysconf("SC_CLK_TCK")
    return int(values["user"]) / ticks, int(values["system"]) / ticks


def _cgroupCPU(path: str) -> float:
    """
    CPU seconds a cgroup used: v2's C{cpu.stat} or v1's C{cpuacct.usage}.
    """
    stat = os.path.join(path, "cpu.stat")
    if os.path.exists(stat):
        with open(stat) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
    with open(os.path.join(path, "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


@dataclass
class Certificates:
    """
    A throwaway CA and the server certificate every server of a run uses
    (ECDSA P-256 for 127.0.0.1), written into a directory.

    @ivar caFile: the CA certificate, for curl.
    @ivar certFile: the server's certificate; C{keyFile} its key.
    @ivar context: a Python client context trusting the CA.
    """

    caFile: str
    certFile: str
    keyFile: str
    context: ssl.SSLContext

    @classmethod
    def inDirectory(cls, directory: str) -> Certificates:
        """
        Issue them with L{txftps.testing.CertificateAuthority} and write
        C{ca.pem}, C{server-cert.pem} and C{server-key.pem} into
        C{directory}.
        """
        ca = CertificateAuthority("txftps bench CA")
        certPath, keyPath = ca.issueServerCertificate("127.0.0.1").writeTo(
            FilePath(directory), "server"
        )
        caFile = os.path.join(directory, "ca.pem")
        with open(caFile, "wb") as f:
            f.write(ca.certificatePEM)
        return cls(caFile, certPath.path, keyPath.path, ca.clientContext())


def _started(
    name: str, process: subprocess.Popen[bytes], home: str, logPath: str, pattern: bytes
) -> Server:
    """
    The L{Server} of C{process}, just started: put into its cgroup at once
    (before it forks anything, workers included), then its port read from
    the first match of C{pattern} in its log.
    """
    server = Server(name, process, 0, home)
    for _ in range(400):
        with open(logPath, "rb") as f:
            m = re.search(pattern, f.read())
        if m:
            server.port = int(m.group(1))
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    with open(logPath, "rb") as f:
        raise SystemExit(f"{name} did not start:\n{f.read().decode(errors='replace')}")


def startTxftps(directory: str, cert: str, key: str, *extra: str) -> Server:
    """
    C{twistd -n ftps} with explicit FTPS, a memory user and the default
    (info) log level.
    """
    home = os.path.join(directory, "bench")
    os.makedirs(home, exist_ok=True)
    logPath = os.path.join(directory, "txftps.log")
    log = open(logPath, "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "ftps",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--implicit",
            "none",
            "--root",
            directory,
            "--home",
            directory,
            "--auth",
            "memory:bench:bench",
            "--cert",
            cert,
            "--key",
            key,
            "--data-dir",
            os.path.join(directory, "data"),
            "--max-clients",
            "100000",
            "--max-clients-per-ip",
            "100000",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        cwd=directory,
    )
    return _started(
        "txftps", process, home, logPath, rb"explicit FTPS listening on \S+ port (\d+)"
    )


def startPyftpdlib(directory: str, cert: str, key: str) -> Server:
    """
    pyftpdlib's C{TLS_FTPHandler} with TLS required on control and data.
    """
    logPath = os.path.join(directory, "pyftpdlib.log")
    process = subprocess.Popen(
        [sys.executable, "-c", PYFTPDLIB_SERVER, directory, cert, key, "100000"],
        stdout=open(logPath, "wb"),
        stderr=subprocess.DEVNULL,
    )
    return _started("pyftpdlib", process, directory, logPath, rb"PORT (\d+)")


VSFTPD_CONFIG = """\
listen=YES
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_other_write_enable=YES
anon_root={root}
no_anon_password=YES
ftp_username={ftpUser}
secure_chroot_dir={empty}
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
require_ssl_reuse=YES
ssl_ciphers=HIGH
rsa_cert_file={cert}
rsa_private_key_file={key}
pasv_enable=YES
pasv_min_port={low}
pasv_max_port={high}
max_clients=0
max_per_ip=0
seccomp_sandbox=NO
xferlog_enable=NO
idle_session_timeout=3000
data_connection_timeout=300
"""


def vsftpdAvailable() -> bool:
    return os.path.exists("/usr/sbin/vsftpd") and os.geteuid() == 0


def startVsftpd(directory: str, cert: str, key: str, port: int) -> Server:
    """
    vsftpd 3 with anonymous users over required TLS (its local users need
    PAM accounts); the served root is owned by root, uploads go to C{up/}.
    """
    ftpUser = "ftp" if _userExists("ftp") else "nobody"
    entry = pwd.getpwnam(ftpUser)
    root = os.path.join(directory, "root")
    empty = os.path.join(directory, "empty")
    os.makedirs(empty, exist_ok=True)
    os.makedirs(os.path.join(root, "up"), exist_ok=True)
    os.chmod(root, 0o755)
    os.chown(os.path.join(root, "up"), entry.pw_uid, entry.pw_gid)
    config = os.path.join(directory, "vsftpd.conf")
    with open(config, "w") as f:
        f.write(
            VSFTPD_CONFIG.format(
                port=port,
                root=root,
                ftpUser=ftpUser,
                empty=empty,
                cert=cert,
                key=key,
                low=port + 1,
                high=port + 2000,
            )
        )
    os.chmod(directory, 0o755)
    for name in (cert, key):
        os.chmod(name, 0o644)
    process = subprocess.Popen(["/usr/sbin/vsftpd", config], stderr=subprocess.DEVNULL)
    # In its cgroup before it forks the processes of any session.
    server = Server("vsftpd", process, port, root, user="anonymous", password="")
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    server.stop()
    raise SystemExit("vsftpd did not start")


def _userExists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
