# -*- test-case-name: tests.test_certauth -*-
"""
Logging in with a client certificate.

With C{--client-cert optional|required} the TLS layer verifies client
certificates against C{--client-ca}; with C{--cert-login}, C{USER name} from a
client whose verified certificate names that user logs in at once (reply
232), without a password. Which user a certificate names:

 - by default, the subject's common name (CN);
 - with C{--cert-map FILE}, the file decides instead. One mapping a line,
   C{KEY USER}, where KEY is the certificate's SHA-256 fingerprint
   (C{AB:CD:...}, as C{openssl x509 -fingerprint -sha256} prints it) or its
   subject in RFC 4514 form (C{subject:CN=alice,O=Example}); blank lines and
   C{#} comments are skipped. A certificate the file does not list names no
   one.

The checker is an ordinary cred checker for L{IClientCertificate}, so an
application can register its own instead.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.cred import checkers, credentials, error
from twisted.internet import defer
from zope.interface import Attribute, implementer

from txftps.tls import fingerprint


class IClientCertificate(credentials.ICredentials):
    """
    A user name claimed by a client whose TLS certificate was verified.
    """

    username = Attribute("The user name the client sent with USER (str).")
    certificate = Attribute("The verified client certificate (cryptography x509).")


@implementer(IClientCertificate)
class ClientCertificate:
    """
    L{IClientCertificate} credentials.
    """

    def __init__(self, username: str, certificate: x509.Certificate) -> None:
        self.username = username
        self.certificate = certificate


class CertificateMapError(Exception):
    """
    The certificate map file cannot be used; the message says why.
    """


def parseCertificateMap(content: str, name: str = "certificate map") -> dict[str, str]:
    """
    Parse C{KEY USER} lines (see the module docstring).

    @return: fingerprint (upper-case, colon-separated) or C{subject:...} key
        to user name.
    @raise CertificateMapError: a line is malformed.
    """
    mapping: dict[str, str] = {}
    for number, raw in enumerate(content.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, user = line.rpartition(" ")
        key = key.strip()
        if not key or not user:
            raise CertificateMapError(f"{name} line {number}: expected KEY USER")
        if key.lower().startswith("subject:"):
            key = "subject:" + key[len("subject:") :]
        else:
            key = key.upper()
            if len(key.split(":")) != 32:
                raise CertificateMapError(
                    f"{name} line {number}: expected a SHA-256 fingerprint or subject:..."
                )
        mapping[key] = user
    return mapping


def _commonName(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


@implementer(checkers.ICredentialsChecker)
class ClientCertificateChecker:
    """
    Maps a verified client certificate to the user it names, and accepts the
    login when that is the user asked for.

    @ivar mapping: C{None} to use the subject CN; else a map from
        L{parseCertificateMap}.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        self.mapping = mapping

    def userFor(self, certificate: x509.Certificate) -> str | None:
        """
        The user C{certificate} names, or C{None}.
        """
        if self.mapping is None:
            return _commonName(certificate)
        byPrint = self.mapping.get(fingerprint(certificate))
        if byPrint is not None:
            return byPrint
        return self.mapping.get("subject:" + certificate.subject.rfc4514_string())

    def requestAvatarId(self, creds: Any) -> defer.Deferred[Any]:
        user = self.userFor(creds.certificate)
        if user is not None and user == creds.username:
            return defer.succeed(user)
        return defer.fail(error.UnauthorizedLogin("the certificate does not name this user"))
