# -*- test-case-name: tests.test_metrics -*-
"""
C{--metrics ENDPOINT}: the server's counters in the Prometheus text format,
served over HTTP at C{/metrics} from the reactor (no thread per scrape).

L{ServerMetrics} is an L{ISessionObserver<txftps.interfaces.ISessionObserver>}
that counts into its own C{prometheus_client} registry (never the global
one: one process may run several servers); L{metricsSite} serves it.

Metrics (counters end in C{_total}):

 - C{txftps_sessions}: control connections open now (admitted ones);
 - C{txftps_connections_refused_total{reason}}: refused at the door,
   C{banned} or C{limit};
 - C{txftps_logins_total{result}}: C{success} or C{failure};
 - C{txftps_bans_total}: addresses banned after failed logins;
 - C{txftps_tls_handshake_failures_total{reason}}: failed control-channel
   handshakes by OpenSSL's reason (C{unsupported_protocol},
   C{wrong_version_number}, ...), C{timeout} or C{connection_closed};
 - C{txftps_data_connections_refused_total{reason}}: data connections the
   gate refused or that never came (L{DATA_REFUSAL_REASONS});
 - C{txftps_transfers_total{direction,result}}: C{download}, C{upload} or
   C{listing}; C{complete} (226) or C{incomplete};
 - C{txftps_sent_bytes_total}, C{txftps_received_bytes_total}: bytes of
   data connections (files and listings, without TLS overhead), counted when each
   transfer ends.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from txftps._observers import SilentObserver, transferDirection
from txftps.interfaces import DATA_REFUSAL_REASONS


class ServerMetrics(SilentObserver):
    """
    Counts what the sessions of a server do, for Prometheus.

    @ivar registry: the C{prometheus_client} registry holding the metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("txftps_sessions", "Control connections open now.", registry=r)
        self.refusedConnections = Counter(
            "txftps_connections_refused",
            "Control connections refused at the door (banned address or connection caps).",
            ["reason"],
            registry=r,
        )
        self.logins = Counter("txftps_logins", "Login attempts by result.", ["result"], registry=r)
        self.bans = Counter("txftps_bans", "Addresses banned after failed logins.", registry=r)
        self.handshakeFailures = Counter(
            "txftps_tls_handshake_failures",
            "Failed TLS handshakes of control connections by reason.",
            ["reason"],
            registry=r,
        )
        self.dataRefusals = Counter(
            "txftps_data_connections_refused",
            "Data connections refused by the transfer gate or never ready, by reason.",
            ["reason"],
            registry=r,
        )
        self.transfers = Counter(
            "txftps_transfers",
            "Transfers that got their 150, by direction and result.",
            ["direction", "result"],
            registry=r,
        )
        self.sentBytes = Counter(
            "txftps_sent_bytes", "Bytes sent on data connections.", registry=r
        )
        self.receivedBytes = Counter(
            "txftps_received_bytes", "Bytes received on data connections.", registry=r
        )
        # Series that exist from the start read 0 instead of missing.
        for reason in ("banned", "limit"):
            self.refusedConnections.labels(reason)
        for result in ("success", "failure"):
            self.logins.labels(result)
        for reason in sorted(DATA_REFUSAL_REASONS):
            self.dataRefusals.labels(reason)
        for direction in ("download", "upload", "listing"):
            for result in ("complete", "incomplete"):
                self.transfers.labels(direction, result)

    def sessionOpened(self, peer: Any) -> None:
        self.sessions.inc()

    def sessionClosed(self, peer: Any) -> None:
        self.sessions.dec()

    def connectionRefused(self, peer: Any, reason: str) -> None:
        self.refusedConnections.labels(reason).inc()

    def tlsHandshakeFailed(self, peer: Any, reason: str) -> None:
        self.handshakeFailures.labels(reason).inc()

    def loginSucceeded(self, peer: Any, user: str) -> None:
        self.logins.labels("success").inc()

    def loginFailed(self, peer: Any, user: str) -> None:
        self.logins.labels("failure").inc()

    def addressBanned(self, peer: Any) -> None:
        self.bans.inc()

    def dataConnectionRefused(self, peer: Any, reason: str) -> None:
        self.dataRefusals.labels(reason).inc()

    def transferEnded(
        self, peer: Any, command: str, path: str, sent: int, received: int, code: int
    ) -> None:
        direction = transferDirection(command)
        self.transfers.labels(direction, "complete" if code == 226 else "incomplete").inc()
        self.sentBytes.inc(sent)
        self.receivedBytes.inc(received)


class MetricsResource(Resource):
    """
    The metrics of a registry in the Prometheus text format, rendered in
    the reactor thread.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        body: bytes = generate_latest(self._registry)
        return body


class _QuietSite(Site):
    """
    A site that writes no access-log line per scrape.
    """

    noisy = False

    def log(self, request: Any) -> None:
        pass


def metricsSite(metrics: ServerMetrics) -> Site:
    """
    The HTTP site for C{--metrics}: the metrics at C{/metrics}, 404
    elsewhere, no access log.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsResource(metrics.registry))
    return _QuietSite(root)  # type: ignore[no-untyped-call]
