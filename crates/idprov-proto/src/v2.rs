//! idprov v2 first contact (PROTOCOL.md §11): SPAKE2+ (RFC 9383) with the
//! suite P256-SHA256-HKDF-SHA256-HMAC-SHA256, so a device proves its
//! printed secret without anything on the wire, or in the server's
//! registry, that lets a guess be tested offline.
//!
//! Here is everything both sides compute, with no I/O: the secret stretched
//! into (w0, w1) by PBKDF2-HMAC-SHA256 with the device's salt, the
//! verifier's record (w0, L), the binding of a run to the protocol, the
//! device ID, the CA fingerprint and the TLS connection (an exporter value,
//! RFC 8446 §7.5), the keys that authenticate the provisioning request and
//! its answer, and the v2 messages with their strict parsers. The exchange
//! itself is the `spake2plus` crate's (read, and checked here against RFC
//! 9383's test vectors); it is `no_std` without `alloc`, as is this module
//! apart from the messages.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2plus::rand_core::{Infallible, TryCryptoRng, TryRng};
use spake2plus::{ConfirmP, ConfirmV, Context, P256Sha256, ShareP, ShareV};
use zeroize::{Zeroize, Zeroizing};

use crate::canonical::{EscapeStyle, ObjectWriter};
use crate::fingerprint::Fingerprint;
use crate::json::{MessageError, Object};
use crate::messages::{ProvisionRequest, ProvisionResponse};
use crate::sign::KeyVariant;

/// The suite: RFC 9383's name for it.
pub const SUITE: &str = "P256-SHA256-HKDF-SHA256-HMAC-SHA256";
/// The password hash that stretches the secret.
pub const KDF: &str = "PBKDF2-HMAC-SHA256";
/// The protocol name and version, the start of every run's context.
pub const PROTOCOL: &[u8] = b"idprov v2";
/// The TLS exporter label (RFC 8446 §7.5), with an empty context.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-idprov-v2";
/// Bytes of the exporter value.
pub const EXPORTER_LEN: usize = 32;
/// Where a device asks for its KDF parameters.
pub const PARAMS_PATH: &str = "/idprov/v2/params";
/// Where a device sends its share.
pub const START_PATH: &str = "/idprov/v2/start";
/// Where a device sends its confirmation and its provisioning request.
pub const FINISH_PATH: &str = "/idprov/v2/finish";
/// Bytes of a salt the server makes.
pub const SALT_LEN: usize = 16;
/// The fewest and most bytes of salt a device accepts.
pub const SALT_RANGE: (usize, usize) = (16, 64);
/// The fewest PBKDF2 iterations anyone accepts (Matter's minimum).
pub const MIN_ITERATIONS: u32 = 1_000;
/// The most PBKDF2 iterations a device accepts: a rogue server must not be
/// able to keep it busy for minutes.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// `shareP` and `shareV`: an uncompressed P-256 point.
pub const SHARE_LEN: usize = 65;
/// `confirmP` and `confirmV`: an HMAC-SHA256 tag.
pub const CONFIRMATION_LEN: usize = 32;
/// The verifier's record: w0 (32 bytes, big-endian) then L (65 bytes).
pub const RECORD_LEN: usize = 97;
/// Bytes of PBKDF2 output: w0s and w1s, 40 bytes each (RFC 9383 §3.2:
/// the order's 256 bits and 64 more, so the reduction's bias is 2^-64).
const PBKDF_OUTPUT_LEN: usize = 80;

/// Why a v2 step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// The KDF parameters are outside what a device accepts.
    #[error(
        "KDF parameters outside the accepted range (salt 16-64 bytes, 1000-1000000 iterations)"
    )]
    Parameters,
    /// A share, confirmation or record does not decode.
    #[error("{0} is malformed")]
    Malformed(&'static str),
    /// The peer's key confirmation does not match.
    #[error("the key confirmation does not match")]
    ConfirmationFailed,
    /// A derived value was degenerate (a zero scalar, a share that cancels
    /// the mask); never with real inputs.
    #[error("degenerate SPAKE2+ value")]
    Degenerate,
}

impl From<spake2plus::Error> for V2Error {
    fn from(e: spake2plus::Error) -> V2Error {
        match e {
            spake2plus::Error::ConfirmationFailed => V2Error::ConfirmationFailed,
            spake2plus::Error::Length { .. } | spake2plus::Error::InvalidPoint => {
                V2Error::Malformed("a SPAKE2+ value")
            }
            _ => V2Error::Degenerate,
        }
    }
}

/// The KDF parameters of one device: its salt and PBKDF2's iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfParams {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl KdfParams {
    /// Whether a device accepts them.
    pub fn check(&self) -> Result<(), V2Error> {
        let (lo, hi) = SALT_RANGE;
        if !(lo..=hi).contains(&self.salt.len())
            || !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations)
        {
            return Err(V2Error::Parameters);
        }
        Ok(())
    }
}

fn length_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

/// The device's SPAKE2+ secret (w0, w1): PBKDF2-HMAC-SHA256 over
/// `len(secret) ‖ secret ‖ len(deviceID) ‖ deviceID ‖ len("") ‖ ""`
/// (each length eight bytes, little-endian: RFC 9383 §3.2 with an empty
/// verifier identity, so a registration outlives a new server certificate),
/// 80 bytes, each half reduced modulo the group order.
pub fn derive(secret: &[u8], device_id: &str, params: &KdfParams) -> Result<ProverSecret, V2Error> {
    params.check()?;
    let mut input = Zeroizing::new(Vec::with_capacity(secret.len() + device_id.len() + 24));
    length_prefixed(&mut input, secret);
    length_prefixed(&mut input, device_id.as_bytes());
    length_prefixed(&mut input, b"");
    let mut output = Zeroizing::new([0u8; PBKDF_OUTPUT_LEN]);
    pbkdf2::pbkdf2_hmac::<sha2_v011::Sha256>(
        &input,
        &params.salt,
        params.iterations,
        &mut output[..],
    );
    Ok(ProverSecret(spake2plus::ProverSecret::from_pbkdf_output(
        &output[..],
    )?))
}

/// The device's (w0, w1). Zeroized on drop; its `Debug` shows nothing.
#[derive(Debug, Clone)]
pub struct ProverSecret(spake2plus::ProverSecret<P256Sha256>);

impl ProverSecret {
    /// The record the server keeps: w0 ‖ L.
    pub fn record(&self) -> Zeroizing<[u8; RECORD_LEN]> {
        self.0.verifier_record().to_bytes()
    }
}

/// What a run is bound to (PROTOCOL.md §11.3): the protocol and the TLS
/// connection in the context, the device ID as the prover's identity, the
/// issuing CA's fingerprint as the verifier's.
#[derive(Debug, Clone)]
pub struct Binding {
    context: [u8; PROTOCOL.len() + EXPORTER_LEN],
    device_id: String,
    ca: Fingerprint,
}

impl Binding {
    /// The binding of a run of `device_id` with the server whose issuing CA
    /// has fingerprint `ca`, over the TLS connection whose exporter value
    /// (label [`EXPORTER_LABEL`], no context, 32 bytes) is `exporter`.
    pub fn new(device_id: &str, ca: &Fingerprint, exporter: &[u8; EXPORTER_LEN]) -> Binding {
        let mut context = [0u8; PROTOCOL.len() + EXPORTER_LEN];
        context[..PROTOCOL.len()].copy_from_slice(PROTOCOL);
        context[PROTOCOL.len()..].copy_from_slice(exporter);
        Binding {
            context,
            device_id: device_id.into(),
            ca: *ca,
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            context: &self.context,
            prover_id: self.device_id.as_bytes(),
            verifier_id: self.ca.as_bytes(),
        }
    }
}

/// A random generator seeded with 64 bytes from the caller's source (the
/// system's, or the firmware's hardware generator): HMAC-SHA256 of the seed
/// over a counter. A run draws 64 bytes, so the expansion is a fallback.
pub struct SeededRng {
    seed: Zeroizing<[u8; 64]>,
    block: Zeroizing<[u8; 32]>,
    used: usize,
    counter: u64,
}

impl core::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededRng(..)")
    }
}

impl SeededRng {
    /// A generator over 64 random bytes.
    pub fn new(mut seed: [u8; 64]) -> SeededRng {
        let rng = SeededRng {
            seed: Zeroizing::new(seed),
            block: Zeroizing::new([0; 32]),
            used: 32,
            counter: 0,
        };
        seed.zeroize();
        rng
    }

    fn refill(&mut self) {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.seed[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(&self.counter.to_le_bytes());
        self.counter = self.counter.wrapping_add(1);
        self.block.copy_from_slice(&mac.finalize().into_bytes());
        self.used = 0;
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            if self.used == self.block.len() {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

/// The keys a confirmed run ends with: `K_request` authenticates the
/// provisioning request, `K_answer` the server's answer. Both are
/// HKDF-SHA256 of `K_shared` (no salt), with the infos
/// `"idprov v2 request"` and `"idprov v2 answer"`, 32 bytes each.
pub struct SessionKeys {
    request: Zeroizing<[u8; 32]>,
    answer: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    fn from_shared(shared: &[u8]) -> SessionKeys {
        let kdf = hkdf::Hkdf::<sha2_v011::Sha256>::new(None, shared);
        let mut keys = SessionKeys {
            request: Zeroizing::new([0; 32]),
            answer: Zeroizing::new([0; 32]),
        };
        // 32 bytes is far below HKDF's limit: neither expansion fails.
        let _ = kdf.expand(b"idprov v2 request", &mut keys.request[..]);
        let _ = kdf.expand(b"idprov v2 answer", &mut keys.answer[..]);
        keys
    }

    /// `K_answer`, which signs the server's answer.
    pub fn answer_key(&self) -> Zeroizing<[u8; 32]> {
        self.answer.clone()
    }
}

/// The device after sending `shareP`, waiting for `shareV` and `confirmV`.
#[derive(Debug)]
pub struct Prover(spake2plus::Prover<P256Sha256>);

/// Starts a run: `shareP`, to send.
pub fn prover_start(
    secret: &ProverSecret,
    binding: &Binding,
    rng: &mut SeededRng,
) -> (Prover, [u8; SHARE_LEN]) {
    let (prover, share) = spake2plus::Prover::start(&secret.0, &binding.context(), rng);
    (Prover(prover), *share.as_bytes())
}

impl Prover {
    /// Checks the server's `shareV` and `confirmV` (in constant time); only
    /// then gives `confirmP`, to send, and the session's keys.
    pub fn finish(
        self,
        share_v: &[u8],
        confirm_v: &[u8],
    ) -> Result<([u8; CONFIRMATION_LEN], SessionKeys), V2Error> {
        let share_v =
            ShareV::<P256Sha256>::from_bytes(share_v).map_err(|_| V2Error::Malformed("shareV"))?;
        let confirm_v = ConfirmV::<P256Sha256>::from_bytes(confirm_v)
            .map_err(|_| V2Error::Malformed("confirmV"))?;
        let (confirm_p, shared) = self.0.receive(&share_v)?.finish(&confirm_v)?;
        Ok((
            *confirm_p.as_bytes(),
            SessionKeys::from_shared(shared.as_bytes()),
        ))
    }
}

/// The server after answering `shareV` and `confirmV`, waiting for
/// `confirmP`.
#[derive(Debug)]
pub struct Verifier(spake2plus::VerifierConfirming<P256Sha256>);

/// The server's side of a run: from its record and the device's `shareP`,
/// `shareV` and `confirmV` to send.
pub fn verifier_respond(
    record: &[u8; RECORD_LEN],
    binding: &Binding,
    share_p: &[u8],
    rng: &mut SeededRng,
) -> Result<(Verifier, [u8; SHARE_LEN], [u8; CONFIRMATION_LEN]), V2Error> {
    let record = spake2plus::VerifierRecord::<P256Sha256>::from_bytes(record)
        .map_err(|_| V2Error::Malformed("the stored record"))?;
    let share_p =
        ShareP::<P256Sha256>::from_bytes(share_p).map_err(|_| V2Error::Malformed("shareP"))?;
    let (verifier, share_v) = spake2plus::Verifier::start(&record, &binding.context(), rng);
    let (confirming, confirm_v) = verifier.receive(&share_p)?;
    Ok((
        Verifier(confirming),
        *share_v.as_bytes(),
        *confirm_v.as_bytes(),
    ))
}

/// A record for no registration: the server answers a device it holds no
/// record for exactly as it answers one it does, and the run then fails at
/// the device's check of `confirmV`.
pub fn decoy_record(rng: &mut SeededRng) -> Result<Zeroizing<[u8; RECORD_LEN]>, V2Error> {
    let mut output = Zeroizing::new([0u8; PBKDF_OUTPUT_LEN]);
    let _ = rng.try_fill_bytes(&mut output[..]);
    Ok(
        spake2plus::ProverSecret::<P256Sha256>::from_pbkdf_output(&output[..])?
            .verifier_record()
            .to_bytes(),
    )
}

impl Verifier {
    /// Checks the device's `confirmP` in constant time; the session's keys
    /// when it matches.
    pub fn finish(self, confirm_p: &[u8]) -> Result<SessionKeys, V2Error> {
        let confirm_p = ConfirmP::<P256Sha256>::from_bytes(confirm_p)
            .map_err(|_| V2Error::Malformed("confirmP"))?;
        let shared = self.0.finish(&confirm_p)?;
        Ok(SessionKeys::from_shared(shared.as_bytes()))
    }
}

fn b64_field(o: &mut Object, key: &'static str, len: usize) -> Result<Vec<u8>, MessageError> {
    let text = o.required_string(key)?;
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|_| MessageError::Invalid(key, "is not standard base64".into()))?;
    if bytes.len() != len {
        return Err(MessageError::Invalid(
            key,
            alloc::format!("decodes to {} bytes; {len} are required", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn encode(f: impl FnOnce(&mut ObjectWriter<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = ObjectWriter::new(&mut out, EscapeStyle::Go119);
    f(&mut w);
    w.finish();
    out
}

/// `POST /idprov/v2/params`: `{"deviceID":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamsRequest {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
}

impl ParamsRequest {
    /// Parses it strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut o = Object::parse(bytes)?;
        Ok(ParamsRequest {
            device_id: o.required_string("deviceID")?,
        })
    }

    /// Encodes it.
    pub fn to_json(&self) -> Vec<u8> {
        encode(|w| {
            w.string("deviceID", self.device_id.as_bytes());
        })
    }
}

/// The answer: `{"salt":"<base64>","iterations":N}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamsResponse {
    /// The device's PBKDF2 salt, standard base64.
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl ParamsResponse {
    /// The answer for these parameters.
    pub fn new(params: &KdfParams) -> ParamsResponse {
        ParamsResponse {
            salt: BASE64.encode(&params.salt),
            iterations: params.iterations,
        }
    }

    /// Parses it strictly, and checks the parameters are acceptable.
    pub fn from_json(bytes: &[u8]) -> Result<KdfParams, MessageError> {
        let mut o = Object::parse(bytes)?;
        let salt = BASE64
            .decode(o.required_string("salt")?.as_bytes())
            .map_err(|_| MessageError::Invalid("salt", "is not standard base64".into()))?;
        let iterations = u32::try_from(o.optional_int("iterations")?)
            .map_err(|_| MessageError::Invalid("iterations", "out of range".into()))?;
        let params = KdfParams { salt, iterations };
        params
            .check()
            .map_err(|e| MessageError::Invalid("salt", alloc::format!("{e}")))?;
        Ok(params)
    }

    /// Encodes it.
    pub fn to_json(&self) -> Vec<u8> {
        encode(|w| {
            w.string("salt", self.salt.as_bytes())
                .int("iterations", i64::from(self.iterations));
        })
    }
}

/// `POST /idprov/v2/start`: `{"deviceID":"…","shareP":"<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartRequest {
    /// The device.
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
    /// `shareP`, 65 bytes, standard base64.
    #[cfg_attr(feature = "openapi", schema(rename = "shareP"))]
    pub share_p: String,
}

impl StartRequest {
    /// Parses it strictly; returns it and the decoded share.
    pub fn from_json(bytes: &[u8]) -> Result<(Self, [u8; SHARE_LEN]), MessageError> {
        let mut o = Object::parse(bytes)?;
        let device_id = o.required_string("deviceID")?;
        let share = b64_field(&mut o, "shareP", SHARE_LEN)?;
        let mut share_p = [0; SHARE_LEN];
        share_p.copy_from_slice(&share);
        Ok((
            StartRequest {
                device_id,
                share_p: BASE64.encode(share_p),
            },
            share_p,
        ))
    }

    /// The request for a share.
    pub fn new(device_id: &str, share_p: &[u8; SHARE_LEN]) -> StartRequest {
        StartRequest {
            device_id: device_id.into(),
            share_p: BASE64.encode(share_p),
        }
    }

    /// Encodes it.
    pub fn to_json(&self) -> Vec<u8> {
        encode(|w| {
            w.string("deviceID", self.device_id.as_bytes())
                .string("shareP", self.share_p.as_bytes());
        })
    }
}

/// The answer: `{"shareV":"<base64>","confirmV":"<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartResponse {
    /// `shareV`, 65 bytes, standard base64.
    #[cfg_attr(feature = "openapi", schema(rename = "shareV"))]
    pub share_v: String,
    /// `confirmV`, 32 bytes, standard base64.
    #[cfg_attr(feature = "openapi", schema(rename = "confirmV"))]
    pub confirm_v: String,
}

impl StartResponse {
    /// The answer with these values.
    pub fn new(share_v: &[u8; SHARE_LEN], confirm_v: &[u8; CONFIRMATION_LEN]) -> StartResponse {
        StartResponse {
            share_v: BASE64.encode(share_v),
            confirm_v: BASE64.encode(confirm_v),
        }
    }

    /// Parses it strictly: (shareV, confirmV).
    pub fn from_json(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), MessageError> {
        let mut o = Object::parse(bytes)?;
        Ok((
            b64_field(&mut o, "shareV", SHARE_LEN)?,
            b64_field(&mut o, "confirmV", CONFIRMATION_LEN)?,
        ))
    }

    /// Encodes it.
    pub fn to_json(&self) -> Vec<u8> {
        encode(|w| {
            w.string("shareV", self.share_v.as_bytes())
                .string("confirmV", self.confirm_v.as_bytes());
        })
    }
}

/// `POST /idprov/v2/finish`: the device's confirmation and its
/// provisioning request, `{"deviceID","ip","mac","publicKeyPEM",
/// "confirmP","signature"}`; `signature` is v1's HMAC (PROTOCOL.md §5, raw
/// key variant) keyed with `K_request` over the v1 canonical form of
/// `{"deviceID","ip","mac","publicKeyPEM","signature":""}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishRequest {
    /// The device ID, as in v1.
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
    /// Free text the device claims as its address, as in v1.
    #[cfg_attr(feature = "openapi", schema(max_length = 255))]
    pub ip: String,
    /// Free text the device claims as its MAC address, as in v1.
    #[cfg_attr(
        feature = "openapi",
        schema(required = false, nullable, max_length = 255)
    )]
    pub mac: String,
    /// The device's public key, PKIX PEM, as in v1.
    #[cfg_attr(feature = "openapi", schema(rename = "publicKeyPEM"))]
    pub public_key_pem: String,
    /// `confirmP`, 32 bytes, standard base64.
    #[cfg_attr(feature = "openapi", schema(rename = "confirmP"))]
    pub confirm_p: String,
    /// Base64 HMAC-SHA256 under `K_request` over the v1 canonical form.
    pub signature: String,
}

impl FinishRequest {
    /// Parses it strictly: `deviceID`, `ip`, `publicKeyPEM`, `confirmP` and
    /// `signature` are required; `mac` may be absent or `null`.
    pub fn from_json(bytes: &[u8]) -> Result<(Self, [u8; CONFIRMATION_LEN]), MessageError> {
        let mut o = Object::parse(bytes)?;
        let device_id = o.required_string("deviceID")?;
        let ip = o.required_string("ip")?;
        let mac = o.optional_string("mac")?;
        let public_key_pem = o.required_string("publicKeyPEM")?;
        let signature = o.required_string("signature")?;
        let confirm = b64_field(&mut o, "confirmP", CONFIRMATION_LEN)?;
        let mut confirm_p = [0; CONFIRMATION_LEN];
        confirm_p.copy_from_slice(&confirm);
        Ok((
            FinishRequest {
                device_id,
                ip,
                mac,
                public_key_pem,
                confirm_p: BASE64.encode(confirm_p),
                signature,
            },
            confirm_p,
        ))
    }

    /// The provisioning request it carries, with its signature.
    pub fn request(&self) -> ProvisionRequest {
        ProvisionRequest {
            device_id: self.device_id.clone(),
            ip: self.ip.clone(),
            mac: self.mac.clone(),
            public_key_pem: self.public_key_pem.clone(),
            signature: self.signature.clone(),
        }
    }

    /// The request for `request` (whose signature is ignored), signed
    /// with the session's `K_request`.
    pub fn new(
        request: ProvisionRequest,
        confirm_p: &[u8; CONFIRMATION_LEN],
        keys: &SessionKeys,
    ) -> FinishRequest {
        let signature = crate::sign::sign_bytes(
            &keys.request[..],
            KeyVariant::RawSecret,
            &request.signing_bytes(EscapeStyle::Go119),
        );
        FinishRequest {
            device_id: request.device_id,
            ip: request.ip,
            mac: request.mac,
            public_key_pem: request.public_key_pem,
            confirm_p: BASE64.encode(confirm_p),
            signature,
        }
    }

    /// Whether the request's signature verifies under the session's
    /// `K_request` (constant time; Go 1.19 escaping, raw key only).
    pub fn verify(&self, keys: &SessionKeys) -> bool {
        crate::sign::verify_bytes(
            &keys.request[..],
            KeyVariant::RawSecret,
            &self.request().signing_bytes(EscapeStyle::Go119),
            &self.signature,
        )
    }

    /// Encodes it.
    pub fn to_json(&self) -> Vec<u8> {
        encode(|w| {
            w.string("deviceID", self.device_id.as_bytes())
                .string("ip", self.ip.as_bytes())
                .string("mac", self.mac.as_bytes())
                .string("publicKeyPEM", self.public_key_pem.as_bytes())
                .string("confirmP", self.confirm_p.as_bytes())
                .string("signature", self.signature.as_bytes());
        })
    }
}

impl ProvisionResponse {
    /// Signs a v2 answer with the session's `K_answer` (v1's HMAC, raw key).
    pub fn sign_v2(&mut self, answer_key: &[u8; 32]) {
        self.sign(answer_key, KeyVariant::RawSecret);
    }

    /// Whether a v2 answer's signature verifies under the session's
    /// `K_answer`.
    pub fn verify_v2(&self, keys: &SessionKeys) -> bool {
        crate::sign::verify_bytes(
            &keys.answer[..],
            KeyVariant::RawSecret,
            &self.signing_bytes(EscapeStyle::Go119),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(byte: u8) -> SeededRng {
        SeededRng::new([byte; 64])
    }

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A generator that gives the bytes which reduce to one scalar: zeros,
    /// then the scalar (the exchange draws a scalar as wide bytes reduced
    /// modulo the group order), so a run uses RFC 9383's `x` or `y`.
    struct Replay(Vec<u8>);

    impl TryRng for Replay {
        type Error = Infallible;

        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            unreachable!("the exchange draws bytes")
        }

        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            unreachable!("the exchange draws bytes")
        }

        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            let start = dst.len() - self.0.len();
            dst[..start].fill(0);
            dst[start..].copy_from_slice(&self.0);
            Ok(())
        }
    }

    impl TryCryptoRng for Replay {}

    /// RFC 9383 Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256: the
    /// exchange this crate runs (the `spake2plus` crate, through its public
    /// API as `v2` uses it) reproduces every value the RFC prints: `L`,
    /// `shareP`, `shareV`, both confirmations and `K_shared`. The Go device
    /// (tests/go/v2device -vectors) checks the same vector.
    #[test]
    fn rfc_9383_test_vector() {
        let context = Context {
            context: b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
            prover_id: b"client",
            verifier_id: b"server",
        };
        let w0 = "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3";
        let w1 = "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba";
        // A PBKDF output whose 40-byte halves reduce to w0 and w1.
        let mut output = Vec::new();
        for w in [w0, w1] {
            output.extend_from_slice(&[0; 8]);
            output.extend_from_slice(&unhex(w));
        }
        let secret =
            spake2plus::ProverSecret::<P256Sha256>::from_pbkdf_output(&output).expect("w0, w1");
        let record = secret.verifier_record();
        let mut expected_record = unhex(w0);
        expected_record.extend(unhex(
            "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd",
        ));
        assert_eq!(&record.to_bytes()[..], &expected_record[..], "w0 ‖ L");

        let x = unhex("d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539");
        let y = unhex("717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3");
        let (prover, share_p) = spake2plus::Prover::start(&secret, &context, &mut Replay(x));
        let (verifier, share_v) = spake2plus::Verifier::start(&record, &context, &mut Replay(y));
        assert_eq!(
            share_p.as_bytes()[..],
            unhex(
                "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727"
            )[..]
        );
        assert_eq!(
            share_v.as_bytes()[..],
            unhex(
                "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048"
            )[..]
        );
        let (verifier, confirm_v) = verifier.receive(&share_p).expect("shareP");
        assert_eq!(
            confirm_v.as_bytes()[..],
            unhex("9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68")[..]
        );
        let (confirm_p, prover_key) = prover
            .receive(&share_v)
            .expect("shareV")
            .finish(&confirm_v)
            .expect("confirmV");
        assert_eq!(
            confirm_p.as_bytes()[..],
            unhex("926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527")[..]
        );
        let verifier_key = verifier.finish(&confirm_p).expect("confirmP");
        let k_shared = unhex("0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7");
        assert_eq!(prover_key.as_bytes()[..], k_shared[..]);
        assert_eq!(verifier_key.as_bytes()[..], k_shared[..]);
    }

    #[test]
    fn a_run_agrees_and_binds_the_connection() {
        let params = KdfParams {
            salt: [7u8; 16].to_vec(),
            iterations: 1000,
        };
        let secret = derive(b"123456", "dev-1", &params).expect("derive");
        let record = secret.record();
        let ca = Fingerprint::of_der(b"ca");
        let binding = Binding::new("dev-1", &ca, &[1; 32]);
        let (prover, share_p) = prover_start(&secret, &binding, &mut rng(1));
        let (verifier, share_v, confirm_v) =
            verifier_respond(&record, &binding, &share_p, &mut rng(2)).expect("respond");
        let (confirm_p, device_keys) = prover.finish(&share_v, &confirm_v).expect("confirmV");
        let server_keys = verifier.finish(&confirm_p).expect("confirmP");
        let req = ProvisionRequest {
            device_id: "dev-1".into(),
            ip: "<nil>".into(),
            public_key_pem: "PEM".into(),
            ..Default::default()
        };
        let finish = FinishRequest::new(req, &confirm_p, &device_keys);
        assert!(finish.verify(&server_keys));
        let (parsed, confirm) = FinishRequest::from_json(&finish.to_json()).expect("parse");
        assert_eq!(parsed, finish);
        assert_eq!(confirm, confirm_p);

        // Another connection's exporter: the device refuses confirmV.
        let relayed = Binding::new("dev-1", &ca, &[2; 32]);
        let (prover, share_p) = prover_start(&secret, &binding, &mut rng(3));
        let (_, share_v, confirm_v) =
            verifier_respond(&record, &relayed, &share_p, &mut rng(4)).expect("respond");
        assert_eq!(
            prover.finish(&share_v, &confirm_v).unwrap_err(),
            V2Error::ConfirmationFailed
        );

        // A wrong secret: the device refuses confirmV too.
        let wrong = derive(b"123457", "dev-1", &params).expect("derive");
        let (prover, share_p) = prover_start(&wrong, &binding, &mut rng(5));
        let (_, share_v, confirm_v) =
            verifier_respond(&record, &binding, &share_p, &mut rng(6)).expect("respond");
        assert!(prover.finish(&share_v, &confirm_v).is_err());
    }

    #[test]
    fn parameters_outside_the_range_are_refused() {
        for (salt, iterations) in [(15, 1000), (65, 1000), (16, 999), (16, 1_000_001)] {
            let p = KdfParams {
                salt: alloc::vec![0; salt],
                iterations,
            };
            assert_eq!(derive(b"s", "d", &p).map(|_| ()), Err(V2Error::Parameters));
        }
        let body = br#"{"salt":"AAAA","iterations":1000}"#;
        assert!(ParamsResponse::from_json(body).is_err());
    }
}
