"""
The README's first command, as a new user runs it: C{twistd -n ftps} with no
options, in a directory of files, then the two curl commands the issue names:
explicit FTPS on port 2121 and implicit FTPS on port 9990 both list that
directory, with the generated certificate (hence C{-k}, as in the README);
then the README's C{txftps get --pin} downloads from it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import TestCase

from tests import support


def _portFree(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class DefaultsTests(TestCase):
    """
    C{twistd -n ftps} on its defaults.
    """

    def test_readmeCommand(self) -> None:
        """
        With no options the server serves the current directory read-only to
        anonymous users over explicit FTPS on 2121 and implicit FTPS on 9990,
        generates its certificate once under the per-user data directory and
        logs its SHA-256 fingerprint; plain FTP gets no listing. twistd's
        pid file goes to the data directory, so the first listing shows only
        the user's files, and the log names no internal factory.
        """
        curl = support.requireProgram("curl")
        for port in (2121, 9990):
            self.assertTrue(_portFree(port), f"port {port} is taken; the test needs it")
        directory = tempfile.mkdtemp(prefix="txftps-readme-")
        self.addCleanup(shutil.rmtree, directory, True)
        served = os.path.join(directory, "served")
        home = os.path.join(directory, "home")
        os.makedirs(served)
        os.makedirs(home)
        with open(os.path.join(served, "hello.txt"), "wb") as f:
            f.write(b"hello from txftps\n")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        command = (
            [twistd]
            if os.path.exists(twistd)
            else [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
            ]
        )
        env = dict(os.environ, HOME=home)
        env.pop("XDG_DATA_HOME", None)
        env["PYTHONPATH"] = support.PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        log = open(os.path.join(directory, "log"), "wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [*command, "-n", "ftps"], cwd=served, stdout=log, stderr=log, env=env
        )

        def stop() -> None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        self.addCleanup(stop)

        def output() -> str:
            with open(os.path.join(directory, "log"), "rb") as f:
                return f.read().decode("utf-8", "replace")

        deadline = time.monotonic() + 20
        while output().count("FTPS listening on") < 2 and time.monotonic() < deadline:
            self.assertIsNone(process.poll(), output())
            time.sleep(0.05)
        self.assertEqual(output().count("FTPS listening on"), 2, output())
        self.assertIn("port 2121", output())
        self.assertIn("port 9990", output())
        dataDir = os.path.join(home, ".local", "share", "txftps")
        self.assertTrue(os.path.exists(os.path.join(dataDir, "server-cert.pem")), output())
        self.assertIn("certificate SHA-256 fingerprint", output())

        for url, extra in (
            ("ftp://127.0.0.1:2121/", ["--ssl-reqd"]),
            ("ftps://127.0.0.1:9990/", []),
        ):
            result = subprocess.run(
                [curl, "-sS", "-k", *extra, url], capture_output=True, timeout=30
            )
            self.assertEqual(result.returncode, 0, (url, result.stderr, output()))
            names = sorted(line.split()[-1] for line in result.stdout.splitlines())
            self.assertEqual(names, [b"hello.txt"], (url, result.stdout))
        download = subprocess.run(
            [curl, "-sS", "-k", "ftps://127.0.0.1:9990/hello.txt"],
            capture_output=True,
            timeout=30,
        )
        self.assertEqual(download.stdout, b"hello from txftps\n")
        plain = subprocess.run(
            [curl, "-sS", "ftp://127.0.0.1:2121/"], capture_output=True, timeout=30
        )
        self.assertNotEqual(plain.returncode, 0)
        self.assertNotIn(b"hello.txt", plain.stdout)
        # The README's txftps line: trust the generated certificate by the
        # fingerprint openssl computes from it.
        fingerprint = (
            subprocess.run(
                [
                    "openssl",
                    "x509",
                    "-noout",
                    "-fingerprint",
                    "-sha256",
                    "-in",
                    os.path.join(dataDir, "server-cert.pem"),
                ],
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
            .split("=", 1)[1]
        )
        fetched = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "txftps"),
                "get",
                "--pin",
                fingerprint,
                "ftp://127.0.0.1:2121/hello.txt",
            ],
            capture_output=True,
            cwd=home,
            env=env,
            timeout=60,
        )
        self.assertEqual(fetched.returncode, 0, fetched.stderr)
        self.assertEqual(support.readFile(os.path.join(home, "hello.txt")), b"hello from txftps\n")
        upload = subprocess.run(
            [curl, "-sS", "-k", "-T", "-", "ftps://127.0.0.1:9990/new.txt"],
            input=b"x",
            capture_output=True,
            timeout=30,
        )
        self.assertNotEqual(upload.returncode, 0, "anonymous upload must be refused")
        self.assertFalse(os.path.exists(os.path.join(served, "new.txt")))
        self.assertEqual(os.listdir(served), ["hello.txt"])
        with open(os.path.join(dataDir, "twistd.pid")) as f:
            self.assertEqual(int(f.read()), process.pid)
        self.assertIn("twistd.pid", output())
        for noise in ("starting on", "Starting factory", "Stopping factory"):
            self.assertNotIn(noise, output())
