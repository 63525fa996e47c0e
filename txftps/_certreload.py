# -*- test-case-name: tests.test_certreload -*-
"""
Certificate reload: SIGHUP re-reads the certificate, the key and the client
CAs, and the server's factories serve the new material to new connections.

A control connection takes its TLS options (and so its context) from its
factory's L{ServerTLS} once, when its TLS starts; its data connections use
that same context. Swapping the factories' L{ServerTLS} therefore leaves
every open session as it was: its data connections still resume the session
it started with, under the old certificate, until it ends.

A reload is all or nothing: when any file is missing, unreadable, malformed
or outside the TLS profile, nothing changes and one line says why
(C{certificate reload failed: ...}).

Usage::

    reloader = CertificateReloader(reactor, files, [explicit, implicit])
    reloader.installSignalHandler()
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

from twisted.logger import Logger

from txftps.server import FTPSFactory
from txftps.tls import CertificateError, CertificateFiles, ServerTLS

_log = Logger()


class CertificateReloader:
    """
    Reloads the TLS material of a server's factories, on demand or on a
    signal.

    @ivar files: where the material lives.
    @ivar factories: the factories whose C{tls} a reload replaces (explicit
        and implicit alike).
    @ivar signalNumber: the signal that triggers a reload.
    """

    def __init__(
        self,
        reactor: Any,
        files: CertificateFiles,
        factories: Sequence[FTPSFactory],
        signalNumber: int = signal.SIGHUP,
    ) -> None:
        """
        @param reactor: an C{IReactorThreads}; the signal handler hands the
            reload to it with C{callFromThread}.
        """
        self._reactor = reactor
        self.files = files
        self.factories = list(factories)
        self.signalNumber = signalNumber
        self._previousHandler: Any = None
        self._installed = False

    def reload(self) -> ServerTLS | None:
        """
        Load the material again and give it to every factory; on any error
        keep the current material and log one line.

        @return: the new material, or C{None} when the reload failed.
        """
        current = self.factories[0].tls if self.factories else None
        try:
            tls = self.files.load()
        except CertificateError as e:
            _log.error(
                "certificate reload failed: {reason}; still serving the certificate"
                " with SHA-256 fingerprint {fingerprint}",
                reason=str(e),
                fingerprint=current.fingerprint if current is not None else "(none)",
            )
            return None
        for factory in self.factories:
            factory.tls = tls
        _log.info(
            "certificate reloaded: SHA-256 fingerprint {fingerprint}{clientCAs}",
            fingerprint=tls.fingerprint,
            clientCAs=(
                f", {len(tls.clientCAs)} client CA certificate(s)"
                if tls.clientCertificates != "none"
                else ""
            ),
        )
        return tls

    def _signalled(self, signalNumber: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the
        # reactor thread was doing: leave the work to the reactor.
        self._reactor.callFromThread(self.reload)

    def installSignalHandler(self) -> None:
        """
        Reload on every L{signalNumber} from now on.
        """
        if self._installed:
            return
        try:
            self._previousHandler = signal.signal(self.signalNumber, self._signalled)
        except ValueError as e:
            # Not the main thread (an embedding application's choice).
            _log.warn("certificate reload on signal unavailable: {reason}", reason=str(e))
            return
        self._installed = True

    def removeSignalHandler(self) -> None:
        """
        Give the signal back to the handler it had before
        L{installSignalHandler}.
        """
        if not self._installed:
            return
        previous = self._previousHandler
        signal.signal(self.signalNumber, previous if previous is not None else signal.SIG_DFL)
        self._installed = False
