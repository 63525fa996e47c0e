# -*- test-case-name: tests.test_tlsprofiles -*-
"""
TLS profiles: the protocol versions, ciphers, key-exchange groups and
signature algorithms a server offers, and the certificates and keys it
accepts, as one named choice (C{twistd ftps --tls-profile}).

 - C{modern}: TLS 1.3 only.
 - C{compatible} (the default): TLS 1.2 and 1.3, forward-secret AEAD ciphers
   only (ECDHE with AES-GCM or ChaCha20-Poly1305; no CBC, no RSA key
   exchange).
 - C{fips}: TLS 1.2 and 1.3 restricted to FIPS 140-approved algorithms:
   AES-GCM, ECDHE over P-256 or P-384, SHA-256 and SHA-384 signatures, RSA
   (2048 bits or more) or ECDSA P-256/P-384 keys. No ChaCha20-Poly1305, no
   X25519. This is an algorithm set, not a validated module: whether the
   OpenSSL underneath runs a validated FIPS provider is a property of its
   build, which L{describeOpenSSL} reports.

Every profile refuses, at start and on reload, a certificate or key that its
handshakes could not use or that is too weak (L{TLSProfile.problemWith}).

Key-exchange groups and signature algorithms have no public setter in
pyOpenSSL (C{set_tmp_ecdh} takes a single curve); they are set through
L{txftps._internals}.

Usage::

    profile = TLS_PROFILES["fips"]
    problem = profile.problemWith(chain, key)
    profile.configure(context)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import SSL

from txftps._internals import fipsProviderActive, setGroups, setSignatureAlgorithms

#: The smallest RSA key any profile accepts.
_MINIMUM_RSA_BITS = 2048
#: The smallest elliptic curve (in bits) any profile accepts.
_MINIMUM_EC_BITS = 256

_AEAD_TLS13 = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
_AES_GCM_TLS12 = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
)
# Security level 2: 112-bit security for every key and signature in the
# handshake, client certificates included (RSA >= 2048, no SHA-1).
_SECURITY_LEVEL = b":@SECLEVEL=2"


@dataclass(frozen=True)
class TLSProfile:
    """
    One value of C{--tls-profile}: what a server's TLS contexts offer and
    which certificates and keys it serves.

    @ivar name: the option value, e.g. C{"fips"}.
    @ivar summary: what the profile offers, in a few words for the start log.
    @ivar minimumVersion: the lowest protocol version (C{SSL.TLS1_2_VERSION}
        or C{SSL.TLS1_3_VERSION}); TLS 1.3 is always the highest.
    @ivar tls12Ciphers: the OpenSSL cipher list for TLS 1.2.
    @ivar tls13Ciphersuites: the TLS 1.3 cipher suites.
    @ivar groups: the key-exchange groups, or C{None} for OpenSSL's default.
    @ivar signatureAlgorithms: the signature algorithms, or C{None} for
        OpenSSL's default.
    @ivar approvedOnly: certificates and keys must use FIPS 140-approved
        algorithms (RSA >= 2048 or ECDSA P-256/P-384 keys, RSA or ECDSA
        signatures with SHA-256 or SHA-384).
    """

    name: str
    summary: str
    minimumVersion: int
    tls12Ciphers: bytes
    tls13Ciphersuites: bytes
    groups: bytes | None = None
    signatureAlgorithms: bytes | None = None
    approvedOnly: bool = False

    def configure(self, context: SSL.Context) -> None:
        """
        Restrict a server context, before its first connection, to this
        profile.

        @param context: a context no connection uses yet.
        """
        context.set_min_proto_version(self.minimumVersion)
        context.set_max_proto_version(SSL.TLS1_3_VERSION)
        context.set_cipher_list(self.tls12Ciphers + _SECURITY_LEVEL)
        context.set_tls13_ciphersuites(self.tls13Ciphersuites)
        if self.groups is not None:
            setGroups(context, self.groups)
        if self.signatureAlgorithms is not None:
            setSignatureAlgorithms(context, self.signatureAlgorithms)

    def problemWith(self, chain: tuple[x509.Certificate, ...], key: Any) -> str | None:
        """
        Tell what, if anything, makes a certificate chain and its key unfit
        for this profile.

        @param chain: the leaf certificate first, then intermediates.
        @param key: the leaf's private key (a C{cryptography} key).
        @return: the reason in a few words (for an operator), or C{None}
            when the material fits.
        """
        problem = _keyProblem(key, self.approvedOnly)
        if problem is not None:
            return problem
        for index, certificate in enumerate(chain):
            which = "the certificate" if index == 0 else f"chain certificate {index + 1}"
            if index > 0:
                problem = _keyProblem(certificate.public_key(), self.approvedOnly)
                if problem is not None:
                    return f"{which} has {problem}"
            problem = _signatureProblem(certificate, self.approvedOnly)
            if problem is not None:
                return f"{which} is signed with {problem}"
        return None


def _keyProblem(key: Any, approvedOnly: bool) -> str | None:
    """
    What makes a (public or private) key unfit, or C{None}.
    """
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < _MINIMUM_RSA_BITS:
            return f"an RSA key of {key.key_size} bits (at least {_MINIMUM_RSA_BITS} needed)"
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        curve = key.curve
        if approvedOnly and not isinstance(curve, ec.SECP256R1 | ec.SECP384R1):
            return f"an ECDSA key on {curve.name} (only P-256 and P-384 are approved)"
        if curve.key_size < _MINIMUM_EC_BITS:
            return f"an ECDSA key on {curve.name} (at least {_MINIMUM_EC_BITS} bits needed)"
        return None
    if isinstance(
        key,
        ed25519.Ed25519PrivateKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PrivateKey
        | ed448.Ed448PublicKey,
    ):
        if approvedOnly:
            return "an EdDSA key (only RSA and ECDSA P-256/P-384 are approved)"
        return None
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return "a DSA key (TLS 1.3 and forward-secret TLS 1.2 ciphers cannot use DSA)"
    return f"a key of an unsupported type ({type(key).__name__})"


def _signatureProblem(certificate: x509.Certificate, approvedOnly: bool) -> str | None:
    """
    What makes a certificate's own signature unfit, or C{None}.
    """
    try:
        algorithm = certificate.signature_hash_algorithm
    except Exception:
        return f"an unsupported algorithm ({certificate.signature_algorithm_oid.dotted_string})"
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        return algorithm.name.upper()
    if approvedOnly:
        if algorithm is None:
            return "EdDSA (only RSA and ECDSA signatures with SHA-256/384 are approved)"
        if not isinstance(algorithm, hashes.SHA256 | hashes.SHA384):
            return f"{algorithm.name.upper()} (only SHA-256 and SHA-384 are approved)"
    return None


MODERN = TLSProfile(
    name="modern",
    summary="TLS 1.3 only",
    minimumVersion=SSL.TLS1_3_VERSION,
    tls12Ciphers=_AES_GCM_TLS12,
    tls13Ciphersuites=_AEAD_TLS13,
)
"""
TLS 1.3 only, its AEAD cipher suites and OpenSSL's default groups.
"""

COMPATIBLE = TLSProfile(
    name="compatible",
    summary="TLS 1.2 and 1.3, forward-secret AEAD ciphers only",
    minimumVersion=SSL.TLS1_2_VERSION,
    tls12Ciphers=_AES_GCM_TLS12 + b":ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    tls13Ciphersuites=_AEAD_TLS13,
)
"""
TLS 1.2 and 1.3; on TLS 1.2 only ECDHE key exchange with AES-GCM or
ChaCha20-Poly1305 (no CBC, no RSA key exchange).
"""

FIPS = TLSProfile(
    name="fips",
    summary=(
        "TLS 1.2 and 1.3, FIPS 140-approved algorithms only"
        " (AES-GCM, ECDHE P-256/P-384, SHA-256/384)"
    ),
    minimumVersion=SSL.TLS1_2_VERSION,
    tls12Ciphers=_AES_GCM_TLS12,
    tls13Ciphersuites=b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
    groups=b"P-256:P-384",
    signatureAlgorithms=(
        b"ECDSA+SHA256:ECDSA+SHA384:rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:"
        b"rsa_pss_pss_sha256:rsa_pss_pss_sha384:RSA+SHA256:RSA+SHA384"
    ),
    approvedOnly=True,
)
"""
TLS 1.2 and 1.3 with FIPS 140-approved algorithms only: AES-GCM, ECDHE over
P-256 or P-384, RSA or ECDSA signatures with SHA-256 or SHA-384.
"""

TLS_PROFILES: Mapping[str, TLSProfile] = MappingProxyType(
    {profile.name: profile for profile in (MODERN, COMPATIBLE, FIPS)}
)
"""
The profiles by the names C{--tls-profile} takes.
"""


def describeOpenSSL() -> str:
    """
    The OpenSSL that serves TLS (the one pyOpenSSL and C{cryptography} use,
    not necessarily the system's C{openssl} program) and whether it runs a
    FIPS provider, in a few words for the start log.

    @return: e.g. C{"OpenSSL 3.0.13 30 Jan 2024, FIPS provider not active"}.
    """
    version = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")
    enabled = fipsProviderActive()
    if enabled is None:
        state = "FIPS provider state unknown"
    else:
        state = "FIPS provider active" if enabled else "FIPS provider not active"
    return f"{version}, {state}"
