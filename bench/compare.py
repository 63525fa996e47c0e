"""
txftps against pyftpdlib (and vsftpd when installed), every measure side by
side in one run, with the ratio txftps / pyftpdlib.

Measures, all of the server's process tree (CPU from a cgroup of the
server's own when one can be made, else from /proc: user + system, with
reaped children; memory as PSS):

 - CPU per full session and sessions per second: C{--threads} ftplib clients
   run connect, AUTH TLS, login, PBSZ/PROT P, PASV, RETR 4 KiB (the data
   connection resumes the control session), QUIT.
 - CPU per GiB for RETR and STOR, PROT P, with curl and with ftplib; the
   median of C{--rounds}; and the cost of AES-256-GCM itself (C{openssl
   speed}, 16 KiB blocks) for scale.
 - Memory per idle logged-in TLS session and the time to open them:
   C{--idle} sessions opened by 8 threads (connect, AUTH TLS, login, PROT
   P), held, then closed; the file descriptors must return to where they
   were.

    pip install -e '.[bench]'
    python bench/compare.py [--only sessions,bulk,idle] [--idle 10000]

The machine's load average is printed before and after: the numbers are only
comparable within one run.
"""

from __future__ import annotations

import argparse
import ftplib
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import (  # noqa: E402
    Certificates,
    Server,
    startPyftpdlib,
    startTxftps,
    startVsftpd,
    vsftpdAvailable,
)


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """
    ftplib resuming the control connection's TLS session on data connections.
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> Any:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn,
                server_hostname=self.host,
                session=self.sock.session,  # type: ignore[attr-defined]
            )
        return conn, size


def loggedIn(server: Server, context: ssl.SSLContext) -> ReusingFTP_TLS:
    client = ReusingFTP_TLS(context=context, timeout=60)
    client.connect("127.0.0.1", server.port)
    client.auth()
    client.login(server.user, server.password)
    client.prot_p()
    return client


def uploadName(server: Server, name: str) -> str:
    return f"up/{name}" if server.name == "vsftpd" else name


# sessions


def fullSession(server: Server, context: ssl.SSLContext, expected: bytes) -> None:
    client = loggedIn(server, context)
    data: list[bytes] = []
    client.retrbinary("RETR small.bin", data.append)
    client.quit()
    if b"".join(data) != expected:
        raise SystemExit(f"{server.name}: wrong bytes downloaded")


def onThreads(count: int, threads: int, work: Callable[[], object]) -> list[BaseException]:
    """
    Call C{work} C{count} times from C{threads} threads; after a failure no
    new call starts.

    @return: the failures.
    """
    left = [count]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if left[0] == 0 or errors:
                    return
                left[0] -= 1
            try:
                work()
            except BaseException as e:
                with lock:
                    errors.append(e)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def sessions(
    server: Server, context: ssl.SSLContext, count: int, threads: int, expected: bytes
) -> dict[str, float]:
    fullSession(server, context, expected)
    time.sleep(0.5)
    before = server.cpuSeconds()
    start = time.perf_counter()
    errors = onThreads(count, threads, lambda: fullSession(server, context, expected))
    wall = time.perf_counter() - start
    time.sleep(0.5)  # vsftpd: let the listener reap the last sessions
    cpu = server.cpuSeconds() - before
    if errors:
        raise SystemExit(f"{server.name}: session failed: {errors[0]!r}")
    return {"cpu ms / session": cpu / count * 1000, "sessions / s": count / wall}


# bulk


def curl(server: Server, ca: str, *args: str) -> None:
    subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "--cacert", ca, "-u", f"{server.user}:{server.password}"]
        + list(args),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )


def bulk(
    server: Server, ca: str, context: ssl.SSLContext, source: str, size: int, rounds: int
) -> dict[str, float]:
    url = f"ftp://127.0.0.1:{server.port}/"
    results: dict[str, float] = {}
    gib = size / 2**30
    for client in ("curl", "ftplib"):
        for direction in ("RETR", "STOR"):
            cpus = []
            for i in range(rounds):
                name = uploadName(server, f"up{i}.bin")
                before = server.cpuSeconds()
                if client == "curl" and direction == "RETR":
                    curl(server, ca, "-o", os.devnull, url + "data.bin")
                elif client == "curl":
                    curl(server, ca, "-T", source, url + name)
                else:
                    ftp = loggedIn(server, context)
                    if direction == "RETR":
                        ftp.retrbinary("RETR data.bin", lambda b: None, blocksize=1 << 18)
                    else:
                        with open(source, "rb") as f:
                            ftp.storbinary(f"STOR {name}", f, blocksize=1 << 18)
                    ftp.quit()
                time.sleep(0.2)
                cpus.append(server.cpuSeconds() - before)
                if direction == "STOR":
                    stored = os.path.join(server.home, name)
                    if os.path.getsize(stored) != size:
                        raise SystemExit(f"{server.name}: STOR stored a wrong size")
                    os.unlink(stored)
            results[f"cpu s / GiB {direction} {client}"] = statistics.median(cpus) / gib
    for direction in ("RETR", "STOR"):
        results[f"cpu s / GiB {direction} (median of clients)"] = statistics.median(
            [results[f"cpu s / GiB {direction} {c}"] for c in ("curl", "ftplib")]
        )
    return results


def aesSecondsPerGiB() -> float:
    out = subprocess.run(
        [
            "openssl",
            "speed",
            "-elapsed",
            "-seconds",
            "2",
            "-bytes",
            "16384",
            "-evp",
            "aes-256-gcm",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [x for x in out.splitlines() if x.lower().startswith("aes-256-gcm")][-1]
    kBps = float(re.findall(r"([\d.]+)k", line)[-1])
    return 2**30 / (kBps * 1000)


# idle sessions


def idle(server: Server, context: ssl.SSLContext, count: int, openers: int) -> dict[str, float]:
    time.sleep(0.5)
    baseFds = server.fileDescriptors()
    basePss = server.pssKiB()
    held: list[ReusingFTP_TLS] = []
    start = time.perf_counter()
    errors = onThreads(count, openers, lambda: held.append(loggedIn(server, context)))
    opened = time.perf_counter() - start
    time.sleep(1.0)
    pss = server.pssKiB()
    fds = server.fileDescriptors()
    for client in held:
        try:
            client.close()
        except OSError:
            pass
    deadline = time.monotonic() + 60
    while server.fileDescriptors() > baseFds and time.monotonic() < deadline:
        time.sleep(0.2)
    after = server.fileDescriptors()
    if errors:
        raise SystemExit(f"{server.name}: opening sessions failed: {errors[0]!r}")
    return {
        "KiB PSS / idle session": (pss - basePss) / count,
        f"s to open {count} sessions": opened,
        "fds held / session": (fds - baseFds) / count,
        "fds left after close": after - baseFds,
    }


# the run


def loadAverage() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="sessions,bulk,idle")
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--servers", default="txftps,pyftpdlib,vsftpd")
    options = parser.parse_args()
    only = set(options.only.split(","))
    wanted = options.servers.split(",")
    if "vsftpd" in wanted and not vsftpdAvailable():
        print("vsftpd not installed (or not root): left out")
        wanted.remove("vsftpd")
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < options.idle + 200:
        raise SystemExit(f"ulimit -n allows {hard} files: too few for {options.idle} sessions")

    work = tempfile.mkdtemp(prefix="txftps-bench-")
    os.chmod(work, 0o755)
    try:
        certificates = Certificates.inDirectory(work)
        caFile, certFile, keyFile = (
            certificates.caFile,
            certificates.certFile,
            certificates.keyFile,
        )
        context = certificates.context
        small = os.urandom(4096)
        size = options.size_mib * 2**20
        source = os.path.join(work, "source.bin")
        if "bulk" in only:
            with open(source, "wb") as f:
                f.write(os.urandom(size))
        starters: dict[str, Callable[[str], Server]] = {
            "txftps": lambda d: startTxftps(d, certFile, keyFile),
            "pyftpdlib": lambda d: startPyftpdlib(d, certFile, keyFile),
            "vsftpd": lambda d: startVsftpd(d, certFile, keyFile, _freePort()),
        }
        table: dict[str, dict[str, float]] = {}
        print(f"load average before: {loadAverage()} ({os.cpu_count()} CPUs)", flush=True)
        for name in wanted:
            directory = os.path.join(work, name)
            os.makedirs(directory)
            server = starters[name](directory)
            results: dict[str, float] = {}
            try:
                with open(os.path.join(server.home, "small.bin"), "wb") as f:
                    f.write(small)
                if "bulk" in only:
                    shutil.copy(source, os.path.join(server.home, "data.bin"))
                if "sessions" in only:
                    results.update(
                        sessions(server, context, options.sessions, options.threads, small)
                    )
                if "bulk" in only:
                    results.update(bulk(server, caFile, context, source, size, options.rounds))
                if "idle" in only:
                    results.update(idle(server, context, options.idle, 8))
            finally:
                server.stop()
            table[name] = results
            cpuSource = f"cgroup {server.cgroup}" if server.cgroup else "/proc"
            print(f"  {name} done (load {loadAverage()}; CPU from {cpuSource})", flush=True)
        if "bulk" in only:
            aes = aesSecondsPerGiB()
            table.setdefault("AES-256-GCM", {})["cpu s / GiB"] = aes
        print(f"load average after: {loadAverage()}")
        report(table, wanted, options)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port if port < 60000 else _freePort()


def report(table: dict[str, dict[str, float]], servers: list[str], options: Any) -> None:
    rows = []
    for name in servers:
        for measure in table[name]:
            if measure not in rows:
                rows.append(measure)
    head = f"{'measure':<40}" + "".join(f"{s:>11}" for s in servers) + f"{'ratio':>8}"
    print(
        f"\n{options.sessions} sessions x {options.threads} threads; {options.size_mib} MiB x"
        f" {options.rounds} rounds; {options.idle} idle sessions"
    )
    print(head)
    print("-" * len(head))
    for measure in rows:
        values = [table[s].get(measure) for s in servers]
        cells = "".join(f"{v:11.2f}" if v is not None else f"{'-':>11}" for v in values)
        tx, py = table.get("txftps", {}).get(measure), table.get("pyftpdlib", {}).get(measure)
        ratio = f"{tx / py:8.2f}" if tx is not None and py else f"{'':>8}"
        print(f"{measure:<40}{cells}{ratio}")
    if "AES-256-GCM" in table:
        aes = table["AES-256-GCM"]["cpu s / GiB"]
        print(f"{'AES-256-GCM alone (openssl speed)':<40}{aes:11.2f} cpu s / GiB")
        for direction in ("RETR", "STOR"):
            tx = table.get("txftps", {}).get(f"cpu s / GiB {direction} (median of clients)")
            if tx is not None:
                print(f"  txftps {direction} / AES-256-GCM: {tx / aes:.2f} x")


if __name__ == "__main__":
    main()
