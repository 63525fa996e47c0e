"""
The floor: what the cheapest possible FTPS session costs on Twisted's TLS
stack, next to pyftpdlib and txftps, in one run.

The floor server is a canned FTPS server in this file (C{--serve}), run as a
subprocess so its CPU is read from /proc like the others'. It does only the
wire exchange of the benchmark's session, with the standard Twisted pieces and
nothing else: a C{LineReceiver} that greets 220, answers C{AUTH TLS} 234 and
calls C{transport.startTLS}, answers USER 331, PASS 230, PBSZ/PROT/TYPE 200;
C{PASV} listens on an ephemeral port with a C{TLSMemoryBIOFactory}; C{RETR}
answers 150, writes the 4 KiB file (read once at start) once the data
connection's TLS handshake is done, closes it with close_notify and answers
226; C{QUIT} 221. One shared pyOpenSSL context for control and data (ECDSA
P-256 certificate, TLS 1.2 and up, session cache and tickets, a fixed session
id context), so the data connection resumes the control session. No log
lines, no authentication, no commands beyond those, no context per
connection and no check that a data connection resumes I{its} control
session.

The same session workload as C{compare.py} (C{--threads} ftplib clients run
connect, AUTH TLS, login, PBSZ/PROT P, PASV, RETR 4 KiB resuming the control
session, QUIT) runs against the floor, pyftpdlib and txftps; then, in this
process, the two TLS handshakes of a session alone (one full TLS 1.3
handshake, one resumed with the ticket it issued; pyOpenSSL memory BIOs on the
server side, Python's C{ssl} with C{SSLObject} on the client side), timing
only the server side's calls.

    pip install -e '.[bench]'
    python bench/floor.py [--sessions 1000] [--servers floor,pyftpdlib,txftps]
    python bench/floor.py --servers floor --py-spy floor.raw   # where it goes

The machine's load average is printed before and after: the numbers are only
comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IHandshakeListener,
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IReactorTCP,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import loadAverage, sessions  # noqa: E402
from servers import (  # noqa: E402
    Certificates,
    Server,
    _started,
    startPyftpdlib,
    startTxftps,
)

# the floor server


def floorContext(cert: str, key: str) -> SSL.Context:
    """
    The one context every control and data connection of the floor uses.

    @param cert: PEM certificate chain file.
    @param key: PEM private key file.
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.use_certificate_chain_file(cert)
    context.use_privatekey_file(key)
    context.check_privatekey()
    context.set_session_id(b"txftps-floor")
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    return context


@implementer(IOpenSSLServerConnectionCreator)
class SharedContext:
    """
    A TLS server connection on the one shared context.
    """

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """
        @return: a new server-side connection on the shared context.
        """
        return SSL.Connection(self.context, None)


@implementer(IHandshakeListener)
class Data(Protocol):
    """
    A PASV data connection: ready once its TLS handshake is done.
    """

    transport: Any

    def __init__(self, control: Control) -> None:
        self.control = control

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def handshakeCompleted(self) -> None:
        """
        Hand the connection to the control connection.
        """
        self.control.dataReady(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.control.dataClosed(self)


class DataFactory(Factory):
    """
    One data connection on one listening port, which stops listening as soon
    as it accepted it.
    """

    noisy = False

    def __init__(self, control: Control) -> None:
        self.control = control

    def buildProtocol(self, addr: object) -> Data:
        self.control.stopListening()
        return Data(self.control)


class Control(LineReceiver):
    """
    A control connection that answers the benchmark's session and nothing
    more.
    """

    transport: Any

    def __init__(self, factory: ControlFactory) -> None:
        self.shared = factory
        self.port: IListeningPort | None = None
        self.data: Data | None = None
        self.retrieving = False

    def connectionMade(self) -> None:
        # Like pyftpdlib and txftps: a reply must not wait for the ACK of the
        # one before (Nagle against the client's delayed ACK: 40 ms).
        self.transport.setTcpNoDelay(True)
        self.sendLine(b"220 floor")

    def lineReceived(self, line: bytes) -> None:
        verb = line.split(b" ", 1)[0].upper()
        reply = SIMPLE.get(verb)
        if reply is not None:
            self.sendLine(reply)
        elif verb == b"AUTH":
            self.sendLine(b"234 AUTH TLS ok")
            self.transport.startTLS(self.shared.creator)
        elif verb == b"PASV":
            self.stopListening()
            factory: Any = TLSMemoryBIOFactory(self.shared.creator, False, DataFactory(self))
            self.port = self.shared.reactor.listenTCP(0, factory, interface="127.0.0.1")
            address: Any = self.port.getHost()
            number = address.port
            self.sendLine(b"227 Entering Passive Mode (127,0,0,1,%d,%d)." % divmod(number, 256))
        elif verb == b"RETR":
            self.sendLine(b"150 Opening data connection")
            self.retrieving = True
            self.send()
        elif verb == b"QUIT":
            self.sendLine(b"221 Bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"502 Not in the floor")

    def sendLine(self, line: bytes) -> None:
        self.transport.write(line + b"\r\n")

    def stopListening(self) -> None:
        if self.port is not None:
            self.port.stopListening()
            self.port = None

    def dataReady(self, data: Data) -> None:
        self.data = data
        self.send()

    def send(self) -> None:
        if self.retrieving and self.data is not None:
            self.data.transport.write(self.shared.payload)
            self.data.transport.loseConnection()

    def dataClosed(self, data: Data) -> None:
        if self.retrieving:
            sent = self.data is data
            self.sendLine(b"226 Transfer complete" if sent else b"425 No TLS data connection")
        self.data = None
        self.retrieving = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stopListening()


SIMPLE = {
    b"USER": b"331 Password required",
    b"PASS": b"230 Logged in",
    b"PBSZ": b"200 PBSZ=0",
    b"PROT": b"200 Protection level set to P",
    b"TYPE": b"200 Type set",
}


class ControlFactory(Factory):
    """
    The floor's listening factory: the reactor, the shared TLS context and the
    one file every RETR sends.
    """

    noisy = False

    def __init__(self, reactor: IReactorTCP, creator: SharedContext, payload: bytes) -> None:
        self.reactor = reactor
        self.creator = creator
        self.payload = payload

    def buildProtocol(self, addr: object) -> Control:
        return Control(self)


def serve(cert: str, key: str, payload: str) -> None:
    """
    Run the floor server on an ephemeral port of 127.0.0.1 until SIGTERM,
    after printing C{PORT <number>}.
    """
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    # Errors only: Twisted's lines for every PASV port opened and closed are
    # still emitted (every Twisted server pays for that), and dropped here.
    errors = FilteringLogObserver(
        textFileLogObserver(sys.stderr),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
    )
    globalLogBeginner.beginLoggingTo([errors], redirectStandardIO=False)
    with open(payload, "rb") as f:
        data = f.read()
    factory: Any = ControlFactory(reactor, SharedContext(floorContext(cert, key)), data)
    port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print("PORT", port.getHost().port, flush=True)
    reactor.run()


def startFloor(directory: str, cert: str, key: str) -> Server:
    """
    This file's floor server, serving C{small.bin} in C{directory} (which
    must exist before it starts).
    """
    logPath = os.path.join(directory, "floor.log")
    process = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--serve",
            cert,
            key,
            os.path.join(directory, "small.bin"),
        ],
        stdout=open(logPath, "wb"),
        stderr=subprocess.STDOUT,
    )
    return _started("floor", process, directory, logPath, rb"PORT (\d+)")


# the handshakes alone


def handshakes(cert: str, key: str, client: ssl.SSLContext, count: int) -> dict[str, float]:
    """
    Server-side CPU of one full TLS handshake and one resumed with the ticket
    it issued, in memory, C{count} times; only the server's pyOpenSSL calls
    (from creating its C{SSL.Connection} to reading its last handshake
    bytes, the tickets included) are timed.

    @return: milliseconds per handshake, full and resumed, and their sum.
    """
    server = floorContext(cert, key)

    def pump(session: ssl.SSLSession | None) -> tuple[float, ssl.SSLObject]:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        mine = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1", session=session)
        start = time.process_time()
        theirs = SSL.Connection(server, None)
        theirs.set_accept_state()
        spent = time.process_time() - start
        serverDone = False
        while True:
            try:
                mine.do_handshake()
                clientDone = True
            except ssl.SSLWantReadError:
                clientDone = False
            sent = outgoing.read()
            if not sent and clientDone and serverDone:
                break
            start = time.process_time()
            if sent:
                theirs.bio_write(sent)
            if not serverDone:
                try:
                    theirs.do_handshake()
                    serverDone = True
                except SSL.WantReadError:
                    pass
            answer = b""
            while True:
                try:
                    answer += theirs.bio_read(65536)
                except SSL.WantReadError:
                    break
            spent += time.process_time() - start
            incoming.write(answer)
        try:
            mine.read()  # the server's tickets
        except ssl.SSLWantReadError:
            pass
        return spent, mine

    full = resumed = 0.0
    for _ in range(count):
        spent, first = pump(None)
        full += spent
        spent, second = pump(first.session)
        if not second.session_reused or first.version() != "TLSv1.3":
            raise SystemExit("the in-memory handshake did not resume a TLS 1.3 session")
        resumed += spent
    return {
        "full handshake": full / count * 1000,
        "resumed handshake": resumed / count * 1000,
        "both (one session)": (full + resumed) / count * 1000,
    }


# user and system CPU

SPLIT = ("  of which user", "  of which system")


def userSystem(server: Server) -> tuple[float, float]:
    """
    User and system CPU seconds of the server (L{Server.cpuSplit}).
    """
    return server.cpuSplit()


# profile


def record(pid: int, output: str) -> subprocess.Popen[bytes]:
    """
    Start py-spy sampling C{pid} at 500 Hz into C{output} (raw format).
    """
    pySpy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    process = subprocess.Popen(
        [pySpy, "record", "-r", "500", "-f", "raw", "-o", output, "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return process


def summarize(path: str, top: int) -> None:
    """
    Print the C{top} functions by inclusive and by self samples of a py-spy
    raw file.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    print(f"\npy-spy: {total} samples")
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"top {top} {title}:")
        for frame, n in counts.most_common(top):
            print(f"  {n / total * 100:5.1f} %  {frame}")


# the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--handshakes", type=int, default=1000)
    parser.add_argument("--servers", default="floor,pyftpdlib,txftps")
    parser.add_argument("--py-spy", metavar="RAW", help="profile the floor into this raw file")
    parser.add_argument("--top", type=int, default=25, help="entries of the profile summary")
    parser.add_argument(
        "--serve", nargs=3, metavar=("CERT", "KEY", "FILE"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.serve:
        serve(*options.serve)
        return
    wanted = options.servers.split(",")

    work = tempfile.mkdtemp(prefix="txftps-floor-")
    try:
        certificates = Certificates.inDirectory(work)
        certFile, keyFile = certificates.certFile, certificates.keyFile
        context = certificates.context
        small = os.urandom(4096)
        starters: dict[str, Callable[[str], Server]] = {
            "floor": lambda d: startFloor(d, certFile, keyFile),
            "pyftpdlib": lambda d: startPyftpdlib(d, certFile, keyFile),
            "txftps": lambda d: startTxftps(d, certFile, keyFile),
        }
        table: dict[str, dict[str, float]] = {}
        print(f"load average before: {loadAverage()} ({os.cpu_count()} CPUs)", flush=True)
        for name in wanted:
            directory = os.path.join(work, name)
            os.makedirs(directory)
            home = os.path.join(directory, "bench") if name == "txftps" else directory
            os.makedirs(home, exist_ok=True)
            with open(os.path.join(home, "small.bin"), "wb") as f:
                f.write(small)
            server = starters[name](directory)
            profiler = None
            if name == "floor" and options.py_spy:
                profiler = record(server.process.pid, options.py_spy)
            try:
                before = userSystem(server)
                table[name] = sessions(server, context, options.sessions, options.threads, small)
                # the split includes sessions()'s one warm-up session
                for measure, start, end in zip(SPLIT, before, userSystem(server), strict=True):
                    table[name][measure] = (end - start) / (options.sessions + 1) * 1000
            finally:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(60)
                server.stop()
            print(f"  {name} done (load {loadAverage()})", flush=True)
        shakes = handshakes(certFile, keyFile, context, options.handshakes)
        print(f"load average after: {loadAverage()}")
        report(table, wanted, shakes, options)
        if options.py_spy:
            summarize(options.py_spy, options.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    table: dict[str, dict[str, float]], servers: list[str], shakes: dict[str, float], options: Any
) -> None:
    print(f"\n{options.sessions} sessions x {options.threads} threads")
    head = f"{'measure':<24}" + "".join(f"{s:>11}" for s in servers)
    print(head)
    print("-" * len(head))
    for measure in ("cpu ms / session", *SPLIT, "sessions / s"):
        print(f"{measure:<24}" + "".join(f"{table[s][measure]:11.2f}" for s in servers))
    cpu = {s: table[s]["cpu ms / session"] for s in servers}
    if "pyftpdlib" in cpu:
        py = cpu["pyftpdlib"]
        for name in servers:
            if name != "pyftpdlib":
                print(f"{name} / pyftpdlib: {cpu[name] / py:.2f}")
        print(f"0.6 x pyftpdlib: {0.6 * py:.2f} ms / session")
    print(f"\nTLS handshakes alone, server side, in memory ({options.handshakes} sessions, ms):")
    for measure, value in shakes.items():
        print(f"  {measure:<22}{value:8.3f}")
    if "floor" in cpu:
        share = shakes["both (one session)"] / cpu["floor"] * 100
        print(f"  share of the floor's session: {share:.0f} %")


if __name__ == "__main__":
    main()
