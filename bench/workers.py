"""
Worker benchmark: txftps in one process and with C{--workers 2}, side by
side in one run.

The short-session workload of bench/compare.py (connect, AUTH TLS, log in,
PROT P, PASV, download 4 KiB resuming the TLS session, QUIT), run by several
client processes (a client in threads would compete with itself for one
core). It prints sessions per second and the server's CPU milliseconds per
session: user and system time of the twistd process and of every worker,
from the server's cgroup as bench/compare.py reads it (else from /proc).
The clients run on the same machine, so they take their share of its cores
too: say how many cores the machine has when you quote the numbers.

    pip install -e '.[bench]' && python bench/workers.py [--sessions 2000] [--clients 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import fullSession  # noqa: E402
from servers import Certificates, Server, childrenCPU, startTxftps  # noqa: E402


def _client(server: Server, caFile: str, count: int, data: bytes) -> None:
    context = ssl.create_default_context(cafile=caFile)
    for _ in range(count):
        fullSession(server, context, data)


def measure(
    server: Server, caFile: str, count: int, clients: int, data: bytes
) -> tuple[float, float, float]:
    """
    Run C{count} sessions from C{clients} processes.

    @return: sessions per second, server CPU milliseconds per session (the
        twistd process and its workers), and client CPU milliseconds per
        session.
    """
    share = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    context = multiprocessing.get_context("fork")
    before = server.cpuSeconds()
    clientsBefore = childrenCPU()
    start = time.perf_counter()
    processes = [
        context.Process(target=_client, args=(server, caFile, n, data)) for n in share if n
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a client process failed with status {p.exitcode}")
    wall = time.perf_counter() - start
    cpu = server.cpuSeconds() - before
    clientCPU = childrenCPU() - clientsBefore
    return count / wall, cpu / count * 1000, clientCPU / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="txftps-bench-")
    try:
        certificates = Certificates.inDirectory(work)
        caFile, certFile, keyFile = (
            certificates.caFile,
            certificates.certFile,
            certificates.keyFile,
        )
        data = os.urandom(4096)
        rows = [
            f"{options.sessions} sessions, {options.clients} client processes, ftplib with"
            f" session reuse, TLS on control and data; {os.cpu_count()} CPUs",
            f"{'server':<14} {'sessions/s':>10} {'server CPU-ms/session':>22}"
            f" {'client CPU-ms/session':>22}",
        ]
        for name, workers in (("one process", 1), ("--workers 2", 2)):
            directory = os.path.join(work, f"w{workers}")
            os.makedirs(directory)
            extra = ["--workers", str(workers)] if workers > 1 else []
            server = startTxftps(directory, certFile, keyFile, *extra)
            try:
                with open(os.path.join(server.home, "small.bin"), "wb") as f:
                    f.write(data)
                # Warm up every worker.
                _client(server, caFile, 10 * workers, data)
                rate, cpu, client = measure(
                    server, caFile, options.sessions, options.clients, data
                )
                rows.append(f"{name:<14} {rate:10.1f} {cpu:22.2f} {client:22.2f}")
            finally:
                server.stop()
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
