# -*- test-case-name: tests.test_xferlog -*-
"""
C{--xferlog PATH}: one line per file transfer in the wu-ftpd/ProFTPD
C{xferlog} format, for the tools that read it (statistics, billing, fail2ban
filters).

Each line has 14 fields separated by single spaces::

    Mon Mar  4 08:12:30 2024 2 192.0.2.7 1048576 /pub/a_b.iso b _ o a anonymous ftps 0 * c

the current time (C{ctime} format, local time, itself five words), the
transfer's whole seconds, the client's address, the bytes moved, the file's
path as the user sees it from their root (spaces and control characters
written as C{_}), C{a} (C{TYPE A}) or C{b} (binary), C{_} (no special
action), C{o} (download) or C{i} (upload), C{a} (anonymous) or C{r} (real
user), the user name, the service name C{ftps}, C{0} (no RFC 931
authentication), C{*} (no RFC 931 user) and C{c} (complete) or C{i}
(incomplete: aborted, truncated, data connection lost or refused after the
C{150}). Listings are not logged, as in wu-ftpd and ProFTPD.

The file is opened for appending (mode 0640 when created), never truncated,
and opened again on C{SIGUSR1}, so that C{logrotate} can move it away and
signal the server; the signal handler calls any handler installed before
it (twistd's own log file rotates on C{SIGUSR1} too).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import IO, Any

from twisted.application import service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txftps._observers import SilentObserver

_log = Logger()

#: Transfer commands that are logged, and their direction field.
_DIRECTIONS = {"RETR": "o", "STOR": "i", "APPE": "i", "STOU": "i"}


def xferlogField(text: str) -> str:
    """
    C{text} made one field of an xferlog line: every space, other white
    space and control or unprintable character (a lone surrogate from a
    name that is not UTF-8 among them) becomes C{_}; an empty text is C{_}.
    """
    field = "".join(c if c.isprintable() and not c.isspace() else "_" for c in text)
    return field or "_"


@dataclass(frozen=True)
class _Started:
    when: float
    user: str
    anonymous: bool
    binary: bool


def xferlogLine(
    now: float,
    seconds: float,
    host: str,
    count: int,
    path: str,
    binary: bool,
    direction: str,
    anonymous: bool,
    user: str,
    complete: bool,
) -> str:
    """
    One xferlog line, newline included.

    @param now: the time the transfer ended (seconds since the epoch),
        written in local time.
    @param seconds: how long it took; written as whole seconds, rounded.
    @param direction: C{"o"} (download) or C{"i"} (upload).
    """
    return (
        f"{time.ctime(now)} {max(0, round(seconds))} {xferlogField(host)} {count}"
        f" {xferlogField(path)} {'b' if binary else 'a'} _ {direction}"
        f" {'a' if anonymous else 'r'} {xferlogField(user)} ftps 0 * {'c' if complete else 'i'}\n"
    )


def _openAppending(path: str) -> IO[str]:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class TransferLog(SilentObserver):
    """
    An L{ISessionObserver<txftps.interfaces.ISessionObserver>} that writes
    an xferlog line for each file transfer that got its C{150}.

    @ivar path: the log file.
    """

    def __init__(self, path: str, clock: IReactorTime) -> None:
        """
        Open C{path} for appending, creating it (mode 0640) if needed.

        @raise OSError: it cannot be opened.
        """
        self.path = path
        self._clock = clock
        self._file: IO[str] | None = _openAppending(path)
        self._started: dict[Any, _Started] = {}

    def reopen(self) -> None:
        """
        Open the file at L{path} again (the old one was moved away by
        C{logrotate}); when that fails, keep writing to the old one and log
        why.
        """
        try:
            new = _openAppending(self.path)
        except OSError as e:
            _log.error(
                "cannot reopen --xferlog {path}: {error}; still writing to the old file",
                path=self.path,
                error=e.strerror,
            )
            return
        old, self._file = self._file, new
        if old is not None:
            old.close()
        _log.info("reopened --xferlog {path}", path=self.path)

    def close(self) -> None:
        """
        Close the file; later transfers are not logged.
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    def transferStarted(
        self, peer: Any, command: str, path: str, user: str, anonymous: bool, binary: bool
    ) -> None:
        if command in _DIRECTIONS:
            self._started[peer] = _Started(self._clock.seconds(), user, anonymous, binary)

    def transferEnded(
        self, peer: Any, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        started = self._started.pop(peer, None)
        if started is None or command not in _DIRECTIONS:
            return
        direction = _DIRECTIONS[command]
        now = self._clock.seconds()
        line = xferlogLine(
            now,
            now - started.when,
            str(getattr(peer, "host", peer)),
            sent if direction == "o" else received,
            path,
            started.binary,
            direction,
            started.anonymous,
            started.user,
            code == 226,
        )
        if self._file is None:
            return
        try:
            self._file.write(line)
        except (OSError, ValueError) as e:
            _log.error("cannot write to --xferlog {path}: {error}", path=self.path, error=e)


class ReopenOnSignal(service.Service):
    """
    While running, C{SIGUSR1} makes a L{TransferLog} reopen its file; the
    handler installed before (twistd's log rotation) still runs. Stopping
    puts that handler back and closes the file.
    """

    def __init__(self, transferLog: TransferLog, reactor: Any) -> None:
        self._transferLog = transferLog
        self._reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._previous = signal.getsignal(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, self._signalled)

    def _signalled(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._transferLog.reopen)
        if callable(self._previous):
            self._previous(signum, frame)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if signal.getsignal(signal.SIGUSR1) == self._signalled:
            signal.signal(
                signal.SIGUSR1, self._previous if self._previous is not None else signal.SIG_DFL
            )
        self._transferLog.close()
