# -*- test-case-name: tests.test_testing -*-
"""
A throwaway certificate authority for tests: a CA made in memory with
C{cryptography}, server certificates for loopback and client certificates
for users, each with its PEM bytes, SHA-256 fingerprint and files on request.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL.crypto import PKey
from twisted.python.filepath import FilePath

from txftps.tls import ServerTLS, fingerprint

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """
    A certificate issued by a L{CertificateAuthority}, with its key.

    @ivar certificate: the certificate.
    @ivar privateKey: its private key.
    @ivar authority: the CA certificate that signed it.
    """

    certificate: x509.Certificate
    privateKey: ec.EllipticCurvePrivateKey
    authority: x509.Certificate

    @property
    def certificatePEM(self) -> bytes:
        """
        The certificate, PEM-encoded.
        """
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def privateKeyPEM(self) -> bytes:
        """
        The private key, PEM-encoded (PKCS#8, unencrypted).
        """
        return _pem(self.privateKey)

    @property
    def fingerprint(self) -> str:
        """
        The SHA-256 fingerprint of the certificate, C{AB:01:...}, as
        C{twistd ftps} logs it and C{txftps --pin} takes it.
        """
        return fingerprint(self.certificate)

    def writeTo(self, directory: FilePath[str], name: str) -> tuple[FilePath[str], FilePath[str]]:
        """
        Write the certificate and its key as PEM files.

        @param directory: an existing directory.
        @param name: the files are C{NAME-cert.pem} and C{NAME-key.pem}.
        @return: the certificate and key paths; the key file has mode 0600.
        """
        certPath = directory.child(f"{name}-cert.pem")
        keyPath = directory.child(f"{name}-key.pem")
        certPath.setContent(self.certificatePEM)
        fd = os.open(keyPath.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.privateKeyPEM)
        return certPath, keyPath

    def serverTLS(self) -> ServerTLS:
        """
        This certificate and key as a server's L{ServerTLS}.
        """
        return ServerTLS((self.certificate,), PKey.from_cryptography_key(self.privateKey))


class CertificateAuthority:
    """
    A certificate authority that lives for one test: an ECDSA P-256 key and a
    self-signed CA certificate, both in memory.

    @ivar certificate: the CA certificate.
    """

    def __init__(self, name: str = "txftps.testing throwaway CA") -> None:
        """
        @param name: the CA's common name.
        """
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def certificatePEM(self) -> bytes:
        """
        The CA certificate, PEM-encoded: what a client under test trusts.
        """
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        commonName: str,
        alternatives: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if alternatives:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternatives), critical=False
            )
        return IssuedCertificate(builder.sign(self._key, hashes.SHA256()), key, self.certificate)

    def issueServerCertificate(self, *hostnames: str) -> IssuedCertificate:
        """
        Issue a server certificate.

        @param hostnames: DNS names and IP addresses for its subjectAltName;
            none means C{127.0.0.1}, C{localhost} and C{::1}.
        """
        names: list[x509.GeneralName] = []
        for host in hostnames or _LOOPBACK:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue((hostnames or _LOOPBACK)[0], names, ExtendedKeyUsageOID.SERVER_AUTH)

    def issueClientCertificate(self, commonName: str) -> IssuedCertificate:
        """
        Issue a client certificate whose subject CN is C{commonName} (the user
        name it logs in as with certificate login).
        """
        return self._issue(commonName, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def clientContext(self, certificate: IssuedCertificate | None = None) -> ssl.SSLContext:
        """
        A Python C{ssl} client context that trusts this CA only (host names
        checked), presenting C{certificate} when given.
        """
        context = ssl.create_default_context(cadata=self.certificatePEM.decode("ascii"))
        if certificate is not None:
            _loadChain(context, certificate)
        return context


def _loadChain(context: ssl.SSLContext, certificate: IssuedCertificate) -> None:
    """
    Load a client certificate into C{context}: C{ssl} only loads files, so
    they go to an anonymous temporary directory that is removed at once.
    """
    with tempfile.TemporaryDirectory(prefix="txftps-client-") as directory:
        certPath, keyPath = certificate.writeTo(FilePath(directory), "client")
        context.load_cert_chain(certPath.path, keyPath.path)
