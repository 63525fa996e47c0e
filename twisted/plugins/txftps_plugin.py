"""
The C{twistd ftps} plugin; everything lives in L{txftps.tap}.
"""

from twisted.application.service import ServiceMaker

ftps = ServiceMaker("txftps", "txftps.tap", "An FTPS server (explicit and implicit TLS).", "ftps")
