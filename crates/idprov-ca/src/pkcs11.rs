//! A CA key inside a PKCS#11 token (an HSM, a TPM through its PKCS#11
//! module, a smart card, SoftHSM) through `cryptoki`: generated inside the
//! token as a sensitive, non-extractable ECDSA key, found again by its label
//! and public key, and used only through `C_Sign`.
//!
//! A module is a local library loaded into the process (no network). It is
//! initialised once per process and shared: PKCS#11 allows one
//! `C_Initialize` per application, and its login state is per token.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as PkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rcgen::SignatureAlgorithm;
use zeroize::Zeroizing;

use crate::authority::KeyAlgorithm;
use crate::error::CaError;
use crate::signer::{CaKey, KeyBackend, KeyStorage, Protection};

/// Which token and key, and the PIN that unlocks it.
#[derive(Clone)]
pub struct TokenSettings {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The CA key's label (CKA_LABEL) inside the token.
    pub key_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

fn token_err(message: impl Into<String>) -> CaError {
    CaError::Token(message.into())
}

/// The process's one context per module.
fn context(module: &Path) -> Result<Pkcs11, CaError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| token_err("the PKCS#11 context lock is poisoned"))?;
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    if !module.is_file() {
        return Err(token_err(format!(
            "the PKCS#11 module {} does not exist (ca.pkcs11.module)",
            module.display()
        )));
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        token_err(format!(
            "cannot load the PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(PkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(token_err(format!(
                "the PKCS#11 module {} failed to initialise: {e}",
                module.display()
            )));
        }
    }
    contexts.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// A logged-in session with the configured token, shared by its keys.
#[derive(Clone)]
struct TokenSession {
    session: Arc<Mutex<Session>>,
    settings: Arc<TokenSettings>,
}

impl fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSession")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenSession {
    fn open(settings: &TokenSettings) -> Result<TokenSession, CaError> {
        let ctx = context(&settings.module)?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| token_err(format!("listing the module's tokens: {e}")))?;
        let mut seen = Vec::new();
        let mut found = None;
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_owned();
            if label == settings.token_label {
                found = Some(slot);
                break;
            }
            seen.push(label);
        }
        let Some(slot) = found else {
            return Err(token_err(format!(
                "no token labelled {:?} is present in {} (ca.pkcs11.token_label; tokens present: {})",
                settings.token_label,
                settings.module.display(),
                if seen.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{seen:?}")
                }
            )));
        };
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| token_err(format!("opening a session with the token: {e}")))?;
        let pin = AuthPin::new(settings.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(PkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(PkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(token_err(format!(
                    "the PIN for token {:?} is wrong (ca.pkcs11.pin_file, pin_env or pin_credential)",
                    settings.token_label
                )));
            }
            Err(PkError::Pkcs11(RvError::UserPinNotInitialized, _)) => {
                return Err(token_err(format!(
                    "token {:?} has no user PIN yet: its security officer must set one (softhsm2-util, pkcs11-tool --init-pin)",
                    settings.token_label
                )));
            }
            Err(PkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(token_err(format!(
                    "token {:?} is locked: too many wrong PINs; its security officer must unlock it",
                    settings.token_label
                )));
            }
            Err(e) => {
                return Err(token_err(format!(
                    "logging in to token {:?}: {e}",
                    settings.token_label
                )));
            }
        }
        Ok(TokenSession {
            session: Arc::new(Mutex::new(session)),
            settings: Arc::new(settings.clone()),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Session) -> Result<T, PkError>) -> Result<T, CaError> {
        let session = self
            .session
            .lock()
            .map_err(|_| token_err("the token session lock is poisoned"))?;
        f(&session).map_err(|e| token_err(format!("token {:?}: {e}", self.settings.token_label)))
    }
}

/// The DER of a named curve's OID, as CKA_EC_PARAMS holds it.
fn curve_params(alg: KeyAlgorithm) -> Result<Vec<u8>, CaError> {
    let arcs: &[u64] = match alg {
        KeyAlgorithm::EcdsaP256 => &[1, 2, 840, 10045, 3, 1, 7],
        KeyAlgorithm::EcdsaP384 => &[1, 3, 132, 0, 34],
        other => {
            return Err(token_err(format!(
                "a CA key in a token is ECDSA P-256 or P-384, not {other:?}"
            )));
        }
    };
    let oid = yasna::models::ObjectIdentifier::from_slice(arcs);
    Ok(yasna::construct_der(|w| w.write_oid(&oid)))
}

fn algorithm_of(params: &[u8]) -> Result<(KeyAlgorithm, &'static SignatureAlgorithm), CaError> {
    if params == curve_params(KeyAlgorithm::EcdsaP256)? {
        Ok((KeyAlgorithm::EcdsaP256, &rcgen::PKCS_ECDSA_P256_SHA256))
    } else if params == curve_params(KeyAlgorithm::EcdsaP384)? {
        Ok((KeyAlgorithm::EcdsaP384, &rcgen::PKCS_ECDSA_P384_SHA384))
    } else {
        Err(token_err(
            "the token's key is not ECDSA P-256 or P-384 (the CA key types idprov signs with)",
        ))
    }
}

/// A key in the token: its handles, its public key and algorithm.
pub struct TokenKey {
    session: TokenSession,
    private: ObjectHandle,
    public: Option<ObjectHandle>,
    point: Vec<u8>,
    algorithm: KeyAlgorithm,
    signature: &'static SignatureAlgorithm,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("token", &self.session.settings.token_label)
            .field("key", &self.session.settings.key_label)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Every key labelled `settings.key_label` in the token (a rollover
    /// leaves two for a while), each as a CA key.
    pub fn find_all(settings: &TokenSettings) -> Result<Vec<CaKey>, CaError> {
        let session = TokenSession::open(settings)?;
        let label = Attribute::Label(settings.key_label.as_bytes().to_vec());
        let privates = session.with(|s| {
            s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), label.clone()])
        })?;
        let mut keys = Vec::new();
        for private in privates {
            let id = session.with(|s| s.get_attributes(private, &[AttributeType::Id]))?;
            let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY), label.clone()];
            template.extend(id.into_iter().filter(|a| matches!(a, Attribute::Id(_))));
            let public = session
                .with(|s| s.find_objects(&template))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    token_err(format!(
                        "the token holds the private key {:?} but not its public key",
                        settings.key_label
                    ))
                })?;
            keys.push(CaKey::new(TokenKey::load(&session, private, public)?));
        }
        Ok(keys)
    }

    /// The key labelled `settings.key_label` whose public key is `spki`.
    pub fn find(settings: &TokenSettings, spki: &[u8]) -> Result<CaKey, CaError> {
        TokenKey::find_all(settings)?
            .into_iter()
            .find(|k| k.spki_der() == spki)
            .ok_or_else(|| {
                token_err(format!(
                    "token {:?} holds no key labelled {:?} for this CA certificate",
                    settings.token_label, settings.key_label
                ))
            })
    }

    /// Generates a key pair inside the token: the private key sensitive and
    /// not extractable, so it never leaves the token, not even wrapped.
    pub fn generate(settings: &TokenSettings, algorithm: KeyAlgorithm) -> Result<CaKey, CaError> {
        let session = TokenSession::open(settings)?;
        let params = curve_params(algorithm)?;
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| CaError::Random)?;
        let label = settings.key_label.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id),
        ];
        let (public, private) = session.with(|s| {
            s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
        })?;
        Ok(CaKey::new(TokenKey::load(&session, private, public)?))
    }

    /// A key from its handles: the public half gives the curve and point.
    fn load(
        session: &TokenSession,
        private: ObjectHandle,
        public: ObjectHandle,
    ) -> Result<TokenKey, CaError> {
        let attrs = session.with(|s| {
            s.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        })?;
        let (mut params, mut point) = (None, None);
        for a in attrs {
            match a {
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let (Some(params), Some(point)) = (params, point) else {
            return Err(token_err(format!(
                "the token's key {:?} is not an EC key",
                session.settings.key_label
            )));
        };
        let (algorithm, signature) = algorithm_of(&params)?;
        // CKA_EC_POINT is a DER OCTET STRING around the point (some
        // modules give the bare point).
        let point = yasna::parse_der(&point, |r| r.read_bytes()).unwrap_or(point);
        Ok(TokenKey {
            session: session.clone(),
            private,
            public: Some(public),
            point,
            algorithm,
            signature,
        })
    }
}

impl KeyBackend for TokenKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let digest = match self.algorithm {
            KeyAlgorithm::EcdsaP384 => {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, message)
            }
            _ => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message),
        };
        let raw = self
            .session
            .with(|s| s.sign(&Mechanism::Ecdsa, self.private, digest.as_ref()))?;
        // C_Sign gives r || s; X.509 wants ECDSA-Sig-Value, a DER SEQUENCE.
        if raw.is_empty() || raw.len() % 2 != 0 {
            return Err(token_err("the token returned a malformed ECDSA signature"));
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_bigint_bytes(r, true);
                w.next().write_bigint_bytes(s, true);
            })
        }))
    }

    fn public_key_raw(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.signature
    }

    fn storage(&self) -> KeyStorage {
        KeyStorage::Token {
            token_label: self.session.settings.token_label.clone(),
            key_label: self.session.settings.key_label.clone(),
        }
    }

    fn protection(&self) -> Result<Option<Protection>, CaError> {
        let attrs = self.session.with(|s| {
            s.get_attributes(
                self.private,
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
        })?;
        let mut p = Protection {
            sensitive: false,
            extractable: true,
        };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                _ => {}
            }
        }
        Ok(Some(p))
    }

    fn destroy(&self) -> Result<(), CaError> {
        self.session.with(|s| s.destroy_object(self.private))?;
        if let Some(public) = self.public {
            self.session.with(|s| s.destroy_object(public))?;
        }
        Ok(())
    }
}
