//! The operator's identity, held for the dashboard's lifetime: what signs (grant) and the admin client.

use std::path::PathBuf;

use tessera_proto::cert::{IdentityKey, PinnedCa};
use tessera_proto::ids::OperatorId;

use crate::client::AdminClient;
use crate::cred;

/// Everything the dashboard acts with; the key stays in this process.
#[derive(Debug)]
pub struct Identity {
    /// The org CA, as the operator has it.
    pub ca: PinnedCa,
    /// The operator's key.
    pub key: IdentityKey,
    /// The operator's certificate, DER.
    pub cert: Vec<u8>,
    /// The operator's id.
    pub id: OperatorId,
    /// The operator directory (catalogue, issued-certificate registry, revocation list copy).
    pub dir: PathBuf,
    /// The admin API client (mutual TLS with the operator's certificate).
    pub client: AdminClient,
}

impl Identity {
    /// What signs and seals, as the commands use it.
    pub fn signer(&self) -> cred::Operator<'_> {
        cred::Operator {
            ca: &self.ca,
            id: self.id.clone(),
            key: &self.key,
            cert: &self.cert,
            dir: &self.dir,
        }
    }
}
