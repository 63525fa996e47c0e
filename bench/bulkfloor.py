"""
The floor of a download's server CPU on this machine: what sending a GiB of
a file over loopback costs a sender that does nothing else, with no TLS, with
the kernel's C{sendfile}, and with TLS done by OpenSSL on the socket itself
(Python's C{ssl}: C{SSL_write} straight to the socket, no memory BIO, no
reactor, no FTP), next to AES-256-GCM alone (C{openssl speed}).

Each sender runs in a process of its own, reads a file that is already in
the page cache in 256 KiB pieces (what txftps reads), and sends it to a
reader process on loopback that discards it; the sender's CPU (user +
system, from C{getrusage}) per GiB is printed, the median of C{--rounds}.
The kernel's share of a loopback send includes the receiving side's TCP
work, which Linux runs in the sender's context: every server in
C{compare.py} pays it too.

    python bench/bulkfloor.py [--size-mib 256] [--rounds 3]

A server that encrypts in user space cannot cost less than the C{ssl} line;
C{compare.py}'s servers add their own work (a memory BIO's copies, an event
loop, the FTP session) on top of it.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import aesSecondsPerGiB, loadAverage  # noqa: E402
from servers import Certificates  # noqa: E402

_PIECE = 256 * 1024


def _reader(listener: socket.socket, tls: ssl.SSLContext | None) -> None:
    """
    Accept one connection and read it to the end, discarding the bytes.
    """
    conn, _ = listener.accept()
    stream: socket.socket = tls.wrap_socket(conn, server_side=False) if tls else conn
    while stream.recv(1 << 20):
        pass
    stream.close()


def _send(mode: str, path: str, port: int, cert: str, key: str) -> None:
    """
    The sender, in its own process: connect, send the file, report CPU.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream: socket.socket = sock
    if mode == "ssl":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(cert, key)
        stream = context.wrap_socket(sock, server_side=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with open(path, "rb") as f:
        if mode == "sendfile":
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset < size:
                offset += os.sendfile(sock.fileno(), f.fileno(), offset, size - offset)
        else:
            buffer = bytearray(_PIECE)
            view = memoryview(buffer)
            while True:
                count = f.readinto(buffer)
                if not count:
                    break
                stream.sendall(view[:count])
    after = resource.getrusage(resource.RUSAGE_SELF)
    stream.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(cpu)


def measure(mode: str, path: str, size: int, cert: str, key: str, caFile: str) -> float:
    """
    One round: the sender's CPU seconds per GiB for C{mode}.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    tls = None
    if mode == "ssl":
        tls = ssl.create_default_context(cafile=caFile)
        tls.check_hostname = False
    # The reader is a separate process: the sender's CPU is its own.
    reader = threading.Thread(target=_reader, args=(listener, tls))
    reader.start()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--send",
            mode,
            path,
            str(listener.getsockname()[1]),
            cert,
            key,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    reader.join()
    listener.close()
    return float(out) / (size / 2**30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--send", nargs=5, metavar=("MODE", "PATH", "PORT", "CERT", "KEY"))
    options = parser.parse_args()
    if options.send:
        mode, path, port, cert, key = options.send
        _send(mode, path, int(port), cert, key)
        return
    work = tempfile.mkdtemp(prefix="txftps-bulkfloor-")
    try:
        certificates = Certificates.inDirectory(work)
        caFile, cert, key = certificates.caFile, certificates.certFile, certificates.keyFile
        size = options.size_mib * 2**20
        path = os.path.join(work, "data.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
        print(f"load average before: {loadAverage()} ({os.cpu_count()} CPUs)", flush=True)
        rows = []
        for mode, what in (
            ("sendfile", "sendfile (no TLS, no copy to user space)"),
            ("plain", "read + send (no TLS)"),
            ("ssl", "read + SSL_write on the socket (TLS 1.3)"),
        ):
            measure(mode, path, size, cert, key, caFile)  # warm-up
            cpus = [measure(mode, path, size, cert, key, caFile) for _ in range(options.rounds)]
            rows.append((what, statistics.median(cpus)))
        rows.append(("AES-256-GCM alone (openssl speed)", aesSecondsPerGiB()))
        print(f"load average after: {loadAverage()}")
        print(f"\nsender CPU per GiB, {options.size_mib} MiB x {options.rounds} rounds, median")
        for what, value in rows:
            print(f"{what:<48} {value:6.2f} s")
    finally:
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)


if __name__ == "__main__":
    main()
