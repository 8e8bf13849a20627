//! Regional aggregators' identities: a server certificate under the
//! region's own name, a client certificate, a ledger key pair, all under
//! `regions/<id>/` of the CA directory, and the clients' assignment.

use super::{default_server_name, issue_to, server_names, Credentials, Kind, PkiDir};
use crate::error::{FedError, Result};
use crate::roster::{RegionEntry, RosterEntry};
use rcgen::{Issuer, KeyPair};
use std::path::{Path, PathBuf};

impl PkiDir {
    /// A regional aggregator's directory, `regions/<id>`: its server
    /// credentials in `server/`, its client credentials (with which it
    /// calls the coordinator) in `client/`, and its ledger's key files
    /// `ledger.key` and `ledger.pub`.
    pub fn region_dir(&self, id: &str) -> PathBuf {
        self.0.join("regions").join(id)
    }

    /// The prefix of region `id`'s ledger key files.
    pub fn region_ledger_keys(&self, id: &str) -> PathBuf {
        self.region_dir(id).join("ledger")
    }

    /// Region `id`'s ledger signing key (the region only).
    pub fn region_ledger_signing_key(&self, id: &str) -> PathBuf {
        self.region_dir(id).join("ledger.key")
    }
}

impl Credentials {
    /// Region `id`'s server credentials (`regions/<id>/server`).
    pub fn region_server(dir: &Path, id: &str) -> Self {
        Self::own(
            &PkiDir::new(dir).ca_cert(),
            &PkiDir::new(dir).region_dir(id).join("server"),
        )
    }

    /// Region `id`'s client credentials (`regions/<id>/client`), with
    /// which it calls the coordinator.
    pub fn region_client(dir: &Path, id: &str) -> Self {
        Self::own(
            &PkiDir::new(dir).ca_cert(),
            &PkiDir::new(dir).region_dir(id).join("client"),
        )
    }
}

/// Creates `o.regions` regional aggregators: each a server certificate
/// under its default name (`region-J.<federation>.cipherflow.internal`),
/// a client certificate, a ledger key pair; assigns the clients round
/// robin.
pub(super) fn issue_regions(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    o: &super::CaOptions,
    clients: &mut [RosterEntry],
) -> Result<Vec<RegionEntry>> {
    if o.regions > clients.len() {
        return Err(FedError::Config(format!(
            "{} regions for {} clients: each region needs a client",
            o.regions,
            clients.len()
        )));
    }
    let pki = PkiDir::new(dir);
    let mut out = Vec::with_capacity(o.regions);
    for j in 1..=o.regions {
        let id = format!("region-{j}");
        if clients.iter().any(|c| c.client_id == id) {
            return Err(FedError::Config(format!(
                "a client is named {id}, the name of a region"
            )));
        }
        let name = default_server_name(&id, &o.federation);
        let server = issue_to(
            &Credentials::region_server(dir, &id),
            issuer,
            &id,
            server_names(&name, &[])?,
            Kind::Server,
            o.validity_days,
        )?;
        let client = issue_to(
            &Credentials::region_client(dir, &id),
            issuer,
            &id,
            Vec::new(),
            Kind::Client,
            o.validity_days,
        )?;
        let signer = cipherflow_ledger::LogSigner::generate()?;
        signer.save(&pki.region_ledger_keys(&id))?;
        out.push(RegionEntry {
            region_id: id,
            ledger_key: signer.public_key().to_hex(),
            server_name: Some(name),
            server_cert_sha256: Some(server),
            client_cert_sha256: Some(client),
        });
    }
    if o.regions > 0 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.region = Some(format!("region-{}", i % o.regions + 1));
        }
    }
    Ok(out)
}
