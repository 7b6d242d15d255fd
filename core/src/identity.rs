//! Ed25519 identities of nodes and registries, and the bytes a handshake signs.
//!
//! A node proves who it is by signing the registry's one-time challenge. What is signed names the
//! protocol, the registry and the network as well as the nonce, so a signature captured at one
//! registry, or for one network, is worthless at any other.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The protocol name and version spoken on `/v1/ws`.
pub const PROTOCOL: &str = "netget/1";

/// File name of a node's key inside its data dir.
pub const NODE_KEY_FILE: &str = "node.key";
/// File name of a registry's key inside its data dir (distinct, so a registry and a node may
/// share one data dir without sharing an identity).
pub const REGISTRY_KEY_FILE: &str = "registry.key";

/// An Ed25519 key pair: a node's or a registry's identity.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        write!(f, "NodeKey({})", self.public_key())
    }
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Internal(format!("no randomness available: {e}")))
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> Result<NodeKey> {
        let mut seed = [0u8; 32];
        random_bytes(&mut seed)?;
        Ok(NodeKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses the key file format: the 32-byte secret seed in standard base64, one line.
    pub fn from_text(text: &str) -> Result<NodeKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|e| {
            Error::InvalidInput(format!(
                "key is not base64 ({e}); make one with `netget keygen`"
            ))
        })?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidInput(
                "key must be 32 bytes (an Ed25519 seed); make one with `netget keygen`".into(),
            )
        })?;
        Ok(NodeKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The key file format (see [`NodeKey::from_text`]).
    pub fn to_text(&self) -> String {
        format!("{}\n", STANDARD.encode(self.signing.to_bytes()))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<NodeKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read key file {}: {e}", path.display())))?;
        NodeKey::from_text(&text)
    }

    /// Writes the key to `path` (mode 0600 on Unix), creating parent directories.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Io(format!("cannot create directory {}: {e}", dir.display()))
                })?;
            }
        }
        // A unique temporary name: two processes creating the same key file at once must not
        // interleave their writes; the rename makes whichever finishes last win whole.
        let mut tag = [0u8; 6];
        random_bytes(&mut tag)?;
        let tmp = path.with_extension(format!("tmp.{}", URL_SAFE_NO_PAD.encode(tag)));
        std::fs::write(&tmp, self.to_text())
            .map_err(|e| Error::Io(format!("cannot write key file {}: {e}", tmp.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::Io(format!("cannot write key file {}: {e}", path.display())))
    }

    /// The key kept in `dir/file`, created on first use, so a restarted node keeps its
    /// identity (and so its instance ids).
    pub fn load_or_create(dir: &Path, file: &str) -> Result<NodeKey> {
        let path = dir.join(file);
        if path.exists() {
            return NodeKey::load(&path);
        }
        let key = NodeKey::generate()?;
        key.save(&path)?;
        Ok(key)
    }

    /// The public key in standard base64 (44 characters), as the protocol carries it.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.signing.verifying_key().as_bytes())
    }

    /// Signs `message`, returning the signature in standard base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.signing.sign(message).to_bytes())
    }

    /// A short id for this key: what a registry uses as its id.
    pub fn short_id(&self) -> String {
        short_id_of(&self.signing.verifying_key())
    }
}

/// The short id of a public key (what a registry with that key uses as its id).
pub fn short_id_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..9])
}

/// Parses a public key (standard base64 of 32 bytes) and checks it is a valid Ed25519 point.
pub fn verify_public_key(public_key: &str) -> Result<VerifyingKey> {
    let key_bytes: [u8; 32] = STANDARD
        .decode(public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::InvalidInput("publicKey must be 32 bytes in standard base64 (Ed25519)".into())
        })?;
    VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| Error::InvalidInput("publicKey is not a valid Ed25519 point".into()))
}

/// Checks `signature` (standard base64) over `message` by `public_key` (standard base64).
pub fn verify(public_key: &str, message: &[u8], signature: &str) -> Result<()> {
    let key = verify_public_key(public_key)?;
    let sig_bytes: [u8; 64] = STANDARD
        .decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::Unauthorized("signature must be 64 bytes in standard base64 (Ed25519)".into())
        })?;
    key.verify(message, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| {
            Error::Unauthorized(
                "bad signature: the hello was not signed by this publicKey over this registry's challenge"
                    .into(),
            )
        })
}

/// The exact bytes a node signs to answer a challenge (PROTOCOL.md, "Handshake").
pub fn hello_payload(registry_id: &str, network: &str, nonce: &str) -> Vec<u8> {
    format!("{PROTOCOL}\nhello\n{registry_id}\n{network}\n{nonce}").into_bytes()
}

/// What a node signs for a registration (PROTOCOL.md, "Signed registrations"): everything a
/// client acts on, so no registry can alter an address, tag or metadata unseen.
pub struct SignedFields<'a> {
    /// Network name.
    pub network: &'a str,
    /// Service name.
    pub service: &'a str,
    /// Instance id.
    pub instance_id: &'a str,
    /// Address.
    pub address: &'a str,
    /// Version, if any.
    pub version: Option<&'a str>,
    /// Tags, in order, joined by commas.
    pub tags: std::borrow::Cow<'a, str>,
    /// Relative weight (1 when not given): signed because clients pick by it.
    pub weight: u32,
    /// Metadata, as canonical JSON text (compact, keys sorted: [`crate::model::Metadata::canonical`]).
    pub metadata: std::borrow::Cow<'a, str>,
    /// Milliseconds since the Unix epoch.
    pub signed_at: u64,
}

impl<'a> SignedFields<'a> {
    /// The fields of a registration about to be sent or just received.
    pub fn of_registration(
        network: &'a str,
        service: &'a str,
        instance_id: &'a str,
        reg: &'a crate::model::Registration,
        signed_at: u64,
    ) -> SignedFields<'a> {
        SignedFields {
            network,
            service,
            instance_id,
            address: &reg.address,
            version: reg.version.as_deref(),
            tags: reg.tags.join(",").into(),
            weight: reg.weight.unwrap_or(1),
            // A map's keys are sorted, so this is the canonical text.
            metadata: serde_json::to_string(&reg.metadata)
                .unwrap_or_default()
                .into(),
            signed_at,
        }
    }

    /// The exact bytes signed.
    pub fn payload(&self) -> Vec<u8> {
        let meta = &self.metadata;
        format!(
            "{PROTOCOL}\nregister\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{meta}",
            self.network,
            self.service,
            self.instance_id,
            self.address,
            self.version.unwrap_or(""),
            self.tags,
            self.weight,
            self.signed_at
        )
        .into_bytes()
    }
}

/// Checks an instance's signature against its own public key, and, when `trusted` is not empty,
/// that the key is one of them.
pub fn verify_instance(instance: &crate::model::Instance, trusted: &[String]) -> Result<()> {
    let (Some(key), Some(sig), Some(at)) = (
        &instance.public_key,
        &instance.signature,
        instance.signed_at,
    ) else {
        return Err(Error::Unauthorized(format!(
            "instance {} of {} is not signed by its node",
            instance.id, instance.name
        )));
    };
    if !trusted.is_empty() && !trusted.iter().any(|t| t.as_str() == key.as_ref()) {
        return Err(Error::Unauthorized(format!(
            "instance {} of {} is signed by {key}, which is not a trusted key for it",
            instance.id, instance.name
        )));
    }
    let payload = SignedFields {
        network: instance.network.as_str(),
        service: instance.name.as_str(),
        instance_id: instance.id.as_str(),
        address: &instance.address,
        version: instance.version.as_deref(),
        tags: instance.tags.joined().into(),
        weight: instance.weight,
        metadata: instance.metadata.canonical().into(),
        signed_at: at,
    }
    .payload();
    verify(key, &payload, sig).map_err(|_| {
        Error::Unauthorized(format!(
            "instance {} of {}: signature does not match its contents (altered after signing)",
            instance.id, instance.name
        ))
    })
}

/// The id an instance gets when the node gives none: stable for one key, service name and
/// address, so a restarted node with the same key keeps its id, while two replicas started from
/// the same data dir (same key) on different ports do not overwrite each other.
pub fn derived_instance_id(public_key: &str, service: &str, address: &str) -> String {
    let mut h = Sha256::new();
    h.update(public_key.as_bytes());
    h.update([0u8]);
    h.update(service.as_bytes());
    h.update([0u8]);
    h.update(address.as_bytes());
    let digest = h.finalize();
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest naming a bearer token without keeping it: what REST ownership records.
pub fn token_digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

/// A fresh random nonce for a challenge, URL-safe base64 of 24 bytes.
pub fn new_nonce() -> Result<String> {
    let mut b = [0u8; 24];
    random_bytes(&mut b)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_own_payload() {
        let k = NodeKey::generate().unwrap();
        let msg = hello_payload("reg", "development", "n1");
        let sig = k.sign(&msg);
        verify(&k.public_key(), &msg, &sig).unwrap();
        let other_net = hello_payload("reg", "production", "n1");
        assert_eq!(
            verify(&k.public_key(), &other_net, &sig)
                .unwrap_err()
                .code(),
            "NETGET_UNAUTHORIZED"
        );
        let other_reg = hello_payload("reg2", "development", "n1");
        assert!(verify(&k.public_key(), &other_reg, &sig).is_err());
    }

    #[test]
    fn keys_survive_a_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(dir.path(), NODE_KEY_FILE).unwrap();
        let b = NodeKey::load_or_create(dir.path(), NODE_KEY_FILE).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(NodeKey::from_text("not base64!").is_err());
    }

    #[test]
    fn derived_ids_are_stable_per_key_and_name() {
        assert_eq!(
            derived_instance_id("k", "web", "a:1"),
            derived_instance_id("k", "web", "a:1")
        );
        assert_ne!(
            derived_instance_id("k", "web", "a:1"),
            derived_instance_id("k", "db", "a:1")
        );
        assert_ne!(
            derived_instance_id("k", "web", "a:1"),
            derived_instance_id("k", "web", "a:2")
        );
        assert_eq!(derived_instance_id("k", "web", "a:1").len(), 20);
    }

    #[test]
    fn the_test_vector_of_protocol_md_holds() {
        // PROTOCOL.md, "Handshake": seed bytes 0x00..0x1f, registry _oEsEvOrTOas, network
        // development. Ed25519 signatures are deterministic, so the documented values must match.
        let key = NodeKey::from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(
            key.public_key(),
            "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
        );
        let payload = hello_payload(
            "_oEsEvOrTOas",
            "development",
            "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7",
        );
        assert_eq!(
            key.sign(&payload),
            "YdB0TPf4JUGyaMtp+83HtQu6y4dMxw/mW3w+sC0swXTnrBaYsphzp/WkNz0ghh/7zC279sdZMeQkjPG3BYPCCw=="
        );
        assert_eq!(
            derived_instance_id(&key.public_key(), "web", "http://10.0.0.5:8080"),
            "436541a191915dc7176f"
        );
    }

    #[test]
    fn the_signed_registration_example_of_protocol_md_holds() {
        // PROTOCOL.md, "Signed registrations": the same key, service web, derived id.
        let key = NodeKey::from_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let reg: crate::model::Registration = serde_json::from_str(
            r#"{"address":"http://10.0.0.5:8080","tags":["v1"],"metadata":{"zone":"a"},"version":"1.0.0"}"#,
        )
        .unwrap();
        let fields = SignedFields::of_registration(
            "development",
            "web",
            "436541a191915dc7176f",
            &reg,
            1767225600000,
        );
        assert_eq!(
            String::from_utf8(fields.payload()).unwrap(),
            "netget/1\nregister\ndevelopment\nweb\n436541a191915dc7176f\nhttp://10.0.0.5:8080\n1.0.0\nv1\n1\n1767225600000\n{\"zone\":\"a\"}"
        );
        assert_eq!(
            key.sign(&fields.payload()),
            "EvQF4EaTsxdyyWwexdsz2nlYrasMPAN7nTBJMEVZrAm5HxIsdiPXpuuAglPZk+Vs90AJJjFghL/1r+ZktfQeCA=="
        );
    }
}
