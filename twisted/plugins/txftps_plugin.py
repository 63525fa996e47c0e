"""
The txftps dropin: the C{twistd ftps} service maker (everything lives in
L{txftps.tap}) and the C{--auth htpasswd:PATH} checker factory. Like
C{txftps.tap}, this is the edge where the global reactor is used.
"""

from typing import Any

from twisted.application.service import ServiceMaker

from txftps.auth import HtpasswdCheckerFactory


def _globalReactor() -> Any:
    from twisted.internet import reactor

    return reactor


ftps = ServiceMaker("txftps", "txftps.tap", "An FTPS server (explicit and implicit TLS).", "ftps")
htpasswdCheckerFactory = HtpasswdCheckerFactory(_globalReactor)

__all__ = ["ftps", "htpasswdCheckerFactory"]
