"""
Worker benchmark: txftps in one process and with C{--workers 2}, side by
side in one run.

The short-session workload of bench/sessions.py (connect, AUTH TLS, log in,
PROT P, PASV, download 4 KiB resuming the TLS session, QUIT), run by several
client processes (a client in threads would compete with itself for one
core). It prints sessions per second and the server's CPU milliseconds per
session: user and system time of the twistd process and of every worker,
from /proc. The clients run on the same machine, so they take their share
of its cores too: say how many cores the machine has when you quote the
numbers.

    pip install -e '.[bench]' && python bench/workers.py [--sessions 2000] [--clients 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import signal
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import Certificates  # noqa: E402
from sessions import session  # noqa: E402
from transfer import cpuSeconds, startTxftps  # noqa: E402


def _client(port: int, caFile: str, count: int, data: bytes) -> None:
    context = ssl.create_default_context(cafile=caFile)
    for _ in range(count):
        session(port, context, data)


def serverProcesses(pid: int, logPath: str, workers: int) -> list[int]:
    """
    The twistd process and its workers (their pids from the parent's log).
    """
    if workers == 1:
        return [pid]
    pattern = re.compile(rb"worker \d+ started, pid (\d+)")
    for _ in range(200):
        with open(logPath, "rb") as f:
            found = pattern.findall(f.read())
        if len(found) >= workers:
            return [pid, *(int(p) for p in found[:workers])]
        time.sleep(0.05)
    raise SystemExit("the workers did not start")


def measure(
    pids: list[int], port: int, caFile: str, count: int, clients: int, data: bytes
) -> tuple[float, float, float]:
    """
    Run C{count} sessions from C{clients} processes.

    @return: sessions per second, server CPU milliseconds per session, and
        client CPU milliseconds per session.
    """
    share = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    context = multiprocessing.get_context("fork")
    before = sum(cpuSeconds(p) for p in pids)
    clientsBefore = _childrenCPU()
    start = time.perf_counter()
    processes = [context.Process(target=_client, args=(port, caFile, n, data)) for n in share if n]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a client process failed with status {p.exitcode}")
    wall = time.perf_counter() - start
    cpu = sum(cpuSeconds(p) for p in pids) - before
    clientCPU = _childrenCPU() - clientsBefore
    return count / wall, cpu / count * 1000, clientCPU / count * 1000


def _childrenCPU() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
            os.makedirs(os.path.join(directory, "bench"))
            with open(os.path.join(directory, "bench", "small.bin"), "wb") as f:
                f.write(data)
            extra = ["--max-clients-per-ip", "1000"]
            if workers > 1:
                extra += ["--workers", str(workers)]
            process, port = startTxftps(directory, certFile, keyFile, *extra)
            try:
                pids = serverProcesses(process.pid, os.path.join(directory, "txftps.log"), workers)
                # Warm up every worker (and create the home).
                _client(port, caFile, 10 * workers, data)
                rate, cpu, client = measure(
                    pids, port, caFile, options.sessions, options.clients, data
                )
                rows.append(f"{name:<14} {rate:10.1f} {cpu:22.2f} {client:22.2f}")
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
