"""
Tests for L{txftps._tlsprofiles} and C{twistd ftps --tls-profile}: what each
profile offers and refuses, in memory and against the real server with
C{openssl s_client} offering exactly what a profile must refuse; the
certificates each profile refuses at start; a data transfer under each
profile.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet.ssl import CertificateOptions
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from tests import support
from tests.support import (
    memoryClient,
    memoryClientContext,
    memoryHandshake,
    memoryServerTLS,
)
from txftps._internals import setGroups
from txftps.tls import (
    COMPATIBLE,
    FIPS,
    MODERN,
    TLS_PROFILES,
    CertificateError,
    ServerTLS,
    describeOpenSSL,
)

PAYLOAD = os.urandom(100_000)


def _server(context: SSL.Context) -> SSL.Connection:
    server = SSL.Connection(context, None)
    server.set_accept_state()
    return server


def selfSigned(key: Any, algorithm: hashes.HashAlgorithm | None = None) -> x509.Certificate:
    """
    A self-signed certificate for 127.0.0.1 and localhost on C{key}, signed
    with C{algorithm} (SHA-256 by default; C{None} for EdDSA keys).
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "txftps test")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, algorithm if not isinstance(key, ed25519.Ed25519PrivateKey) else None)
    )


def writeSelfSigned(
    directory: str, name: str, key: Any, algorithm: hashes.HashAlgorithm | None = None
) -> tuple[str, str]:
    """
    Write a L{selfSigned} certificate and its key as PEM files.

    @return: the certificate and key paths.
    """
    certificate = selfSigned(key, algorithm or hashes.SHA256())
    certFile = os.path.join(directory, f"{name}-cert.pem")
    keyFile = os.path.join(directory, f"{name}-key.pem")
    support.writeFile(certFile, certificate.public_bytes(serialization.Encoding.PEM))
    support.writeFile(
        keyFile,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return certFile, keyFile


def memoryTLS(key: Any, algorithm: hashes.HashAlgorithm | None = None) -> ServerTLS:
    """
    A L{ServerTLS} (profile C{compatible}, unchecked) for a L{selfSigned}
    certificate on C{key}.
    """
    from OpenSSL.crypto import PKey

    certificate = selfSigned(key, algorithm or hashes.SHA256())
    return ServerTLS((certificate,), PKey.from_cryptography_key(key))


class ProfileTableTests(SynchronousTestCase):
    """
    The three profiles by name.
    """

    def test_names(self) -> None:
        """
        C{TLS_PROFILES} maps C{modern}, C{compatible} and C{fips} to their
        profiles, and a L{ServerTLS} is C{compatible} unless told otherwise.
        """
        self.assertEqual(
            dict(TLS_PROFILES), {"modern": MODERN, "compatible": COMPATIBLE, "fips": FIPS}
        )
        tls, _ = memoryServerTLS()
        self.assertIs(tls.profile, COMPATIBLE)

    def test_optionDefault(self) -> None:
        """
        C{twistd ftps} without C{--tls-profile} uses C{compatible}; the
        option picks the others.
        """
        from txftps.tap import Options

        for args, expected in (((), COMPATIBLE), (("--tls-profile", "modern"), MODERN)):
            options = Options()
            options.parseOptions(["--data-dir", os.path.abspath(self.mktemp()), *args])
            self.assertIs(options["tls"].profile, expected)

    def test_describeOpenSSL(self) -> None:
        """
        The start line names the OpenSSL version pyOpenSSL runs and whether
        a FIPS provider is active.
        """
        description = describeOpenSSL()
        self.assertTrue(
            description.startswith(SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()),
            description,
        )
        self.assertRegex(description, r", FIPS provider (not active|active|state unknown)$")


class MemoryHandshakeTests(SynchronousTestCase):
    """
    Each profile's contexts negotiate what it allows and refuse the rest
    (pyOpenSSL clients in memory).
    """

    def handshake(self, tls: ServerTLS, configure: Any) -> SSL.Connection:
        """
        Run a handshake between a context of C{tls} and a client context
        that C{configure} restricts.

        @return: the server connection.
        """
        context = memoryClientContext()
        configure(context)
        server = _server(tls.optionsForConnection().getContext())
        memoryHandshake(server, memoryClient(context))
        return server

    def test_modernRefusesTLS12(self) -> None:
        """
        C{modern} refuses a TLS 1.2 client that C{compatible} serves, and
        serves TLS 1.3.
        """
        tls, _ = memoryServerTLS()

        def tls12(context: SSL.Context) -> None:
            context.set_max_proto_version(SSL.TLS1_2_VERSION)

        self.handshake(tls, tls12)
        modern = tls.withProfile(MODERN)
        self.assertRaises(SSL.Error, self.handshake, modern, tls12)
        server = self.handshake(modern, lambda context: None)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.3")

    def test_compatibleRefusesCBCAndRSAKeyExchange(self) -> None:
        """
        With an RSA certificate, C{compatible} refuses TLS 1.2 clients that
        offer only a CBC cipher or only RSA key exchange, which a context
        with Twisted's default ciphers serves; it serves ECDHE with AES-GCM.
        """
        key = rsa.generate_private_key(65537, 2048)
        tls = memoryTLS(key)
        for cipher in (b"AES128-SHA", b"AES128-GCM-SHA256", b"ECDHE-RSA-AES128-SHA"):

            def only(context: SSL.Context, cipher: bytes = cipher) -> None:
                context.set_max_proto_version(SSL.TLS1_2_VERSION)
                context.set_cipher_list(cipher)

            client = memoryClientContext()
            only(client)
            twistedDefault = CertificateOptions(
                privateKey=tls.key, certificate=X509.from_cryptography(tls.chain[0])
            )
            memoryHandshake(_server(twistedDefault.getContext()), memoryClient(client))
            self.assertRaises(SSL.Error, self.handshake, tls, only)

        def gcm(context: SSL.Context) -> None:
            context.set_max_proto_version(SSL.TLS1_2_VERSION)
            context.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256")

        server = self.handshake(tls, gcm)
        self.assertEqual(server.get_cipher_name(), "ECDHE-RSA-AES128-GCM-SHA256")

    def test_fipsRefusesChaCha20(self) -> None:
        """
        C{fips} refuses a TLS 1.3 client that offers only
        ChaCha20-Poly1305, which C{compatible} serves.
        """
        tls, _ = memoryServerTLS()

        def chacha(context: SSL.Context) -> None:
            context.set_tls13_ciphersuites(b"TLS_CHACHA20_POLY1305_SHA256")

        server = self.handshake(tls, chacha)
        self.assertEqual(server.get_cipher_name(), "TLS_CHACHA20_POLY1305_SHA256")
        self.assertRaises(SSL.Error, self.handshake, tls.withProfile(FIPS), chacha)

    def test_fipsRefusesX25519(self) -> None:
        """
        C{fips} refuses a client that offers only X25519 for key exchange,
        TLS 1.3 and TLS 1.2, which C{compatible} serves; it serves P-256 and
        P-384. (An RSA certificate: with an ECDSA one a TLS 1.2 client must
        offer the certificate's curve anyway.)
        """
        tls = memoryTLS(rsa.generate_private_key(65537, 2048))
        fips = tls.withProfile(FIPS)
        for version in (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION):

            def groups(context: SSL.Context, names: bytes, version: int = version) -> None:
                context.set_max_proto_version(version)
                setGroups(context, names)

            self.handshake(tls, lambda c: groups(c, b"X25519"))
            self.assertRaises(SSL.Error, self.handshake, fips, lambda c: groups(c, b"X25519"))
            self.handshake(fips, lambda c: groups(c, b"P-256"))
            self.handshake(fips, lambda c: groups(c, b"P-384"))


class MaterialTests(SynchronousTestCase):
    """
    L{ServerTLS.withProfile} refuses certificates and keys outside the
    profile, with one line.
    """

    def assertRefused(self, tls: ServerTLS, profile: Any, *fragments: str) -> None:
        error = self.assertRaises(CertificateError, tls.withProfile, profile, "cert.pem")
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertIn(f"cert.pem does not fit TLS profile {profile.name}", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_rsa1024RefusedByAll(self) -> None:
        """
        An RSA key of 1024 bits is refused by every profile.
        """
        tls = memoryTLS(rsa.generate_private_key(65537, 1024))
        for profile in (MODERN, COMPATIBLE, FIPS):
            self.assertRefused(tls, profile, "RSA key of 1024 bits", "at least 2048")

    def test_rsa2048Accepted(self) -> None:
        """
        An RSA key of 2048 bits signed with SHA-256 fits every profile.
        """
        tls = memoryTLS(rsa.generate_private_key(65537, 2048))
        for profile in (MODERN, COMPATIBLE, FIPS):
            self.assertIs(tls.withProfile(profile).profile, profile)

    def test_p521OnlyOutsideFIPS(self) -> None:
        """
        An ECDSA P-521 key fits C{modern} and C{compatible}, not C{fips};
        P-384 fits C{fips}.
        """
        tls = memoryTLS(ec.generate_private_key(ec.SECP521R1()), hashes.SHA384())
        tls.withProfile(COMPATIBLE)
        tls.withProfile(MODERN)
        self.assertRefused(tls, FIPS, "secp521r1", "only P-256 and P-384")
        memoryTLS(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()).withProfile(FIPS)

    def test_ed25519OnlyOutsideFIPS(self) -> None:
        """
        An Ed25519 key fits C{compatible}, not C{fips}.
        """
        tls = memoryTLS(ed25519.Ed25519PrivateKey.generate())
        tls.withProfile(COMPATIBLE)
        self.assertRefused(tls, FIPS, "EdDSA key")

    def test_sha512SignatureOutsideFIPS(self) -> None:
        """
        A certificate signed with SHA-512 fits C{compatible}, not C{fips}.
        """
        tls = memoryTLS(ec.generate_private_key(ec.SECP256R1()), hashes.SHA512())
        tls.withProfile(COMPATIBLE)
        self.assertRefused(tls, FIPS, "signed with SHA512", "only SHA-256 and SHA-384")

    def test_fromFilesChecks(self) -> None:
        """
        L{ServerTLS.fromFiles} checks the profile it is given and names the
        certificate file.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert, key = writeSelfSigned(directory, "p521", ec.generate_private_key(ec.SECP521R1()))
        tls = ServerTLS.fromFiles(FilePath(cert), FilePath(key))
        self.assertIs(tls.profile, COMPATIBLE)
        error = self.assertRaises(
            CertificateError, ServerTLS.fromFiles, FilePath(cert), FilePath(key), FIPS
        )
        self.assertIn(f"certificate {cert} does not fit TLS profile fips", str(error))


class RSAThrowawayCA(support.ThrowawayCA):
    """
    A L{support.ThrowawayCA} whose server certificate has an RSA 2048 key,
    so that TLS 1.2 RSA key exchange is possible at all.
    """

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.server = self.ca.issue_cert(
            "127.0.0.1", "localhost", "::1", key_type=trustme.KeyType.RSA
        )
        with open(self.certFile, "wb") as f:
            for blob in self.server.cert_chain_pems:
                f.write(blob.bytes())
        self.server.private_key_pem.write_to_path(self.keyFile)


class ProfileServerTestCase(support.ServerLogTestCase):
    """
    Starts a real server with a profile and probes it with
    C{openssl s_client} and a data transfer.
    """

    def startServer(self, *args: str, rsaCertificate: bool = False) -> support.TwistdServer:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca = RSAThrowawayCA(directory) if rsaCertificate else support.ThrowawayCA(directory)
        self.server = support.TwistdServer(*args, ca=ca, users={"alice": "secret"}).start()
        self.addCleanup(self.server.stop)
        support.writeFile(os.path.join(self.server.root, "file.bin"), PAYLOAD)
        # lftp does not run TLS for anonymous logins: it logs in as alice.
        support.writeFile(os.path.join(self.server.userHome("alice"), "file.bin"), PAYLOAD)
        return self.server

    def serverLog(self, tail: int = 4000) -> str:
        return "\nserver log:\n" + self.server.log()[-tail:]

    def sClient(self, *args: str, implicit: bool = True) -> tuple[bool, str]:
        """
        Run C{openssl s_client ARGS} against the server (implicit port, or
        explicit with C{-starttls ftp}), verifying its certificate, and send
        C{QUIT}.

        @return: whether the FTP session worked over TLS (C{QUIT} answered
            with 221), and the client's output.
        """
        command = [support.requireProgram("openssl"), "s_client"]
        port = self.server.implicitPort if implicit else self.server.explicitPort
        if not implicit:
            command += ["-starttls", "ftp"]
        command += [
            "-connect",
            f"{support.LOOPBACK}:{port}",
            "-CAfile",
            self.server.ca.caFile,
            "-verify_return_error",
            "-ign_eof",
            *args,
        ]
        result = subprocess.run(
            command,
            input=b"QUIT\r\n",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=30,
        )
        output = result.stdout.decode("utf-8", "replace")
        return "221 Goodbye." in output, output

    def assertServed(self, *args: str, implicit: bool = True, expect: str = "") -> None:
        """
        C{openssl s_client ARGS} completes a handshake and an FTP exchange;
        C{expect}, when given, appears in its output (a cipher name).
        """
        worked, output = self.sClient(*args, implicit=implicit)
        if not worked or expect not in output:
            self.fail(f"s_client {' '.join(args)} was not served:\n{output}" + self.serverLog())

    def assertRefused(self, *args: str, implicit: bool = True) -> None:
        """
        C{openssl s_client ARGS} fails its handshake: an alert, no reply
        over TLS.
        """
        worked, output = self.sClient(*args, implicit=implicit)
        if worked or "alert" not in output:
            self.fail(f"s_client {' '.join(args)} was not refused:\n{output}")

    def transfer(self, context: ssl.SSLContext) -> tuple[str | None, tuple[str, str, int] | None]:
        """
        Log in anonymously over explicit FTPS with C{context} and download
        a file over a protected data connection, which must resume the
        control connection's session.

        @return: the data connection's protocol version and cipher.
        """
        control = support.loggedInSession(self.server, context=context)
        self.addCleanup(control.close)
        first, data = support.startTransfer(control, "RETR file.bin")
        self.assertEqual(first[0], 150, first)
        assert isinstance(data, ssl.SSLSocket)
        self.assertTrue(data.session_reused, "the data connection did not resume")
        version, cipher = data.version(), data.cipher()
        received, _ = support.readUntilClosed(data, 10)
        data.close()
        self.assertEqual(control.reply(10)[0], 226)
        self.assertSameBytes(received, PAYLOAD, "RETR file.bin")
        return version, cipher


class ModernTests(ProfileServerTestCase):
    """
    C{--tls-profile modern}: TLS 1.3 only.
    """

    def test_refusesTLS12(self) -> None:
        """
        C{s_client -tls1_2} is refused on the implicit and the explicit port;
        C{-tls1_3} is served on both.
        """
        self.startServer("--tls-profile", "modern")
        for implicit in (True, False):
            self.assertRefused("-tls1_2", implicit=implicit)
            self.assertServed("-tls1_3", implicit=implicit, expect="TLSv1.3")

    def test_dataTransfer(self) -> None:
        """
        A download works; its data connection runs TLS 1.3. curl and lftp
        download too.
        """
        self.startServer("--tls-profile", "modern")
        version, _ = self.transfer(self.server.ca.clientContext())
        self.assertEqual(version, "TLSv1.3")
        result = support.curl(self.server, "-o", "-", path="/file.bin")
        self.assertSucceeded(result, "curl")
        self.assertSameBytes(result.stdout, PAYLOAD, "curl")
        result = support.lftp(self.server, "cat file.bin", user="alice,secret")
        self.assertSucceeded(result, "lftp")
        self.assertSameBytes(result.stdout, PAYLOAD, "lftp")


class CompatibleTests(ProfileServerTestCase):
    """
    The default profile, C{compatible}: TLS 1.2 and 1.3 with forward-secret
    AEAD ciphers only.
    """

    def test_rsaCertificate(self) -> None:
        """
        With an RSA certificate and no C{--tls-profile}, TLS 1.2 clients
        offering only CBC ciphers (with or without ECDHE) or only RSA key
        exchange are refused; ECDHE with AES-GCM and TLS 1.3 are served.
        """
        self.startServer(rsaCertificate=True)
        for cipher in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"):
            self.assertRefused("-tls1_2", "-cipher", cipher)
        self.assertServed(
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256",
            expect="ECDHE-RSA-AES128-GCM-SHA256",
        )
        self.assertServed("-tls1_3", expect="TLSv1.3")

    def test_ecdsaCertificate(self) -> None:
        """
        With an ECDSA certificate, C{--tls-profile compatible} refuses a TLS
        1.2 client offering only C{ECDHE-ECDSA-AES128-SHA} (CBC) and serves
        C{ECDHE-ECDSA-AES128-GCM-SHA256} and ChaCha20-Poly1305, explicit and
        implicit.
        """
        self.startServer("--tls-profile", "compatible")
        for implicit in (True, False):
            self.assertRefused("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA", implicit=implicit)
            for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
                self.assertServed("-tls1_2", "-cipher", cipher, implicit=implicit, expect=cipher)

    def test_dataTransferTLS12(self) -> None:
        """
        A TLS 1.2 client downloads a file; its data connection runs TLS 1.2
        with an ECDHE AEAD cipher.
        """
        self.startServer()
        context = self.server.ca.clientContext()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = self.transfer(context)
        self.assertEqual(version, "TLSv1.2")
        assert cipher is not None
        self.assertRegex(cipher[0], r"^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)")


class FIPSTests(ProfileServerTestCase):
    """
    C{--tls-profile fips}: FIPS 140-approved algorithms only.
    """

    # An RSA certificate: with ECDSA, a TLS 1.2 client must offer the
    # certificate's curve, so offering only X25519 fails under any profile.
    probes = (
        ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"),
        ("-tls1_3", "-groups", "X25519"),
        ("-tls1_2", "-groups", "X25519"),
        ("-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("-tls1_2", "-sigalgs", "RSA+SHA512:RSA-PSS+SHA512"),
    )

    def test_refusesWhatIsNotApproved(self) -> None:
        """
        Refused: TLS 1.3 offering only ChaCha20-Poly1305; X25519 as the only
        group, TLS 1.3 and 1.2; TLS 1.2 offering only ChaCha20-Poly1305;
        TLS 1.2 offering only SHA-512 signatures. Served: AES-256-GCM over
        P-256, and over P-384, and TLS 1.2 AES-GCM on the explicit port.
        """
        self.startServer("--tls-profile", "fips", rsaCertificate=True)
        for probe in self.probes:
            self.assertRefused(*probe)
        for group in ("P-256", "P-384"):
            self.assertServed(
                "-tls1_3",
                "-ciphersuites",
                "TLS_AES_256_GCM_SHA384",
                "-groups",
                group,
                expect="TLS_AES_256_GCM_SHA384",
            )
        self.assertServed(
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES256-GCM-SHA384",
            implicit=False,
            expect="ECDHE-RSA-AES256-GCM-SHA384",
        )

    def test_sameProbesServedByCompatible(self) -> None:
        """
        The probes that C{fips} refuses are served by C{compatible}: they
        offer something real, and the refusals are the profile's.
        """
        self.startServer("--tls-profile", "compatible", rsaCertificate=True)
        for probe in self.probes:
            self.assertServed(*probe)

    def test_dataTransfer(self) -> None:
        """
        A download works; the data connection uses AES-GCM.
        """
        self.startServer("--tls-profile", "fips")
        _, cipher = self.transfer(self.server.ca.clientContext())
        assert cipher is not None
        self.assertIn(cipher[0], ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"))

    def test_curlAndLftp(self) -> None:
        """
        curl (OpenSSL) and lftp (GnuTLS) download a file under C{fips}, over
        explicit and implicit FTPS, with their default settings.
        """
        self.startServer("--tls-profile", "fips")
        for implicit in (False, True):
            result = support.curl(self.server, "-o", "-", path="/file.bin", implicit=implicit)
            self.assertSucceeded(result, f"curl (implicit={implicit})")
            self.assertSameBytes(result.stdout, PAYLOAD, "curl")
            result = support.lftp(
                self.server, "cat file.bin", implicit=implicit, user="alice,secret"
            )
            self.assertSucceeded(result, f"lftp (implicit={implicit})")
            self.assertSameBytes(result.stdout, PAYLOAD, "lftp")

    def test_startLine(self) -> None:
        """
        The start log names the profile and the OpenSSL in use, and whether
        its FIPS provider is active.
        """
        self.startServer("--tls-profile", "fips")
        self.assertIn(
            "txftps: TLS profile fips (TLS 1.2 and 1.3, FIPS 140-approved algorithms only",
            self.server.log(),
        )
        self.assertIn(f"; {describeOpenSSL()}", self.server.log())


class StartRefusalTests(SynchronousTestCase):
    """
    A certificate or key outside the profile stops the start with one line.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_badProfileName(self) -> None:
        """
        An unknown profile name is one C{twistd ftps: error:} line naming the
        three profiles.
        """
        line = support.refusedStart("--tls-profile", "strict")
        self.assertIn("--tls-profile must be one of modern, compatible, fips", line)

    def test_fipsRefusesP521(self) -> None:
        """
        C{--tls-profile fips} with an ECDSA P-521 certificate: one line
        naming the file, the profile and the curve.
        """
        cert, key = writeSelfSigned(
            self.directory, "p521", ec.generate_private_key(ec.SECP521R1())
        )
        line = support.refusedStart("--tls-profile", "fips", "--cert", cert, "--key", key)
        self.assertIn(f"certificate {cert} does not fit TLS profile fips", line)
        self.assertIn("secp521r1", line)

    def test_fipsRefusesSHA512(self) -> None:
        """
        C{--tls-profile fips} with a certificate signed with SHA-512: one
        line.
        """
        cert, key = writeSelfSigned(
            self.directory, "sha512", ec.generate_private_key(ec.SECP256R1()), hashes.SHA512()
        )
        line = support.refusedStart("--tls-profile", "fips", "--cert", cert, "--key", key)
        self.assertIn("signed with SHA512", line)

    def test_rsa1024Refused(self) -> None:
        """
        The default profile refuses an RSA 1024 key at start (before, the
        server started and failed every handshake).
        """
        cert, key = writeSelfSigned(
            self.directory, "rsa1024", rsa.generate_private_key(65537, 1024)
        )
        line = support.refusedStart("--cert", cert, "--key", key)
        self.assertIn("does not fit TLS profile compatible", line)
        self.assertIn("RSA key of 1024 bits", line)

    def test_compatibleServesP521(self) -> None:
        """
        The P-521 certificate that C{fips} refuses starts the default
        profile and serves a client.
        """
        cert, key = writeSelfSigned(
            self.directory, "p521", ec.generate_private_key(ec.SECP521R1())
        )
        ca = support.ThrowawayCA(self.directory)
        ca.certFile, ca.keyFile, ca.caFile = cert, key, cert
        server = support.TwistdServer(ca=ca).start()
        self.addCleanup(server.stop)
        control = support.loggedInSession(server)
        self.addCleanup(control.close)
        assert isinstance(control.sock, ssl.SSLSocket)
        self.assertEqual(control.command("NOOP")[0], 200)
