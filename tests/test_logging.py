"""
Tests for C{--log-format} and C{--log-level} of the real C{twistd -n ftps}
(L{txftps._logging}): JSON lines for machines, per-command lines only at
debug, and never a password at any level.
"""

from __future__ import annotations

import json

from twisted.logger import Logger, LogLevel, formatEventAsClassicLogText, formatTime
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests import support
from txftps._logging import _formatText, observerFactory

PASSWORD = "s3cret-Pw-never-logged"


class LogFormatTests(unittest.TestCase):
    """
    What the process writes with C{--log-format} and C{--log-level}.
    """

    def startServer(self, *args: str) -> support.TwistdServer:
        server = support.TwistdServer(*args, users={"alice": PASSWORD})
        server.start()
        self.addCleanup(server.stop)
        return server

    def session(self, server: support.TwistdServer) -> None:
        """
        Log in (one wrong password, then the right one), list and download,
        with real curl.
        """
        support.writeFile(server.userHome("alice") + "/f.txt", b"data\n")
        # The home exists only after a first login; writeFile makes it.
        control = support.ControlConnection(server)
        self.addCleanup(control.close)
        control.auth()
        control.expect("USER alice", 331)
        control.expect(f"PASS wrong-{PASSWORD}", 530)
        control.close()
        result = support.curl(server, user=f"alice:{PASSWORD}", path="/f.txt")
        self.assertEqual(result.stdout, b"data\n", result.stderr)

    def test_jsonEveryLine(self) -> None:
        """
        With C{--log-format json} every line the process writes is one JSON
        object, twistd's own start-up lines included; each has the formatted
        message as C{text}; the login is there and no password is; session
        events carry the session id, client and user, the transfer event its
        bytes, duration and reply code, and the per-command events the
        command and the reply codes.
        """
        server = self.startServer("--log-format", "json", "--log-level", "debug")
        self.session(server)
        server.stopProcess()
        lines = [line for line in server.log().splitlines() if line.strip()]
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                self.fail(f"not a JSON line: {line!r}")
        texts = [event.get("text", "") for event in events]
        self.assertTrue(any("starting up" in text for text in texts), texts)
        self.assertTrue(any("alice logged in from 127.0.0.1" in t for t in texts), texts)
        self.assertTrue(any("<- RETR" in text for text in texts), texts)
        self.assertNotIn(PASSWORD, server.log())
        transfers = [e for e in events if e.get("text", "").startswith("RETR /f.txt:")]
        self.assertEqual(len(transfers), 1, texts)
        transfer = transfers[0]
        self.assertEqual(
            (transfer["client"], transfer["user"], transfer["bytes"], transfer["code"]),
            ("127.0.0.1", "alice", 5, 226),
        )
        self.assertGreaterEqual(transfer["duration"], 0)
        session = transfer["session"]
        self.assertRegex(session, "^[0-9a-f]{8}$")
        mine = [e for e in events if e.get("session") == session]
        self.assertTrue(any(e.get("command") == "RETR" for e in mine), mine)
        self.assertTrue(any(e.get("code") == 150 for e in mine), mine)
        logins = [e for e in events if "alice logged in" in e.get("text", "")]
        self.assertEqual(logins[0]["session"], session)

    def test_infoHasNoCommandLines(self) -> None:
        """
        At the default level, C{info}, logins are logged and the per-command
        lines are not, and no password appears.
        """
        info = self.startServer("--log-level", "info")
        self.session(info)
        info.stopProcess()
        self.assertIn("alice logged in", info.log())
        self.assertNotIn("<- ", info.log())
        self.assertNotIn(PASSWORD, info.log())

    def test_debugHasNoPassword(self) -> None:
        """
        At C{debug} the command lines are logged, and PASS without its
        argument.
        """
        server = self.startServer("--log-level", "debug")
        self.session(server)
        server.stopProcess()
        self.assertIn("<- PASS ***", server.log())
        self.assertNotIn(PASSWORD, server.log())

    def test_badValues(self) -> None:
        """
        A bad C{--log-format} or C{--log-level} stops the start with one line.
        """
        self.assertIn(
            "--log-format must be one of text, json", support.refusedStart("--log-format", "xml")
        )
        self.assertIn(
            "--log-level must be one of debug, info, warn, error",
            support.refusedStart("--log-level", "verbose"),
        )


class ObserverTests(unittest.SynchronousTestCase):
    """
    L{observerFactory} builds twistd's observer with a level filter and a
    format.
    """

    def events(self, logFormat: str, level: str) -> str:
        path = self.mktemp()
        observer = observerFactory({"logfile": path, "nodaemon": True}, logFormat, level)()
        logger = Logger(namespace="txftps.test", observer=observer)
        logger.debug("a debug line")
        logger.info("an info line")
        logger.warn("a warning")
        logger.error("an error")
        observer(
            {
                "log_format": "{log_text}",
                "log_text": "_DataFactory starting on 40000",
                "log_level": LogLevel.info,
                "log_time": 0.0,
            }
        )
        with open(path) as f:
            return f.read()

    def test_levels(self) -> None:
        """
        Each level lets through its own events and those above it, and the
        port lines never.
        """
        for level, seen in (
            ("debug", ["a debug line", "an info line", "a warning", "an error"]),
            ("info", ["an info line", "a warning", "an error"]),
            ("warn", ["a warning", "an error"]),
            ("error", ["an error"]),
        ):
            text = self.events("text", level)
            lines = [line for line in text.splitlines() if line]
            self.assertEqual(len(lines), len(seen), (level, text))
            for expected, line in zip(seen, lines, strict=True):
                self.assertIn(expected, line)

    def test_json(self) -> None:
        """
        JSON output: one object per line, each with its formatted C{text} and
        Twisted's own fields.
        """
        text = self.events("json", "info")
        objects = [json.loads(line) for line in text.splitlines()]
        self.assertEqual([o["text"] for o in objects], ["an info line", "a warning", "an error"])
        self.assertEqual({o["log_namespace"] for o in objects}, {"txftps.test"})


class TextFormatTests(unittest.SynchronousTestCase):
    """
    The text lines of L{txftps._logging} are Twisted's classic log lines,
    whichever way each event is formatted.
    """

    def test_sameAsTwisted(self) -> None:
        """
        For events of every kind (a session's login and transfer lines,
        attribute, index and call syntax, format specs and conversions,
        missing keys, no format, a legacy line with its system, a failure,
        multi-line text, no level or namespace), the line written is the
        one Twisted's C{formatEventAsClassicLogText} writes.
        """

        class Thing:
            name = "thing"

            def __repr__(self) -> str:
                return "<Thing>"

        failure = Failure(ZeroDivisionError("boom"))
        base = {
            "log_time": 1_700_000_000.25,
            "log_namespace": "txftps.x",
            "log_level": LogLevel.info,
        }
        events = [
            dict(base, log_format="{user} logged in from {host}", user="alice", host="10.0.0.1"),
            dict(
                base,
                log_format="{command} {path}: {bytes} bytes in {duration:.3f} s, reply {code}",
                command="RETR",
                path="/a b/\u00e9",
                bytes=4096,
                duration=0.0123456,
                code=226,
            ),
            dict(
                base,
                log_format="{thing.name} {items[1]} {thing!r} {n:>5}",
                thing=Thing(),
                items=[1, 2],
                n=7,
            ),
            dict(base, log_format="{call()} done", call=lambda: "called"),
            dict(base, log_format="{missing} key"),
            dict(base, log_format="{} positional"),
            dict(base, log_format="two\nlines {x}", x="and\nmore"),
            dict(base, log_format=""),
            dict(base),
            dict(base, log_format="{log_text}", log_text="legacy", log_system="-"),
            dict(base, log_format="failed: {why}", why="boom", log_failure=failure),
            {"log_format": "no level {x}", "x": 1, "log_time": 5.0},
            {"log_format": "no time {x}", "x": 1, "log_namespace": None},
            dict(base, log_format="{{braces}} {x}", x="ok"),
        ]
        for event in events:
            self.assertEqual(
                _formatText(event),
                formatEventAsClassicLogText(event, formatTime=formatTime),
                event.get("log_format"),
            )
