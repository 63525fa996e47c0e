# -*- test-case-name: tests.test_testing -*-
"""
A real txftps server for tests: L{FTPSTestServer} listens on loopback inside
the test's reactor, with a throwaway CA, users with passwords or client
certificates, a tree in a temporary directory (or in memory), a record of
what happened, and switches that make it misbehave.
"""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.cred import checkers, portal
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IListeningPort
from twisted.internet.ssl import Certificate
from twisted.protocols.ftp import IFTPShell
from twisted.python.filepath import FilePath
from zope.interface import implementer

from txftps._certauth import ClientCertificateChecker
from txftps._testing.ca import CertificateAuthority, IssuedCertificate
from txftps._testing.memoryshell import MemoryFilesystem, MemoryShell
from txftps._testing.misbehaviour import (
    Misbehaviour,
    _TestFactory,
    withoutResumption,
)
from txftps._testing.record import SessionRecord
from txftps.auth import ANONYMOUS, normalizeChecker
from txftps.server import ServerSettings
from txftps.storage import LocalShell
from txftps.tls import ServerTLS

_LOOPBACK = "127.0.0.1"


@implementer(portal.IRealm)
class _SharedTreeRealm:
    """
    Every user gets a shell on the same tree; anonymous and read-only users
    get it read-only.
    """

    def __init__(
        self,
        root: FilePath[str],
        filesystem: MemoryFilesystem | None,
        readOnlyUsers: frozenset[str],
    ) -> None:
        self._root = root
        self._filesystem = filesystem
        self._readOnlyUsers = readOnlyUsers

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> tuple[Any, Any, Any]:
        if IFTPShell not in interfaces:
            raise NotImplementedError("only IFTPShell avatars")
        readOnly = avatarId is ANONYMOUS or avatarId in self._readOnlyUsers
        shell: Any
        if self._filesystem is not None:
            shell = MemoryShell(self._filesystem, readOnly=readOnly)
        else:
            shell = LocalShell(self._root, readOnly=readOnly)
        return IFTPShell, shell, lambda: None


class FTPSTestServer:
    """
    A txftps server on loopback, in the reactor of the test that starts it.

    Explicit FTPS listens on L{port}, implicit FTPS on L{implicitPort}; both
    present a certificate for C{127.0.0.1}, C{localhost} and C{::1} issued
    by a CA made for this server alone (L{caCertificatePEM},
    L{caCertificatePath}). The server behaves as C{twistd ftps} does by
    default (TLS required on control and data, data connections must resume
    the control connection's TLS session) except that failed logins are
    answered at once.

    Every user sees the same tree: L{root} on disk, or a L{MemoryFilesystem}.

    @ivar reactor: the reactor it runs in.
    @ivar host: C{"127.0.0.1"}.
    @ivar port: the explicit-FTPS port (after L{start}).
    @ivar implicitPort: the implicit-FTPS port, or 0.
    @ivar root: the served tree, when on disk.
    @ivar filesystem: the served L{MemoryFilesystem}, or C{None}.
    @ivar directory: a temporary directory removed by L{stop}.
    @ivar ca: the L{CertificateAuthority}.
    @ivar certificate: the server's L{IssuedCertificate}.
    @ivar record: the L{SessionRecord} of everything that happened.
    @ivar settings: the L{ServerSettings}.
    """

    def __init__(
        self,
        reactor: Any,
        users: Mapping[str, str] | None = None,
        certificateUsers: Iterable[str] = (),
        anonymous: bool = False,
        readOnlyUsers: Iterable[str] = (),
        files: Mapping[str, bytes] | None = None,
        filesystem: MemoryFilesystem | None = None,
        settings: ServerSettings | None = None,
        misbehaviour: Misbehaviour | None = None,
        implicit: bool = True,
    ) -> None:
        """
        @param reactor: the test's reactor (C{twisted.internet.reactor} under
            trial's L{TestCase<twisted.trial.unittest.TestCase>}).
        @param users: user names to passwords.
        @param certificateUsers: users who get a client certificate
            (L{clientCertificate}) and log in with it: C{USER name} from a
            client presenting it is answered 232, without a password.
        @param anonymous: allow anonymous logins (read-only).
        @param readOnlyUsers: users who may not change the tree.
        @param files: initial files, path to content (a path ending in C{/}
            is an empty directory).
        @param filesystem: serve this tree in memory instead of L{root}.
        @param settings: the server settings; the default has no
            failed-login delay.
        @param misbehaviour: see L{misbehaviour}.
        @param implicit: also listen for implicit FTPS.
        """
        self.reactor = reactor
        self.host = _LOOPBACK
        self.port = 0
        self.implicitPort = 0
        self._users = dict(users or {})
        self._implicit = implicit
        self.directory = FilePath(tempfile.mkdtemp(prefix="txftps-testing-"))
        self.root = self.directory.child("root")
        self.root.makedirs()
        self.filesystem = filesystem
        for path, content in (files or {}).items():
            self._addFile(path, content)
        self.ca = CertificateAuthority()
        self.certificate = self.ca.issueServerCertificate()
        self.caCertificatePath = self.directory.child("ca.pem")
        self.caCertificatePath.setContent(self.ca.certificatePEM)
        self._clientCertificates = {
            name: self.ca.issueClientCertificate(name) for name in certificateUsers
        }
        self.settings = (
            dataclasses.replace(settings)
            if settings is not None
            else ServerSettings(failedLoginDelay=0.0)
        )
        if self._clientCertificates:
            self.settings.certificateLogin = True
        self._tls = self.certificate.serverTLS()
        if self._clientCertificates:
            self._tls = ServerTLS(
                self._tls.chain, self._tls.key, (self.ca.certificate,), "optional"
            )
        self.record = SessionRecord()
        self._portal = portal.Portal(
            _SharedTreeRealm(self.root, filesystem, frozenset(readOnlyUsers)),
            self._checkers(anonymous),
        )
        self._factories: list[_TestFactory] = []
        self._ports: list[IListeningPort] = []
        self._misbehaviour = misbehaviour or Misbehaviour()
        self._requireResumption = self.settings.requireResumption

    def _addFile(self, path: str, content: bytes) -> None:
        if self.filesystem is not None:
            if path.endswith("/"):
                self.filesystem.makeDirectory(path)
            else:
                self.filesystem.setContent(path, content)
            return
        target = self.root.preauthChild(path.strip("/"))
        if path.endswith("/"):
            target.makedirs(ignoreExistingDirectory=True)
            return
        target.parent().makedirs(ignoreExistingDirectory=True)
        target.setContent(content)

    def _checkers(self, anonymous: bool) -> list[checkers.ICredentialsChecker]:
        found: list[checkers.ICredentialsChecker] = []
        if self._users:
            memory = checkers.InMemoryUsernamePasswordDatabaseDontUse()
            for name, password in self._users.items():
                # str names and passwords: normalizeChecker adapts the types.
                memory.addUser(name, password)  # type: ignore[arg-type]
            found.append(normalizeChecker(memory))
        if anonymous:
            found.append(checkers.AllowAnonymousAccess())
        if self._clientCertificates:
            found.append(ClientCertificateChecker())
        return found

    # life

    def start(self) -> defer.Deferred[FTPSTestServer]:
        """
        Start listening.

        @return: fires with this server once L{port} (and L{implicitPort})
            accept connections.
        """
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self) -> FTPSTestServer:
        explicit = _TestFactory(
            self.reactor, self._portal, self._tls, self.settings, observer=self.record
        )
        self._factories = [explicit]
        if self._implicit:
            self._factories.append(
                _TestFactory(
                    self.reactor,
                    self._portal,
                    self._tls,
                    self.settings,
                    implicit=True,
                    limits=explicit.limits,
                    bans=explicit.bans,
                    observer=self.record,
                )
            )
        self.misbehaviour = self._misbehaviour
        for factory in self._factories:
            endpoint = endpoints.serverFromString(self.reactor, f"tcp:0:interface={self.host}")
            self._ports.append(await endpoint.listen(factory))
        self.port = self._ports[0].getHost().port  # type: ignore[attr-defined]
        if self._implicit:
            self.implicitPort = self._ports[1].getHost().port  # type: ignore[attr-defined]
        return self

    def stop(self) -> defer.Deferred[None]:
        """
        Stop listening, drop every open session and remove L{directory}.

        @return: fires once all of it is done.
        """
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        ports, self._ports = self._ports, []
        for port in ports:
            await defer.maybeDeferred(port.stopListening)
        for factory in self._factories:
            await factory.closeSessions()
        shutil.rmtree(self.directory.path, ignore_errors=True)

    # misbehaviour

    @property
    def misbehaviour(self) -> Misbehaviour:
        """
        How the server misbehaves now (L{Misbehaviour}); assign another to
        change it while it runs.
        """
        return self._misbehaviour

    @misbehaviour.setter
    def misbehaviour(self, misbehaviour: Misbehaviour) -> None:
        self._misbehaviour = misbehaviour
        resumption = misbehaviour.sessionResumption
        self.settings.requireResumption = self._requireResumption and resumption
        for factory in self._factories:
            factory.misbehaviour = misbehaviour
            factory.tls = self._tls if resumption else withoutResumption(self._tls)

    # what clients need

    @property
    def caCertificatePEM(self) -> bytes:
        """
        The CA certificate, PEM-encoded: the one trust root clients need.
        """
        return self.ca.certificatePEM

    @property
    def fingerprint(self) -> str:
        """
        The SHA-256 fingerprint of the server's certificate (C{AB:01:...}).
        """
        return self.certificate.fingerprint

    @property
    def trustRoot(self) -> Certificate:
        """
        The CA certificate for Twisted clients
        (C{optionsForClientTLS(host, trustRoot=server.trustRoot)}).
        """
        return Certificate.loadPEM(self.caCertificatePEM)

    def clientCertificate(self, user: str) -> IssuedCertificate:
        """
        The client certificate of one of the C{certificateUsers}; its
        C{writeTo} method gives files for programs such as curl.

        @raise KeyError: C{user} has none.
        """
        return self._clientCertificates[user]

    def clientContext(self, user: str | None = None) -> ssl.SSLContext:
        """
        A Python C{ssl} client context that trusts this server only,
        presenting C{user}'s client certificate when C{user} is one of the
        C{certificateUsers}.
        """
        return self.ca.clientContext(self._clientCertificates.get(user or ""))

    def url(self, path: str = "/", user: str | None = None, implicit: bool = False) -> str:
        """
        An URL of this server: C{ftp://} (explicit FTPS) or C{ftps://}
        (implicit), with C{user} and their password when given.
        """
        login = ""
        if user is not None:
            login = urllib.parse.quote(user, safe="")
            if user in self._users:
                login += ":" + urllib.parse.quote(self._users[user], safe="")
            login += "@"
        scheme, port = ("ftps", self.implicitPort) if implicit else ("ftp", self.port)
        return f"{scheme}://{login}{self.host}:{port}/{path.lstrip('/')}"

    def path(self, path: str) -> FilePath[str]:
        """
        The file at FTP path C{path} in L{root} (on disk).
        """
        return self.root.preauthChild(path.strip("/"))
