"""
Tests for the C{txftps} command, run as the installed console script
against real servers: every subcommand and option, and every error as one
C{txftps: error:} line with a non-zero status.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import subprocess
import termios
import time

from twisted.trial.unittest import TestCase

from tests import clientsupport, support
from tests.clientsupport import errorLine, runTxftps


class CLITestCase(TestCase):
    """
    A real C{twistd ftps} with anonymous access to L{root} and a user
    C{alice} (password C{secret}) whose home is L{home}.
    """

    serverArgs: tuple[str, ...] = ()
    onlyFor: str | None = None

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.directory = directory
        ca = support.ThrowawayCA(directory)
        if self.onlyFor is not None:
            ca.certFile, ca.keyFile = clientsupport.certificateOnlyFor(directory, ca, self.onlyFor)
        self.server = support.TwistdServer(
            *self.serverArgs, ca=ca, users={"alice": "secret"}
        ).start()
        self.addCleanup(self.server.stop)
        self.ca = self.server.ca.caFile
        self.root = self.server.root
        self.home = self.server.userHome("alice")
        os.makedirs(self.home, exist_ok=True)
        self.payload = os.urandom(200_000)
        support.writeFile(os.path.join(self.root, "file.bin"), self.payload)
        self.work = os.path.join(directory, "work")
        os.makedirs(self.work)

    def url(self, path: str = "", user: str = "", host: str = "127.0.0.1") -> str:
        login = f"{user}@" if user else ""
        return f"ftp://{login}{host}:{self.server.explicitPort}/{path}"

    def run_(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        kwargs.setdefault("cwd", self.work)
        return runTxftps(*args, **kwargs)  # type: ignore[arg-type]

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        result = self.run_(*args, **kwargs)
        if result.returncode != 0:
            self.fail(
                f"txftps {' '.join(args)}: status {result.returncode}\n"
                f"{result.stderr.decode('utf-8', 'replace')}\n{self.server.log()[-3000:]}"
            )
        return result


class TransferTests(CLITestCase):
    """
    C{get}, C{put}, C{ls}, C{mirror}, C{rm}, C{mkdir}, C{mv}.
    """

    def test_installedScript(self) -> None:
        """
        The console script is installed next to this Python and runs
        L{txftps._cli.main}: C{--help} exits 0 and names the subcommands.
        """
        script = clientsupport.txftpsScript()
        self.assertTrue(os.access(script, os.X_OK))
        result = self.ok("--help")
        for name in (b"ls", b"get", b"put", b"mirror", b"rm", b"mkdir", b"mv", b"fxp"):
            self.assertIn(name, result.stdout)

    def test_getWithoutLocal(self) -> None:
        """
        C{get URL} writes the remote name in the current directory; nothing
        on stdout, and no progress bar on a stderr that is a pipe.
        """
        result = self.ok("get", "--ca", self.ca, self.url("file.bin"))
        self.assertEqual(support.readFile(os.path.join(self.work, "file.bin")), self.payload)
        self.assertEqual(result.stdout, b"")
        self.assertEqual(result.stderr, b"")
        self.assertEqual(os.listdir(self.work), ["file.bin"])

    def test_getToStdout(self) -> None:
        """
        C{get URL -} writes the file to standard output, and nothing else.
        """
        result = self.ok("--ca", self.ca, "get", self.url("file.bin"), "-")
        self.assertEqual(result.stdout, self.payload)
        self.assertEqual(os.listdir(self.work), [])

    def test_getLocal(self) -> None:
        """
        C{get URL LOCAL} writes LOCAL; a LOCAL that is a directory gets the
        remote name inside it.
        """
        self.ok("get", self.url("file.bin"), "named.bin", "--ca", self.ca)
        self.assertEqual(support.readFile(os.path.join(self.work, "named.bin")), self.payload)
        os.mkdir(os.path.join(self.work, "into"))
        self.ok("get", "--ca", self.ca, self.url("file.bin"), "into")
        self.assertEqual(
            support.readFile(os.path.join(self.work, "into", "file.bin")), self.payload
        )

    def test_implicit(self) -> None:
        """
        C{ftps://} URLs are implicit FTPS.
        """
        url = f"ftps://localhost:{self.server.implicitPort}/file.bin"
        result = self.ok("get", "--ca", self.ca, url, "-")
        self.assertEqual(result.stdout, self.payload)

    def test_put(self) -> None:
        """
        C{put LOCAL URL/} stores under the local name; C{put LOCAL URL/name}
        under that name. The password comes from the URL.
        """
        local = support.writeFile(os.path.join(self.work, "up.txt"), b"uploaded bytes")
        self.ok("put", "--ca", self.ca, local, self.url("", "alice:secret"))
        self.ok("put", "--ca", self.ca, local, self.url("other.txt", "alice:secret"))
        self.assertEqual(support.readFile(os.path.join(self.home, "up.txt")), b"uploaded bytes")
        self.assertEqual(support.readFile(os.path.join(self.home, "other.txt")), b"uploaded bytes")

    def test_ls(self) -> None:
        """
        C{ls URL} prints one line per entry, sorted by name: kind, size,
        time, name (a directory with a slash).
        """
        os.mkdir(os.path.join(self.root, "sub dir"))
        result = self.ok("ls", "--ca", self.ca, self.url())
        lines = result.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith("- ") and lines[0].endswith(" file.bin"), lines)
        self.assertTrue(lines[1].startswith("d ") and lines[1].endswith(" sub dir/"), lines)
        self.assertIn(f" {len(self.payload)} ", lines[0])

    def test_mirror(self) -> None:
        """
        C{mirror URL LOCALDIR} copies the whole remote tree; the local tree
        is then byte for byte the server's.
        """
        support.writeFile(os.path.join(self.root, "a", "b", "deep.txt"), b"deep")
        support.writeFile(os.path.join(self.root, "a", "top.bin"), os.urandom(70_000))
        os.makedirs(os.path.join(self.root, "empty"))
        self.ok("mirror", "--ca", self.ca, self.url(), "copy")
        self.assertEqual(
            support.readTree(os.path.join(self.work, "copy")), support.readTree(self.root)
        )

    def test_mirrorReverse(self) -> None:
        """
        C{mirror --reverse} uploads a local tree (into a remote directory it
        creates); the server's tree is then byte for byte the local one.
        """
        tree = os.path.join(self.work, "tree")
        support.writeFile(os.path.join(tree, "x", "y", "z.txt"), b"zzz")
        support.writeFile(os.path.join(tree, "x", "big.bin"), os.urandom(100_000))
        support.writeFile(os.path.join(tree, "one.txt"), b"1")
        os.makedirs(os.path.join(tree, "void"))
        self.ok("mirror", "--reverse", "--ca", self.ca, self.url("backup", "alice:secret"), tree)
        self.assertEqual(
            support.readTree(os.path.join(self.home, "backup")), support.readTree(tree)
        )

    def test_rmMkdirMv(self) -> None:
        """
        C{mkdir} makes a directory, C{mv} renames relative to the URL's
        directory or to an absolute path (as RNTO), C{rm} deletes a file and
        an empty directory.
        """
        auth = "alice:secret"
        self.ok("mkdir", "--ca", self.ca, self.url("d", auth))
        self.assertTrue(os.path.isdir(os.path.join(self.home, "d")))
        support.writeFile(os.path.join(self.home, "d", "a.txt"), b"a")
        self.ok("mv", "--ca", self.ca, self.url("d/a.txt", auth), "b.txt")
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "d"))), ["b.txt"])
        self.ok("mv", "--ca", self.ca, self.url("d/b.txt", auth), "/c.txt")
        self.assertEqual(support.readFile(os.path.join(self.home, "c.txt")), b"a")
        self.ok("rm", "--ca", self.ca, self.url("c.txt", auth))
        self.ok("rm", "--ca", self.ca, self.url("d", auth))
        self.assertEqual(os.listdir(self.home), [])

    def test_active(self) -> None:
        """
        C{--active} transfers with PORT, never EPSV.
        """
        watch = support.LogWatch(self.server)
        result = self.ok("get", "--active", "--ca", self.ca, self.url("file.bin"), "-")
        self.assertEqual(result.stdout, self.payload)
        self.assertIn("<- PORT", watch.since())
        self.assertNotIn("<- EPSV", watch.since())

    def test_continue(self) -> None:
        """
        C{-c} resumes a download from the partial local file (REST) and an
        upload from the partial remote file; both end whole.
        """
        local = support.writeFile(os.path.join(self.work, "file.bin"), self.payload[:50_000])
        watch = support.LogWatch(self.server)
        self.ok("get", "-c", "--ca", self.ca, self.url("file.bin"))
        self.assertEqual(support.readFile(local), self.payload)
        self.assertIn("<- REST", watch.since())
        support.writeFile(os.path.join(self.home, "file.bin"), self.payload[:1000])
        watch.mark()
        self.ok("put", "--continue", "--ca", self.ca, local, self.url("", "alice:secret"))
        self.assertEqual(support.readFile(os.path.join(self.home, "file.bin")), self.payload)
        self.assertIn("<- REST", watch.since())


class CredentialTests(CLITestCase):
    """
    Where the password comes from: the URL, C{--user}, C{TXFTPS_PASSWORD},
    C{~/.netrc}, a prompt on a terminal.
    """

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TXFTPS_PASSWORD", None)
        env["HOME"] = self.work
        env.update(extra)
        return env

    def put(self, url: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
        local = support.writeFile(os.path.join(self.directory, "creds.txt"), b"by alice")
        return self.run_("put", "--ca", self.ca, *args, local, url, env=env)

    def test_userOption(self) -> None:
        """
        C{--user alice:secret} logs in as alice.
        """
        result = self.put(self.url(""), "--user", "alice:secret", env=self.env())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.home, "creds.txt")))

    def test_environment(self) -> None:
        """
        C{TXFTPS_PASSWORD} gives the password of the URL's user.
        """
        result = self.put(self.url("", "alice"), env=self.env(TXFTPS_PASSWORD="secret"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.home, "creds.txt")))

    def test_netrc(self) -> None:
        """
        C{~/.netrc} gives login and password for the host.
        """
        netrc = os.path.join(self.work, ".netrc")
        with open(netrc, "w") as f:
            f.write("machine 127.0.0.1 login alice password secret\n")
        os.chmod(netrc, 0o600)
        result = self.put(self.url(""), env=self.env())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.home, "creds.txt")))

    def test_noPassword(self) -> None:
        """
        A user with no password anywhere and no terminal: one error line.
        """
        line = errorLine(self.put(self.url("", "alice"), env=self.env()))
        self.assertIn("no password for alice", line)

    def test_wrongPassword(self) -> None:
        """
        A refused login is reported with the server's reply.
        """
        line = errorLine(self.put(self.url("", "alice:wrong"), env=self.env()))
        self.assertTrue(line.startswith("txftps: error: 530"), line)

    def test_promptAndProgressOnTerminal(self) -> None:
        """
        On a terminal, the password is prompted for (and read from the
        terminal), and a progress bar (bytes, rate) is drawn on stderr;
        stdout (a file here) gets nothing of it.
        """
        support.writeFile(os.path.join(self.home, "file.bin"), self.payload)
        master, slave = os.openpty()
        stdout = open(os.path.join(self.directory, "stdout"), "wb")

        def controllingTerminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = self.env()
        env.setdefault("PYTHONPATH", support.PROJECT_ROOT)
        process = subprocess.Popen(
            [clientsupport.txftpsScript(), "get", "--ca", self.ca, self.url("file.bin", "alice")],
            stdin=slave,
            stdout=stdout,
            stderr=slave,
            cwd=self.work,
            env=env,
            preexec_fn=controllingTerminal,
        )
        os.close(slave)
        stdout.close()
        output = b""
        answered = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 1)
            if not readable:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"Password for alice@127.0.0.1:" in output:
                os.write(master, b"secret\n")
                answered = True
        os.close(master)
        self.assertEqual(process.wait(30), 0, output)
        self.assertTrue(answered, output)
        self.assertEqual(support.readFile(os.path.join(self.work, "file.bin")), self.payload)
        self.assertIn(b"100%", output, output)
        self.assertIn(b"B/s", output)
        self.assertEqual(support.readFile(os.path.join(self.directory, "stdout")), b"")


class ErrorTests(CLITestCase):
    """
    Each failure is one C{txftps: error:} line naming the cause, with a
    non-zero status.
    """

    onlyFor = "localhost"

    def test_untrusted(self) -> None:
        """
        Without C{--ca}, the throwaway CA is not trusted.
        """
        line = errorLine(self.run_("get", self.url("file.bin", host="localhost")))
        self.assertEqual(
            line, "txftps: error: certificate not trusted (unable to get local issuer certificate)"
        )

    def test_hostnameMismatch(self) -> None:
        """
        A certificate for C{localhost} does not do for C{127.0.0.1}.
        """
        line = errorLine(self.run_("get", "--ca", self.ca, self.url("file.bin")))
        self.assertEqual(
            line, "txftps: error: host name mismatch: the certificate is not valid for 127.0.0.1"
        )

    def test_refused(self) -> None:
        """
        Nothing listening: connection refused, with host and port.
        """
        port = support.freePortRange(1)
        line = errorLine(self.run_("ls", "--ca", self.ca, f"ftp://127.0.0.1:{port}/"))
        self.assertEqual(line, f"txftps: error: connection refused: 127.0.0.1 port {port}")

    def test_connectTimeout(self) -> None:
        """
        A server whose listen queue is full never completes the TCP
        handshake: C{--timeout 2} ends the wait with a "connection timed
        out" line naming host and port.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            # Fill the accept queue: the kernel then drops further SYNs.
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
        line = errorLine(
            self.run_("ls", "--ca", self.ca, "--timeout", "2", f"ftp://127.0.0.1:{port}/")
        )
        self.assertEqual(line, f"txftps: error: connection timed out: 127.0.0.1 port {port}")

    def test_missingFile(self) -> None:
        """
        A 550 is reported with its code and text, and leaves no local file.
        """
        result = self.run_("get", "--ca", self.ca, self.url("nope.bin", host="localhost"))
        line = errorLine(result)
        self.assertTrue(line.startswith("txftps: error: 550 "), line)
        self.assertEqual(os.listdir(self.work), [])

    def test_pin(self) -> None:
        """
        A matching C{--pin} alone is enough (no CA, and the certificate does
        not name 127.0.0.1); a wrong one is refused; with C{--ca} both must
        hold.
        """
        pin = clientsupport.fingerprintOf(self.server.ca.certFile)
        result = self.ok("get", "--pin", pin, self.url("file.bin"), "-")
        self.assertEqual(result.stdout, self.payload)
        wrong = ("00" if not pin.startswith("00") else "11") + pin[2:]
        line = errorLine(self.run_("get", "--pin", wrong, self.url("file.bin"), "-"))
        self.assertEqual(
            line, "txftps: error: certificate does not match the pinned SHA-256 fingerprint"
        )
        line = errorLine(self.run_("get", "--pin", pin, "--ca", self.ca, self.url("file.bin")))
        self.assertIn("host name mismatch", line)
        otherDirectory = os.path.join(self.directory, "other")
        os.makedirs(otherDirectory)
        other = support.ThrowawayCA(otherDirectory)
        line = errorLine(
            self.run_(
                "get", "--pin", pin, "--ca", other.caFile, self.url("file.bin", host="localhost")
            )
        )
        self.assertIn("certificate not trusted", line)
        result = self.ok(
            "get", "--pin", pin, "--ca", self.ca, self.url("file.bin", host="localhost"), "-"
        )
        self.assertEqual(result.stdout, self.payload)

    def test_insecure(self) -> None:
        """
        C{--insecure} accepts the certificate and warns on stderr.
        """
        result = self.ok("get", "--insecure", self.url("file.bin"), "-")
        self.assertEqual(result.stdout, self.payload)
        self.assertTrue(
            result.stderr.startswith(b"txftps: warning: insecure: the certificate of 127.0.0.1"),
            result.stderr,
        )

    def test_timeout(self) -> None:
        """
        C{--timeout}: a server that accepts and never answers fails the
        command after that many seconds, naming what it waited for.
        """
        import socket

        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        line = errorLine(
            self.run_("ls", "--timeout", "1", "--insecure", f"ftp://127.0.0.1:{port}/")
        )
        self.assertEqual(line, "txftps: error: no reply to (greeting) within 1 seconds")

    def test_keyWithoutCert(self) -> None:
        """
        C{--key} without C{--cert} is a usage error.
        """
        result = self.run_("ls", "--key", self.ca, self.url())
        self.assertEqual(result.returncode, 2)
        self.assertEqual(errorLine(result), "txftps: error: --key needs --cert")

    def test_usage(self) -> None:
        """
        A bad command line: one error line, status 2.
        """
        result = self.run_("get", "--no-such-option", self.url("file.bin"))
        self.assertEqual(result.returncode, 2)
        self.assertIn("unrecognized arguments", errorLine(result))
        self.assertIn("not an ftp://", errorLine(self.run_("ls", "http://example.org/")))

    def test_truncatedDownload(self) -> None:
        """
        A download whose data connection ends without close_notify fails,
        and nothing lies under the final local name.
        """
        server = clientsupport.TruncatingServer(self.server.ca)
        self.addCleanup(server.stop)
        url = f"ftps://127.0.0.1:{server.port}/data.bin"
        line = errorLine(self.run_("get", "--ca", self.ca, "--insecure", url))
        self.assertIn("without a TLS close_notify", line)
        self.assertFalse(os.path.exists(os.path.join(self.work, "data.bin")))

    def test_fxpUnsupported(self) -> None:
        """
        Neither server (two C{twistd ftps} without FXP support) lists SSCN
        or CPSV: C{fxp} refuses instead of copying in clear.
        """
        source = self.url("file.bin", host="localhost")
        destination = self.url("copy.bin", "alice:secret", host="localhost")
        line = errorLine(self.run_("fxp", "--ca", self.ca, source, destination))
        self.assertIn("neither server supports SSCN or CPSV", line)
        self.assertFalse(os.path.exists(os.path.join(self.home, "copy.bin")))


class ClientCertificateCLITests(TestCase):
    """
    C{--cert} and C{--key} present a client certificate.
    """

    def test_clientCertificate(self) -> None:
        """
        A server requiring client certificates accepts C{--cert/--key} from
        its client CA and refuses a client without them.
        """
        pki, server = support.certificateRequiringServer(self, "f.txt", b"certified")
        url = f"ftp://127.0.0.1:{server.explicitPort}/f.txt"
        result = runTxftps(
            "get",
            "--ca",
            pki.caFile,
            "--cert",
            pki.alice.certFile,
            "--key",
            pki.alice.keyFile,
            url,
            "-",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, b"certified")
        errorLine(runTxftps("get", "--ca", pki.caFile, url, "-", "--timeout", "10"))


class OtherServersCLITests(TestCase):
    """
    The command against vsftpd (session reuse required) and pyftpdlib.
    """

    def test_vsftpd(self) -> None:
        """
        C{put} then C{get} through vsftpd with C{require_ssl_reuse=YES}.
        """
        server = clientsupport.VsftpdServer().start()
        self.addCleanup(server.stop)
        payload = os.urandom(100_000)
        local = support.writeFile(os.path.join(server.directory, "in.bin"), payload)
        url = f"ftp://{server.user}@127.0.0.1:{server.port}/"
        env = dict(os.environ, TXFTPS_PASSWORD=server.password)
        result = runTxftps("put", "--ca", server.ca.caFile, local, url, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        result = runTxftps("get", "--ca", server.ca.caFile, url + "in.bin", "-", env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, payload)

    def test_pyftpdlibFxp(self) -> None:
        """
        pyftpdlib lists neither SSCN nor CPSV either: C{fxp} between it and
        C{twistd ftps} is refused with one error line.
        """
        pyftpdlib = clientsupport.PyftpdlibServer().start()
        self.addCleanup(pyftpdlib.stop)
        support.writeFile(os.path.join(pyftpdlib.home, "f.bin"), b"fxp")
        twistd = support.TwistdServer(ca=pyftpdlib.ca, users={"alice": "secret"}).start()
        self.addCleanup(twistd.stop)
        result = runTxftps(
            "fxp",
            "--ca",
            pyftpdlib.ca.caFile,
            f"ftp://alice:secret@127.0.0.1:{pyftpdlib.port}/f.bin",
            f"ftp://alice:secret@127.0.0.1:{twistd.explicitPort}/",
        )
        self.assertIn("neither server supports SSCN or CPSV", errorLine(result))


class FXPPlanTests(TestCase):
    """
    Which server of an FXP copy is the TLS client on the data connection
    (the copy itself is tested once a server supports SSCN or CPSV).
    """

    def test_roles(self) -> None:
        """
        CPSV on the source makes it the passive side; otherwise SSCN on
        either side makes that side the active one with C{SSCN ON}; CPSV on
        the destination comes last; neither raises L{UnsupportedFeature}.
        """
        from txftps._clientfxp import _plan
        from txftps.client import UnsupportedFeature

        class Side:
            def __init__(self, *features: str) -> None:
                self.features = dict.fromkeys(features, "")

        def roles(source: Side, destination: Side) -> tuple[object, ...]:
            passive, command, active, sscn = _plan(source, destination)  # type: ignore[arg-type]
            names = {id(source): "source", id(destination): "destination", id(None): None}
            return names[id(passive)], command, names[id(active)], names[id(sscn)]

        self.assertEqual(
            roles(Side("CPSV", "SSCN"), Side("SSCN")), ("source", "CPSV", "destination", None)
        )
        self.assertEqual(
            roles(Side(), Side("SSCN")), ("source", "PASV", "destination", "destination")
        )
        self.assertEqual(roles(Side("SSCN"), Side()), ("destination", "PASV", "source", "source"))
        self.assertEqual(roles(Side(), Side("CPSV")), ("destination", "CPSV", "source", None))
        with self.assertRaises(UnsupportedFeature):
            _plan(Side("EPSV"), Side("EPSV"))  # type: ignore[arg-type]


SOURCE_HOST = "127.0.0.2"
TARGET_HOST = "127.0.0.3"


class FXPCopyTests(TestCase):
    """
    C{txftps fxp} between two real C{twistd ftps --allow-fxp} on 127.0.0.2
    and 127.0.0.3: the file goes from one server to the other over a TLS
    data connection between them.
    """

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.ca = support.ThrowawayCA(directory, extraNames=(SOURCE_HOST, TARGET_HOST))
        self.servers = []
        for host in (SOURCE_HOST, TARGET_HOST):
            server = support.TwistdServer(
                "--allow-fxp", ca=self.ca, users={"alice": "pw-a", "bob": "pw-b"}, host=host
            ).start()
            self.addCleanup(server.stop)
            self.servers.append(server)
        self.source, self.target = self.servers
        self.payload = os.urandom(2 * 2**20 + 11)
        support.writeFile(os.path.join(self.source.userHome("alice"), "big.bin"), self.payload)
        os.makedirs(self.target.userHome("bob"), exist_ok=True)
        self.sourceURL = f"ftp://alice:pw-a@{SOURCE_HOST}:{self.source.explicitPort}/big.bin"
        self.targetURL = f"ftp://bob:pw-b@{TARGET_HOST}:{self.target.explicitPort}/"

    def test_command(self) -> None:
        """
        C{txftps fxp SRC DST/} copies the file under its own name; the
        source server (it lists CPSV) is the passive side and the TLS client.
        """
        watch = support.LogWatch(self.source)
        result = runTxftps("fxp", "--ca", self.ca.caFile, self.sourceURL, self.targetURL)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, b"")
        copied = support.readFile(os.path.join(self.target.userHome("bob"), "big.bin"))
        self.assertTrue(copied == self.payload, "the copy differs from the original")
        self.assertIn("<- CPSV", watch.since())

    def test_sscn(self) -> None:
        """
        When the source does not offer CPSV, the destination gets SSCN ON
        and connects to the source's PASV port as the TLS client.
        """
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        from txftps.client import ClientTLS, connect, copyBetweenServers

        watch = support.LogWatch(self.target)

        async def copy() -> None:
            tls = ClientTLS(caFile=self.ca.caFile)
            source = await connect(reactor, self.sourceURL, tls)
            target = await connect(reactor, self.targetURL, tls)
            del source.features["CPSV"]
            await copyBetweenServers(source, "big.bin", target, "via-sscn.bin")
            await source.quit()
            await target.quit()
            copied = support.readFile(os.path.join(self.target.userHome("bob"), "via-sscn.bin"))
            self.assertTrue(copied == self.payload, "the copy differs from the original")
            self.assertIn("<- SSCN", watch.since())

        return Deferred.fromCoroutine(copy())  # type: ignore[return-value]
