//! The federation roster: who may take part, under which Shamir party id,
//! with which TLS certificate and key-agreement key; and who was revoked.
//!
//! The roster is written by the federation's CA (`cipherflow fl ca`) and
//! given to every party out of band, like the CA certificate. The
//! coordinator admits only roster clients (identified by the SHA-256 of
//! their TLS certificate); clients take each other's key-agreement keys
//! from their own copy, so a coordinator relaying sealed Shamir shares can
//! neither read nor substitute them. Key-agreement secrets are X25519
//! (`x25519-dalek`), zeroized on drop.

use crate::error::{FedError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// One enrolled client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// Client id (the TLS certificate's common name).
    pub client_id: String,
    /// Shamir evaluation point, 1..=n.
    pub party_id: u64,
    /// SHA-256 (hex) of the client's DER certificate; `None` in simulations
    /// without TLS.
    #[serde(default)]
    pub cert_sha256: Option<String>,
    /// X25519 public key (hex) for sealing Shamir shares to this client.
    pub kx_public: String,
    /// The regional aggregator this client uploads through (hierarchical
    /// aggregation); `None`: straight to the coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A regional aggregator (hierarchical aggregation): it sums the updates of
/// the clients assigned to it and forwards one ciphertext per round,
/// with the contributor set committed in its own signed ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// Region id (the rules of a client id; distinct from every client's).
    pub region_id: String,
    /// The region's ledger key (hex Ed25519): its commitments are verified
    /// against it, by the coordinator and by the region's clients.
    pub ledger_key: String,
    /// The DNS name (or IP address) of the region's server certificate,
    /// which its clients verify whatever address they dial (a region run as
    /// its own process, `cipherflow fl region`); `None` in simulations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// SHA-256 (hex) of the region's server certificate: its clients pin it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert_sha256: Option<String>,
    /// SHA-256 (hex) of the region's client certificate (ClientAuth only),
    /// with which it calls the coordinator: the coordinator takes regional
    /// sums from it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
}

impl RegionEntry {
    /// The region's ledger key.
    pub fn public_key(&self) -> Result<cipherflow_ledger::PublicKey> {
        let b: [u8; 32] = hex::decode(&self.ledger_key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                FedError::Config(format!(
                    "region {}: the ledger key must be 32 bytes of hex",
                    self.region_id
                ))
            })?;
        cipherflow_ledger::PublicKey::from_bytes(&b)
            .map_err(|e| FedError::Config(format!("region {}: ledger key: {e}", self.region_id)))
    }
}

/// The name of a region's ledger (its log id is a function of it and the
/// region's key, so a proof from another log is refused).
pub fn region_ledger_name(federation: &str, region: &str) -> String {
    format!("{federation}/region/{region}")
}

/// The roster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// Federation name.
    pub federation: String,
    /// Enrolled clients, by party id.
    pub clients: Vec<RosterEntry>,
    /// Revoked client ids.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// SHA-256 (hex) of the coordinator's server certificate: clients pin it.
    /// (Rosters written before the coordinator had a separate client
    /// certificate also let the key service identify the coordinator by it.)
    #[serde(default)]
    pub coordinator_cert_sha256: Option<String>,
    /// SHA-256 (hex) of the key service's server certificate: clients and
    /// the coordinator pin it.
    #[serde(default)]
    pub key_service_cert_sha256: Option<String>,
    /// SHA-256 (hex) of the coordinator's client certificate (ClientAuth
    /// only), with which it calls the key service; the key service accepts
    /// decryption requests from it only.
    #[serde(default)]
    pub coordinator_client_cert_sha256: Option<String>,
    /// The DNS name (or IP address) the coordinator's certificate is issued
    /// to and clients verify, whatever address they dial; `None` in rosters
    /// from before per-role names (then `localhost`).
    #[serde(default)]
    pub coordinator_name: Option<String>,
    /// The key service's server name (as `coordinator_name`).
    #[serde(default)]
    pub key_service_name: Option<String>,
    /// Regional aggregators (hierarchical aggregation); empty: every
    /// client uploads to the coordinator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionEntry>,
}

/// A server role of the federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The coordinator.
    Coordinator,
    /// The key service.
    KeyService,
    /// A regional aggregator (which one: the pin's name).
    Region,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Coordinator => "coordinator",
            Role::KeyService => "key service",
            Role::Region => "regional aggregator",
        })
    }
}

/// What a client requires of a server it dials: the role's name (checked
/// against the certificate's subject alternative names, whatever address
/// was dialled) and the SHA-256 of the role's certificate from the roster
/// (checked after the chain to the CA, the ServerAuth usage and the
/// validity period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPin {
    /// The role (for messages).
    pub role: Role,
    /// The name to verify.
    pub name: String,
    /// SHA-256 (hex, lower case) of the DER certificate.
    pub cert_sha256: String,
}

/// Checks a server name: a DNS name or an IP address.
pub fn check_server_name(name: &str) -> Result<()> {
    rustls::pki_types::ServerName::try_from(name)
        .map(|_| ())
        .map_err(|_| FedError::Config(format!("{name:?} is not a DNS name or an IP address")))
}

/// Names no client may take: the server roles' directories under the CA.
pub const RESERVED_IDS: [&str; 3] = ["coordinator", "key-service", "coordinator-client"];

/// Checks a client id: 1–64 characters of `[A-Za-z0-9-_]`, not a reserved
/// role name. A dot is refused: an id must not look like a host name or an
/// IP address, so that a client's certificate can never be mistaken for a
/// server's (its only subject name is its id).
pub fn check_client_id(id: &str) -> Result<()> {
    if id.parse::<std::net::IpAddr>().is_ok() || id.contains('.') {
        return Err(FedError::Config(format!(
            "client id {id:?} looks like a host name or an IP address; use [A-Za-z0-9-_] only"
        )));
    }
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(FedError::Config(format!(
            "client id {id:?} must be 1–64 characters of [A-Za-z0-9-_]"
        )));
    }
    if RESERVED_IDS.iter().any(|r| r.eq_ignore_ascii_case(id)) {
        return Err(FedError::Config(format!("client id {id:?} is reserved")));
    }
    Ok(())
}

impl Roster {
    /// Validates ids, party ids (distinct, 1..=n), keys and fingerprints.
    pub fn validate(&self) -> Result<()> {
        if self.clients.is_empty() || self.clients.len() > 4096 {
            return Err(FedError::Config("a roster needs 1..=4096 clients".into()));
        }
        let mut ids = BTreeSet::new();
        let mut parties = BTreeSet::new();
        let mut certs = BTreeSet::new();
        for c in &self.clients {
            check_client_id(&c.client_id)?;
            if !ids.insert(c.client_id.as_str()) {
                return Err(FedError::Config(format!(
                    "client {} listed twice",
                    c.client_id
                )));
            }
            if c.party_id == 0
                || c.party_id > self.clients.len() as u64
                || !parties.insert(c.party_id)
            {
                return Err(FedError::Config(format!(
                    "party ids must be distinct and in 1..={} ({} has {})",
                    self.clients.len(),
                    c.client_id,
                    c.party_id
                )));
            }
            parse_public(&c.kx_public)?;
            if let Some(h) = &c.cert_sha256 {
                if !is_fingerprint(h) || !certs.insert(h.as_str()) {
                    return Err(FedError::Config(format!(
                        "bad or repeated certificate fingerprint for {}",
                        c.client_id
                    )));
                }
            }
        }
        for (what, h) in [
            ("coordinator", &self.coordinator_cert_sha256),
            ("key service", &self.key_service_cert_sha256),
            ("coordinator client", &self.coordinator_client_cert_sha256),
        ] {
            if let Some(h) = h {
                if !is_fingerprint(h) || !certs.insert(h.as_str()) {
                    return Err(FedError::Config(format!(
                        "bad or repeated certificate fingerprint for the {what}"
                    )));
                }
            }
        }
        for n in [&self.coordinator_name, &self.key_service_name]
            .into_iter()
            .flatten()
        {
            check_server_name(n)?;
        }
        self.validate_regions(&ids, certs)
    }

    /// Region ids valid, distinct and no client's; keys, names and
    /// certificate fingerprints well formed (no fingerprint anyone else's);
    /// every client's region listed.
    fn validate_regions<'a>(
        &'a self,
        client_ids: &BTreeSet<&str>,
        mut certs: BTreeSet<&'a str>,
    ) -> Result<()> {
        if self.regions.len() > self.clients.len() {
            return Err(FedError::Config(
                "more regions than clients in the roster".into(),
            ));
        }
        let mut regions = BTreeSet::new();
        for r in &self.regions {
            check_client_id(&r.region_id)?;
            if client_ids.contains(r.region_id.as_str()) || !regions.insert(r.region_id.as_str()) {
                return Err(FedError::Config(format!(
                    "region id {} repeated or a client's",
                    r.region_id
                )));
            }
            r.public_key()?;
            if let Some(n) = &r.server_name {
                check_server_name(n)?;
            }
            for h in [&r.server_cert_sha256, &r.client_cert_sha256]
                .into_iter()
                .flatten()
            {
                if !is_fingerprint(h) || !certs.insert(h.as_str()) {
                    return Err(FedError::Config(format!(
                        "bad or repeated certificate fingerprint for region {}",
                        r.region_id
                    )));
                }
            }
        }
        for c in &self.clients {
            if let Some(r) = &c.region {
                if !regions.contains(r.as_str()) {
                    return Err(FedError::Config(format!(
                        "{} is assigned to region {r}, which the roster does not list",
                        c.client_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The entry of a region id.
    pub fn region(&self, id: &str) -> Option<&RegionEntry> {
        self.regions.iter().find(|r| r.region_id == id)
    }

    /// The region whose client certificate has this SHA-256 (hex), if any.
    pub fn region_by_cert(&self, sha256_hex: &str) -> Option<&RegionEntry> {
        self.regions
            .iter()
            .find(|r| r.client_cert_sha256.as_deref() == Some(sha256_hex))
    }

    /// What a client of region `id` pins when it dials the region: its
    /// server name and certificate fingerprint.
    pub fn region_pin(&self, id: &str) -> Result<ServerPin> {
        let r = self
            .region(id)
            .ok_or_else(|| FedError::Config(format!("the roster lists no region {id:?}")))?;
        match (&r.server_name, &r.server_cert_sha256) {
            (Some(name), Some(fp)) => Ok(ServerPin {
                role: Role::Region,
                name: name.clone(),
                cert_sha256: fp.to_ascii_lowercase(),
            }),
            _ => Err(FedError::Config(format!(
                "the roster has no server name or certificate fingerprint for region {id}: \
                 nothing to pin"
            ))),
        }
    }

    /// The region a client uploads through, if any.
    pub fn region_of(&self, client: &str) -> Option<&RegionEntry> {
        self.by_id(client)
            .and_then(|c| c.region.as_deref())
            .and_then(|r| self.region(r))
    }

    /// What a client pins when it dials `role`: the role's name and
    /// certificate fingerprint. A roster without the fingerprint cannot be
    /// used to dial (nothing to pin).
    pub fn server_pin(&self, role: Role) -> Result<ServerPin> {
        let (name, fp) = match role {
            Role::Coordinator => (&self.coordinator_name, &self.coordinator_cert_sha256),
            Role::KeyService => (&self.key_service_name, &self.key_service_cert_sha256),
            Role::Region => {
                return Err(FedError::Config(
                    "a region is pinned by its id (Roster::region_pin)".into(),
                ))
            }
        };
        let cert_sha256 = fp.clone().ok_or_else(|| {
            FedError::Config(format!(
                "the roster has no certificate fingerprint for the {role}: nothing to pin"
            ))
        })?;
        Ok(ServerPin {
            role,
            name: name.clone().unwrap_or_else(|| "localhost".into()),
            cert_sha256: cert_sha256.to_ascii_lowercase(),
        })
    }

    /// Whether `sha256_hex` is the certificate with which the coordinator
    /// calls the key service (its client certificate; in rosters without
    /// one, its server certificate).
    pub fn is_coordinator_client(&self, sha256_hex: &str) -> bool {
        match &self.coordinator_client_cert_sha256 {
            Some(c) => c == sha256_hex,
            None => self.coordinator_cert_sha256.as_deref() == Some(sha256_hex),
        }
    }

    /// Loads and validates a JSON roster.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::store::read_text_limited(path, 64 << 20)?;
        let r: Self =
            serde_json::from_str(&text).map_err(|e| FedError::Config(format!("roster: {e}")))?;
        r.validate()?;
        Ok(r)
    }

    /// Writes the roster atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::store::write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes(), false)
    }

    /// The entry of a client id (revoked or not).
    pub fn by_id(&self, id: &str) -> Option<&RosterEntry> {
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// The entry of a party id.
    pub fn by_party(&self, party: u64) -> Option<&RosterEntry> {
        self.clients.iter().find(|c| c.party_id == party)
    }

    /// The entry whose certificate has this SHA-256.
    pub fn by_cert(&self, sha256_hex: &str) -> Option<&RosterEntry> {
        self.clients
            .iter()
            .find(|c| c.cert_sha256.as_deref() == Some(sha256_hex))
    }

    /// Whether a client id was revoked.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked.iter().any(|r| r == id)
    }

    /// Admits `id`: enrolled and not revoked.
    pub fn admit(&self, id: &str) -> Result<&RosterEntry> {
        let e = self
            .by_id(id)
            .ok_or_else(|| FedError::Unenrolled(id.to_string()))?;
        if self.is_revoked(id) {
            return Err(FedError::Revoked(id.to_string()));
        }
        Ok(e)
    }

    /// All party ids, sorted.
    pub fn party_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.clients.iter().map(|c| c.party_id).collect();
        v.sort_unstable();
        v
    }
}

fn is_fingerprint(h: &str) -> bool {
    hex::decode(h).map(|b| b.len()) == Ok(32)
}

/// Parses a hex X25519 public key.
pub fn parse_public(hex_key: &str) -> Result<PublicKey> {
    let b: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| FedError::Config("key-agreement key must be 32 bytes of hex".into()))?;
    Ok(PublicKey::from(b))
}

/// A client's key-agreement secret (zeroized on drop).
pub struct KxSecret(StaticSecret);

impl std::fmt::Debug for KxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KxSecret(<redacted>)")
    }
}

impl KxSecret {
    /// A fresh secret from the OS CSPRNG (ChaCha20).
    pub fn generate() -> Result<Self> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rng, bytes.as_mut());
        Ok(Self(StaticSecret::from(*bytes)))
    }

    /// From 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// The secret bytes (for protected storage only).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(PublicKey::from(&self.0).as_bytes())
    }

    /// Loads from a file holding the hex secret.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| FedError::io(path, e))?);
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| FedError::Config(format!("{}: not hex", path.display())))?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| FedError::Config(format!("{}: not 32 bytes", path.display())))?;
        Ok(Self::from_bytes(arr))
    }

    /// Saves the hex secret (mode 0600, never overwriting).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = Zeroizing::new(hex::encode(*self.to_bytes()));
        crate::store::write_atomic(path, text.as_bytes(), true)
    }

    pub(crate) fn inner(&self) -> &StaticSecret {
        &self.0
    }
}
