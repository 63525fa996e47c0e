"""
The txftps dropin: the C{twistd ftps} service maker (everything lives in
L{txftps.tap}) and the C{--auth htpasswd:PATH} checker factory.
"""

from twisted.application.service import ServiceMaker

from txftps.auth import htpasswdCheckerFactory

ftps = ServiceMaker("txftps", "txftps.tap", "An FTPS server (explicit and implicit TLS).", "ftps")

__all__ = ["ftps", "htpasswdCheckerFactory"]
