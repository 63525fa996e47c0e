# -*- test-case-name: tests.test_datatls -*-
"""
The TLS layer of a data connection.

A data connection needs three things from TLS that Twisted's generic
C{TLSMemoryBIOProtocol} does not give it:

 1. A hook between "handshake complete" and "first application byte read", so
    that the transfer gate (session resumed?) runs before any upload byte is
    accepted.
 2. TLS 1.3 NewSessionTicket records held back. OpenSSL sends them right after
    the handshake; upload clients such as curl never read them, so their close
    becomes a TCP reset that destroys the tail of the upload. L{DataTLS} keeps
    every record produced after a TLS 1.3 handshake in memory until it first
    sends application data (a download) or its close_notify.
 3. A close that always carries our close_notify, and a clear signal whether
    the peer's stream ended with one (a complete upload) or not (truncated);
    for a stream that ended without one, whether it ended after a complete
    TLS record (L{DataTLS.atRecordBoundary}) or inside one.

It is a plain object driven by its owner (L{txftps._dataconnection.DataConnection}):
C{dataReceived} in, C{send}/C{close} out, raw bytes leave through the C{write}
callable (a bytes-like object valid only during the call: whatever it keeps,
it copies). Subclass or replace it through C{DataConnection.tlsFactory}.
"""

from __future__ import annotations

from collections.abc import Callable

from OpenSSL import SSL

from txftps._internals import CiphertextReader, PlaintextReader, sessionReused
from txftps.tls import ConnectionTLS

_READ_SIZE = 512 * 1024

#: Decrypt and collect the encrypted output for every data connection (one
#: reactor thread uses them at a time).
_reader = PlaintextReader(_READ_SIZE)
_cipher = CiphertextReader(_READ_SIZE)

#: The length of a TLS record header: type (1), version (2), length (2).
_RECORD_HEADER = 5


class DataTLS:
    """
    Server-side TLS over a memory BIO for one data connection.

    @ivar handshakeDone: the handshake has completed.
    @ivar closeNotifyReceived: the peer ended its stream with a close_notify.
    @ivar connection: the pyOpenSSL connection.
    """

    def __init__(
        self,
        context: SSL.Context | ConnectionTLS,
        write: Callable[[bytes | memoryview], None],
        onHandshake: Callable[[DataTLS], bool],
        client: bool = False,
    ) -> None:
        """
        @param context: the control connection's TLS (or, as TLS client,
            the context for server-to-server transfers).
        @param write: sends raw bytes to the peer; it is given a bytes-like
            object that is only valid during the call (one buffer serves every
            data connection), so it copies whatever it keeps.
        @param onHandshake: called once when the handshake completes, before
            any application data is read; returning C{False} stops all further
            processing (the owner is refusing the connection).
        @param client: run the handshake as the TLS client (C{SSCN ON} and
            C{CPSV}: the peer is another FTP server); call L{start} to send
            the ClientHello.
        """
        self.client = client
        if isinstance(context, ConnectionTLS):
            self.connection = context.newConnection()
        elif client:
            self.connection = SSL.Connection(context, None)
        else:
            # A server connection made from the bare shared context would
            # take whichever session-ID context was set last: another
            # control connection's sessions could resume on it.
            raise TypeError("a data connection's TLS server needs its ConnectionTLS")
        if client:
            self.connection.set_connect_state()
        else:
            self.connection.set_accept_state()
        self._write = write
        self._onHandshake = onHandshake
        self._holding = False
        self._held: list[bytes] = []
        self._refused = False
        self._closed = False
        self.handshakeDone = False
        self.closeNotifyReceived = False
        self._header = b""
        self._bodyLeft = 0

    def start(self) -> None:
        """
        As TLS client, send the ClientHello; as TLS server, nothing (the
        handshake starts with the peer's ClientHello).
        """
        if not self.client:
            return
        try:
            self.connection.do_handshake()
        except SSL.WantReadError:
            pass
        self._flush()

    @property
    def resumed(self) -> bool:
        """
        The handshake resumed an earlier session.
        """
        return sessionReused(self.connection)

    @property
    def version(self) -> str:
        """
        The negotiated protocol version, e.g. C{"TLSv1.3"}.
        """
        return self.connection.get_protocol_version_name()

    @property
    def atRecordBoundary(self) -> bool:
        """
        The raw bytes received so far end with a complete TLS record: a
        stream that stops here was not cut inside a record.
        """
        return not self._header and not self._bodyLeft

    def _followRecords(self, data: bytes) -> None:
        """
        Follow the TLS record framing (a 5-byte header whose last two bytes
        are the body's length, then the body) of raw bytes from the peer.
        """
        offset = 0
        while offset < len(data):
            if self._bodyLeft:
                step = min(self._bodyLeft, len(data) - offset)
                self._bodyLeft -= step
                offset += step
                continue
            piece = data[offset : offset + _RECORD_HEADER - len(self._header)]
            self._header += piece
            offset += len(piece)
            if len(self._header) == _RECORD_HEADER:
                self._bodyLeft = int.from_bytes(self._header[3:5], "big")
                self._header = b""

    def _flush(self) -> None:
        """
        Send what TLS produced, or hold it back while holding; what was held
        leaves in one write with the first records after it.
        """
        while True:
            out = _cipher.read(self.connection)
            # A memory BIO returns all it holds up to the size asked: a
            # short read drained it.
            more = len(out) == _cipher.size
            if self._holding:
                if out:
                    self._held.append(bytes(out))
            elif self._held:
                self._held.append(bytes(out))
                held, self._held = b"".join(self._held), []
                self._write(held)
            elif out:
                self._write(out)
            if not more:
                return

    def dataReceived(self, data: bytes) -> bytes:
        """
        Feed raw bytes from the peer.

        @return: the application data they decrypted to.
        @raise SSL.Error: the handshake or a record failed; a failed
            handshake has written its alert first.
        """
        if self._refused or self._closed and self.closeNotifyReceived:
            return b""
        self._followRecords(data)
        self.connection.bio_write(data)
        if not self.handshakeDone:
            try:
                self.connection.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return b""
            except SSL.Error:
                # Send the alert that tells the client why (for instance
                # no_application_protocol) before the owner closes.
                self._flush()
                raise
            self.handshakeDone = True
            if self.version == "TLSv1.3" and not self.client:
                # What OpenSSL wrote after the client's Finished is only
                # NewSessionTicket records: keep them until we first send.
                self._holding = True
            self._flush()
            if not self._onHandshake(self):
                self._refused = True
                return b""
        plain = []
        while not self.closeNotifyReceived:
            chunk, self.closeNotifyReceived = _reader.read(self.connection)
            plain.append(chunk)
            if len(chunk) < _reader.size:
                break
        self._flush()
        return plain[0] if len(plain) == 1 else b"".join(plain)

    def send(self, data: bytes) -> None:
        """
        Encrypt and send application data.
        """
        if self._closed:
            return
        view = memoryview(data)
        while view:
            written = self.connection.send(view)
            view = view[written:]
        self._holding = False
        self._flush()

    def close(self) -> None:
        """
        Send our close_notify (after anything held back). Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.connection.shutdown()
        except SSL.Error:
            pass
        self._holding = False
        self._flush()
