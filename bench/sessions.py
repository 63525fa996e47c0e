"""
Session benchmark: txftps against pyftpdlib, side by side in one run.

Many short FTPS sessions, as backup scripts and monitoring make: connect,
AUTH TLS, log in, PROT P, PASV, download a 4 KiB file (the data connection
resumes the control connection's TLS session), QUIT. The client is Python's
ftplib with session reuse, run from several threads; the program prints
sessions per second and the server's CPU milliseconds per session.

    pip install -e '.[bench]' && python bench/sessions.py [--sessions 300] [--threads 4]
"""

from __future__ import annotations

import argparse
import ftplib
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import Certificates  # noqa: E402
from transfer import cpuSeconds, startPyftpdlib, startTxftps  # noqa: E402


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """
    ftplib that resumes the control connection's TLS session on data
    connections.
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


def session(port: int, context: ssl.SSLContext, expected: bytes) -> None:
    client = ReusingFTP_TLS(context=context, timeout=30)
    client.connect("127.0.0.1", port)
    client.auth()
    client.login("bench", "bench")
    client.prot_p()
    data: list[bytes] = []
    client.retrbinary("RETR small.bin", data.append)
    client.quit()
    if b"".join(data) != expected:
        raise SystemExit("wrong bytes downloaded")


def measure(
    name: str, pid: int, port: int, context: ssl.SSLContext, count: int, threads: int, data: bytes
) -> str:
    left = [count]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            session(port, context, data)

    before = cpuSeconds(pid)
    start = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    cpu = cpuSeconds(pid) - before
    return f"{name:<10} {count / wall:8.1f} sessions/s {cpu / count * 1000:8.2f} CPU-ms/session"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="txftps-bench-")
    try:
        certificates = Certificates.inDirectory(work)
        certFile, keyFile = certificates.certFile, certificates.keyFile
        context = certificates.context
        data = os.urandom(4096)
        rows = [
            f"{options.sessions} sessions, {options.threads} client threads, ftplib with"
            " session reuse, TLS on control and data"
        ]
        for name, start in (("txftps", startTxftps), ("pyftpdlib", startPyftpdlib)):
            directory = os.path.join(work, name)
            home = os.path.join(directory, "bench") if name == "txftps" else directory
            os.makedirs(home)
            with open(os.path.join(home, "small.bin"), "wb") as f:
                f.write(data)
            process, port = start(directory, certFile, keyFile)
            try:
                session(port, context, data)  # warm up (txftps creates the home)
                rows.append(
                    measure(
                        name, process.pid, port, context, options.sessions, options.threads, data
                    )
                )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
