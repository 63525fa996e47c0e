"""
Client benchmark: the txftps command against curl and lftp, side by side in
one run, downloading and uploading the same file from the same server.

The server is the real `twistd ftps` on loopback (TLS on control and data,
session reuse required). For each client and direction the program prints
wall-clock throughput and the client's CPU seconds per GiB moved (user +
system of the client process and its children, from getrusage), best of
N rounds. The txftps figures include its Python start-up (about 0.3 CPU-s
per run), as a user running the command pays it.

    pip install -e '.[bench]' && python bench/client.py [--size-mib 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from servers import Certificates, childrenCPU, startTxftps  # noqa: E402


def commands(client: str, direction: str, port: int, ca: str, source: str, name: str) -> list[str]:
    url = f"ftp://bench:bench@127.0.0.1:{port}/"
    if client == "txftps":
        txftps = os.path.join(os.path.dirname(sys.executable), "txftps")
        if direction == "download":
            return [txftps, "get", "--ca", ca, url + "data.bin", "-"]
        return [txftps, "put", "--ca", ca, source, url + name]
    if client == "curl":
        base = ["curl", "-sS", "--ssl-reqd", "--cacert", ca]
        if direction == "download":
            return [*base, "-o", os.devnull, url + "data.bin"]
        return [*base, "-T", source, url + name]
    settings = (
        f"set ssl:ca-file {ca}; set ssl:verify-certificate yes; set ftp:ssl-force yes;"
        " set ftp:ssl-protect-data yes; set net:max-retries 1; set xfer:clobber on;"
    )
    action = "get data.bin -o /dev/null" if direction == "download" else f"put {source} -o {name}"
    return ["lftp", "-c", f"{settings} open {url}; {action}"]


def measure(
    client: str, port: int, ca: str, home: str, source: str, size: int, rounds: int
) -> list[str]:
    rows = []
    for direction in ("download", "upload"):
        walls, cpus = [], []
        for i in range(rounds):
            name = f"up-{client}-{i}.bin"
            before = childrenCPU()
            start = time.perf_counter()
            subprocess.run(
                commands(client, direction, port, ca, source, name),
                check=True,
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, HOME=home),
            )
            walls.append(time.perf_counter() - start)
            cpus.append(childrenCPU() - before)
            if direction == "upload":
                stored = os.path.join(home, name)
                if os.path.getsize(stored) != size:
                    raise SystemExit(f"{client}: upload stored {os.path.getsize(stored)} bytes")
                os.unlink(stored)
        gib = size / 2**30
        rows.append(
            f"{client:<8} {direction:<9} {size / min(walls) / 2**20:9.1f} MiB/s"
            f" {min(cpus) / gib:8.2f} CPU-s/GiB"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    for program in ("curl", "lftp"):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is needed")
    size = options.size_mib * 2**20
    work = tempfile.mkdtemp(prefix="txftps-bench-client-")
    try:
        certificates = Certificates.inDirectory(work)
        caFile, certFile, keyFile = (
            certificates.caFile,
            certificates.certFile,
            certificates.keyFile,
        )
        directory = os.path.join(work, "server")
        os.makedirs(directory)
        source = os.path.join(work, "source.bin")
        with open(source, "wb") as f:
            f.write(os.urandom(size))
        server = startTxftps(directory, certFile, keyFile)
        shutil.copy(source, os.path.join(server.home, "data.bin"))
        rows = [
            f"{options.size_mib} MiB, best of {options.rounds}, server twistd ftps on"
            " loopback, TLS on control and data, client CPU"
        ]
        before = childrenCPU()
        txftps = os.path.join(os.path.dirname(sys.executable), "txftps")
        subprocess.run([txftps, "--help"], check=True, stdout=subprocess.DEVNULL)
        rows.append(f"(txftps start-up alone, --help: {childrenCPU() - before:.2f} CPU-s per run)")
        try:
            for client in ("txftps", "curl", "lftp"):
                rows += measure(
                    client, server.port, caFile, server.home, source, size, options.rounds
                )
        finally:
            server.stop()
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
