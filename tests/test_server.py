"""
Tests for L{txftps.server}: the control-channel protocol interpreter driven
through a L{StringTransport} and a L{MemoryReactorClock}, with no network.

C{StringTransport} has no C{startTLS}; L{FakeTLSTransport} records the call,
and the tests call C{handshakeCompleted()} themselves to simulate the end of
the handshake.
"""

from __future__ import annotations

import errno
import gc
import os
import re
from typing import Any

from twisted.cred import strcred
from twisted.cred.checkers import (
    AllowAnonymousAccess,
    ICredentialsChecker,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txftps import _logging
from txftps._datachannel import PassivePortRange
from txftps._policy import SessionPolicy, TLSRequirement
from txftps.auth import FTPSRealm, LoginBans, normalizeChecker
from txftps.errors import ErrorReplies
from txftps.server import ConnectionLimits, FTPSFactory, FTPSProtocol, ServerSettings
from txftps.tls import ConnectionTLS, ServerTLS

#: The passive port the tests' listeners get; 50001 == 195 * 256 + 81.
PASSIVE_PORT = 50001

_FINAL = re.compile(r"^(\d{3}) ")


@implementer(ICredentialsChecker)
class RecordingChecker:
    """
    A checker that records every credentials object it is asked about, then
    asks the wrapped checker.

    @ivar calls: the credentials, in order.
    """

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped
        self.credentialInterfaces = wrapped.credentialInterfaces
        self.calls: list[Any] = []

    def requestAvatarId(self, creds: Any) -> Any:
        self.calls.append(creds)
        return self._wrapped.requestAvatarId(creds)


class FakeTLSTransport(StringTransportWithDisconnection):
    """
    A string transport whose C{startTLS} only records its argument.

    @ivar startedTLS: the C{startTLS} arguments, in order.
    """

    def __init__(self, hostAddress: Any, peerAddress: Any) -> None:
        super().__init__(hostAddress=hostAddress, peerAddress=peerAddress)
        self.startedTLS: list[Any] = []

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        self.startedTLS.append(contextFactory)


class Session:
    """
    A client's view of one control connection to an L{FTPSProtocol}.
    """

    def __init__(self, protocol: FTPSProtocol, transport: FakeTLSTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def replies(self) -> list[str]:
        """
        The reply lines written since the last call (CRLF removed).
        """
        data = self.transport.value()
        self.transport.clear()
        if not data:
            return []
        assert data.endswith(b"\r\n"), data
        return data[:-2].decode("utf-8", "surrogateescape").split("\r\n")

    def send(self, line: str | bytes) -> list[str]:
        """
        Send one command line (or raw bytes) and return the reply lines it
        produced synchronously.
        """
        self.replies()
        if isinstance(line, str):
            line = line.encode("utf-8", "surrogateescape") + b"\r\n"
        self.protocol.dataReceived(line)
        return self.replies()

    def codes(self, line: str | bytes) -> list[int]:
        """
        Send C{line}; the codes of the complete replies it produced.
        """
        return finalCodes(self.send(line))

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting or not self.transport.connected)


def finalCodes(lines: list[str]) -> list[int]:
    """
    The codes of the last lines of complete replies in C{lines}.
    """
    return [int(m.group(1)) for m in map(_FINAL.match, lines) if m]


class ServerTestCase(SynchronousTestCase):
    """
    Builds a realm over temporary directories, a portal with alice/secret and
    anonymous, generated TLS material and a memory reactor.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        base = FilePath(self.mktemp())
        self.root = base.child("root")
        self.root.makedirs()
        self.home = base.child("home")
        self.home.makedirs()
        self.tls = ServerTLS.fromDataDirectory(base.child("data"))[0]
        # Built the way --auth memory:alice:secret builds it (str user names);
        # see test_aliceLogsInWithKeywordChecker for the keyword constructor.
        self.passwords = RecordingChecker(strcred.makeChecker("memory:alice:secret"))
        self.anonymous = RecordingChecker(AllowAnonymousAccess())
        self.portal = Portal(
            FTPSRealm(self.root, self.home),
            [normalizeChecker(self.passwords), normalizeChecker(self.anonymous)],
        )

    def settings(self, **kwargs: Any) -> ServerSettings:
        """
        Server settings with no TLS requirement and no failed-login delay
        unless told otherwise.
        """
        kwargs.setdefault("policy", SessionPolicy(tlsRequired=TLSRequirement.NONE))
        kwargs.setdefault("failedLoginDelay", 0)
        kwargs.setdefault("passivePorts", PassivePortRange(PASSIVE_PORT, PASSIVE_PORT))
        return ServerSettings(**kwargs)

    def factory(
        self, portal: Portal | None = None, settings: ServerSettings | None = None, **kwargs: Any
    ) -> FTPSFactory:
        return FTPSFactory(
            self.clock,
            portal if portal is not None else self.portal,
            self.tls,
            settings if settings is not None else self.settings(),
            **kwargs,
        )

    def connect(
        self,
        factory: FTPSFactory | None = None,
        peer: str = "127.0.0.1",
        host: Any = None,
        greeting: bool = True,
    ) -> Session:
        """
        Connect a new control connection; by default check and consume the
        220 greeting.
        """
        if factory is None:
            factory = self.factory()
        peerAddress = IPv4Address("TCP", peer, 40000)
        hostAddress = host if host is not None else IPv4Address("TCP", "127.0.0.1", 2121)
        protocol = factory.buildProtocol(peerAddress)
        assert isinstance(protocol, FTPSProtocol)
        transport = FakeTLSTransport(hostAddress, peerAddress)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        session = Session(protocol, transport)
        if greeting:
            lines = session.replies()
            self.assertEqual(finalCodes(lines), [220], lines)
        return session

    def loggedIn(self, user: str = "alice", password: str = "secret", **kwargs: Any) -> Session:
        """
        A session logged in over plaintext (policy C{none}).
        """
        session = self.connect(**kwargs)
        self.assertEqual(session.codes(f"USER {user}"), [331])
        self.assertEqual(session.codes(f"PASS {password}"), [230])
        return session

    def startTLS(self, session: Session) -> None:
        """
        C{AUTH TLS} and a simulated completed handshake.
        """
        self.assertEqual(session.codes("AUTH TLS"), [234])
        self.assertEqual(len(session.transport.startedTLS), 1)
        session.protocol.handshakeCompleted()
        self.assertEqual(session.replies(), [])

    @property
    def aliceHome(self) -> FilePath[str]:
        return self.home.child("alice")


class GreetingAndLoginTests(ServerTestCase):
    """
    Greeting, USER/PASS and what happens on failed logins.
    """

    def test_greeting(self) -> None:
        """
        A new explicit-FTPS connection is greeted with one 220 line at once.
        """
        session = self.connect(greeting=False)
        lines = session.replies()
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("220 "), lines)

    def test_aliceLogsIn(self) -> None:
        """
        USER alice gets 331 and PASS with her password 230; then PWD works and
        her home directory exists.
        """
        session = self.connect()
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.codes("PASS secret"), [230])
        self.assertEqual(session.codes("PWD"), [257])
        self.assertTrue(self.aliceHome.isdir())

    def test_aliceLogsInWithKeywordChecker(self) -> None:
        """
        The portal of the brief, C{InMemoryUsernamePasswordDatabaseDontUse(
        alice="secret")} (whose constructor stores the user name as bytes)
        wrapped by C{normalizeChecker}, lets alice log in with 230.
        """
        portal = Portal(
            FTPSRealm(self.root, self.home),
            [
                normalizeChecker(InMemoryUsernamePasswordDatabaseDontUse(alice="secret")),
                normalizeChecker(AllowAnonymousAccess()),
            ],
        )
        session = self.connect(self.factory(portal=portal))
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.codes("PASS secret"), [230])

    def test_anonymousLogsIn(self) -> None:
        """
        USER anonymous with any password gets 331 then 230, through the
        anonymous checker.
        """
        session = self.connect()
        self.assertEqual(session.codes("USER anonymous"), [331])
        self.assertEqual(session.codes("PASS guest@example.com"), [230])
        self.assertEqual(len(self.anonymous.calls), 1)
        self.assertEqual(self.passwords.calls, [])
        self.assertEqual(session.codes("PWD"), [257])

    def test_ftpIsAnonymous(self) -> None:
        """
        USER ftp (any case) is anonymous too: the anonymous checker is asked,
        never the password checker.
        """
        for user in ("ftp", "FTP", "Anonymous"):
            session = self.connect()
            session.codes(f"USER {user}")
            self.assertEqual(session.codes("PASS x"), [230], user)
        self.assertEqual(len(self.anonymous.calls), 3)
        self.assertEqual(self.passwords.calls, [])

    def test_wrongPasswordRepliesAfterDelay(self) -> None:
        """
        A wrong password gets 530 only after the failed-login delay (1 s
        here): nothing before, 530 after.
        """
        session = self.connect(self.factory(settings=self.settings(failedLoginDelay=1)))
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.send("PASS wrong"), [])
        self.clock.advance(0.99)
        self.assertEqual(session.replies(), [])
        self.clock.advance(0.01)
        self.assertEqual(finalCodes(session.replies()), [530])
        self.assertFalse(session.closed)
        self.assertEqual(session.codes("PWD"), [530])

    def test_commandsDuringDelayWait(self) -> None:
        """
        Commands pipelined after a failing PASS are answered in order after
        its 530, not before.
        """
        session = self.connect(self.factory(settings=self.settings(failedLoginDelay=1)))
        session.codes("USER alice")
        self.assertEqual(session.send(b"PASS wrong\r\nNOOP\r\n"), [])
        self.clock.advance(1)
        self.assertEqual(finalCodes(session.replies()), [530, 200])

    def test_closedAfterMaxLoginAttempts(self) -> None:
        """
        The connection stays open after fewer failed logins than
        C{maxLoginAttempts} and is closed right after the last 530.
        """
        session = self.connect(self.factory(settings=self.settings(maxLoginAttempts=3)))
        for _attempt in range(2):
            session.codes("USER alice")
            self.assertEqual(session.codes("PASS wrong"), [530])
            self.assertFalse(session.closed)
        session.codes("USER alice")
        self.assertEqual(session.codes("PASS wrong"), [530])
        self.assertTrue(session.closed)

    def test_nothingRunsAfterLastFailure(self) -> None:
        """
        Commands pipelined after the failure that closes the connection are
        not run: a USER/PASS with the right password does not log in.
        """
        session = self.connect(self.factory(settings=self.settings(maxLoginAttempts=1)))
        session.codes("USER alice")
        lines = session.send(b"PASS wrong\r\nUSER alice\r\nPASS secret\r\nMKD x\r\n")
        self.assertEqual(finalCodes(lines), [530])
        self.assertTrue(session.closed)
        self.assertEqual(len(self.passwords.calls), 1)
        self.assertFalse(self.aliceHome.exists())

    def test_passBeforeUser(self) -> None:
        """
        PASS without USER gets 503 and the checker is never asked.
        """
        session = self.connect()
        self.assertEqual(session.codes("PASS secret"), [503])
        self.assertEqual(self.passwords.calls, [])

    def test_passNeedsFreshUser(self) -> None:
        """
        After a failed PASS, a second PASS without USER gets 503.
        """
        session = self.connect()
        session.codes("USER alice")
        self.assertEqual(session.codes("PASS wrong"), [530])
        self.assertEqual(session.codes("PASS secret"), [503])

    def _oddPasswordsPortal(self) -> tuple[Portal, RecordingChecker]:
        database = InMemoryUsernamePasswordDatabaseDontUse()
        database.addUser("empty", "")  # type: ignore[arg-type]
        database.addUser("long", "x" * 5000)  # type: ignore[arg-type]
        checker = RecordingChecker(database)
        return Portal(FTPSRealm(self.root, self.home), [normalizeChecker(checker)]), checker

    def test_emptyPasswordNeverLogsIn(self) -> None:
        """
        An empty password never logs in, even for an account whose stored
        password is empty (with and without the space after PASS).
        """
        portal, checker = self._oddPasswordsPortal()
        session = self.connect(self.factory(portal=portal))
        for line in ("PASS", "PASS "):
            session.codes("USER empty")
            self.assertEqual(session.codes(line), [530])
        self.assertEqual(session.codes("PWD"), [530])
        self.assertFalse(self.home.child("empty").exists())

    def test_longPasswordNeverLogsIn(self) -> None:
        """
        A 5000-character password never logs in, even when it is the stored
        password, and is never handed to the checker.
        """
        portal, checker = self._oddPasswordsPortal()
        session = self.connect(self.factory(portal=portal))
        session.codes("USER long")
        self.assertEqual(session.codes("PASS " + "x" * 5000), [530])
        self.assertEqual(checker.calls, [])
        self.assertEqual(session.codes("PWD"), [530])

    def test_anonymousRefusedWithoutAnonymousChecker(self) -> None:
        """
        When the portal has no anonymous checker (C{--auth} without
        C{anonymous}), USER anonymous gets 530, quietly: an expected refusal
        is not logged as an error.
        """
        portal = Portal(FTPSRealm(self.root, self.home), [normalizeChecker(self.passwords)])
        session = self.connect(self.factory(portal=portal))
        session.codes("USER anonymous")
        self.assertEqual(session.codes("PASS a@b"), [530])
        self.assertEqual(session.codes("PWD"), [530])

    def test_bannedAddressCannotLogIn(self) -> None:
        """
        After C{banAfter} failures from one address, even the right password
        from that address gets 530 (without asking the checker) in a session
        opened before the ban; a new connection from it gets 421 and is
        closed at once; another address still logs in.
        """
        bans = LoginBans(self.clock, banAfter=2, banTime=60)
        factory = self.factory(bans=bans)
        session = self.connect(factory)
        again = self.connect(factory)
        for _attempt in range(2):
            session.codes("USER alice")
            self.assertEqual(session.codes("PASS wrong"), [530])
        calls = len(self.passwords.calls)
        again.codes("USER alice")
        self.assertEqual(again.codes("PASS secret"), [530])
        self.assertEqual(len(self.passwords.calls), calls)
        refused = self.connect(factory, greeting=False)
        self.assertEqual(finalCodes(refused.replies()), [421])
        self.assertTrue(refused.closed)
        other = self.connect(factory, peer="127.0.0.2")
        other.codes("USER alice")
        self.assertEqual(other.codes("PASS secret"), [230])

    def test_preLoginRefused(self) -> None:
        """
        Before login, PWD, CWD, LIST, MKD, RETR, PASV and DELE get 530 and
        change nothing.
        """
        session = self.connect()
        for line in ("PWD", "CWD /", "LIST", "MKD newdir", "RETR x", "PASV", "DELE x"):
            self.assertEqual(session.codes(line), [530], line)
        self.assertEqual(self.root.listdir(), [])
        self.assertEqual(self.home.listdir(), [])
        self.assertEqual(self.clock.tcpServers, [])

    def test_quit(self) -> None:
        """
        QUIT gets 221 and closes the connection.
        """
        session = self.connect()
        self.assertEqual(session.codes("QUIT"), [221])
        self.assertTrue(session.closed)


class InformationTests(ServerTestCase):
    """
    FEAT, OPTS, SYST, NOOP, TYPE, MODE, STRU and unknown commands.
    """

    def test_noDebugEventsUnlessWanted(self) -> None:
        """
        While debug lines cannot reach a log (twistd's observer above
        C{debug}, L{txftps._logging.debugWanted} false), the per-command and
        per-reply debug events are not even built; when they can, both are.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.patch(_logging, "_debug", [False])
        session = self.connect()
        self.assertEqual(session.codes("NOOP"), [200])
        debug = [e for e in events if e.get("log_level") == LogLevel.debug]
        self.assertEqual(debug, [])
        self.patch(_logging, "_debug", [True])
        self.assertEqual(session.codes("NOOP"), [200])
        formats = [e["log_format"] for e in events if e.get("log_level") == LogLevel.debug]
        self.assertEqual(formats, ["{host} <- {command}", "{host} -> {code}"])

    def test_feat(self) -> None:
        """
        FEAT is a multi-line 211 reply: C{211-} first, then each feature on
        its own line with exactly one leading space, then C{211 End}; it lists
        the extensions the server implements.
        """
        session = self.connect()
        lines = session.send("FEAT")
        self.assertTrue(lines[0].startswith("211-"), lines)
        self.assertEqual(lines[-1], "211 End")
        features = lines[1:-1]
        self.assertTrue(features)
        for line in features:
            self.assertRegex(line, r"^ [^ ]")
        names = {line[1:] for line in features}
        for expected in ("AUTH TLS", "PBSZ", "PROT", "EPSV", "UTF8", "SIZE", "MDTM", "TVFS"):
            self.assertIn(expected, names)

    def test_featOnlyListsImplementedCommands(self) -> None:
        """
        Every command-like FEAT entry has a handler, so clients that pick
        commands from FEAT (lftp) never get 502.
        """
        session = self.connect()
        features = [line[1:] for line in session.send("FEAT")[1:-1]]
        for feature in features:
            verb = feature.split(" ")[0]
            if verb in ("UTF8", "TVFS"):
                continue
            self.assertTrue(hasattr(FTPSProtocol, "ftp_" + verb), feature)

    def test_optsUTF8(self) -> None:
        """
        C{OPTS UTF8 ON} gets 200 (FEAT lists UTF8); an unknown option gets 501.
        """
        session = self.connect()
        self.assertEqual(session.codes("OPTS UTF8 ON"), [200])
        self.assertEqual(session.codes("OPTS utf8 on"), [200])
        self.assertEqual(session.codes("OPTS BOGUS"), [501])

    def test_systAndNoop(self) -> None:
        """
        SYST gets C{215 UNIX Type: L8} and NOOP 200, also before login.
        """
        session = self.connect()
        self.assertEqual(session.send("SYST"), ["215 UNIX Type: L8"])
        self.assertEqual(session.codes("NOOP"), [200])

    def test_type(self) -> None:
        """
        TYPE I, TYPE A (any case) get 200; an unknown type gets 504.
        """
        session = self.loggedIn()
        for line in ("TYPE I", "TYPE A", "TYPE i", "TYPE A N", "TYPE L 8"):
            self.assertEqual(session.codes(line), [200], line)
        for line in ("TYPE X", "TYPE E", "TYPE"):
            self.assertEqual(session.codes(line), [504], line)

    def test_modeAndStru(self) -> None:
        """
        MODE S and STRU F get 200; other modes and structures get 504.
        """
        session = self.loggedIn()
        self.assertEqual(session.codes("MODE S"), [200])
        self.assertEqual(session.codes("STRU F"), [200])
        for line in ("MODE B", "MODE C", "MODE Z", "STRU R", "STRU P"):
            self.assertEqual(session.codes(line), [504], line)

    def test_unknownCommandAfterLogin(self) -> None:
        """
        An unknown command after login gets 502, and the session goes on.
        """
        session = self.loggedIn()
        self.assertEqual(session.codes("XYZZY foo"), [502])
        self.assertEqual(session.codes("NOOP"), [200])

    def test_emptyLineIgnored(self) -> None:
        """
        An empty line gets no reply and does not break the session.
        """
        session = self.connect()
        self.assertEqual(session.send(b"\r\n"), [])
        self.assertEqual(session.codes("NOOP"), [200])

    def test_bareLF(self) -> None:
        """
        A command ended by LF alone is understood too.
        """
        session = self.connect()
        self.assertEqual(session.codes(b"NOOP\n"), [200])


class FilesystemTests(ServerTestCase):
    """
    Navigation and file changes on a real temporary directory.
    """

    def test_pwdAtLogin(self) -> None:
        """
        After login the working directory is the user's root: C{257 "/"}.
        """
        session = self.loggedIn()
        lines = session.send("PWD")
        self.assertTrue(lines[0].startswith('257 "/" '), lines)

    def test_pwdDoublesQuotes(self) -> None:
        """
        PWD in a directory whose name contains a double quote doubles it
        (RFC 959): C{257 "/a""b"}.
        """
        session = self.loggedIn()
        self.assertEqual(session.codes('MKD a"b'), [257])
        self.assertTrue(self.aliceHome.child('a"b').isdir())
        self.assertEqual(session.codes('CWD a"b'), [250])
        lines = session.send("PWD")
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith('257 "/a""b" '), lines)

    def test_cwdAndCdup(self) -> None:
        """
        CWD into a subdirectory and CDUP back change PWD; CWD to a missing
        directory or to a file gets 550 and leaves PWD alone.
        """
        self.aliceHome.makedirs()
        self.aliceHome.child("sub").child("deeper").makedirs()
        self.aliceHome.child("file").setContent(b"x")
        session = self.loggedIn()
        self.assertEqual(session.codes("CWD sub/deeper"), [250])
        self.assertTrue(session.send("PWD")[0].startswith('257 "/sub/deeper" '))
        self.assertEqual(session.codes("CDUP"), [250])
        self.assertTrue(session.send("PWD")[0].startswith('257 "/sub" '))
        self.assertEqual(session.codes("CWD /"), [250])
        self.assertTrue(session.send("PWD")[0].startswith('257 "/" '))
        self.assertEqual(session.codes("CWD missing"), [550])
        self.assertEqual(session.codes("CWD file"), [550])
        self.assertTrue(session.send("PWD")[0].startswith('257 "/" '))

    def test_cwdCannotLeaveHome(self) -> None:
        """
        C{CWD ..} from the user's root does not reach the directory above it.
        """
        session = self.loggedIn()
        session.codes("CWD ..")
        self.assertTrue(session.send("PWD")[0].startswith('257 "/" '))

    def test_mkdAndRmd(self) -> None:
        """
        MKD creates a directory (257 with its quoted path), RMD removes it
        (250); RMD of a missing directory gets 550.
        """
        session = self.loggedIn()
        lines = session.send("MKD newdir")
        self.assertTrue(lines[0].startswith('257 "/newdir" '), lines)
        self.assertTrue(self.aliceHome.child("newdir").isdir())
        self.assertEqual(session.codes("MKD newdir"), [550])
        self.assertEqual(session.codes("RMD newdir"), [250])
        self.assertFalse(self.aliceHome.child("newdir").exists())
        self.assertEqual(session.codes("RMD newdir"), [550])

    def test_errorRepliesFromTheClass(self) -> None:
        """
        A protocol subclass with its own C{errorReplies} changes the reply
        of a failure (RMD of a directory that is not empty) for its server
        only; the default is 550 "Directory not empty.".
        """

        class Replies(ErrorReplies):
            byErrno = {**ErrorReplies.byErrno, errno.ENOTEMPTY: (550, "Still has files.")}

        class Protocol(FTPSProtocol):
            errorReplies = Replies()

        self.aliceHome.child("full").makedirs()
        self.aliceHome.child("full").child("f").setContent(b"f")
        self.assertEqual(self.loggedIn().send("RMD full"), ["550 Directory not empty."])
        factory = self.factory()
        factory.protocol = Protocol
        self.assertEqual(self.loggedIn(factory=factory).send("RMD full"), ["550 Still has files."])

    def test_dele(self) -> None:
        """
        DELE removes a file (250); a missing file gets 550.
        """
        session = self.loggedIn()
        self.aliceHome.child("gone.txt").setContent(b"bye")
        self.assertEqual(session.codes("DELE gone.txt"), [250])
        self.assertFalse(self.aliceHome.child("gone.txt").exists())
        self.assertEqual(session.codes("DELE gone.txt"), [550])

    def test_rename(self) -> None:
        """
        RNFR an existing file gets 350, RNTO 250 and the file moves with its
        content.
        """
        session = self.loggedIn()
        self.aliceHome.child("a.txt").setContent(b"content")
        self.assertEqual(session.codes("RNFR a.txt"), [350])
        self.assertEqual(session.codes("RNTO b.txt"), [250])
        self.assertFalse(self.aliceHome.child("a.txt").exists())
        self.assertEqual(self.aliceHome.child("b.txt").getContent(), b"content")

    def test_rntoWithoutRnfr(self) -> None:
        """
        RNTO without RNFR gets 503; so does a second RNTO after a completed
        rename, and RNTO after an RNFR of a missing file (which got 550).
        """
        session = self.loggedIn()
        self.aliceHome.child("a.txt").setContent(b"content")
        self.assertEqual(session.codes("RNTO b.txt"), [503])
        session.codes("RNFR a.txt")
        session.codes("RNTO b.txt")
        self.assertEqual(session.codes("RNTO c.txt"), [503])
        self.assertEqual(session.codes("RNFR missing"), [550])
        self.assertEqual(session.codes("RNTO c.txt"), [503])
        self.assertEqual(sorted(self.aliceHome.listdir()), ["b.txt"])

    def test_size(self) -> None:
        """
        SIZE of a file gets C{213 <bytes>}; of a directory or missing file
        550.
        """
        session = self.loggedIn()
        self.aliceHome.child("f.bin").setContent(b"0123456789a")
        self.aliceHome.child("d").makedirs()
        self.assertEqual(session.send("SIZE f.bin"), ["213 11"])
        self.assertEqual(session.codes("SIZE d"), [550])
        self.assertEqual(session.codes("SIZE missing"), [550])

    def test_mdtm(self) -> None:
        """
        MDTM gets C{213 YYYYMMDDHHMMSS} in UTC; a missing file 550.
        """
        session = self.loggedIn()
        self.aliceHome.child("f.bin").setContent(b"x")
        os.utime(self.aliceHome.child("f.bin").path, (1700000000, 1700000000))
        self.assertEqual(session.send("MDTM f.bin"), ["213 20231114221320"])
        self.assertEqual(session.codes("MDTM missing"), [550])

    def test_anonymousCannotChangeAnything(self) -> None:
        """
        Anonymous MKD, RMD, DELE, RNFR/RNTO and STOR get 550, and the
        anonymous root is left exactly as it was.
        """
        self.root.child("keep.txt").setContent(b"keep")
        self.root.child("dir").makedirs()
        session = self.loggedIn("anonymous", "a@b")
        self.assertEqual(session.codes("MKD newdir"), [550])
        self.assertEqual(session.codes("RMD dir"), [550])
        self.assertEqual(session.codes("DELE keep.txt"), [550])
        self.assertEqual(session.codes("RNFR keep.txt"), [550])
        self.assertEqual(session.codes("RNTO moved.txt"), [503])
        self.assertEqual(session.codes("PASV"), [227])
        self.assertEqual(session.codes("STOR upload.txt"), [550])
        # A refused transfer command ends its data connection: PASV again.
        self.assertEqual(session.codes("STOR keep.txt"), [425])
        self.assertEqual(session.codes("PASV"), [227])
        self.assertEqual(session.codes("STOR keep.txt"), [550])
        self.assertEqual(sorted(self.root.listdir()), ["dir", "keep.txt"])
        self.assertEqual(self.root.child("keep.txt").getContent(), b"keep")
        self.assertEqual(self.root.child("dir").listdir(), [])

    def test_anonymousSeesRoot(self) -> None:
        """
        Anonymous users are served the anonymous root: SIZE finds its files.
        """
        self.root.child("pub.txt").setContent(b"12345")
        session = self.loggedIn("anonymous", "a@b")
        self.assertEqual(session.send("SIZE pub.txt"), ["213 5"])


class ExplicitTLSTests(ServerTestCase):
    """
    AUTH, PBSZ and PROT on an explicit-FTPS connection.
    """

    def test_authWithoutArgument(self) -> None:
        """
        AUTH without a mechanism gets 501 and starts nothing.
        """
        session = self.connect()
        self.assertEqual(session.codes("AUTH"), [501])
        self.assertEqual(session.transport.startedTLS, [])

    def test_authUnknownMechanism(self) -> None:
        """
        AUTH FOO gets 504 and starts nothing.
        """
        session = self.connect()
        self.assertEqual(session.codes("AUTH FOO"), [504])
        self.assertEqual(session.transport.startedTLS, [])

    def test_authTLS(self) -> None:
        """
        AUTH TLS gets 234, then C{startTLS} is called once with a
        L{ConnectionTLS}, after the 234 was written.
        """
        session = self.connect()
        self.assertEqual(session.codes("AUTH TLS"), [234])
        self.assertEqual(len(session.transport.startedTLS), 1)
        self.assertIsInstance(session.transport.startedTLS[0], ConnectionTLS)

    def test_authReplyWrittenBeforeStartTLS(self) -> None:
        """
        The 234 reaches the transport before C{startTLS} (it must go out in
        plaintext).
        """
        session = self.connect()
        seen: list[bytes] = []

        def startTLS(contextFactory: Any, normal: bool = True) -> None:
            seen.append(session.transport.value())

        session.transport.startTLS = startTLS  # type: ignore[method-assign]
        session.protocol.dataReceived(b"AUTH TLS\r\n")
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0].startswith(b"234 "), seen)

    def test_authOtherMechanisms(self) -> None:
        """
        AUTH SSL (curl's first try), TLS-C and TLS-P, in any case, are
        accepted like AUTH TLS.
        """
        for mechanism in ("SSL", "TLS-C", "TLS-P", "tls"):
            session = self.connect()
            self.assertEqual(session.codes(f"AUTH {mechanism}"), [234], mechanism)
            self.assertEqual(len(session.transport.startedTLS), 1)

    def test_pipelinedBytesAfterAuthDiscarded(self) -> None:
        """
        Every byte delivered after the AUTH line in the same C{dataReceived}
        call is discarded: only 234 comes back, the checker is never asked,
        and after the handshake the session is not logged in (PWD gets 530).
        """
        session = self.connect()
        lines = session.send(b"AUTH TLS\r\nUSER alice\r\nPASS secret\r\n")
        self.assertEqual(finalCodes(lines), [234])
        self.assertEqual(self.passwords.calls, [])
        session.protocol.handshakeCompleted()
        self.assertEqual(session.codes("PWD"), [530])
        self.assertEqual(session.codes("PASS secret"), [503])
        self.assertEqual(self.passwords.calls, [])

    def test_pipelinedPartialLineAfterAuthDiscarded(self) -> None:
        """
        A partial plaintext line after AUTH is discarded too: it does not
        prefix the first command that arrives over TLS.
        """
        session = self.connect()
        session.send(b"AUTH TLS\r\nXYZ")
        session.protocol.handshakeCompleted()
        self.assertEqual(session.codes("NOOP"), [200])

    def test_pipelinedAfterAuthWhileBusy(self) -> None:
        """
        Commands queued behind a slow command and an AUTH are discarded with
        the AUTH: a USER/PASS pipelined after AUTH while a failed PASS is
        still delayed never runs.
        """
        session = self.connect(self.factory(settings=self.settings(failedLoginDelay=1)))
        session.codes("USER alice")
        session.send(b"PASS wrong\r\nAUTH TLS\r\nUSER alice\r\nPASS secret\r\n")
        self.clock.advance(1)
        self.assertEqual(finalCodes(session.replies()), [530, 234])
        self.assertEqual(len(self.passwords.calls), 1)
        session.protocol.handshakeCompleted()
        self.assertEqual(session.codes("PWD"), [530])

    def test_authAfterPlaintextLogin(self) -> None:
        """
        AUTH after a plaintext login gets 534 and does not start TLS.
        """
        session = self.loggedIn()
        self.assertEqual(session.codes("AUTH TLS"), [534])
        self.assertEqual(session.transport.startedTLS, [])

    def test_secondAuth(self) -> None:
        """
        A second AUTH, after the handshake or while it runs, gets 503 and
        does not start TLS again.
        """
        session = self.connect()
        self.assertEqual(session.codes("AUTH TLS"), [234])
        self.assertEqual(session.codes("AUTH TLS"), [503])
        session.protocol.handshakeCompleted()
        self.assertEqual(session.codes("AUTH TLS"), [503])
        self.assertEqual(len(session.transport.startedTLS), 1)

    def test_loginAfterAuth(self) -> None:
        """
        After AUTH TLS and the handshake, USER/PASS log in.
        """
        session = self.connect()
        self.startTLS(session)
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.codes("PASS secret"), [230])

    def test_handshakeTimeout(self) -> None:
        """
        A TLS handshake that does not complete within C{handshakeTimeout}
        aborts the connection; one that completes in time does not.
        """
        session = self.connect(self.factory(settings=self.settings(handshakeTimeout=5)))
        session.codes("AUTH TLS")
        self.clock.advance(4.9)
        self.assertFalse(session.closed)
        self.clock.advance(0.1)
        self.assertTrue(session.closed)

        done = self.connect(self.factory(settings=self.settings(handshakeTimeout=5)))
        done.codes("AUTH TLS")
        done.protocol.handshakeCompleted()
        self.clock.advance(6)
        self.assertFalse(done.closed)

    def test_pbszBeforeTLS(self) -> None:
        """
        PBSZ before TLS gets 503.
        """
        session = self.connect()
        self.assertEqual(session.codes("PBSZ 0"), [503])

    def test_pbsz(self) -> None:
        """
        After TLS, C{PBSZ 0} gets exactly C{200 PBSZ=0}.
        """
        session = self.connect()
        self.startTLS(session)
        self.assertEqual(session.send("PBSZ 0"), ["200 PBSZ=0"])

    def test_protBeforePbsz(self) -> None:
        """
        PROT before PBSZ gets 503, with or without TLS.
        """
        session = self.connect()
        self.assertEqual(session.codes("PROT P"), [503])
        self.startTLS(session)
        self.assertEqual(session.codes("PROT P"), [503])

    def test_protLevels(self) -> None:
        """
        After PBSZ: PROT S and PROT E get 536, an unknown level 504, PROT P
        and PROT C 200.
        """
        session = self.connect()
        self.startTLS(session)
        session.codes("PBSZ 0")
        self.assertEqual(session.codes("PROT S"), [536])
        self.assertEqual(session.codes("PROT E"), [536])
        self.assertEqual(session.codes("PROT X"), [504])
        self.assertEqual(session.codes("PROT P"), [200])
        self.assertTrue(session.protocol.session.dataProtected)
        self.assertEqual(session.codes("PROT C"), [200])
        self.assertFalse(session.protocol.session.dataProtected)


class DefaultPolicyTests(ServerTestCase):
    """
    With the default policy (C{--tls-required all}).
    """

    def settings(self, **kwargs: Any) -> ServerSettings:
        kwargs.setdefault("policy", SessionPolicy())
        return super().settings(**kwargs)

    def test_userBeforeAuth(self) -> None:
        """
        USER and PASS before AUTH get 530 and no checker is ever called, for
        a user and for anonymous.
        """
        session = self.connect()
        self.assertEqual(session.codes("USER alice"), [530])
        self.assertEqual(session.codes("PASS secret"), [530])
        self.assertEqual(session.codes("USER anonymous"), [530])
        self.assertEqual(session.codes("PASS a@b"), [530])
        self.assertEqual(self.passwords.calls, [])
        self.assertEqual(self.anonymous.calls, [])
        self.assertEqual(session.codes("PWD"), [530])

    def _tlsLogin(self) -> Session:
        session = self.connect()
        self.startTLS(session)
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.codes("PASS secret"), [230])
        self.aliceHome.child("file.txt").setContent(b"data")
        return session

    def test_transfersWithProtCRefused(self) -> None:
        """
        LIST, NLST and RETR with PROT C (or with no PROT at all) get 521
        before any 1xx reply, even after PASV.
        """
        session = self._tlsLogin()
        self.assertEqual(session.codes("RETR file.txt"), [521])
        session.codes("PBSZ 0")
        session.codes("PROT C")
        self.assertEqual(session.codes("PASV"), [227])
        for line in ("LIST", "NLST", "RETR file.txt", "STOR up.txt"):
            lines = session.send(line)
            self.assertEqual(finalCodes(lines), [521], line)
            self.assertFalse([reply for reply in lines if reply.startswith("1")], lines)
        self.assertFalse(self.aliceHome.child("up.txt").exists())

    def test_transferWithProtPStarts(self) -> None:
        """
        With PROT P a RETR passes the policy: 150, then (no data connection
        comes) 425 after the data timeout.
        """
        session = self._tlsLogin()
        session.codes("PBSZ 0")
        session.codes("PROT P")
        self.assertEqual(session.codes("PASV"), [227])
        self.assertEqual(session.codes("RETR file.txt"), [150])
        self.clock.advance(session.protocol.settings.dataTimeout)
        self.assertEqual(finalCodes(session.replies()), [425])


class DataChannelCommandTests(ServerTestCase):
    """
    PASV, EPSV and the transfer preconditions.
    """

    def test_retrWithoutPasv(self) -> None:
        """
        RETR without PASV/EPSV gets 425 and opens nothing.
        """
        session = self.loggedIn()
        self.aliceHome.child("file.txt").setContent(b"data")
        self.assertEqual(session.codes("RETR file.txt"), [425])
        self.assertEqual(self.clock.tcpServers, [])
        self.assertEqual(self.clock.tcpClients, [])

    def test_pasv(self) -> None:
        """
        PASV listens on the control connection's local address and a port of
        the passive range and announces both as
        C{227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).}
        """
        session = self.loggedIn()
        self.assertEqual(session.send("PASV"), ["227 Entering Passive Mode (127,0,0,1,195,81)."])
        self.assertEqual(len(self.clock.tcpServers), 1)
        port, factory, backlog, interface = self.clock.tcpServers[0]
        self.assertEqual(port, PASSIVE_PORT)
        self.assertEqual(interface, "127.0.0.1")

    def test_pasvListensOnLocalAddress(self) -> None:
        """
        The passive listener binds the control connection's local address,
        not all interfaces, and PASV announces it.
        """
        session = self.loggedIn(host=IPv4Address("TCP", "10.1.2.3", 2121))
        self.assertEqual(session.send("PASV"), ["227 Entering Passive Mode (10,1,2,3,195,81)."])
        self.assertEqual(self.clock.tcpServers[0][3], "10.1.2.3")

    def test_pasvIPv4Mapped(self) -> None:
        """
        On a dual-stack socket (local address C{::ffff:127.0.0.1}), PASV
        announces and listens on the plain IPv4 address.
        """
        session = self.loggedIn(host=IPv6Address("TCP", "::ffff:127.0.0.1", 2121))
        self.assertEqual(session.send("PASV"), ["227 Entering Passive Mode (127,0,0,1,195,81)."])
        self.assertEqual(self.clock.tcpServers[0][3], "127.0.0.1")

    def test_pasvMasquerade(self) -> None:
        """
        With C{masquerade}, PASV announces that address, while the listener
        still binds the control connection's local address.
        """
        factory = self.factory(settings=self.settings(masquerade="203.0.113.9"))
        session = self.loggedIn(factory=factory)
        self.assertEqual(session.send("PASV"), ["227 Entering Passive Mode (203,0,113,9,195,81)."])
        self.assertEqual(self.clock.tcpServers[0][0], PASSIVE_PORT)
        self.assertEqual(self.clock.tcpServers[0][3], "127.0.0.1")

    def test_epsv(self) -> None:
        """
        EPSV answers exactly C{229 Entering Extended Passive Mode (|||PORT|)}
        and listens on that port.
        """
        session = self.loggedIn()
        self.assertEqual(
            session.send("EPSV"), [f"229 Entering Extended Passive Mode (|||{PASSIVE_PORT}|)"]
        )
        self.assertEqual(self.clock.tcpServers[0][0], PASSIVE_PORT)
        self.assertEqual(self.clock.tcpServers[0][3], "127.0.0.1")

    def test_epsvWrongFamily(self) -> None:
        """
        C{EPSV 2} on an IPv4 control connection gets 522 naming family 1.
        """
        session = self.loggedIn()
        lines = session.send("EPSV 2")
        self.assertEqual(finalCodes(lines), [522])
        self.assertIn("(1)", lines[0])
        self.assertEqual(self.clock.tcpServers, [])

    def test_epsvAllThenPasv(self) -> None:
        """
        After C{EPSV ALL} (200), PASV is refused with a 5xx reply and opens no
        listener, while EPSV still works.
        """
        session = self.loggedIn()
        self.assertEqual(session.codes("EPSV ALL"), [200])
        codes = session.codes("PASV")
        self.assertEqual(len(codes), 1)
        self.assertEqual(codes[0] // 100, 5)
        self.assertEqual(self.clock.tcpServers, [])
        self.assertEqual(session.codes("EPSV"), [229])


class TimeoutAndLineTests(ServerTestCase):
    """
    The idle timeout and over-long lines.
    """

    def test_idleTimeout(self) -> None:
        """
        With no complete command for C{idleTimeout} seconds the server sends
        421 and closes; not a moment before.
        """
        session = self.connect(self.factory(settings=self.settings(idleTimeout=10)))
        self.clock.advance(9.9)
        self.assertEqual(session.replies(), [])
        self.assertFalse(session.closed)
        self.clock.advance(0.1)
        self.assertEqual(finalCodes(session.replies()), [421])
        self.assertTrue(session.closed)

    def test_partialLineDoesNotResetIdle(self) -> None:
        """
        Bytes without a line end do not count as activity: the idle timeout
        still fires C{idleTimeout} after the last complete command.
        """
        session = self.connect(self.factory(settings=self.settings(idleTimeout=10)))
        self.clock.advance(9)
        session.send(b"NOO")
        self.clock.advance(1)
        self.assertEqual(finalCodes(session.replies()), [421])
        self.assertTrue(session.closed)

    def test_completeCommandResetsIdle(self) -> None:
        """
        A complete command restarts the idle timer.
        """
        session = self.connect(self.factory(settings=self.settings(idleTimeout=10)))
        self.clock.advance(9)
        self.assertEqual(session.codes("NOOP"), [200])
        self.clock.advance(9)
        self.assertEqual(session.replies(), [])
        self.assertFalse(session.closed)
        self.clock.advance(1)
        self.assertEqual(finalCodes(session.replies()), [421])
        self.assertTrue(session.closed)

    def test_idleTimeoutAfterLogin(self) -> None:
        """
        A logged-in session that goes idle is closed with 421 too.
        """
        session = self.loggedIn(factory=self.factory(settings=self.settings(idleTimeout=10)))
        self.clock.advance(10)
        self.assertEqual(finalCodes(session.replies()), [421])
        self.assertTrue(session.closed)

    def test_refusedDownloadClosesFile(self) -> None:
        """
        A RETR whose data connection never comes (425 at the data timeout)
        closes the file it opened at once, not when the garbage collector
        gets to it (collection is off here to show the difference).
        """
        gc.disable()
        self.addCleanup(gc.enable)
        session = self.loggedIn(factory=self.factory(settings=self.settings(dataTimeout=5)))
        target = self.aliceHome.child("f")
        target.setContent(b"data")

        def openCount() -> int:
            count = 0
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") == target.path:
                        count += 1
                except OSError:
                    pass
            return count

        session.codes("PASV")
        self.assertEqual(session.codes("RETR f"), [150])
        self.assertEqual(openCount(), 1)
        self.clock.advance(5)
        self.assertEqual(finalCodes(session.replies()), [425])
        self.assertEqual(openCount(), 0)

    def test_idleTimeoutSparesPendingTransfer(self) -> None:
        """
        While a transfer waits for its data connection the idle timeout does
        not close the control connection; the transfer ends with 425 at the
        data timeout, and the idle timeout counts again from the transfer's
        end.
        """
        settings = self.settings(idleTimeout=10, dataTimeout=25)
        session = self.loggedIn(factory=self.factory(settings=settings))
        self.aliceHome.child("f").setContent(b"data")
        session.codes("PASV")
        self.assertEqual(session.codes("RETR f"), [150])
        self.clock.advance(10)
        self.clock.advance(10)
        self.assertEqual(session.replies(), [])
        self.assertFalse(session.closed)
        self.clock.advance(5)
        self.assertEqual(finalCodes(session.replies()), [425])
        self.assertFalse(session.closed)
        self.clock.advance(9)
        self.assertEqual(session.replies(), [])
        self.clock.advance(1)
        self.assertEqual(finalCodes(session.replies()), [421])
        self.assertTrue(session.closed)

    def test_noopWhilePendingTransfer(self) -> None:
        """
        The control channel keeps reading while a transfer waits for its data
        connection: NOOP gets 200 at once, another command (PWD) is refused
        at once with 503, and QUIT waits until the transfer has ended.
        """
        session = self.loggedIn(factory=self.factory(settings=self.settings(dataTimeout=5)))
        self.aliceHome.child("f").setContent(b"data")
        session.codes("PASV")
        self.assertEqual(session.codes("RETR f"), [150])
        self.assertEqual(session.codes("NOOP"), [200])
        self.assertEqual(session.codes("PWD"), [503])
        self.assertEqual(session.codes("QUIT"), [])
        self.clock.advance(5)
        self.assertEqual(finalCodes(session.replies()), [425, 221])

    def test_overlongLine(self) -> None:
        """
        A command line longer than C{MAX_LENGTH} gets 500 and the connection
        is closed; nothing after it runs.
        """
        session = self.connect()
        line = b"NOOP " + b"x" * FTPSProtocol.MAX_LENGTH + b"\r\nNOOP\r\n"
        self.assertEqual(session.codes(line), [500])
        self.assertTrue(session.closed)

    def test_overlongPartialLine(self) -> None:
        """
        More than C{MAX_LENGTH} bytes without a line end get 500 and the
        connection is closed.
        """
        session = self.connect()
        self.assertEqual(session.codes(b"x" * (FTPSProtocol.MAX_LENGTH + 10)), [500])
        self.assertTrue(session.closed)

    def test_longLineWithinLimit(self) -> None:
        """
        A line just under C{MAX_LENGTH} is an ordinary command (here: 502 for
        an unknown one).
        """
        session = self.loggedIn()
        line = b"XYZZY " + b"x" * (FTPSProtocol.MAX_LENGTH - 10) + b"\r\n"
        self.assertEqual(session.codes(line), [502])
        self.assertFalse(session.closed)


class ConnectionLimitTests(ServerTestCase):
    """
    The connection caps.
    """

    def test_maxClients(self) -> None:
        """
        With C{maxClients=1} a second connection gets 421 and is closed; once
        the first one ends, a new connection is admitted again.
        """
        factory = self.factory(limits=ConnectionLimits(maxClients=1))
        first = self.connect(factory)
        second = self.connect(factory, peer="127.0.0.2", greeting=False)
        lines = second.replies()
        self.assertEqual(finalCodes(lines), [421])
        self.assertTrue(second.closed)
        self.assertFalse(first.closed)
        first.transport.loseConnection()
        third = self.connect(factory, peer="127.0.0.3")
        self.assertFalse(third.closed)

    def test_maxPerAddress(self) -> None:
        """
        With C{maxPerAddress=1} a second connection from the same address
        gets 421 while one from another address is admitted.
        """
        factory = self.factory(limits=ConnectionLimits(maxPerAddress=1))
        self.connect(factory)
        second = self.connect(factory, greeting=False)
        self.assertEqual(finalCodes(second.replies()), [421])
        self.assertTrue(second.closed)
        self.connect(factory, peer="127.0.0.2")

    def test_refusedConnectionReleasesNothing(self) -> None:
        """
        A refused connection does not count: after it closes, the cap is still
        held by the admitted one, and releasing that one frees it.
        """
        limits = ConnectionLimits(maxClients=1)
        factory = self.factory(limits=limits)
        first = self.connect(factory)
        self.connect(factory, greeting=False)
        self.assertEqual(limits.total, 1)
        first.transport.loseConnection()
        self.assertEqual(limits.total, 0)

    def test_capsSharedWithImplicit(self) -> None:
        """
        The implicit factory shares the caps: with C{maxClients=1} an implicit
        connection after an explicit one is closed without any plaintext
        reply (TLS never started) and without starting TLS.
        """
        factory = self.factory(limits=ConnectionLimits(maxClients=1))
        self.connect(factory)
        implicit = self.connect(factory.withImplicitTLS(), greeting=False)
        self.assertEqual(implicit.replies(), [])
        self.assertTrue(implicit.closed)
        self.assertEqual(implicit.transport.startedTLS, [])


class ImplicitTLSTests(ServerTestCase):
    """
    A connection on an implicit-FTPS endpoint.
    """

    def settings(self, **kwargs: Any) -> ServerSettings:
        kwargs.setdefault("policy", SessionPolicy())
        return super().settings(**kwargs)

    def test_greetingAfterHandshake(self) -> None:
        """
        Nothing is written before the handshake (TLS starts at once with a
        L{ConnectionTLS}); C{220} comes after C{handshakeCompleted()}.
        """
        session = self.connect(self.factory().withImplicitTLS(), greeting=False)
        self.assertEqual(session.transport.value(), b"")
        self.assertEqual(len(session.transport.startedTLS), 1)
        self.assertIsInstance(session.transport.startedTLS[0], ConnectionTLS)
        session.protocol.handshakeCompleted()
        self.assertEqual(finalCodes(session.replies()), [220])

    def test_authRefused(self) -> None:
        """
        AUTH on an implicit connection gets 503 and does not restart TLS.
        """
        session = self.connect(self.factory().withImplicitTLS(), greeting=False)
        session.protocol.handshakeCompleted()
        session.replies()
        self.assertEqual(session.codes("AUTH TLS"), [503])
        self.assertEqual(len(session.transport.startedTLS), 1)

    def test_loginAndProtectedByDefault(self) -> None:
        """
        Under C{--tls-required all}, an implicit connection logs in without
        AUTH and its data is protected by default: RETR passes the policy
        (425 for the missing PASV, not 521).
        """
        session = self.connect(self.factory().withImplicitTLS(), greeting=False)
        session.protocol.handshakeCompleted()
        session.replies()
        self.assertEqual(session.codes("USER alice"), [331])
        self.assertEqual(session.codes("PASS secret"), [230])
        self.assertEqual(session.codes("RETR x"), [425])

    def test_sharesSettings(self) -> None:
        """
        C{withImplicitTLS} shares the settings, caps, bans, portal and TLS
        material of the explicit factory.
        """
        factory = self.factory()
        implicit = factory.withImplicitTLS()
        self.assertTrue(implicit.implicit)
        self.assertFalse(factory.implicit)
        for name in ("settings", "limits", "bans", "portal", "tls", "reactor"):
            self.assertIs(getattr(implicit, name), getattr(factory, name), name)
