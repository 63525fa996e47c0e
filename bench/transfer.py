"""
Bulk-transfer benchmark: txftps against pyftpdlib, side by side in one run.

Both servers run on loopback with TLS on control and data (PROT P), the same
certificate and the same files. The client is curl (a C client, so that the
server is the bottleneck). For each server and direction the program prints
wall-clock throughput and the server process's CPU seconds per GiB moved
(from /proc), the number that decides how many clients one core serves.

    pip install -e '.[bench]' && python bench/transfer.py [--size-mib 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from servers import Certificates  # noqa: E402

PYFTPDLIB_SERVER = r"""
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
home, cert, key = sys.argv[1:4]
authorizer = DummyAuthorizer()
authorizer.add_user("bench", "bench", home, perm="elradfmw")
class Handler(TLS_FTPHandler):
    certfile = cert
    keyfile = key
    tls_control_required = True
    tls_data_required = True
Handler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.address[1], flush=True)
server.serve_forever()
"""


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def startTxftps(
    directory: str, cert: str, key: str, *extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    log = open(os.path.join(directory, "txftps.log"), "wb")
    env = dict(os.environ, PYTHONPATH=ROOT)
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
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=directory,
    )
    path = os.path.join(directory, "txftps.log")
    for _ in range(200):
        with open(path, "rb") as f:
            m = re.search(rb"explicit FTPS listening on \S+ port (\d+)", f.read())
        if m:
            return process, int(m.group(1))
        time.sleep(0.05)
    raise SystemExit("txftps did not start")


def startPyftpdlib(directory: str, cert: str, key: str) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", PYFTPDLIB_SERVER, directory, cert, key],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    return process, int(line[1])


def curl(port: int, ca: str, *args: str) -> None:
    subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "--cacert", ca, "-u", "bench:bench", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure(
    name: str,
    process: subprocess.Popen[bytes],
    port: int,
    ca: str,
    directory: str,
    source: str,
    size: int,
    rounds: int,
) -> list[str]:
    rows = []
    url = f"ftp://127.0.0.1:{port}/"
    for direction in ("download", "upload"):
        walls, cpus = [], []
        for i in range(rounds):
            before = cpuSeconds(process.pid)
            start = time.perf_counter()
            if direction == "download":
                curl(port, ca, "-o", os.devnull, url + "data.bin")
            else:
                curl(port, ca, "-T", source, url + f"up{i}.bin")
            walls.append(time.perf_counter() - start)
            cpus.append(cpuSeconds(process.pid) - before)
            if direction == "upload":
                stored = os.path.join(directory, f"up{i}.bin")
                if os.path.getsize(stored) != size:
                    raise SystemExit(f"{name}: upload {i} stored {os.path.getsize(stored)} bytes")
                os.unlink(stored)
        wall = min(walls)
        cpu = min(cpus)
        gib = size / 2**30
        rows.append(
            f"{name:<10} {direction:<9} {size / wall / 2**20:9.1f} MiB/s"
            f" {cpu / gib:8.2f} CPU-s/GiB"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed")
    size = options.size_mib * 2**20
    work = tempfile.mkdtemp(prefix="txftps-bench-")
    try:
        certificates = Certificates.inDirectory(work)
        caFile, certFile, keyFile = (
            certificates.caFile,
            certificates.certFile,
            certificates.keyFile,
        )
        source = os.path.join(work, "source.bin")
        with open(source, "wb") as f:
            f.write(os.urandom(size))
        rows = [
            f"{options.size_mib} MiB, best of {options.rounds}, curl client, TLS on"
            " control and data"
        ]
        for name, start in (("txftps", startTxftps), ("pyftpdlib", startPyftpdlib)):
            directory = os.path.join(work, name)
            home = os.path.join(directory, "bench") if name == "txftps" else directory
            os.makedirs(home)
            shutil.copy(source, os.path.join(home, "data.bin"))
            process, port = start(directory, certFile, keyFile)
            try:
                rows += measure(name, process, port, caFile, home, source, size, options.rounds)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
