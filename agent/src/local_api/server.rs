//! The socket server: one task accepts, one task per connection.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tessera_proto::wire::PublicReason;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::limiter::UidLimiter;
use super::protocol::{parse_request_line, ApiError, Header, Request, MAX_REQUEST_BYTES};
use crate::config::{Caller, LiveConfig};
use crate::core::{CoreHandle, JitOutcome, WaitError};
use crate::status::StatusSources;
use crate::store::{AuditEntry, AuditOutcome, Store};
use crate::store_key::worker::{RotateRefused, StoreKeyHandle};

/// How long a connection may take to send a request line.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection needs.
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// Configuration (policy, budget): the one in force, read once per request (docs/operations.md "Reloading").
    pub cfg: LiveConfig,
    /// The store.
    pub store: Store,
    /// JIT repair.
    pub core: CoreHandle,
    /// Per-uid limit.
    pub limiter: UidLimiter,
    /// Store-key rotation (`None`: not offered on this socket).
    pub store_key: Option<StoreKeyHandle>,
    /// The running agent's status (`None`: not offered on this socket).
    pub status: Option<StatusSources>,
}

/// Binds the socket: removes a stale socket file, creates a missing parent directory (0700, or 0710 with the socket
/// group: see `private_dir`), sets mode and group.
pub fn bind(path: &Path, mode: u32, gid: Option<u32>) -> std::io::Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::private_dir::create_socket_dir(parent, gid)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    if let Some(gid) = gid {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Accepts connections until `cancel`.
pub async fn serve(listener: UnixListener, ctx: ApiContext, cancel: CancellationToken) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { conns.spawn(connection(stream, ctx.clone())); }
                Err(e) => {
                    tracing::warn!(error = %e, "local API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn connection(stream: UnixStream, ctx: ApiContext) {
    let caller = match stream.peer_cred() {
        Ok(c) => Caller {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "no peer credentials; closing");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(u64::MAX);
    loop {
        let mut line = Vec::new();
        reader.set_limit(u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX) + 1);
        let Ok(Ok(n)) =
            tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await
        else {
            return;
        };
        if n == 0 {
            return;
        }
        let parsed = parse_request_line(&line);
        let (header, secret) = match parsed {
            Ok(req) => handle(&ctx, caller, req).await,
            Err(message) => {
                let e = ApiError::Invalid;
                audit(
                    &ctx,
                    caller,
                    "invalid",
                    None,
                    AuditOutcome::Invalid,
                    Some(e),
                );
                (Header::error(e, message), None)
            }
        };
        if write_answer(&mut write, &header, secret.as_ref())
            .await
            .is_err()
            || header.error == Some(ApiError::Invalid)
        {
            return;
        }
    }
}

async fn write_answer(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    header: &Header,
    secret: Option<&tessera_proto::secret::SecretBytes>,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    if let Some(s) = secret {
        let bytes = s.expose(<[u8]>::to_vec);
        let bytes = zeroize::Zeroizing::new(bytes);
        w.write_all(&bytes).await?;
    }
    w.flush().await
}

fn audit(
    ctx: &ApiContext,
    caller: Caller,
    op: &str,
    name: Option<&str>,
    outcome: AuditOutcome,
    error: Option<ApiError>,
) {
    let entry = AuditEntry {
        seq: 0,
        at: crate::clock::unix_now(),
        uid: caller.uid,
        gid: caller.gid,
        pid: caller.pid,
        op: op.to_owned(),
        name: name.map(str::to_owned),
        outcome,
        detail: error.map(|e| e.to_string()),
        job_id: None,
        param: None,
    };
    if let Err(e) = ctx.store.audit(entry) {
        tracing::error!(error = %e, "could not write the local audit");
    }
    tracing::info!(uid = caller.uid, gid = caller.gid, pid = ?caller.pid, op, name, ?outcome, "local API request");
}

fn outcome_of(e: ApiError) -> AuditOutcome {
    match e {
        ApiError::NotGranted => AuditOutcome::NotGranted,
        ApiError::Busy => AuditOutcome::Busy,
        ApiError::Invalid => AuditOutcome::Invalid,
        ApiError::Internal => AuditOutcome::Internal,
        _ => AuditOutcome::Unavailable,
    }
}

async fn handle(
    ctx: &ApiContext,
    caller: Caller,
    req: Request,
) -> (Header, Option<tessera_proto::secret::SecretBytes>) {
    let (op, name) = match &req {
        Request::Get { name } => ("get", Some(name.clone())),
        Request::Meta { name } => ("meta", Some(name.clone())),
        Request::List => ("list", None),
        Request::RotateStoreKey { .. } => ("rotate_store_key", None),
        Request::Status => ("status", None),
    };
    let result = match ctx.limiter.try_acquire(caller.uid) {
        None => Err((
            ApiError::Busy,
            "too many concurrent requests from this uid".to_owned(),
        )),
        Some(_permit) => answer(ctx, caller, req).await,
    };
    match result {
        Ok((header, secret)) => {
            audit(
                ctx,
                caller,
                op,
                name.as_ref()
                    .map(tessera_proto::ids::CredentialName::as_str),
                AuditOutcome::Served,
                None,
            );
            (header, secret)
        }
        Err((error, message)) => {
            audit(
                ctx,
                caller,
                op,
                name.as_ref()
                    .map(tessera_proto::ids::CredentialName::as_str),
                outcome_of(error),
                Some(error),
            );
            (Header::error(error, message), None)
        }
    }
}

type Answer = Result<(Header, Option<tessera_proto::secret::SecretBytes>), (ApiError, String)>;

async fn answer(ctx: &ApiContext, caller: Caller, req: Request) -> Answer {
    let cfg = ctx.cfg.current();
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed");
        (
            ApiError::Internal,
            "the agent could not read its store".to_owned(),
        )
    };
    let name = match req {
        Request::List => {
            let list = ctx
                .store
                .list()
                .map_err(internal)?
                .into_iter()
                .filter(|m| {
                    cfg.policy_for(m.name.as_str())
                        .is_some_and(|p| p.allows(&caller))
                })
                .collect();
            let mut h = Header::ok();
            h.list = Some(list);
            return Ok((h, None));
        }
        Request::RotateStoreKey { to } => return rotate_store_key(ctx, caller, to).await,
        Request::Status => return status(ctx, caller),
        Request::Get { ref name } | Request::Meta { ref name } => name.clone(),
    };
    if !cfg
        .policy_for(name.as_str())
        .is_some_and(|p| p.allows(&caller))
    {
        return Err((
            ApiError::NotGranted,
            format!("uid {} may not read {}", caller.uid, name.as_str()),
        ));
    }
    let read = |name: &tessera_proto::ids::CredentialName| {
        if matches!(req, Request::Meta { .. }) {
            // Metadata shows the status (`quarantined`) and is never refused for it.
            return ctx.store.lookup_by_name(name).map_err(internal);
        }
        ctx.store.credential_by_name(name).map_err(|e| match e {
            crate::store::StoreError::Quarantined { .. } => (
                ApiError::Quarantined,
                format!(
                    "{} is quarantined: the operator certificate that signed it was revoked",
                    name.as_str()
                ),
            ),
            other => internal(other),
        })
    };
    let mut held = read(&name)?;
    if held.is_none() {
        let budget = Duration::from_millis(cfg.socket.jit_timeout_ms);
        match ctx.core.await_credential(name.clone(), budget).await {
            Ok(JitOutcome::Delivered) => {
                held = read(&name)?;
            }
            Ok(JitOutcome::Unavailable(reason)) => {
                let why = match reason {
                    PublicReason::NotFound => "no such credential (or it was deleted)",
                    PublicReason::NotGranted => "this agent is not in its scope",
                    PublicReason::CommitmentMismatch => "a delivery failed its commitment check",
                    PublicReason::RateLimited => "too many requests for missing credentials",
                    PublicReason::NoPeer => "no agent that holds it is online",
                    _ => "the relay could not deliver it now",
                };
                return Err((
                    ApiError::from(reason),
                    format!("{} is not held here: {why}", name.as_str()),
                ));
            }
            Err(WaitError::Timeout) => {
                return Err((
                    ApiError::Timeout,
                    format!(
                        "{} did not arrive within {} ms",
                        name.as_str(),
                        budget.as_millis()
                    ),
                ));
            }
            Err(WaitError::Busy) => return Err((ApiError::Busy, "the agent is busy".to_owned())),
        }
    }
    let cred = held.ok_or((ApiError::NotFound, format!("{} is not held", name.as_str())))?;
    let mut h = Header::ok();
    h.meta = Some(cred.meta());
    if matches!(req, Request::Get { .. }) {
        h.secret_len = Some(cred.payload.bytes().len());
        return Ok((h, Some(cred.payload.bytes().clone())));
    }
    Ok((h, None))
}

/// Only the agent's own uid or root may read the status: it names every credential held, which the policy may hide
/// from a workload.
fn status(ctx: &ApiContext, caller: Caller) -> Answer {
    let own = rustix::process::geteuid().as_raw();
    if caller.uid != own && caller.uid != 0 {
        return Err((
            ApiError::NotGranted,
            format!("only uid {own} (the agent's) or root may read the agent's status"),
        ));
    }
    let Some(sources) = &ctx.status else {
        return Err((
            ApiError::Internal,
            "the status is not available on this socket".to_owned(),
        ));
    };
    match crate::status::snapshot(&ctx.cfg.current(), &ctx.store, sources) {
        Ok(s) => {
            let mut h = Header::ok();
            h.status = Some(s);
            Ok((h, None))
        }
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            Err((
                ApiError::Internal,
                "the agent could not read its store".to_owned(),
            ))
        }
    }
}

/// Only the agent's own uid (the service account an operator runs `tessera-agent rotate-store-key` as) or root may
/// rotate the store key; a workload may not. Jobs run as the agent's uid, so a caller other than root may not rotate a
/// key younger than an hour (no rewriting the whole store in a loop). Under way or too soon: `BUSY`; the sealer or
/// the manifest failed: `INTERNAL` with the cause.
async fn rotate_store_key(
    ctx: &ApiContext,
    caller: Caller,
    to: Option<crate::config::SealerBackend>,
) -> Answer {
    let own = rustix::process::geteuid().as_raw();
    if caller.uid != own && caller.uid != 0 {
        return Err((
            ApiError::NotGranted,
            format!("only uid {own} (the agent's) or root may rotate the store key"),
        ));
    }
    let Some(handle) = &ctx.store_key else {
        return Err((
            ApiError::Internal,
            "store-key rotation is not available on this socket".to_owned(),
        ));
    };
    match handle.rotate(to, caller.uid == 0).await {
        Ok(status) => {
            let mut h = Header::ok();
            h.store_key = Some(status);
            Ok((h, None))
        }
        Err(RotateRefused::NotNow(message)) => Err((ApiError::Busy, message)),
        Err(refused) => Err((ApiError::Internal, refused.to_string())),
    }
}
