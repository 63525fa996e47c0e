"""
The PROXY protocol (L{txftps._proxyprotocol}) behind a real HAProxy:
Debian's C{haproxy}, started by the tests in TCP mode with C{send-proxy-v2}
on the control ports and on the passive port range.

The layout on loopback::

    curl, lftp           HAProxy                      twistd ftps
    from 127.0.0.2  -->  127.0.0.5:P (control)  -->   127.0.0.1:port
    or 127.0.0.3         127.0.0.5:LOW-HIGH     -->   127.0.0.1:LOW-HIGH
                         (connects from 127.0.0.9, the trusted proxy)

The server runs with C{--proxy-protocol --trusted-proxy 127.0.0.9
--passive-ports LOW-HIGH --masquerade 127.0.0.5}: its passive listeners bind
on its real address 127.0.0.1, its PASV replies point clients at the
balancer, and nothing but HAProxy listens on 127.0.0.5, so every data byte
goes through HAProxy. A missing C{haproxy} fails the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

from tests import support

USER = "alice"
PASSWORD = "secret"
BALANCER = "127.0.0.5"
HAPROXY_SOURCE = "127.0.0.9"
CLIENT = "127.0.0.2"
OTHER_CLIENT = "127.0.0.3"
PASSIVE_PORTS = 8

CONFIG = """\
global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend explicit
    bind {balancer}:{explicit}
    default_backend explicit

backend explicit
    # A health check: a TCP connect, closed without a byte.
    server ftps {server}:{serverExplicit} send-proxy-v2 source {source} check inter 300ms

frontend implicit
    bind {balancer}:{implicit}
    default_backend implicit

backend implicit
    # A health check with a PROXY v2 LOCAL header.
    server ftps {server}:{serverImplicit} send-proxy-v2 source {source} check inter 300ms check-send-proxy

frontend passive
    bind {balancer}:{low}-{high}
    default_backend passive

# No port: the port the client connected to.
backend passive
    server ftps {server} send-proxy-v2 source {source}
"""


class HAProxy:
    """
    C{haproxy -db} in front of a L{support.TwistdServer} that is not started
    yet: L{__init__} picks the ports, L{start} writes the configuration once
    the server's ports are known.

    @ivar explicitPort: the balancer's explicit-FTPS port.
    @ivar implicitPort: the balancer's implicit-FTPS port.
    @ivar passiveLow: the first port of the passive range, on both sides.
    @ivar passiveHigh: the last one.
    """

    def __init__(self, directory: str) -> None:
        self.binary = support.requirePackagedProgram("haproxy", "haproxy")
        self.directory = directory
        first = support.freePortRange(PASSIVE_PORTS + 2)
        self.explicitPort = first
        self.implicitPort = first + 1
        self.passiveLow = first + 2
        self.passiveHigh = first + 1 + PASSIVE_PORTS
        self.process: subprocess.Popen[bytes] | None = None
        self.logFile = os.path.join(directory, "haproxy.log")

    def start(self, server: support.TwistdServer) -> None:
        config = os.path.join(self.directory, "haproxy.cfg")
        support.writeFile(
            config,
            CONFIG.format(
                balancer=BALANCER,
                explicit=self.explicitPort,
                implicit=self.implicitPort,
                server=support.LOOPBACK,
                serverExplicit=server.explicitPort,
                serverImplicit=server.implicitPort,
                source=HAPROXY_SOURCE,
                low=self.passiveLow,
                high=self.passiveHigh,
            ).encode("ascii"),
        )
        check = subprocess.run([self.binary, "-c", "-f", config], capture_output=True)
        if check.returncode != 0:
            raise AssertionError(f"haproxy refused its configuration: {check.stderr!r}")
        self._log = open(self.logFile, "wb")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", config], stdout=self._log, stderr=subprocess.STDOUT
        )
        wanted = {self.explicitPort, self.implicitPort, self.passiveLow, self.passiveHigh}
        if not support.waitUntil(lambda: wanted <= support.listeningPorts(), 10):
            self.stop()
            raise AssertionError(f"haproxy did not start: {self.log()}")

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


class BehindHAProxyTestCase(support.ServerLogTestCase):
    """
    Starts the server and HAProxy in front of it for each test.
    """

    serverArgs: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="txftps-haproxy-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.haproxy = HAProxy(self.directory)
        ca = support.ThrowawayCA(self.directory, extraNames=(BALANCER,))
        self.server = support.TwistdServer(
            "--proxy-protocol",
            "--trusted-proxy",
            HAPROXY_SOURCE,
            "--passive-ports",
            f"{self.haproxy.passiveLow}-{self.haproxy.passiveHigh}",
            "--masquerade",
            BALANCER,
            *self.serverArgs,
            ca=ca,
            users={USER: PASSWORD},
        )
        self.server.start()
        self.addCleanup(self.server.stop)
        self.haproxy.start(self.server)
        self.addCleanup(self.haproxy.stop)
        self.home = self.server.userHome(USER)
        os.makedirs(self.home, exist_ok=True)
        self.payload = os.urandom(3 * 1024 * 1024 + 17)
        support.writeFile(os.path.join(self.home, "down.bin"), self.payload)
        self.log = support.LogWatch(self.server)

    def serverLog(self, tail: int = 4000) -> str:
        return (
            "\n--- server log (tail) ---\n"
            + self.server.log()[-tail:]
            + "\n--- haproxy log ---\n"
            + self.haproxy.log()[-1000:]
        )

    def url(self, implicit: bool, path: str = "/") -> str:
        if implicit:
            return f"ftps://{BALANCER}:{self.haproxy.implicitPort}{path}"
        return f"ftp://{BALANCER}:{self.haproxy.explicitPort}{path}"

    def curl(
        self, *args: str, implicit: bool = False, path: str = "/", source: str = CLIENT
    ) -> subprocess.CompletedProcess[bytes]:
        """
        curl from C{source} through the balancer, verifying the server's
        certificate for the balancer's address.
        """
        command = [
            support.requireProgram("curl"),
            "-sS",
            "--cacert",
            self.server.ca.caFile,
            "--ssl-reqd",
            "--interface",
            source,
            *args,
            self.url(implicit, path),
        ]
        return subprocess.run(command, capture_output=True, timeout=60)

    def lftp(
        self, script: str, implicit: bool = False, source: str = CLIENT
    ) -> subprocess.CompletedProcess[bytes]:
        """
        An lftp script from C{source} through the balancer, logged in as
        C{alice}, with protected data connections.
        """
        settings = (
            f"set ssl:ca-file {self.server.ca.caFile}; set ssl:verify-certificate yes;"
            " set ftp:ssl-force yes; set ftp:ssl-protect-data yes;"
            f" set net:socket-bind-ipv4 {source};"
            " set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes;"
        )
        full = f"{settings} open -u {USER},{PASSWORD} {self.url(implicit)}; {script}"
        env = dict(os.environ, HOME=self.directory)
        return subprocess.run(
            [support.requireProgram("lftp"), "-c", full],
            capture_output=True,
            timeout=90,
            env=env,
        )

    def assertClientLogged(self, client: str) -> None:
        """
        The server logged the login from C{client}, and never named the
        balancer as a client.
        """
        self.assertTrue(
            self.log.waitFor(f"{USER} logged in from {client}"),
            f"no login from {client} logged" + self.serverLog(),
        )
        log = self.server.log()
        self.assertIn("names no client (a health check)", log, "no health check seen")
        self.assertNotIn("#info] closed connection from trusted proxy", log, self.serverLog())
        for address in (HAPROXY_SOURCE, BALANCER):
            self.assertNotIn(f"from {address}", log, self.serverLog())
            self.assertNotIn(f"{address} <-", log, self.serverLog())


class ClientsTests(BehindHAProxyTestCase):
    """
    curl and lftp log in, list, upload and download through HAProxy,
    explicit and implicit FTPS, and the server knows them by their own
    addresses.
    """

    def runCurl(self, implicit: bool, source: str) -> None:
        login = f"{USER}:{PASSWORD}"
        listing = self.curl("-u", login, implicit=implicit, source=source)
        self.assertSucceeded(listing, "curl LIST")
        self.assertIn(b"down.bin", listing.stdout)
        local = os.path.join(self.directory, f"curl-{implicit}.bin")
        download = self.curl("-u", login, "-o", local, implicit=implicit, path="/down.bin")
        self.assertSucceeded(download, "curl RETR")
        self.assertSameBytes(support.readFile(local), self.payload, "curl download")
        name = f"up-curl-{int(implicit)}.bin"
        upload = self.curl("-u", login, "-T", local, implicit=implicit, path=f"/{name}")
        self.assertSucceeded(upload, "curl STOR")
        stored = support.readFile(os.path.join(self.home, name))
        self.assertSameBytes(stored, self.payload, "curl upload")

    def test_curlExplicit(self) -> None:
        """
        curl over explicit FTPS (AUTH TLS) through HAProxy: LIST, RETR and
        STOR of a 3 MiB file, byte for byte; the login is logged from the
        client's address.
        """
        self.runCurl(implicit=False, source=CLIENT)
        self.assertClientLogged(CLIENT)

    def test_curlImplicit(self) -> None:
        """
        The same over implicit FTPS (TLS from the first byte, after the
        balancer's header).
        """
        self.runCurl(implicit=True, source=OTHER_CLIENT)
        self.assertClientLogged(OTHER_CLIENT)

    def runLftp(self, implicit: bool) -> None:
        local = os.path.join(self.directory, f"lftp-{implicit}.bin")
        name = f"up-lftp-{int(implicit)}.bin"
        result = self.lftp(
            f"cls -1; get down.bin -o {local}; put {local} -o {name}", implicit=implicit
        )
        self.assertSucceeded(result, "lftp")
        self.assertIn(b"down.bin", result.stdout)
        self.assertSameBytes(support.readFile(local), self.payload, "lftp download")
        stored = support.readFile(os.path.join(self.home, name))
        self.assertSameBytes(stored, self.payload, "lftp upload")

    def test_lftpExplicit(self) -> None:
        """
        lftp over explicit FTPS through HAProxy: listing, download and
        upload of a 3 MiB file, byte for byte; logged from the client.
        """
        self.runLftp(implicit=False)
        self.assertClientLogged(CLIENT)

    def test_lftpImplicit(self) -> None:
        """
        The same over implicit FTPS.
        """
        self.runLftp(implicit=True)
        self.assertClientLogged(CLIENT)


class BanTests(BehindHAProxyTestCase):
    """
    A ban made through the balancer refuses that client, not the others
    behind the same balancer.
    """

    serverArgs = ("--ban-after", "2", "--ban-time", "600")

    def test_banThroughBalancer(self) -> None:
        """
        Two failed logins from 127.0.0.2 through HAProxy (C{--ban-after 2})
        ban 127.0.0.2: its next connection, with the right password, is
        refused at the door (logged with its address), while 127.0.0.3 logs
        in and lists through the same balancer.
        """
        for _ in range(2):
            failed = self.curl("-u", f"{USER}:wrong", source=CLIENT)
            self.assertNotEqual(failed.returncode, 0, "a wrong password logged in")
        self.log.mark()
        refused = self.curl("-u", f"{USER}:{PASSWORD}", source=CLIENT)
        self.assertNotEqual(refused.returncode, 0, "the banned client logged in")
        self.assertTrue(
            self.log.waitFor(f"refused {CLIENT}: banned after failed logins"), self.serverLog()
        )
        self.assertNotIn(f"{USER} logged in", self.log.since())
        allowed = self.curl("-u", f"{USER}:{PASSWORD}", source=OTHER_CLIENT)
        self.assertSucceeded(allowed, "curl from the client that is not banned")
        self.assertIn(b"down.bin", allowed.stdout)
        self.assertClientLogged(OTHER_CLIENT)
        refusedImplicit = self.curl("-u", f"{USER}:{PASSWORD}", implicit=True, source=CLIENT)
        self.assertNotEqual(refusedImplicit.returncode, 0, "the banned client logged in")
        for address in (HAPROXY_SOURCE, BALANCER):
            self.assertNotIn(f"refused {address}", self.server.log())
