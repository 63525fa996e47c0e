# -*- test-case-name: tests.test_tap -*-
"""
Where C{twistd ftps} writes its log and pid file, and what its log leaves out.

twistd writes C{twistd.pid} (and, when it runs as a daemon, C{twistd.log})
into its working directory, which is the tree C{twistd ftps} serves by
default: the first listing a new user saw held the pid file, and a daemon's
log (addresses, user names) would be there for anyone to download.
L{placeServerFiles} moves both into the data directory whenever they would
land inside a served tree.

Twisted's TCP ports also log every passive listener they open and close
(C{_DataFactory starting on 43797}, C{(TCP Port 43797 Closed)}); the log
should say what happened to users and files, not to sockets.
L{QuietPortsFilter} drops those lines, and L{observerFactory} builds twistd's
usual observer (standard output with C{-n}, else a rotating log file) behind
that filter, installed through twistd's own C{--logger} hook unless the
operator chose a logger or syslog.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    jsonFileLogObserver,
)
from twisted.python import logfile
from zope.interface import implementer

#: Lines that Twisted's ports write for every listener they open or close.
_PORT_CHATTER = re.compile(r"^(?:\S+ starting on \d+|\((?:TCP|UDP|UNIX) Port \S+ Closed\))$")


def insideServedTree(path: str, trees: list[str]) -> bool:
    real = os.path.realpath(path)
    for tree in trees:
        top = os.path.realpath(tree)
        if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False


def placeServerFiles(twistdOptions: Any, served: list[str], dataDirectory: str) -> list[str]:
    """
    Keep twistd's pid file and daemon log out of the served trees.

    @param twistdOptions: twistd's own options (the parent of the C{ftps}
        options), changed in place: C{pidfile} and C{logfile} move to
        C{dataDirectory} when they would be inside a tree of C{served}.
    @param served: the directories the server serves (root and homes).
    @param dataDirectory: the server's data directory, created (mode 0700)
        when something moves there.
    @return: one sentence per moved file, to log once logging runs.
    """
    moved = []
    pidfile = twistdOptions.get("pidfile")
    if pidfile and insideServedTree(os.path.abspath(pidfile), served):
        twistdOptions["pidfile"] = os.path.join(dataDirectory, "twistd.pid")
        moved.append(f"pid file {twistdOptions['pidfile']}")
    daemon = not twistdOptions.get("nodaemon")
    logPath = twistdOptions.get("logfile")
    if logPath != "-" and (logPath or daemon) and not twistdOptions.get("syslog"):
        if insideServedTree(os.path.abspath(logPath or "twistd.log"), served):
            twistdOptions["logfile"] = os.path.join(dataDirectory, "twistd.log")
            moved.append(f"log file {twistdOptions['logfile']}")
    if moved:
        os.makedirs(dataDirectory, mode=0o700, exist_ok=True)
    return moved


@implementer(ILogFilterPredicate)
class QuietPortsFilter:
    """
    A L{twisted.logger} filter predicate that drops the lines Twisted's ports
    write when a listener opens or closes, and lets everything else through.
    """

    def __call__(self, event: LogEvent) -> PredicateResult:
        # Twisted's ports log through the legacy API: their events carry the
        # finished line as log_text. Nothing else is formatted here.
        if event.get("log_format") != "{log_text}":
            return PredicateResult.maybe  # type: ignore[no-any-return]
        text = event.get("log_text")
        if isinstance(text, str) and _PORT_CHATTER.match(text):
            return PredicateResult.no  # type: ignore[no-any-return]
        return PredicateResult.maybe  # type: ignore[no-any-return]


#: The values of C{--log-level}, and the L{LogLevel} each lets through.
LOG_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

#: The values of C{--log-format}.
LOG_FORMATS = ("text", "json")


def observerFactory(
    twistdOptions: Any,
    logFormat: str = "text",
    logLevel: str = "info",
    reactor: Any = None,
) -> Callable[[], ILogObserver]:
    """
    A log observer factory for twistd's C{logger} option: what twistd would
    have built from C{twistdOptions} (standard output with C{-n} and no
    C{--logfile}, else a L{logfile.LogFile} reopened on C{SIGUSR1}), writing
    text or JSON lines (one object per event), behind a L{QuietPortsFilter}
    and a filter that drops events below C{logLevel}.

    @param logFormat: C{"text"} or C{"json"}.
    @param logLevel: a key of L{LOG_LEVELS}.
    @param reactor: rotates the log file on C{SIGUSR1} (from the reactor
        thread); without one, C{SIGUSR1} is left alone.
    """

    def make() -> ILogObserver:
        path = twistdOptions.get("logfile")
        if path == "-" or (twistdOptions.get("nodaemon") and not path):
            output: Any = sys.stdout
        else:
            output = logfile.LogFile.fromFullPath(path or "twistd.log")
            if reactor is not None and not signal.getsignal(signal.SIGUSR1):

                def rotate(signum: int, frame: Any) -> None:
                    reactor.callFromThread(output.rotate)

                signal.signal(signal.SIGUSR1, rotate)
        if logFormat == "json":
            observer: ILogObserver = _FormattedText(
                jsonFileLogObserver(output, recordSeparator="")
            )
        else:
            observer = FileLogObserver(output, _formatText)
        level = LogLevelFilterPredicate(defaultLogLevel=LOG_LEVELS[logLevel])
        # The level first: an event below it is dropped before anything
        # looks into it.
        return FilteringLogObserver(observer, [level, QuietPortsFilter()])

    return make


class _SecondClock:
    """
    Twisted's C{formatTime} for log lines, computed once a second: it looks
    up the local time zone for every call, the largest cost of a log line.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(when)
        second = int(when)
        if second != self._second:
            self._text = formatTime(second)
            self._second = second
        return self._text


_clock = _SecondClock()


def _formatText(event: LogEvent) -> str | None:
    """
    A text log line, as Twisted's L{twisted.logger.textFileLogObserver} writes it.

    The events of a session (a login, a transfer) take a fast path: their
    format has no C{()} call syntax, they carry no failure and no system, so
    C{str.format_map} (in C) writes exactly what Twisted's pure-Python
    formatter would, at a fraction of the cost. Anything else, or an event
    that does not format, goes through Twisted's own formatter.
    """
    format = event.get("log_format")
    if (
        type(format) is str
        and "()" not in format
        and "log_failure" not in event
        and "log_flattened" not in event
        and event.get("log_system") is None
    ):
        try:
            text = format.format_map(event)
        except Exception:
            pass
        else:
            if not text:
                return None
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
            line = f"{_clock(event.get('log_time'))} [{system}] {text}"
            return line.replace("\n", "\n\t") + "\n"
    return formatEventAsClassicLogText(event, formatTime=_clock)


@implementer(ILogObserver)
class _FormattedText:
    """
    Adds the event's formatted message as C{text}, so that a JSON line can
    be read by people and by tools that do not know Twisted's formats.
    """

    def __init__(self, observer: ILogObserver) -> None:
        self._observer = observer

    def __call__(self, event: LogEvent) -> None:
        self._observer(dict(event, text=formatEvent(event)))


#: What L{twistdObserver} builds: twistd resolves its C{logger} option by
#: name and calls it with no arguments, so the one observer of the process
#: finds its settings here. Set once, by L{installObserver}.
_installed: list[Callable[[], ILogObserver]] = []


def twistdObserver() -> ILogObserver:
    """
    The log observer twistd builds for C{twistd ftps}, through its C{logger}
    option (see L{installObserver}).
    """
    return (_installed[-1] if _installed else observerFactory({"nodaemon": True}))()


_debug = [True]


def debugWanted() -> bool:
    """
    Whether debug events can reach a log: C{False} once twistd's observer
    was installed (L{installObserver}) with a level above debug, C{True}
    otherwise (an application that embeds txftps chooses its own
    observers). Code on a hot path checks it before it builds a debug
    event at all.
    """
    return _debug[0]


def installObserver(
    twistdOptions: Any, logFormat: str = "text", logLevel: str = "info", reactor: Any = None
) -> bool:
    """
    Make twistd log through L{observerFactory}, unless the operator chose a
    C{--logger} or C{--syslog}.

    @return: whether it was installed.
    """
    if twistdOptions.get("logger") or twistdOptions.get("syslog"):
        return False
    _installed[:] = [observerFactory(twistdOptions, logFormat, logLevel, reactor)]
    _debug[0] = LOG_LEVELS[logLevel] <= LogLevel.debug
    twistdOptions["logger"] = f"{__name__}.twistdObserver"
    return True
