//! The client side of the local API, used by `tessera-agent get`, `list`, `exec`, `rotate-store-key` and `status`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use tessera_proto::ids::CredentialName;
use tessera_proto::secret::SecretBytes;

use super::protocol::{ApiError, Header, Request};
use crate::config::SealerBackend;
use crate::status::AgentStatus;
use crate::store::CredentialMeta;
use crate::store_key::worker::StoreKeyStatus;

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The agent refused.
    #[error("{code}: {message}")]
    Api {
        /// The typed error.
        code: ApiError,
        /// The explanation.
        message: String,
    },
    /// The socket failed.
    #[error("local API socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The agent answered something unreadable.
    #[error("local API: malformed answer")]
    Protocol,
}

/// A connection to the agent.
#[derive(Debug)]
pub struct Client {
    path: String,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let p = path.display().to_string();
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(Self {
            path: p,
            reader: BufReader::new(stream),
        })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn call(&mut self, req: &Request) -> Result<Header, ClientError> {
        let mut line = serde_json::to_vec(req).map_err(|_| ClientError::Protocol)?;
        line.push(b'\n');
        self.reader
            .get_mut()
            .write_all(&line)
            .map_err(|e| self.io(e))?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer).map_err(|e| self.io(e))?;
        let header: Header = serde_json::from_str(&answer).map_err(|_| ClientError::Protocol)?;
        if header.ok {
            Ok(header)
        } else {
            Err(ClientError::Api {
                code: header.error.unwrap_or(ApiError::Internal),
                message: header.message.unwrap_or_default(),
            })
        }
    }

    /// Metadata and plaintext of `name`.
    pub fn get(
        &mut self,
        name: &CredentialName,
    ) -> Result<(CredentialMeta, SecretBytes), ClientError> {
        let h = self.call(&Request::Get { name: name.clone() })?;
        let (Some(meta), Some(len)) = (h.meta, h.secret_len) else {
            return Err(ClientError::Protocol);
        };
        if len > tessera_proto::secret::MAX_SECRET_BYTES {
            return Err(ClientError::Protocol);
        }
        let mut buf = vec![0u8; len];
        let read = self.reader.read_exact(&mut buf);
        // Owned by the secret type from here on, so it is zeroized on every path.
        let secret = SecretBytes::new(buf);
        read.map_err(|e| self.io(e))?;
        Ok((meta, secret))
    }

    /// Metadata of `name`.
    pub fn meta(&mut self, name: &CredentialName) -> Result<CredentialMeta, ClientError> {
        self.call(&Request::Meta { name: name.clone() })?
            .meta
            .ok_or(ClientError::Protocol)
    }

    /// Metadata of everything the caller may read.
    pub fn list(&mut self) -> Result<Vec<CredentialMeta>, ClientError> {
        self.call(&Request::List)?.list.ok_or(ClientError::Protocol)
    }

    /// The running agent's status (its own uid or root only).
    pub fn status(&mut self) -> Result<AgentStatus, ClientError> {
        self.call(&Request::Status)?
            .status
            .ok_or(ClientError::Protocol)
    }

    /// Starts a store-key rotation in the running agent (its own uid or root only).
    pub fn rotate_store_key(
        &mut self,
        to: Option<SealerBackend>,
    ) -> Result<StoreKeyStatus, ClientError> {
        self.call(&Request::RotateStoreKey { to })?
            .store_key
            .ok_or(ClientError::Protocol)
    }
}
