# -*- test-case-name: tests.test_client -*-
"""
Opening an FTPS session: URLs (C{ftp://} and C{ftpes://} explicit,
C{ftps://} implicit), endpoints, the TLS upgrade (C{AUTH TLS}; never a
fallback to plaintext), login, C{PBSZ 0}, C{PROT P}, C{FEAT}.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory

from txftps._clienterrors import FTPClientError, FTPCommandError, FTPTimeoutError
from txftps._clientprotocol import FTPControlProtocol
from txftps._clientsession import FTPSClient
from txftps._clienttls import ClientTLS, TLSSession

#: URL schemes: whether each is implicit FTPS, and its default port.
SCHEMES = {"ftp": (False, 21), "ftpes": (False, 21), "ftps": (True, 990)}


@dataclasses.dataclass(frozen=True)
class FTPURL:
    """
    A parsed FTP URL.

    @ivar implicit: implicit FTPS (C{ftps://}) rather than explicit.
    @ivar host: the host name or address (no brackets).
    @ivar port: the port.
    @ivar user: the user name from the URL, or C{None}.
    @ivar password: the password from the URL, or C{None}.
    @ivar path: the path: relative to the login directory, or absolute when
        the URL's path starts with C{//} or C{/%2F} (as curl reads it).
    """

    implicit: bool
    host: str
    port: int
    user: str | None
    password: str | None
    path: str

    @classmethod
    def fromString(cls, url: str) -> FTPURL:
        """
        Parse C{url}.

        @raise ValueError: not an C{ftp://}, C{ftpes://} or C{ftps://} URL.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"not an ftp://, ftpes:// or ftps:// URL: {url}")
        implicit, defaultPort = SCHEMES[scheme]
        if not parts.hostname:
            raise ValueError(f"no host in URL: {url}")
        try:
            port = parts.port or defaultPort
        except ValueError:
            raise ValueError(f"bad port in URL: {url}") from None
        raw = parts.path
        if raw.startswith("//") or raw.lower().startswith("/%2f"):
            path = "/" + unquote(raw[2:] if raw.startswith("//") else raw[4:]).lstrip("/")
        else:
            path = unquote(raw[1:])
        return cls(
            implicit,
            parts.hostname,
            port,
            unquote(parts.username) if parts.username is not None else None,
            unquote(parts.password) if parts.password is not None else None,
            path,
        )

    def withPath(self, path: str) -> FTPURL:
        """
        The same server with another path.
        """
        return dataclasses.replace(self, path=path)


def connect(
    reactor: Any,
    url: str | FTPURL,
    tls: ClientTLS | None = None,
    user: str | None = None,
    password: str | None = None,
    active: bool = False,
    connectTimeout: float = 30.0,
    replyTimeout: float = 60.0,
    stallTimeout: float = 60.0,
) -> Deferred[FTPSClient]:
    """
    Connect to the server of an FTP URL, secure the session and log in.

    @param reactor: the reactor (L{twisted.internet.interfaces.IReactorTCP}, L{twisted.internet.interfaces.IReactorTime}).
    @param url: C{ftp://} or C{ftpes://} (explicit, port 21),
        C{ftps://} (implicit, port 990); its user and password are used
        unless C{user} or C{password} are given.
    @param tls: the trust settings; by default the system's roots and a
        host-name check.
    @param user: the login name (default C{anonymous}).
    @param password: the password.
    @param active: use PORT/EPRT instead of EPSV/PASV.
    @param connectTimeout: seconds to establish the TCP connection.
    @param replyTimeout: seconds to wait for any reply (and TLS handshake).
    @param stallTimeout: seconds a data connection may go without a byte.
    @return: fires with a logged-in L{FTPSClient}.
    """
    parsed = FTPURL.fromString(url) if isinstance(url, str) else url
    endpoint = HostnameEndpoint(reactor, parsed.host, parsed.port, timeout=connectTimeout)
    return connectEndpoint(
        reactor,
        endpoint,
        parsed.host,
        implicit=parsed.implicit,
        tls=tls,
        user=user if user is not None else parsed.user,
        password=password if password is not None else parsed.password,
        active=active,
        replyTimeout=replyTimeout,
        stallTimeout=stallTimeout,
    )


def connectEndpoint(
    reactor: Any,
    endpoint: IStreamClientEndpoint,
    hostname: str,
    implicit: bool = False,
    tls: ClientTLS | None = None,
    user: str | None = None,
    password: str | None = None,
    active: bool = False,
    replyTimeout: float = 60.0,
    stallTimeout: float = 60.0,
) -> Deferred[FTPSClient]:
    """
    Like L{connect}, over a plain stream endpoint of your choice.

    @param endpoint: a client endpoint to the server's control port (TCP,
        not TLS: TLS is added here).
    @param hostname: the name (or address) the server's certificate must
        be valid for.
    @param implicit: TLS from the first byte instead of C{AUTH TLS}.
    """
    settings = tls if tls is not None else ClientTLS()
    session = settings.session(hostname)

    async def run() -> FTPSClient:
        def build() -> FTPControlProtocol:
            protocol = FTPControlProtocol(reactor, replyTimeout)
            protocol.tlsSession = session if implicit else None
            return protocol

        wrapped = wrapClientTLS(session, endpoint) if implicit else endpoint
        protocol = cast(FTPControlProtocol, await wrapped.connect(Factory.forProtocol(build)))
        try:
            greeting = await protocol.greeting
            if not implicit:
                await protocol.sendCommand("AUTH TLS")
                await _handshake(reactor, protocol, session, replyTimeout)
            client = FTPSClient(reactor, protocol, session, active, stallTimeout)
            await _login(protocol, user or "anonymous", password)
            await protocol.sendCommand("PBSZ 0")
            await protocol.sendCommand("PROT P")
            client.features = await _features(protocol)
            if "UTF8" in client.features:
                try:
                    await protocol.sendCommand("OPTS UTF8 ON")
                except FTPCommandError:
                    pass
            await protocol.sendCommand("TYPE I")
        except BaseException:
            if protocol.transport is not None:
                cast(Any, protocol.transport).abortConnection()
            raise
        del greeting
        return client

    return Deferred.fromCoroutine(run())


async def _handshake(
    reactor: Any, protocol: FTPControlProtocol, session: TLSSession, timeout: float
) -> None:
    done = protocol.startTLS(session)

    def timedOut() -> None:
        protocol._fail(FTPTimeoutError(f"TLS handshake not done within {timeout:g} seconds"))

    timer = reactor.callLater(timeout, timedOut)
    try:
        await done
    finally:
        if timer.active():
            timer.cancel()


async def _login(protocol: FTPControlProtocol, user: str, password: str | None) -> None:
    reply = await protocol.sendCommand(f"USER {user}")
    if reply.code == 331:
        if password is None:
            password = "anonymous@" if user in ("anonymous", "ftp") else ""
        reply = await protocol.sendCommand(f"PASS {password}")
    if reply.code == 332:
        raise FTPClientError("the server wants an account (ACCT), which is not supported")
    if reply.code not in (230, 232, 202):
        raise FTPCommandError(reply.code, reply.lines, "PASS")


async def _features(protocol: FTPControlProtocol) -> dict[str, str]:
    try:
        reply = await protocol.sendCommand("FEAT")
    except FTPCommandError:
        return {}
    features = {}
    for line in reply.lines[1:-1]:
        text = line.strip()
        if not text:
            continue
        keyword, _, rest = text.partition(" ")
        features[keyword.upper()] = rest.strip()
    return features
