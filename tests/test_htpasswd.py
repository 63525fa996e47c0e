"""
Tests for L{txftps._htpasswd} (bcrypt htpasswd files as a cred checker, C{--auth
htpasswd:PATH}) and L{txftps.passwd} (the command line that manages them).

Unit tests drive the parser and the checker directly, the checker through the
real reactor's thread pool. Integration tests use the real tools on both
sides: Apache's C{htpasswd} writes files that C{twistd ftps} reads, and reads
(C{htpasswd -v}) files that C{python -m txftps.passwd} writes; curl and ftplib
log in to the real C{twistd -n ftps}.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import secrets
import stat
import subprocess
import sys
from typing import Any

from twisted.cred import credentials, error, strcred
from twisted.internet import defer, reactor
from twisted.logger import Logger, LogLevel
from twisted.trial import unittest

import txftps._htpasswd
from tests import support
from txftps._htpasswd import HtpasswdChecker, HtpasswdError, parseHtpasswd

#: Lines written by Apache's C{htpasswd} 2.4 for the password C{pw}, with the
#: algorithms txftps refuses: MD5 (C{-m}), SHA-1 (C{-s}), crypt (C{-d}) and
#: plaintext (C{-p}).
WEAK_LINES = {
    "md5": b"dave:$apr1$ctMJCyeQ$ABaW0Bac.HrEhnLftnzZz/",
    "sha1": b"erin:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=",
    "crypt": b"fred:UCkT1NJkJ2TJ6",
    "plaintext": b"gina:pw",
}

#: The users of L{WEAK_LINES}, by algorithm.
WEAK_USERS = {"md5": "dave", "sha1": "erin", "crypt": "fred", "plaintext": "gina"}


def login(checker: HtpasswdChecker, user: str, password: str) -> defer.Deferred[Any]:
    return checker.requestAvatarId(credentials.UsernamePassword(user, password))


def accepts(checker: HtpasswdChecker, user: str, password: str) -> defer.Deferred[bool]:
    """
    Whether C{checker} logs C{user} in with C{password} (C{False} for
    L{error.UnauthorizedLogin}).
    """
    d = login(checker, user, password)
    d.addCallback(lambda avatarId: avatarId == user)
    d.addErrback(lambda failure: failure.trap(error.UnauthorizedLogin) and False)
    return d


class ParseHtpasswdTests(unittest.SynchronousTestCase):
    """
    L{parseHtpasswd} accepts bcrypt entries only.
    """

    def test_bcryptForms(self) -> None:
        """
        Lines with C{$2y$} (Apache), C{$2b$} and C{$2a$} bcrypt hashes are
        read, user name to hash.
        """
        lines = [
            support.bcryptLine("carol", "pw", prefix=b"$2y$"),
            support.bcryptLine("dave", "pw", prefix=b"$2b$"),
            support.bcryptLine("erin", "pw", prefix=b"$2a$"),
        ]
        users = parseHtpasswd(b"\n".join(lines) + b"\n")
        self.assertEqual(sorted(users), ["carol", "dave", "erin"])
        for line in lines:
            user, _, hashed = line.partition(b":")
            self.assertEqual(users[user.decode()], hashed)

    def test_commentsAndBlankLines(self) -> None:
        """
        Blank lines, whitespace-only lines and C{#} comments (even one that
        looks like a plaintext entry) are skipped; CRLF line ends are fine.
        """
        content = (
            b"# users of the FTPS server\r\n"
            b"\r\n"
            b"   \n"
            b"#gina:plaintext\n" + support.bcryptLine("carol", "pw") + b"\r\n\n"
        )
        self.assertEqual(list(parseHtpasswd(content)), ["carol"])

    def test_emptyFile(self) -> None:
        """
        An empty file has no users (and is not an error).
        """
        self.assertEqual(parseHtpasswd(b""), {})

    def test_weakHashesRefused(self) -> None:
        """
        Plaintext, crypt, Apache MD5 (C{$apr1$}) and C{{SHA}} entries are
        refused with a message naming the file, the line number and the user.
        """
        good = support.bcryptLine("carol", "pw")
        for algorithm, line in WEAK_LINES.items():
            content = b"# comment\n" + good + b"\n" + line + b"\n"
            with self.assertRaises(HtpasswdError, msg=algorithm) as caught:
                parseHtpasswd(content, "/etc/ftps.htpasswd")
            message = str(caught.exception)
            self.assertIn("/etc/ftps.htpasswd", message)
            self.assertIn("line 3", message, algorithm)
            self.assertIn(repr(WEAK_USERS[algorithm]), message, algorithm)
            self.assertNotIn("\n", message)

    def test_malformedLines(self) -> None:
        """
        A line without a colon, with an empty user or an empty hash is refused,
        naming the line.
        """
        for line in (b"carol", b":$2y$04$abc", b"carol:"):
            with self.assertRaises(HtpasswdError, msg=line) as caught:
                parseHtpasswd(b"\n" + line + b"\n", "f")
            self.assertIn("line 2", str(caught.exception))


class HtpasswdCheckerTests(unittest.TestCase):
    """
    L{HtpasswdChecker} checks passwords in the real reactor's thread pool and
    reads its file again when it changes.
    """

    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        with open(self.path, "wb") as f:
            f.write(
                support.bcryptLine("carol", "carol-pw")
                + b"\n"
                + support.bcryptLine("dave", "dave-pw", prefix=b"$2b$")
                + b"\n"
            )
        self.events: list[dict[str, Any]] = []
        self.patch(txftps._htpasswd, "_log", Logger(observer=self.events.append))
        self.checker = HtpasswdChecker(self.path, reactor)

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_level") == LogLevel.error]

    @defer.inlineCallbacks
    def test_rightPassword(self) -> Any:
        """
        The right password gives the user name as avatar ID, for C{str} and
        C{bytes} credentials alike.
        """
        self.assertEqual((yield login(self.checker, "carol", "carol-pw")), "carol")
        self.assertEqual((yield login(self.checker, "dave", "dave-pw")), "dave")
        avatarId = yield self.checker.requestAvatarId(
            credentials.UsernamePassword(b"carol", b"carol-pw")
        )
        self.assertEqual(avatarId, "carol")

    @defer.inlineCallbacks
    def test_wrongPassword(self) -> Any:
        """
        A wrong password, another user's password and an empty password are
        refused with L{error.UnauthorizedLogin}.
        """
        for user, password in (("carol", "wrong"), ("carol", "dave-pw"), ("carol", "")):
            with self.assertRaises(error.UnauthorizedLogin):
                yield login(self.checker, user, password)

    @defer.inlineCallbacks
    def test_unknownUser(self) -> Any:
        """
        A user not in the file is refused, even with another user's password.
        """
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "mallory", "carol-pw")

    @defer.inlineCallbacks
    def test_unknownUserCostsLikeKnown(self) -> Any:
        """
        An unknown user's password is still checked with bcrypt, against a
        hash of the same cost as the file's, so that timing does not tell
        which user names exist.
        """
        import bcrypt

        calls: list[tuple[bytes, bytes]] = []
        real = bcrypt.checkpw

        def checkpw(password: bytes, hashed: bytes) -> bool:
            calls.append((password, hashed))
            return real(password, hashed)

        self.patch(bcrypt, "checkpw", checkpw)
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "mallory", "x")
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "carol", "x")
        self.assertEqual(len(calls), 2)
        (_, unknownHash), (_, knownHash) = calls
        self.assertTrue(unknownHash.startswith(b"$2"), unknownHash)
        self.assertEqual(unknownHash[4:7], knownHash[4:7], "bcrypt cost differs")

    @defer.inlineCallbacks
    def test_reloadAddsUser(self) -> Any:
        """
        A user added to the file after the checker was made logs in, without
        a new checker.
        """
        with open(self.path, "rb") as f:
            content = f.read()
        support.rewriteFile(self.path, content + support.bcryptLine("erin", "erin-pw") + b"\n")
        self.assertEqual((yield login(self.checker, "erin", "erin-pw")), "erin")
        self.assertEqual((yield login(self.checker, "carol", "carol-pw")), "carol")
        self.assertEqual(self.checker.users(), ["carol", "dave", "erin"])

    @defer.inlineCallbacks
    def test_reloadRemovesUser(self) -> Any:
        """
        A user removed from the file stops logging in; a changed password
        replaces the old one.
        """
        support.rewriteFile(self.path, support.bcryptLine("dave", "new-pw") + b"\n")
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "carol", "carol-pw")
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "dave", "dave-pw")
        self.assertEqual((yield login(self.checker, "dave", "new-pw")), "dave")

    @defer.inlineCallbacks
    def test_badFileLaterKeepsUsers(self) -> Any:
        """
        A file that becomes unacceptable (an MD5 line) is not loaded: the
        previous users stay in force, the new file's users do not log in, and
        an error naming the line and the user is logged. Once the file is
        fixed, it is loaded.
        """
        good = support.bcryptLine("erin", "erin-pw")
        support.rewriteFile(self.path, good + b"\n" + WEAK_LINES["md5"] + b"\n")
        self.assertEqual((yield login(self.checker, "carol", "carol-pw")), "carol")
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "erin", "erin-pw")
        errors = self.errors()
        self.assertTrue(errors, self.events)
        message = errors[0]["log_format"].format(**errors[0])
        self.assertIn("line 2", message)
        self.assertIn("'dave'", message)
        self.assertIn(self.path, message)
        support.rewriteFile(self.path, good + b"\n")
        self.assertEqual((yield login(self.checker, "erin", "erin-pw")), "erin")
        with self.assertRaises(error.UnauthorizedLogin):
            yield login(self.checker, "carol", "carol-pw")

    @defer.inlineCallbacks
    def test_removedFileKeepsUsers(self) -> Any:
        """
        A file that disappears keeps the previous users in force and logs an
        error.
        """
        os.unlink(self.path)
        self.assertEqual((yield login(self.checker, "carol", "carol-pw")), "carol")
        self.assertTrue(self.errors(), self.events)

    def test_badFileAtStart(self) -> None:
        """
        A checker cannot be made from a missing file or from one with a weak
        hash: L{HtpasswdError} with the reason.
        """
        with self.assertRaises(HtpasswdError) as caught:
            HtpasswdChecker(self.path + ".missing", reactor)
        self.assertIn(self.path + ".missing", str(caught.exception))
        with open(self.path, "wb") as f:
            f.write(WEAK_LINES["sha1"] + b"\n")
        with self.assertRaises(HtpasswdError) as caught:
            HtpasswdChecker(self.path, reactor)
        self.assertIn("'erin'", str(caught.exception))

    def test_strcredPlugin(self) -> None:
        """
        C{htpasswd:PATH} is a strcred checker description (the dropin
        registers the factory); a bad file or no path is an
        L{strcred.InvalidAuthArgumentString}.
        """
        checker = strcred.makeChecker("htpasswd:" + self.path)
        self.assertIsInstance(checker, HtpasswdChecker)
        self.assertEqual(checker.users(), ["carol", "dave"])
        with self.assertRaises(strcred.InvalidAuthArgumentString):
            strcred.makeChecker("htpasswd:")
        with self.assertRaises(strcred.InvalidAuthArgumentString):
            strcred.makeChecker("htpasswd:" + self.path + ".missing")


class ApacheHtpasswdServerTests(unittest.TestCase):
    """
    Files written by Apache's C{htpasswd} work with C{twistd ftps --auth
    htpasswd:FILE}; files with weak hashes stop the start.
    """

    def setUp(self) -> None:
        self.htpasswd = support.requirePackagedProgram("htpasswd", "apache2-utils")
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "users.htpasswd")

    def test_bcryptFileWorks(self) -> None:
        """
        C{htpasswd -B -b -c FILE carol pw}: curl logs in as carol, lists her
        home and downloads a file byte for byte; a wrong password is refused.
        """
        subprocess.run(
            [self.htpasswd, "-B", "-b", "-c", self.path, "carol", "pw"],
            check=True,
            capture_output=True,
        )
        server = support.TwistdServer("--auth", f"htpasswd:{self.path}")
        os.makedirs(server.userHome("carol"))
        payload = os.urandom(70000)
        with open(os.path.join(server.userHome("carol"), "report.bin"), "wb") as f:
            f.write(payload)
        server.start()
        self.addCleanup(server.stop)
        listing = support.curl(server, "--list-only", user="carol:pw")
        self.assertEqual(listing.returncode, 0, listing.stderr + server.log().encode())
        self.assertEqual(listing.stdout.split(), [b"report.bin"])
        download = support.curl(server, path="/report.bin", user="carol:pw")
        self.assertEqual(download.returncode, 0, download.stderr)
        self.assertEqual(
            hashlib.sha256(download.stdout).hexdigest(), hashlib.sha256(payload).hexdigest()
        )
        wrong = support.curl(server, "--list-only", user="carol:nope")
        self.assertNotEqual(wrong.returncode, 0)
        self.assertEqual(wrong.stdout, b"")

    def test_nonASCIIPassword(self) -> None:
        """
        A UTF-8 password with non-ASCII characters and spaces, set with
        C{htpasswd -B}, logs in when the client sends the same UTF-8 bytes.
        """
        password = "pässwörd mit ✓ "
        subprocess.run(
            [self.htpasswd, "-B", "-C", "5", "-b", "-c", self.path, "carol", password],
            check=True,
            capture_output=True,
        )
        server = support.TwistdServer("--auth", f"htpasswd:{self.path}")
        server.start()
        self.addCleanup(server.stop)
        control = support.ControlConnection(server)
        self.addCleanup(control.close)
        control.auth()
        control.expect("USER carol", 331)
        control.expect(f"PASS {password}", 230)

    def test_md5FileRefusedAtStart(self) -> None:
        """
        A file with an MD5 entry (C{htpasswd -b -m}) stops the start with one
        clear line naming the line and user, no traceback.
        """
        subprocess.run(
            [self.htpasswd, "-B", "-b", "-c", self.path, "carol", "pw"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [self.htpasswd, "-b", "-m", self.path, "mallory", "pw"],
            check=True,
            capture_output=True,
        )
        line = support.refusedStart("--auth", f"htpasswd:{self.path}")
        self.assertIn(self.path, line)
        self.assertIn("line 2", line)
        self.assertIn("'mallory'", line)
        self.assertIn("bcrypt", line)


def runPasswd(
    *args: str | bytes, password: str | bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run C{python -m txftps.passwd ARGS}, with C{password} (and a newline) on
    standard input when given. Arguments and the password may be C{bytes}
    (to send bytes that are not UTF-8); the output is decoded as UTF-8.
    """
    env = dict(os.environ, PYTHONPATH=support.PROJECT_ROOT)
    if isinstance(password, str):
        password = password.encode("utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "txftps.passwd", *args],
        input=None if password is None else password + b"\n",
        capture_output=True,
        env=env,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


class PasswdCommandTests(unittest.TestCase):
    """
    C{python -m txftps.passwd} manages a bcrypt file that Apache's
    C{htpasswd -v} verifies and that a running server reloads.
    """

    def setUp(self) -> None:
        self.htpasswd = support.requirePackagedProgram("htpasswd", "apache2-utils")
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "users.htpasswd")

    def add(self, user: str, password: str) -> None:
        result = runPasswd("add", "--password-stdin", self.path, user, password=password)
        self.assertEqual(result.returncode, 0, result.stderr)

    def verified(self, user: str, password: str) -> bool:
        """
        Whether Apache's C{htpasswd -v} accepts C{password} for C{user}.
        """
        result = subprocess.run(
            [self.htpasswd, "-v", "-b", self.path, user, password], capture_output=True
        )
        return result.returncode == 0

    def content(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def assertRefused(self, result: subprocess.CompletedProcess[str], before: bytes | None) -> str:
        """
        The command failed with a message on standard error, and the file is
        as it was (C{None}: still absent).
        """
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertTrue(result.stderr.strip())
        self.assertNotIn("Traceback", result.stderr)
        if before is None:
            self.assertFalse(os.path.exists(self.path))
        else:
            self.assertEqual(self.content(), before)
        return result.stderr

    def test_addVerifiedByApache(self) -> None:
        """
        C{add --password-stdin} creates the file with mode 0600 and a C{$2y$}
        bcrypt line that Apache's C{htpasswd -v} accepts for the right
        password only.
        """
        self.add("carol", "s3cret pw")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertTrue(self.content().startswith(b"carol:$2y$"), self.content())
        self.assertTrue(self.verified("carol", "s3cret pw"))
        self.assertFalse(self.verified("carol", "s3cret"))

    def test_change(self) -> None:
        """
        C{change} replaces the password: the old one no longer verifies, the
        new one does, other users are untouched, mode stays 0600.
        """
        self.add("carol", "old-pw")
        self.add("dave", "dave-pw")
        result = runPasswd("change", "--password-stdin", self.path, "carol", password="new-pw")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertFalse(self.verified("carol", "old-pw"))
        self.assertTrue(self.verified("carol", "new-pw"))
        self.assertTrue(self.verified("dave", "dave-pw"))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_removeAndList(self) -> None:
        """
        C{list} prints the users one a line, in file order; C{remove} takes
        one out (Apache no longer finds it), leaving the others.
        """
        for user in ("carol", "dave", "erin"):
            self.add(user, user + "-pw")
        listed = runPasswd("list", self.path)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(listed.stdout.splitlines(), ["carol", "dave", "erin"])
        removed = runPasswd("remove", self.path, "dave")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(runPasswd("list", self.path).stdout.splitlines(), ["carol", "erin"])
        self.assertFalse(self.verified("dave", "dave-pw"))
        self.assertTrue(self.verified("erin", "erin-pw"))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_readsApacheFile(self) -> None:
        """
        A file made by Apache's C{htpasswd -B} is listed and extended; its
        entries keep working.
        """
        subprocess.run(
            [self.htpasswd, "-B", "-C", "5", "-b", "-c", self.path, "carol", "pw"],
            check=True,
            capture_output=True,
        )
        self.add("dave", "dave-pw")
        self.assertEqual(runPasswd("list", self.path).stdout.splitlines(), ["carol", "dave"])
        self.assertTrue(self.verified("carol", "pw"))
        self.assertTrue(self.verified("dave", "dave-pw"))

    def test_addExistingFails(self) -> None:
        """
        C{add} of a user already in the file fails and changes nothing.
        """
        self.add("carol", "pw")
        before = self.content()
        result = runPasswd("add", "--password-stdin", self.path, "carol", password="other")
        self.assertIn("carol", self.assertRefused(result, before))
        self.assertTrue(self.verified("carol", "pw"))

    def test_missingUserFails(self) -> None:
        """
        C{remove} and C{change} of a user not in the file fail and change
        nothing.
        """
        self.add("carol", "pw")
        before = self.content()
        self.assertRefused(runPasswd("remove", self.path, "dave"), before)
        self.assertRefused(
            runPasswd("change", "--password-stdin", self.path, "dave", password="x"), before
        )

    def test_emptyPasswordRefused(self) -> None:
        """
        An empty password is refused: no file is created, an existing one is
        not changed.
        """
        self.assertRefused(
            runPasswd("add", "--password-stdin", self.path, "carol", password=""), None
        )
        self.add("carol", "pw")
        before = self.content()
        self.assertRefused(
            runPasswd("change", "--password-stdin", self.path, "carol", password=""), before
        )

    def test_badUserNamesRefused(self) -> None:
        """
        User names that are empty or contain C{:}, C{/}, C{\\} or a newline
        are refused; no file is created.
        """
        for name in ("", "car:ol", "car/ol", "car\\ol", "car\nol"):
            result = runPasswd("add", "--password-stdin", self.path, name, password="pw")
            self.assertRefused(result, None)

    def test_namesTheFileCannotHoldRefused(self) -> None:
        """
        A user name the file format cannot hold as such is refused, no file
        created: one starting with C{#} would be a comment line (the user
        could never log in, and C{add} would accept it again and again), and
        leading or trailing white space is stripped when the file is read (so
        C{remove} would no longer find the user).
        """
        for name in ("#eve", " eve", "eve "):
            result = runPasswd("add", "--password-stdin", self.path, name, password="pw")
            self.assertRefused(result, None)

    def test_nonUTF8NameRefused(self) -> None:
        """
        A user name that is not UTF-8 (the server refuses a file holding one)
        is refused with a message, not a traceback, and no file is created.
        """
        result = runPasswd("add", "--password-stdin", self.path, b"ev\xffe", password="pw")
        self.assertRefused(result, None)

    def test_nonUTF8Password(self) -> None:
        """
        A password that is not UTF-8 on standard input either is refused with
        a message (no traceback, no file), or is stored so that Apache's
        C{htpasswd -v} accepts exactly those bytes.
        """
        password = b"p\xe4ssw\xf6rd"
        result = runPasswd("add", "--password-stdin", self.path, "eve", password=password)
        self.assertNotIn("Traceback", result.stderr)
        if result.returncode != 0:
            self.assertRefused(result, None)
        else:
            verify = subprocess.run(
                [self.htpasswd, "-v", "-b", self.path, "eve", password], capture_output=True
            )
            self.assertEqual(verify.returncode, 0, verify.stderr)

    @defer.inlineCallbacks
    def test_duplicateUserLines(self) -> Any:
        """
        A hand-edited file with two lines for carol: either such a file is
        refused outright (by C{txftps.passwd change}, the file untouched, and
        by L{HtpasswdChecker}), or C{change} sets the password the server
        then accepts, and neither old password works any more.
        """
        before = (
            support.bcryptLine("carol", "first-pw")
            + b"\n"
            + support.bcryptLine("carol", "second-pw")
            + b"\n"
        )
        with open(self.path, "wb") as f:
            f.write(before)
        result = runPasswd("change", "--password-stdin", self.path, "carol", password="new-pw")
        if result.returncode != 0:
            self.assertRefused(result, before)
            self.assertRaises(HtpasswdError, HtpasswdChecker, self.path, reactor)
            return
        checker = HtpasswdChecker(self.path, reactor)
        results = {}
        for password in ("new-pw", "first-pw", "second-pw"):
            results[password] = yield accepts(checker, "carol", password)
        self.assertEqual(results, {"new-pw": True, "first-pw": False, "second-pw": False})

    def test_weakFileRefused(self) -> None:
        """
        A file holding a weak hash is not touched: C{add} fails naming the
        line.
        """
        with open(self.path, "wb") as f:
            f.write(WEAK_LINES["md5"] + b"\n")
        result = runPasswd("add", "--password-stdin", self.path, "carol", password="pw")
        self.assertIn("line 1", self.assertRefused(result, WEAK_LINES["md5"] + b"\n"))

    def test_serverReloadsChangedFile(self) -> None:
        """
        A running server sees users added and removed with C{txftps.passwd}:
        a user added after the start logs in, a removed user no longer does.
        """
        self.add("carol", "carol-pw")
        server = support.TwistdServer("--auth", f"htpasswd:{self.path}")
        server.start()
        self.addCleanup(server.stop)
        client = support.ftplibClient(server, "carol", "carol-pw")
        client.quit()
        self.add("dave", "dave-pw")
        self.assertEqual(runPasswd("remove", self.path, "carol").returncode, 0)
        client = support.ftplibClient(server, "dave", "dave-pw")
        self.assertEqual(client.pwd(), "/")
        client.quit()
        with self.assertRaises(ftplib.error_perm) as caught:
            support.ftplibClient(server, "carol", "carol-pw")
        self.assertTrue(str(caught.exception).startswith("530"), caught.exception)
        self.assertIn("reloaded", server.log())


#: One user name for every checker kind (a real system user for C{unix}).
CHECKER_USER = "txftps" + secrets.token_hex(3)
CHECKER_PASSWORD = "Checker-pw-" + secrets.token_hex(4)


class SameUserEveryCheckerTests(unittest.TestCase):
    """
    The same user name logs in through C{memory:}, C{file:}, C{unix} and
    C{htpasswd:} checkers, into C{HOME/USERNAME} each time.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def assertLogsInToHome(self, *args: str) -> None:
        """
        With a server started with C{args}, the user logs in with ftplib, its
        working directory is C{/}, and a file it uploads lands in
        C{HOME/USERNAME} with the bytes sent; a wrong password is refused.
        """
        server = support.TwistdServer(*args)
        server.start()
        self.addCleanup(server.stop)
        client = support.ftplibClient(server, CHECKER_USER, CHECKER_PASSWORD)
        try:
            self.assertEqual(client.pwd(), "/")
            payload = os.urandom(5000)
            client.storbinary("STOR proof.bin", io.BytesIO(payload))
        finally:
            client.quit()
        stored = os.path.join(server.userHome(CHECKER_USER), "proof.bin")
        self.assertTrue(os.path.exists(stored), server.log()[-3000:])
        with open(stored, "rb") as f:
            self.assertEqual(f.read(), payload)
        self.assertIn(f"{CHECKER_USER} logged in", server.log())
        with self.assertRaises(ftplib.error_perm):
            support.ftplibClient(server, CHECKER_USER, CHECKER_PASSWORD + "x")

    def test_memory(self) -> None:
        """
        C{--auth memory:USER:PASSWORD}.
        """
        self.assertLogsInToHome("--auth", f"memory:{CHECKER_USER}:{CHECKER_PASSWORD}")

    def test_file(self) -> None:
        """
        C{--auth file:PATH} with a C{user:password} line.
        """
        path = os.path.join(self.directory, "passwords")
        with open(path, "w") as f:
            f.write(f"{CHECKER_USER}:{CHECKER_PASSWORD}\n")
        self.assertLogsInToHome("--auth", f"file:{path}")

    def test_htpasswd(self) -> None:
        """
        C{--auth htpasswd:PATH} with a bcrypt line.
        """
        path = os.path.join(self.directory, "users.htpasswd")
        with open(path, "wb") as f:
            f.write(support.bcryptLine(CHECKER_USER, CHECKER_PASSWORD) + b"\n")
        self.assertLogsInToHome("--auth", f"htpasswd:{path}")

    def test_unix(self) -> None:
        """
        C{--auth unix} with a real system user (made with C{useradd} and
        C{chpasswd}, removed with C{userdel -r} afterwards).
        """
        useradd = support.requirePackagedProgram("useradd", "passwd")
        chpasswd = support.requirePackagedProgram("chpasswd", "passwd")
        userdel = support.requirePackagedProgram("userdel", "passwd")
        if os.geteuid() != 0:
            self.fail("the unix checker test creates a system user and needs root")
        unixHome = os.path.join(self.directory, "unix-home")
        made = subprocess.run(
            [useradd, "-m", "-d", unixHome, "-s", "/usr/sbin/nologin", CHECKER_USER],
            capture_output=True,
        )
        self.assertEqual(made.returncode, 0, made.stderr)
        self.addCleanup(subprocess.run, [userdel, "-r", CHECKER_USER], capture_output=True)
        result = subprocess.run(
            [chpasswd],
            input=f"{CHECKER_USER}:{CHECKER_PASSWORD}\n".encode(),
            capture_output=True,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertLogsInToHome("--auth", "unix")
