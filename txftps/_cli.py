# -*- test-case-name: tests.test_cli -*-
"""
The C{txftps} command: move files over FTPS from a shell::

    txftps ls URL
    txftps get URL [LOCAL]          (LOCAL "-" is standard output)
    txftps put LOCAL URL
    txftps mirror [--reverse] URL LOCALDIR
    txftps rm URL | mkdir URL | mv URL NEWPATH
    txftps fxp SRC_URL DST_URL

Exit status 0 on success; otherwise one line C{txftps: error: ...} on
standard error and status 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import getpass
import netrc
import os
import posixpath
import sys
from collections.abc import Callable
from typing import IO, Any, NoReturn, cast

from twisted.internet import error as netError
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner

from txftps._clientconnect import FTPURL, connect
from txftps._clienterrors import FTPClientError, FTPCommandError
from txftps._clientfiles import FileConsumer
from txftps._clientfxp import copyBetweenServers
from txftps._clientsession import FTPSClient
from txftps._clienttls import ClientTLS
from txftps._clienttree import describeError, mirrorDown, mirrorUp

PROGRAM = "txftps"


class UsageError(Exception):
    """
    The command line is wrong.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _commonOptions() -> _Parser:
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--ca", metavar="PEM", help="trust the CAs in this file")
    common.add_argument(
        "--pin", metavar="SHA256", help="the server certificate's SHA-256 fingerprint"
    )
    common.add_argument("--cert", metavar="PEM", help="client certificate (chain)")
    common.add_argument("--key", metavar="PEM", help="client certificate's private key")
    common.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    common.add_argument("--active", action="store_true", help="active mode (PORT/EPRT)")
    common.add_argument(
        "-c", "--continue", dest="resume", action="store_true", help="resume transfers"
    )
    common.add_argument("--user", metavar="USER[:PASSWORD]", help="log in as USER")
    common.add_argument(
        "--timeout", metavar="SECONDS", type=float, help="connect and reply timeout [60]"
    )
    return common


def parser() -> argparse.ArgumentParser:
    """
    The command-line parser; options may come before or after the
    subcommand.
    """
    common = _commonOptions()
    top = _Parser(prog=PROGRAM, parents=[common], description="FTPS client")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ls = commands.add_parser("ls", parents=[common], help="list a directory")
    ls.add_argument("url")
    get = commands.add_parser("get", parents=[common], help="download a file")
    get.add_argument("url")
    get.add_argument("local", nargs="?")
    put = commands.add_parser("put", parents=[common], help="upload a file")
    put.add_argument("local")
    put.add_argument("url")
    mirror = commands.add_parser("mirror", parents=[common], help="download (upload) a tree")
    mirror.add_argument("--reverse", "-R", action="store_true", help="upload LOCALDIR")
    mirror.add_argument("url")
    mirror.add_argument("localdir")
    for name, text in (("rm", "delete a file"), ("mkdir", "make a directory")):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("url")
    mv = commands.add_parser("mv", parents=[common], help="rename")
    mv.add_argument("url")
    mv.add_argument("newpath")
    fxp = commands.add_parser("fxp", parents=[common], help="server-to-server copy")
    fxp.add_argument("source")
    fxp.add_argument("destination")
    return top


def _option(arguments: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(arguments, name, default)


def tlsSettings(arguments: argparse.Namespace) -> ClientTLS:
    """
    The L{ClientTLS} the options ask for.
    """
    cert = _option(arguments, "cert")
    key = _option(arguments, "key")
    if key is not None and cert is None:
        raise UsageError("--key needs --cert")
    return ClientTLS(
        caFile=_option(arguments, "ca"),
        pin=_option(arguments, "pin"),
        certFile=cert,
        keyFile=key,
        insecure=bool(_option(arguments, "insecure", False)),
    )


def credentials(
    url: FTPURL,
    userOption: str | None,
    environ: dict[str, str],
    interactive: bool,
    prompt: Callable[[str], str] = getpass.getpass,
) -> tuple[str, str | None]:
    """
    The user and password: C{--user USER[:PASSWORD]} or the URL's user;
    the password from C{--user}, the URL, C{TXFTPS_PASSWORD}, C{~/.netrc},
    or a prompt on a terminal. No user anywhere means anonymous (unless
    C{~/.netrc} names one for the host).
    """
    user, password = url.user, url.password
    if userOption is not None:
        user, sep, given = userOption.partition(":")
        password = given if sep else None
    if password is None and "TXFTPS_PASSWORD" in environ and user is not None:
        password = environ["TXFTPS_PASSWORD"]
    if password is None:
        entry = _netrcEntry(url.host)
        if entry is not None and (user is None or entry[0] == user):
            user = entry[0] or user
            password = entry[2]
    if user is None or user in ("anonymous", "ftp"):
        return "anonymous", password
    if password is None:
        if not interactive:
            raise UsageError(
                f"no password for {user}: give it in the URL, TXFTPS_PASSWORD or ~/.netrc"
            )
        password = prompt(f"Password for {user}@{url.host}: ")
    return user, password


def _netrcEntry(host: str) -> tuple[str, str, str] | None:
    path = os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.exists(path):
        return None
    try:
        entry = netrc.netrc().authenticators(host)
    except (netrc.NetrcParseError, OSError) as e:
        raise UsageError(f"~/.netrc: {e}") from None
    if entry is None:
        return None
    login, account, password = entry
    return login, account or "", password or ""


class Progress:
    """
    A progress bar (bytes, rate, ETA) on standard error when it is a
    terminal (tqdm); nothing otherwise.
    """

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._bar: Any = None

    def start(self, name: str, total: int | None, initial: int = 0) -> Callable[[int], None]:
        """
        Begin a bar for C{name}; the callable advances it by some bytes.
        """
        self.finish()
        if not self.enabled:
            return lambda size: None
        from tqdm import tqdm  # type: ignore[import-untyped]

        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.stream,
            # A terminal that reports no size (a bare pty) gets 80x24:
            # tqdm would hide a bar on a screen of zero rows.
            dynamic_ncols=columns > 0,
            ncols=None if columns > 0 else 80,
            nrows=None if columns > 0 else 24,
            leave=True,
        )
        return self._bar.update  # type: ignore[no-any-return]

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Command:
    """
    One run of the C{txftps} command.
    """

    def __init__(self, reactor: Any, arguments: argparse.Namespace, stdout: IO[bytes]) -> None:
        self.reactor = reactor
        self.arguments = arguments
        self.stdout = stdout
        self.tls = tlsSettings(arguments)
        self.progress = Progress(sys.stderr, sys.stderr.isatty())
        self.clients: list[FTPSClient] = []

    async def open(self, url: FTPURL) -> FTPSClient:
        """
        Connect and log in to the server of C{url}.
        """
        user, password = credentials(
            url, _option(self.arguments, "user"), dict(os.environ), sys.stdin.isatty()
        )
        timeout = _option(self.arguments, "timeout", 60.0)
        try:
            client = await connect(
                self.reactor,
                url,
                self.tls,
                user=user,
                password=password,
                active=bool(_option(self.arguments, "active", False)),
                connectTimeout=timeout,
                replyTimeout=timeout,
                stallTimeout=timeout,
            )
        except netError.ConnectionRefusedError:
            raise FTPClientError(f"connection refused: {url.host} port {url.port}") from None
        except netError.TimeoutError:
            raise FTPClientError(f"connection timed out: {url.host} port {url.port}") from None
        self.clients.append(client)
        return client

    async def run(self) -> None:
        command = self.arguments.command
        await getattr(self, f"do_{command}")()
        for client in self.clients:
            await client.quit()

    def _resume(self) -> bool:
        return bool(_option(self.arguments, "resume", False))

    async def do_ls(self) -> None:
        url = FTPURL.fromString(self.arguments.url)
        client = await self.open(url)
        for entry in sorted(await client.list(url.path), key=lambda entry: entry.name):
            kind = {"dir": "d", "file": "-", "link": "l"}.get(entry.type, "?")
            size = "" if entry.size is None else str(entry.size)
            when = entry.modified.strftime("%Y-%m-%d %H:%M") if entry.modified else ""
            suffix = "/" if entry.isDirectory else ""
            self.stdout.write(f"{kind} {size:>12} {when:16} {entry.name}{suffix}\n".encode())
        self.stdout.flush()

    async def _size(self, client: FTPSClient, path: str) -> int | None:
        try:
            return await client.size(path)
        except FTPCommandError:
            return None

    async def do_get(self) -> None:
        url = FTPURL.fromString(self.arguments.url)
        name = posixpath.basename(url.path.rstrip("/"))
        if not name:
            raise UsageError(f"no file name in {self.arguments.url}")
        local = self.arguments.local or name
        if local != "-" and os.path.isdir(local):
            local = os.path.join(local, name)
        client = await self.open(url)
        total = await self._size(client, url.path)
        if local == "-":
            update = self.progress.start(name, total)
            await client.retrieve(url.path, FileConsumer(self.stdout), onProgress=update)
            self.stdout.flush()
        else:
            partial = local + ".part"
            initial = 0
            if self._resume():
                source = partial if os.path.exists(partial) else local
                initial = os.path.getsize(source) if os.path.exists(source) else 0
            update = self.progress.start(name, total, initial)
            await client.retrieveFile(url.path, local, self._resume(), update)
        self.progress.finish()

    async def do_put(self) -> None:
        local = self.arguments.local
        url = FTPURL.fromString(self.arguments.url)
        if not os.path.isfile(local):
            raise UsageError(f"{local}: not a file")
        path = url.path
        if not path or path.endswith("/"):
            path += os.path.basename(local)
        client = await self.open(url)
        initial = 0
        if self._resume():
            initial = await self._size(client, path) or 0
        update = self.progress.start(os.path.basename(local), os.path.getsize(local), initial)
        await client.storeFile(local, path, self._resume(), update)
        self.progress.finish()

    async def do_mirror(self) -> None:
        first, second = self.arguments.url, self.arguments.localdir
        if "://" not in first and "://" in second:
            first, second = second, first
        url = FTPURL.fromString(first)
        client = await self.open(url)
        if _option(self.arguments, "reverse", False):
            if not os.path.isdir(second):
                raise UsageError(f"{second}: not a directory")
            await mirrorUp(client, second, url.path, self._resume(), self.progress.start)
        else:
            await mirrorDown(client, url.path, second, self._resume(), self.progress.start)
        self.progress.finish()

    async def do_rm(self) -> None:
        url = FTPURL.fromString(self.arguments.url)
        client = await self.open(url)
        try:
            await client.delete(url.path)
        except FTPCommandError as deleteError:
            try:
                await client.removeDirectory(url.path)
            except FTPCommandError:
                raise deleteError from None

    async def do_mkdir(self) -> None:
        url = FTPURL.fromString(self.arguments.url)
        client = await self.open(url)
        await client.makeDirectory(url.path)

    async def do_mv(self) -> None:
        url = FTPURL.fromString(self.arguments.url)
        newPath = self.arguments.newpath
        if not newPath.startswith("/"):
            newPath = posixpath.join(posixpath.dirname(url.path.rstrip("/")), newPath)
        client = await self.open(url)
        await client.rename(url.path, newPath)

    async def do_fxp(self) -> None:
        source = FTPURL.fromString(self.arguments.source)
        destination = FTPURL.fromString(self.arguments.destination)
        destinationPath = destination.path
        if not destinationPath or destinationPath.endswith("/"):
            destinationPath += posixpath.basename(source.path)
        sourceClient = await self.open(source)
        destinationClient = await self.open(destination)
        await copyBetweenServers(sourceClient, source.path, destinationClient, destinationPath)

    def abort(self) -> None:
        """
        Drop every connection at once (after an error).
        """
        self.progress.finish()
        for client in self.clients:
            transport: Any = client.protocol.transport
            if transport is not None:
                transport.abortConnection()


def _warnings(event: dict[str, Any]) -> None:
    level = event.get("log_level")
    if level is None or level < LogLevel.warn:
        return
    if not str(event.get("log_namespace", "")).startswith("txftps"):
        return
    sys.stderr.write(f"{PROGRAM}: warning: {formatEvent(event)}\n")
    sys.stderr.flush()


def error(message: str) -> None:
    """
    Write the one C{txftps: error:} line.
    """
    sys.stderr.write(f"{PROGRAM}: error: {message}\n")
    sys.stderr.flush()


def run(reactor: Any, argv: list[str]) -> Deferred[None]:
    """
    Run the command line C{argv} (without the program name) on C{reactor}.

    @return: fires when done; fails with C{SystemExit} carrying the status.
    """

    async def main() -> None:
        command: Command | None = None
        try:
            arguments = parser().parse_args(argv)
            command = Command(reactor, arguments, sys.stdout.buffer)
            await command.run()
        except UsageError as e:
            error(str(e))
            raise SystemExit(2)
        except Exception as e:
            if command is not None:
                command.abort()
            error(describeError(e))
            raise SystemExit(1)

    return Deferred.fromCoroutine(main())


def main(argv: list[str] | None = None) -> None:
    """
    The console script's entry point.
    """
    globalLogBeginner.beginLoggingTo([cast(ILogObserver, _warnings)], redirectStandardIO=False)
    arguments = sys.argv[1:] if argv is None else argv
    react(run, [arguments])


if __name__ == "__main__":
    main()
