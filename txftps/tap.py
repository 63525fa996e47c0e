# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd ftps} service: command-line options and L{makeService}.

This is the edge of txftps: the only module that uses the global reactor.
Every option of the public contract is parsed and checked here; a bad option
stops the start with one line on standard error, never a traceback.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.cred import credentials, strcred
from twisted.cred.portal import Portal
from twisted.internet import endpoints, error
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.filepath import FilePath

from txftps._certauth import CertificateMapError, ClientCertificateChecker, parseCertificateMap
from txftps._certreload import CertificateReloader
from txftps._datachannel import PassivePortRange
from txftps._logging import (
    LOG_FORMATS,
    LOG_LEVELS,
    insideServedTree,
    installObserver,
    placeServerFiles,
)
from txftps._metrics import ServerMetrics, metricsSite
from txftps._observers import FanOutObserver
from txftps._policy import SessionPolicy, TLSRequirement
from txftps._settings import listeningEndpoint
from txftps._xferlog import ReopenOnSignal, TransferLog
from txftps.auth import CheckerChain, FTPSRealm, LoginBans, normalizeChecker
from txftps.server import (
    ConnectionLimits,
    FTPSFactory,
    ProxyProtocolFactory,
    ServerSettings,
    TrustedProxies,
)
from txftps.tls import (
    TLS_PROFILES,
    CertificateError,
    CertificateFiles,
    ServerTLS,
    describeOpenSSL,
)

__all__ = ["FTPSService", "Options", "makeService"]

_log = Logger()


def defaultDataDirectory() -> str:
    """
    The per-user directory for generated material: C{$XDG_DATA_HOME/txftps}
    or C{~/.local/share/txftps}.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "txftps")


def _positive(name: str, cast: Any = float) -> Any:
    def parse(value: str) -> Any:
        try:
            number = cast(value)
        except ValueError:
            raise usage.UsageError(f"--{name} needs a number, not {value!r}")
        if not math.isfinite(number) or number <= 0:
            raise usage.UsageError(f"--{name} must be positive, not {value!r}")
        return number

    parse.coerceDoc = "A positive number."  # type: ignore[attr-defined]
    return parse


class Options(usage.Options, strcred.AuthOptionMixin):
    """
    Options of C{twistd ftps}; see docs/design.md, "Public contract of twistd ftps".
    """

    synopsis = "[options]"
    longdesc = (
        "An FTPS server: explicit FTPS (AUTH TLS) on --listen endpoints,"
        " implicit FTPS on --implicit endpoints."
    )
    supportedInterfaces = (credentials.IUsernamePassword, credentials.IAnonymous)

    optFlags = [
        ["allow-ccc", None, "Permit CCC (clear command channel) after login"],
        [
            "allow-fxp",
            None,
            "Server-to-server transfers: SSCN, CPSV, data peers other than the client",
        ],
        [
            "cert-login",
            None,
            "A verified client certificate naming the USER logs in with 232, no PASS",
        ],
        [
            "proxy-protocol",
            None,
            "Connections from --trusted-proxy addresses start with a PROXY v1/v2 header"
            " naming the client",
        ],
    ]

    optParameters = [
        ["root", None, None, "Tree served read-only to anonymous users [default: .]"],
        ["home", None, None, "Authenticated users' homes are HOME/USERNAME [default: --root]"],
        ["cert", None, None, "PEM certificate chain (leaf first)"],
        ["key", None, None, "PEM private key [default: --cert]"],
        ["data-dir", None, None, "Where generated material lives"],
        ["tls-required", None, "all", "none, control, data or all"],
        ["passive-ports", None, None, "LOW-HIGH ports for PASV/EPSV listeners"],
        ["masquerade", None, None, "IPv4 address announced in PASV replies"],
        ["session-reuse", None, "required", "required or optional"],
        [
            "upload-close-notify",
            None,
            "required",
            "required or optional: whether a TLS upload must end with the client's close_notify",
        ],
        ["client-ca", None, None, "PEM CA certificates that client certificates must chain to"],
        ["client-cert", None, "none", "Client certificates: none, optional or required"],
        [
            "tls-profile",
            None,
            "compatible",
            "modern (TLS 1.3 only), compatible (TLS 1.2 and 1.3, forward-secret AEAD"
            " ciphers) or fips (FIPS 140-approved algorithms only)",
        ],
        [
            "cert-map",
            None,
            None,
            "File mapping certificate fingerprints or subjects to users [default: the CN]",
        ],
        [
            "max-login-attempts",
            None,
            3,
            "Failed PASS before the connection closes",
            _positive("max-login-attempts", int),
        ],
        [
            "ban-after",
            None,
            10,
            "Failed logins from one address before a ban",
            _positive("ban-after", int),
        ],
        ["ban-time", None, 600.0, "Seconds a ban lasts", _positive("ban-time")],
        [
            "handshake-timeout",
            None,
            30.0,
            "Seconds for a TLS handshake",
            _positive("handshake-timeout"),
        ],
        [
            "idle-timeout",
            None,
            300.0,
            "Seconds an idle control connection lives",
            _positive("idle-timeout"),
        ],
        [
            "data-timeout",
            None,
            30.0,
            "Seconds for a pending data connection",
            _positive("data-timeout"),
        ],
        ["log-format", None, "text", "Log lines as text or json (one object per line)"],
        [
            "xferlog",
            None,
            None,
            "Append a wu-ftpd/ProFTPD xferlog line per file transfer to PATH; reopened on SIGUSR1",
        ],
        [
            "metrics",
            None,
            None,
            "Endpoint serving Prometheus metrics at /metrics (e.g. tcp:9102:interface=127.0.0.1)",
        ],
        ["log-level", None, "info", "debug, info, warn or error; per-command lines at debug"],
        ["max-clients", None, 1000, "Control connections in all", _positive("max-clients", int)],
        [
            "max-clients-per-ip",
            None,
            20,
            "Control connections per address",
            _positive("max-clients-per-ip", int),
        ],
        [
            "workers",
            None,
            1,
            "Worker processes sharing the endpoints, each with a slice of --passive-ports",
            _positive("workers", int),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        self["implicit"] = []
        self["read-only-user"] = []
        self["trusted-proxy"] = []

    def opt_listen(self, description: str) -> None:
        """
        Endpoint for explicit FTPS (plain FTP until AUTH TLS), repeatable
        [default: tcp:2121]
        """
        self["listen"].append(description)

    def opt_read_only_user(self, name: str) -> None:
        """
        An authenticated user who may read but not change anything, repeatable
        """
        self["read-only-user"].append(name)

    def opt_trusted_proxy(self, network: str) -> None:
        """
        Address or network (CIDR) of a load balancer that sends PROXY
        headers, repeatable; needs --proxy-protocol
        """
        self["trusted-proxy"].append(network)

    def opt_implicit(self, description: str) -> None:
        """
        Endpoint for implicit FTPS (TLS from the first byte), repeatable;
        "none" turns it off [default: tcp:9990]
        """
        self["implicit"].append(description)

    def parseOptions(self, options: Any = None) -> None:
        # What worker processes are started with (txftps._workers).
        self.arguments = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as e:
            raise SystemExit(f"twistd ftps: error: {e}")

    def postOptions(self) -> None:
        from twisted.internet import reactor

        if not self["listen"]:
            self["listen"] = ["tcp:2121"]
        if not self["implicit"]:
            self["implicit"] = ["tcp:9990"]
        self["implicit"] = [d for d in self["implicit"] if d.lower() != "none"]
        for description in self["listen"] + self["implicit"] + [self["metrics"] or "tcp:0"]:
            try:
                endpoints.serverFromString(reactor, description)
            except Exception as e:
                raise usage.UsageError(f"bad endpoint {description!r}: {e}")
        for name in ("root", "home"):
            if self[name] is not None and not os.path.isdir(self[name]):
                raise usage.UsageError(f"--{name} {self[name]!r} is not a directory")
        try:
            self["tls-required"] = TLSRequirement.lookupByValue(self["tls-required"])
        except ValueError:
            names = ", ".join(c.value for c in TLSRequirement.iterconstants())
            raise usage.UsageError(f"--tls-required must be one of {names}")
        if self["session-reuse"] not in ("required", "optional"):
            raise usage.UsageError("--session-reuse must be required or optional")
        if self["upload-close-notify"] not in ("required", "optional"):
            raise usage.UsageError("--upload-close-notify must be required or optional")
        if self["passive-ports"] is not None:
            low, _, high = self["passive-ports"].partition("-")
            try:
                self["passive-ports"] = PassivePortRange(int(low), int(high))
            except ValueError:
                raise usage.UsageError(
                    f"--passive-ports needs LOW-HIGH with 1 <= LOW <= HIGH <= 65535,"
                    f" not {self['passive-ports']!r}"
                )
        if self["workers"] > 1:
            from txftps._workers import passiveSlices, shareable

            for description in self["listen"] + self["implicit"]:
                if not shareable(reactor, description):
                    raise usage.UsageError(
                        f"--workers needs tcp: or tcp6: endpoints, not {description!r}"
                    )
            try:
                passiveSlices(self["passive-ports"], self["workers"])
            except ValueError as e:
                raise usage.UsageError(str(e))
            if self["metrics"] is not None:
                # Each worker counts its own sessions; nothing adds them up
                # yet, and the workers cannot all listen on one port.
                raise usage.UsageError("--metrics cannot be combined with --workers yet")
        if self["masquerade"] is not None:
            try:
                self["masquerade"] = str(ipaddress.IPv4Address(self["masquerade"]))
            except ValueError:
                raise usage.UsageError(
                    f"--masquerade needs an IPv4 address, not {self['masquerade']!r}"
                )
        if self["proxy-protocol"] and not self["trusted-proxy"]:
            raise usage.UsageError("--proxy-protocol needs --trusted-proxy")
        if self["trusted-proxy"] and not self["proxy-protocol"]:
            raise usage.UsageError("--trusted-proxy needs --proxy-protocol")
        self["trusted-proxies"] = None
        if self["proxy-protocol"]:
            try:
                self["trusted-proxies"] = TrustedProxies.fromStrings(self["trusted-proxy"])
            except ValueError as e:
                raise usage.UsageError(str(e))
        if self["tls-profile"] not in TLS_PROFILES:
            raise usage.UsageError(
                f"--tls-profile must be one of {', '.join(TLS_PROFILES)},"
                f" not {self['tls-profile']!r}"
            )
        if self["key"] is not None and self["cert"] is None:
            raise usage.UsageError("--key needs --cert")
        if self["client-cert"] not in ("none", "optional", "required"):
            raise usage.UsageError("--client-cert must be none, optional or required")
        if self["client-cert"] != "none" and self["client-ca"] is None:
            raise usage.UsageError(f"--client-cert {self['client-cert']} needs --client-ca")
        if self["cert-login"] and self["client-cert"] == "none":
            raise usage.UsageError("--cert-login needs --client-cert optional or required")
        if self["cert-map"] is not None and not self["cert-login"]:
            raise usage.UsageError("--cert-map needs --cert-login")
        try:
            self["certificate-files"] = self._certificateFiles()
            self["tls"] = self["certificate-files"].load()
        except CertificateError as e:
            raise usage.UsageError(str(e))
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        self["server-files-moved"] = []
        parent = getattr(self, "parent", None)
        if parent is not None:
            # Run by twistd: keep its pid file and log out of what we serve,
            # and keep Twisted's per-listener lines out of the log.
            served = [os.path.abspath(self[name] or ".") for name in ("root", "home")]
            dataDirectory = self["data-dir"] or defaultDataDirectory()
            try:
                self["server-files-moved"] = placeServerFiles(parent, served, dataDirectory)
            except OSError as e:
                raise usage.UsageError(f"cannot use data directory {dataDirectory}: {e}")
            if not installObserver(parent, self["log-format"], self["log-level"], reactor) and (
                self["log-format"] != "text" or self["log-level"] != "info"
            ):
                raise usage.UsageError(
                    "--log-format and --log-level cannot be combined with twistd's"
                    " --logger or --syslog"
                )
        self["transfer-log"] = self._openTransferLog(reactor)
        self["cert-mapping"] = None
        if self["cert-map"] is not None:
            try:
                with open(self["cert-map"], encoding="utf-8") as f:
                    self["cert-mapping"] = parseCertificateMap(f.read(), self["cert-map"])
            except OSError as e:
                raise usage.UsageError(f"cannot read --cert-map {self['cert-map']}: {e.strerror}")
            except (CertificateMapError, UnicodeDecodeError) as e:
                raise usage.UsageError(str(e))

    def _openTransferLog(self, reactor: Any) -> TransferLog | None:
        path = self["xferlog"]
        if path is None:
            return None
        path = os.path.abspath(path)
        root = os.path.abspath(self["root"] or ".")
        served = [root, os.path.abspath(self["home"]) if self["home"] else root]
        if insideServedTree(path, served):
            raise usage.UsageError(
                f"--xferlog {path} is inside a served tree: users could download it"
            )
        try:
            return TransferLog(path, reactor)
        except OSError as e:
            raise usage.UsageError(f"cannot open --xferlog {path}: {e.strerror}")

    def _certificateFiles(self) -> CertificateFiles:
        """
        Where the TLS material lives: C{--cert}, C{--key} and C{--client-ca},
        or the certificate generated under the data directory (generated
        now if missing).
        """
        profile = TLS_PROFILES[self["tls-profile"]]
        clientCA = FilePath(self["client-ca"]) if self["client-ca"] is not None else None
        extra: dict[str, Any] = {
            "clientCA": clientCA,
            "clientCertificates": self["client-cert"],
        }
        if self["cert"] is not None:
            cert = FilePath(self["cert"])
            key = FilePath(self["key"]) if self["key"] else cert
            return CertificateFiles(cert, key, profile, **extra)
        directory = FilePath(self["data-dir"] or defaultDataDirectory())
        try:
            files, generated = CertificateFiles.inDataDirectory(directory, profile, **extra)
        except OSError as e:
            raise CertificateError(f"cannot use data directory {directory.path}: {e}")
        if generated:
            _log.info("generated a self-signed certificate in {path}", path=directory.path)
        return files


class _ListeningService(StreamServerEndpointService):
    """
    Listens on one endpoint; a port that cannot be had stops the start with
    one line.
    """

    def __init__(self, description: str, endpoint: Any, factory: Any, kind: str) -> None:
        served: Any = factory
        if isinstance(factory, FTPSFactory) and factory.settings.trustedProxies is not None:
            served = ProxyProtocolFactory(factory)
        super().__init__(endpoint, served)  # type: ignore[no-untyped-call]
        self._description = description
        self._kind = kind
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except error.CannotListenError as e:
            raise SystemExit(
                f"twistd ftps: error: cannot listen on {self._description}: {e.socketError}"
            )
        self._waitingForPort.addCallback(self._listening)  # type: ignore[union-attr]

    def _listening(self, port: Any) -> Any:
        address = port.getHost()
        _log.info(
            "txftps: {kind} listening on {host} port {port}",
            kind=self._kind,
            host=address.host,
            port=address.port,
        )
        return port


class FTPSService(service.MultiService):
    """
    The C{twistd ftps} service: one listening child per endpoint, and
    SIGHUP reloading the TLS material while it runs.

    @ivar reloader: reloads the certificate, key and client CAs of every
        factory (set by L{makeService} once the factories exist).
    """

    def __init__(self, reloader: CertificateReloader | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reloader = reloader

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.reloader is not None:
            self.reloader.installSignalHandler()

    def stopService(self) -> Any:
        if self.reloader is not None:
            self.reloader.removeSignalHandler()
        return super().stopService()  # type: ignore[no-untyped-call]


def makeService(options: Options, worker: Any = None) -> service.MultiService:
    """
    Build the FTPS service from parsed options.

    @param worker: (private) the L{txftps._worker.WorkerRuntime} of a worker
        process of C{--workers N}: it supplies the shared caps and bans and
        the listening sockets the parent handed over. Without it, C{--workers
        N} over 1 makes the parent's service (L{txftps._workers}).
    """
    from twisted.internet import reactor

    if worker is None and options["workers"] > 1:
        from txftps._workers import makeWorkerPool

        top = makeWorkerPool(reactor, options, options["data-dir"] or defaultDataDirectory())
        _logStart(options)
        return top

    root = FilePath(os.path.abspath(options["root"] or "."))
    home = FilePath(os.path.abspath(options["home"])) if options["home"] else root
    checkers = options.get("credCheckers") or [
        strcred.makeChecker("anonymous"),
    ]
    chain = [normalizeChecker(c) for c in checkers]
    if options["cert-login"]:
        chain.append(ClientCertificateChecker(options["cert-mapping"]))
    realm = FTPSRealm(root, home, readOnlyUsers=frozenset(options["read-only-user"]))
    portal = Portal(realm, [CheckerChain(chain)])
    settings = ServerSettings(
        policy=SessionPolicy(tlsRequired=options["tls-required"]),
        requireResumption=options["session-reuse"] == "required",
        requireUploadCloseNotify=options["upload-close-notify"] == "required",
        passivePorts=options["passive-ports"],
        masquerade=options["masquerade"],
        handshakeTimeout=options["handshake-timeout"],
        idleTimeout=options["idle-timeout"],
        dataTimeout=options["data-timeout"],
        maxLoginAttempts=options["max-login-attempts"],
        allowCCC=bool(options["allow-ccc"]),
        allowFXP=bool(options["allow-fxp"]),
        certificateLogin=bool(options["cert-login"]),
        trustedProxies=options["trusted-proxies"],
    )
    tls: ServerTLS = options["tls"]
    top = FTPSService()
    observers: list[Any] = []
    transferLog: TransferLog | None = options.get("transfer-log")
    if transferLog is not None:
        observers.append(transferLog)
        ReopenOnSignal(transferLog, reactor).setServiceParent(top)  # type: ignore[no-untyped-call]
    if options["metrics"] is not None:
        metrics = ServerMetrics()
        observers.append(metrics)
        _ListeningService(
            options["metrics"],
            endpoints.serverFromString(reactor, options["metrics"]),
            metricsSite(metrics),
            "metrics (HTTP /metrics)",
        ).setServiceParent(top)  # type: ignore[no-untyped-call]
    limits = ConnectionLimits(options["max-clients"], options["max-clients-per-ip"])
    bans = LoginBans(reactor, options["ban-after"], options["ban-time"])
    if worker is not None:
        limits, bans = worker.share(limits, bans)
    explicit = FTPSFactory(
        reactor,
        portal,
        tls,
        settings,
        limits=limits,
        bans=bans,
        observer=FanOutObserver(observers) if observers else None,
    )
    implicit = explicit.withImplicitTLS()
    top.reloader = CertificateReloader(reactor, options["certificate-files"], [explicit, implicit])
    for descriptions, factory in ((options["listen"], explicit), (options["implicit"], implicit)):
        for description in descriptions:
            if worker is not None:
                worker.adopt(factory).setServiceParent(top)
                continue
            endpoint = listeningEndpoint(reactor, description)
            kind = "implicit FTPS" if factory.implicit else "explicit FTPS"
            _ListeningService(description, endpoint, factory, kind).setServiceParent(top)  # type: ignore[no-untyped-call]
    if worker is None:
        _logStart(options)
    return top


def _logStart(options: Options) -> None:
    _log.info(
        "txftps: explicit FTPS on {listen}, implicit FTPS on {implicit}",
        listen=", ".join(options["listen"]),
        implicit=", ".join(options["implicit"]) or "none",
    )
    tls: ServerTLS = options["tls"]
    _log.info("txftps: certificate SHA-256 fingerprint {fp}", fp=tls.fingerprint)
    _log.info(
        "txftps: TLS profile {profile} ({summary}); {openssl}",
        profile=tls.profile.name,
        summary=tls.profile.summary,
        openssl=describeOpenSSL(),
    )
    for moved in options["server-files-moved"]:
        _log.info("txftps: {moved}, outside the served tree", moved=moved)
