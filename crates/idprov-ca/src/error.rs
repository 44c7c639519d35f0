//! Errors of the certificate authority.

/// Why a public key was refused. Messages name the key type where known, so a
/// device maker can see what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text holds no PEM block, or a malformed one.
    #[error("not PEM: {0}")]
    NotPem(String),
    /// A PEM block of another kind (a certificate, a private key…).
    #[error("a {0} PEM block, expected PUBLIC KEY (PKIX)")]
    WrongPemKind(String),
    /// More than one PEM block.
    #[error("more than one PEM block")]
    MultipleBlocks,
    /// The DER inside is not a SubjectPublicKeyInfo.
    #[error("not a valid PKIX SubjectPublicKeyInfo")]
    Malformed,
    /// A well-formed key of a type we do not issue for.
    #[error("unsupported key type {0}; accepted: ECDSA P-256, ECDSA P-384, Ed25519, RSA 2048-4096")]
    Unsupported(String),
    /// An RSA key outside 2048–4096 bits.
    #[error("unsupported key type RSA-{0}; RSA keys must be 2048 to 4096 bits")]
    RsaSize(usize),
    /// The key material does not decode for its algorithm (a point off the
    /// curve, a truncated key).
    #[error("{0} public key is invalid (the key material does not decode)")]
    InvalidKey(&'static str),
}

/// Why a PKCS#10 certification request was refused. Messages name the
/// problem so a device maker can see what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// The bytes are not a DER PKCS#10 `CertificationRequest`.
    #[error("not a DER PKCS#10 certification request")]
    NotPkcs10,
    /// PEM text that holds no single CERTIFICATE REQUEST block.
    #[error("not a PEM certification request: {0}")]
    NotPem(String),
    /// A version other than v1 (0).
    #[error("unsupported PKCS#10 version {0}; only v1 (0) exists")]
    Version(u32),
    /// The request's public key was refused.
    #[error("the request's public key: {0}")]
    Key(#[from] KeyError),
    /// A signature algorithm that is not accepted, or does not go with
    /// the key.
    #[error("the request's signature: {0}")]
    SignatureAlgorithm(String),
    /// The signature does not verify with the request's own key: no proof
    /// that the sender holds the private key.
    #[error(
        "the request's signature does not verify with its public key \
         (no proof of possession of the private key)"
    )]
    BadSignature,
    /// The subject's CN is missing, repeated or not text.
    #[error("the request's subject: {0}")]
    CommonName(&'static str),
}

/// Errors of certificate issuance, CA loading and certificate inspection.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused to build or sign a certificate or key.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate could not be parsed.
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    /// A PEM file held nothing usable.
    #[error("invalid PEM: {0}")]
    BadPem(String),
    /// A private key could not be loaded.
    #[error("invalid private key: {0}")]
    BadKey(String),
    /// The configured CA is unusable (not a CA, key mismatch, expired…).
    #[error("unusable CA certificate: {0}")]
    UnusableCa(String),
    /// A public key was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A DER structure could not be built (a certs-only PKCS#7, the EST
    /// attributes).
    #[error("encoding {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
}
