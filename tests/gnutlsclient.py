"""
A small FTPS client on GnuTLS (through C{ctypes}), set up the way FileZilla
3.63 sets up its TLS: GnuTLS, TLS 1.2 or newer, ALPN C{ftp} and
C{x-filezilla-ftp} on the control connection, every data connection resuming
the control connection's session, a download complete only when it ends with
the server's close_notify, an upload ended with the client's close_notify.

No Python binding of GnuTLS is needed: the functions are called in the
system's C{libgnutls.so.30} (the library C{gnutls-cli} and lftp use). Used by
C{tests.test_interop}.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import socket
import struct
import time
from typing import Any

GNUTLS_CLIENT = 1 << 1
GNUTLS_CRD_CERTIFICATE = 1
GNUTLS_X509_FMT_PEM = 1
GNUTLS_SHUT_WR = 1
GNUTLS_E_AGAIN = -28
GNUTLS_E_INTERRUPTED = -52
GNUTLS_E_FATAL_ALERT_RECEIVED = -12
GNUTLS_E_PREMATURE_TERMINATION = -110
GNUTLS_E_SHORT_MEMORY_BUFFER = -51

# Versions and ciphers: GnuTLS's defaults without TLS 1.0/1.1 (FileZilla
# refuses anything older than TLS 1.2).
FILEZILLA_PRIORITY = b"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
FILEZILLA_CONTROL_ALPN = (b"ftp", b"x-filezilla-ftp")


class Datum(ctypes.Structure):
    """
    C{gnutls_datum_t}.
    """

    _fields_ = [("data", ctypes.POINTER(ctypes.c_ubyte)), ("size", ctypes.c_uint)]


def _library() -> Any:
    name = ctypes.util.find_library("gnutls") or "libgnutls.so.30"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise AssertionError(
            "libgnutls is not installed; .ci/run installs it (apt-get install -y gnutls-bin)"
        )
    vp = ctypes.c_void_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "gnutls_global_init": (ctypes.c_int, []),
        "gnutls_certificate_allocate_credentials": (ctypes.c_int, [ctypes.POINTER(vp)]),
        "gnutls_certificate_set_x509_trust_file": (
            ctypes.c_int,
            [vp, ctypes.c_char_p, ctypes.c_int],
        ),
        "gnutls_certificate_free_credentials": (None, [vp]),
        "gnutls_init": (ctypes.c_int, [ctypes.POINTER(vp), ctypes.c_uint]),
        "gnutls_deinit": (None, [vp]),
        "gnutls_priority_set_direct": (
            ctypes.c_int,
            [vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)],
        ),
        "gnutls_credentials_set": (ctypes.c_int, [vp, ctypes.c_int, vp]),
        "gnutls_session_set_verify_cert": (None, [vp, ctypes.c_char_p, ctypes.c_uint]),
        "gnutls_alpn_set_protocols": (
            ctypes.c_int,
            [vp, ctypes.POINTER(Datum), ctypes.c_uint, ctypes.c_uint],
        ),
        "gnutls_alpn_get_selected_protocol": (ctypes.c_int, [vp, ctypes.POINTER(Datum)]),
        "gnutls_transport_set_int2": (None, [vp, ctypes.c_int, ctypes.c_int]),
        "gnutls_handshake": (ctypes.c_int, [vp]),
        "gnutls_handshake_set_timeout": (None, [vp, ctypes.c_uint]),
        "gnutls_session_is_resumed": (ctypes.c_int, [vp]),
        "gnutls_session_get_data": (
            ctypes.c_int,
            [vp, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)],
        ),
        "gnutls_session_set_data": (ctypes.c_int, [vp, ctypes.c_void_p, ctypes.c_size_t]),
        "gnutls_record_send": (ctypes.c_ssize_t, [vp, ctypes.c_void_p, ctypes.c_size_t]),
        "gnutls_record_recv": (ctypes.c_ssize_t, [vp, ctypes.c_void_p, ctypes.c_size_t]),
        "gnutls_bye": (ctypes.c_int, [vp, ctypes.c_int]),
        "gnutls_error_is_fatal": (ctypes.c_int, [ctypes.c_int]),
        "gnutls_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        "gnutls_alert_get": (ctypes.c_int, [vp]),
        "gnutls_protocol_get_version": (ctypes.c_int, [vp]),
        "gnutls_protocol_get_name": (ctypes.c_char_p, [ctypes.c_int]),
    }
    for function, (restype, argtypes) in signatures.items():
        f = getattr(lib, function)
        f.restype = restype
        f.argtypes = argtypes
    lib.gnutls_global_init()
    return lib


_lib: Any = None


def gnutls() -> Any:
    """
    The loaded C{libgnutls}, its functions typed.
    """
    global _lib
    if _lib is None:
        _lib = _library()
    return _lib


class GnuTLSError(Exception):
    """
    A GnuTLS call failed.

    @ivar code: the GnuTLS error code.
    @ivar alert: the alert received, for C{GNUTLS_E_FATAL_ALERT_RECEIVED}.
    """

    def __init__(self, what: str, code: int, alert: int | None = None) -> None:
        self.code = code
        self.alert = alert
        text = gnutls().gnutls_strerror(code).decode()
        suffix = f" (alert {alert})" if alert is not None else ""
        super().__init__(f"{what}: GnuTLS error {code}: {text}{suffix}")


def _setTimeouts(sock: socket.socket, seconds: float) -> None:
    """
    Make C{sock} blocking with kernel send and receive timeouts (GnuTLS
    reads and writes the descriptor itself; Python's own timeouts would
    make it non-blocking).
    """
    sock.setblocking(True)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class GnuTLSConnection:
    """
    A GnuTLS client session over a connected socket.

    @ivar alpn: the protocol the server selected, or C{None}.
    @ivar resumed: the handshake resumed a session.
    @ivar version: e.g. C{"TLS1.3"}.
    """

    def __init__(
        self,
        sock: socket.socket,
        caFile: str,
        hostname: str,
        alpn: tuple[bytes, ...] = (),
        resume: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        """
        Run the handshake.

        @param resume: session data from L{sessionData} to resume.
        @raise GnuTLSError: the handshake failed (C{alert} tells a fatal
            alert from the server).
        """
        lib = gnutls()
        self.sock = sock
        self.timeout = timeout
        _setTimeouts(sock, timeout)
        self._credentials = ctypes.c_void_p()
        self._session = ctypes.c_void_p()
        self._check(
            "allocate credentials",
            lib.gnutls_certificate_allocate_credentials(ctypes.byref(self._credentials)),
        )
        loaded = lib.gnutls_certificate_set_x509_trust_file(
            self._credentials, caFile.encode(), GNUTLS_X509_FMT_PEM
        )
        if loaded < 1:
            raise GnuTLSError(f"load CA {caFile}", loaded)
        self._check("init", lib.gnutls_init(ctypes.byref(self._session), GNUTLS_CLIENT))
        self._check(
            "priority",
            lib.gnutls_priority_set_direct(self._session, FILEZILLA_PRIORITY, None),
        )
        self._check(
            "credentials",
            lib.gnutls_credentials_set(self._session, GNUTLS_CRD_CERTIFICATE, self._credentials),
        )
        # GnuTLS keeps the pointer, not a copy: the bytes must outlive it.
        self._hostname = ctypes.create_string_buffer(hostname.encode())
        lib.gnutls_session_set_verify_cert(self._session, self._hostname, 0)
        if alpn:
            buffers = [ctypes.create_string_buffer(p, len(p)) for p in alpn]
            datums = (Datum * len(alpn))(
                *(
                    Datum(ctypes.cast(b, ctypes.POINTER(ctypes.c_ubyte)), len(p))
                    for b, p in zip(buffers, alpn, strict=True)
                )
            )
            self._check("ALPN", lib.gnutls_alpn_set_protocols(self._session, datums, len(alpn), 0))
        if resume is not None:
            self._check(
                "set session data",
                lib.gnutls_session_set_data(self._session, resume, len(resume)),
            )
        lib.gnutls_transport_set_int2(self._session, sock.fileno(), sock.fileno())
        lib.gnutls_handshake_set_timeout(self._session, int(timeout * 1000))
        while True:
            result = lib.gnutls_handshake(self._session)
            if result >= 0:
                break
            if result in (GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED) or not lib.gnutls_error_is_fatal(
                result
            ):
                if result == GNUTLS_E_AGAIN:
                    raise GnuTLSError("handshake timed out", result)
                continue
            alert = (
                lib.gnutls_alert_get(self._session)
                if result == GNUTLS_E_FATAL_ALERT_RECEIVED
                else None
            )
            raise GnuTLSError("handshake", result, alert)
        selected = Datum()
        if lib.gnutls_alpn_get_selected_protocol(self._session, ctypes.byref(selected)) == 0:
            self.alpn: str | None = ctypes.string_at(selected.data, selected.size).decode()
        else:
            self.alpn = None
        self.resumed = bool(lib.gnutls_session_is_resumed(self._session))
        self.version = lib.gnutls_protocol_get_name(
            lib.gnutls_protocol_get_version(self._session)
        ).decode()

    def _check(self, what: str, result: int) -> None:
        if result < 0:
            raise GnuTLSError(what, result)

    def sessionData(self) -> bytes:
        """
        The session to resume on a data connection (TLS 1.3: the latest
        ticket, so read something after the handshake first).
        """
        lib = gnutls()
        size = ctypes.c_size_t(0)
        result = lib.gnutls_session_get_data(self._session, None, size)
        if result != GNUTLS_E_SHORT_MEMORY_BUFFER:
            self._check("session size", result)
        buffer = ctypes.create_string_buffer(size.value)
        self._check("session data", lib.gnutls_session_get_data(self._session, buffer, size))
        return buffer.raw[: size.value]

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            chunk = bytes(view[: 1 << 16])
            sent = gnutls().gnutls_record_send(self._session, chunk, len(chunk))
            if sent in (GNUTLS_E_AGAIN, GNUTLS_E_INTERRUPTED):
                if sent == GNUTLS_E_AGAIN:
                    raise GnuTLSError("send timed out", sent)
                continue
            if sent < 0:
                raise GnuTLSError("send", sent)
            view = view[sent:]

    def recv(self, size: int = 1 << 16) -> bytes:
        """
        Application data; C{b""} when the server's close_notify arrived.

        @raise GnuTLSError: C{GNUTLS_E_PREMATURE_TERMINATION} when the
            stream ended without close_notify, as FileZilla reports it.
        """
        buffer = ctypes.create_string_buffer(size)
        deadline = time.monotonic() + self.timeout
        while True:
            got = gnutls().gnutls_record_recv(self._session, buffer, size)
            # GnuTLS also answers E_AGAIN after a record that held no
            # application data (a TLS 1.3 NewSessionTicket): read on until
            # the socket's own timeout has passed.
            if got == GNUTLS_E_INTERRUPTED or (
                got == GNUTLS_E_AGAIN and time.monotonic() < deadline
            ):
                continue
            if got < 0:
                raise GnuTLSError("receive", got)
            return buffer.raw[:got]

    def readAll(self) -> bytes:
        """
        Everything up to the server's close_notify.
        """
        chunks = []
        while True:
            chunk = self.recv()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def closeWrite(self) -> None:
        """
        Send our close_notify (C{gnutls_bye(GNUTLS_SHUT_WR)}).
        """
        result = gnutls().gnutls_bye(self._session, GNUTLS_SHUT_WR)
        if result < 0:
            raise GnuTLSError("bye", result)

    def close(self) -> None:
        lib = gnutls()
        if self._session:
            lib.gnutls_deinit(self._session)
            self._session = ctypes.c_void_p()
        if self._credentials:
            lib.gnutls_certificate_free_credentials(self._credentials)
            self._credentials = ctypes.c_void_p()
        self.sock.close()


class FileZillaLikeClient:
    """
    An FTPS session the way FileZilla runs one, on L{GnuTLSConnection}:
    C{AUTH TLS} (or implicit TLS), C{USER}/C{PASS}, C{PBSZ 0}, C{PROT P},
    C{TYPE I}, then C{PASV} data connections that resume the control
    session.

    @ivar control: the control connection's TLS.
    @ivar dataALPN: the ALPN list data connections offer (FileZilla 3.63
        offers none there; other clients may).
    @ivar dataConnections: every data connection's TLS, in order.
    """

    def __init__(
        self,
        host: str,
        port: int,
        caFile: str,
        implicit: bool = False,
        controlALPN: tuple[bytes, ...] = FILEZILLA_CONTROL_ALPN,
        dataALPN: tuple[bytes, ...] = (),
    ) -> None:
        self.host = host
        self.caFile = caFile
        self.dataALPN = dataALPN
        self.dataConnections: list[GnuTLSConnection] = []
        self._buffer = b""
        raw = socket.create_connection((host, port), timeout=10)
        self._raw: socket.socket | None = raw
        if not implicit:
            _setTimeouts(raw, 10)
            self.greeting = self.reply()
            self.expect("AUTH TLS", 234)
        self._raw = None
        self.control = GnuTLSConnection(raw, caFile, host, controlALPN)
        if implicit:
            self.greeting = self.reply()

    def _recv(self) -> bytes:
        if self._raw is not None:
            return self._raw.recv(65536)
        return self.control.recv()

    def reply(self) -> tuple[int, str]:
        """
        The next complete reply.
        """
        while True:
            match = re.search(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n", self._buffer)
            if match is not None:
                text = self._buffer[: match.end()].decode("utf-8", "replace")
                self._buffer = self._buffer[match.end() :]
                return int(match.group(1)), text
            chunk = self._recv()
            if not chunk:
                raise AssertionError(f"control connection closed; unparsed {self._buffer!r}")
            self._buffer += chunk

    def command(self, line: str) -> tuple[int, str]:
        data = line.encode() + b"\r\n"
        if self._raw is not None:
            self._raw.sendall(data)
        else:
            self.control.send(data)
        return self.reply()

    def expect(self, line: str, code: int) -> str:
        got, text = self.command(line)
        if got != code:
            raise AssertionError(f"{line!r}: expected {code}, got {text!r}")
        return text

    def login(self, user: str, password: str) -> None:
        self.expect(f"USER {user}", 331)
        self.expect(f"PASS {password}", 230)
        self.expect("PBSZ 0", 200)
        self.expect("PROT P", 200)
        self.expect("TYPE I", 200)

    def _openData(self) -> GnuTLSConnection:
        text = self.expect("PASV", 227)
        numbers = re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", text)
        if numbers is None:
            raise AssertionError(f"unparsable PASV reply {text!r}")
        port = int(numbers.group(5)) * 256 + int(numbers.group(6))
        sock = socket.create_connection((self.host, port), timeout=10)
        data = GnuTLSConnection(
            sock, self.caFile, self.host, self.dataALPN, resume=self.control.sessionData()
        )
        self.dataConnections.append(data)
        return data

    def download(self, command: str) -> tuple[bytes, int]:
        """
        Run C{command} (C{MLSD}, C{RETR ...}) and read its data up to the
        server's close_notify.

        @return: the bytes and the final reply code.
        @raise GnuTLSError: the data stream ended without close_notify.
        """
        data = self._openData()
        try:
            code, text = self.command(command)
            if code != 150:
                raise AssertionError(f"{command!r}: expected 150, got {text!r}")
            received = data.readAll()
        finally:
            data.close()
        return received, self.reply()[0]

    def upload(self, command: str, payload: bytes) -> int:
        """
        Run C{command} (C{STOR ...}), send C{payload}, then our close_notify.

        @return: the final reply code.
        """
        data = self._openData()
        try:
            code, text = self.command(command)
            if code != 150:
                raise AssertionError(f"{command!r}: expected 150, got {text!r}")
            data.send(payload)
            data.closeWrite()
        finally:
            data.close()
        return self.reply()[0]

    def quit(self) -> None:
        try:
            self.command("QUIT")
        finally:
            self.control.close()
