"""The server's own certificate authority, the doctors' signing keys, and CMS signatures anyone checks with OpenSSL.

The CA (ECDSA P-256, ten years) signs one certificate per doctor (ECDSA P-256, two years, S/MIME signing). A
prescription is a CMS SignedData in DER that *contains* the PDF (SHA-256, content attached), so
``openssl cms -verify -inform DER -in rx.p7m -CAfile ca.pem -out rx.pdf`` checks it and gives the PDF back.
Ed25519 cannot be used for CMS here (``cryptography`` refuses it, OpenSSL 3.0 fails to sign with it).

The CA's private key lives in ``data_dir/pki/ca.key`` and each doctor's in the database, sealed (AES-256-GCM)
under the server secret and bound to their owner: neither a copy of the files nor of the database signs anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teleconsult.crypto.sealing import Sealer
from teleconsult.files import directory_lock, private_directory, private_file

CA_YEARS = 10
SIGNER_YEARS = 2


@dataclass(frozen=True, slots=True)
class Signer:
    """A doctor's certificate and sealed private key, as stored."""

    certificate_pem: bytes
    sealed_key: bytes


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate, sealer: Sealer):
        self._key = key
        self.certificate = certificate
        self._sealer = sealer

    @classmethod
    def open(cls, directory: Path, secret: bytes, name: str = "Teleconsult") -> CertificateAuthority:
        """The CA in ``directory``, made on first use (once, however many nodes start on it together)."""
        with directory_lock(directory):
            return cls._open(directory, secret, name)

    @classmethod
    def _open(cls, directory: Path, secret: bytes, name: str) -> CertificateAuthority:
        sealer = Sealer(secret, "pki")
        key_file, cert_file = directory / "ca.key", directory / "ca.pem"
        if key_file.exists() and cert_file.exists():
            key = serialization.load_pem_private_key(sealer.open(key_file.read_bytes(), "ca"), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(key, x509.load_pem_x509_certificate(cert_file.read_bytes()), sealer)
        private_directory(directory)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, name), x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        private_file(key_file)
        key_file.write_bytes(sealer.seal(_pem(key), "ca"))
        private_file(cert_file)  # public, but the data directory holds nothing others may read
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(key, certificate, sealer)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, owner: str, name: str, rpps: str) -> Signer:
        """A signing key and certificate for a doctor (``owner`` binds the sealed key to them)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, f"RPPS {rpps}"),
            ]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * SIGNER_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Signer(certificate.public_bytes(serialization.Encoding.PEM), self._sealer.seal(_pem(key), owner))

    def sign(self, content: bytes, signer: Signer, owner: str) -> bytes:
        """CMS SignedData (DER) containing ``content``, signed with the doctor's key (SHA-256)."""
        key = serialization.load_pem_private_key(self._sealer.open(signer.sealed_key, owner), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        certificate = x509.load_pem_x509_certificate(signer.certificate_pem)
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(content)
            .add_signer(certificate, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
