//! The client side of the local API, used by `tessera-agent get`, `list`, `exec`, `rotate-store-key` and `status`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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
    /// The agent gave no answer within the client's time limit.
    #[error(
        "local API socket {path}: no answer within {secs} s (the agent is stuck or overloaded; `systemctl status \
         tessera-agent` and its log say why)"
    )]
    Timeout {
        /// The socket.
        path: String,
        /// The limit, seconds.
        secs: u64,
    },
    /// The agent answered something unreadable.
    #[error("local API: malformed answer")]
    Protocol,
}

/// How much longer than the agent's own JIT budget (`socket.jit_timeout_ms`) a client waits for an answer: the
/// agent answers `timeout` itself when its budget runs out, so this margin only covers an agent that is stuck.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// A connection to the agent.
#[derive(Debug)]
pub struct Client {
    path: String,
    reader: BufReader<UnixStream>,
    limit: Option<Duration>,
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
            limit: None,
        })
    }

    /// Connects to the socket at `path`; a request then fails with [`ClientError::Timeout`] when the agent sends
    /// nothing for `limit` (the agent writes an answer, header and secret, all at once when it has it).
    pub fn connect_with_timeout(path: &Path, limit: Duration) -> Result<Self, ClientError> {
        let mut client = Self::connect(path)?;
        let stream = client.reader.get_ref();
        stream
            .set_read_timeout(Some(limit))
            .and_then(|()| stream.set_write_timeout(Some(limit)))
            .map_err(|e| client.io(e))?;
        client.limit = Some(limit);
        Ok(client)
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        match (self.limit, source.kind()) {
            (Some(limit), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                ClientError::Timeout {
                    path: self.path.clone(),
                    secs: limit.as_secs(),
                }
            }
            _ => ClientError::Io {
                path: self.path.clone(),
                source,
            },
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
