//! The write turn: the session advisory lock a relay holds while it runs one event and writes its batch, so that
//! several relays on one database write one at a time, each on what the others committed before
//! (docs/operations.md, "Running several relays").
//!
//! The lock lives on a session of its own, outside the pool: a session advisory lock belongs to the connection that
//! took it, and the pool hands connections around. A relay that dies (or whose connection the server drops) loses
//! the lock with its session, so the next relay's turn begins at once.

use std::sync::Arc;

use super::{backend, StateError, StateResult};

/// The advisory lock that is the write turn.
pub(super) const WRITE_TURN: i64 = 0x7465_7373_6572_6101;

/// [`WRITE_TURN`] as `pg_locks` shows a bigint advisory lock: its high and low 32 bits (`classid`, `objid`).
pub(super) fn lock_halves() -> (u32, u32) {
    let bits = WRITE_TURN.to_be_bytes();
    let half = |i: usize| {
        let mut b = [0; 4];
        if let Some(s) = bits.get(i..i + 4) {
            b.copy_from_slice(s);
        }
        u32::from_be_bytes(b)
    };
    (half(0), half(4))
}

/// The session that takes and releases the write turn.
pub(super) struct TurnSession {
    pub(super) client: Arc<tokio_postgres::Client>,
    /// Its statements, prepared once (after the schema is up to date): taking and ending a turn is then one round
    /// trip each.
    pub(super) statements: Option<Statements>,
    /// Its server process, which `pg_locks` names as the lock's holder.
    pub(super) pid: i32,
    /// Whether this session holds the turn now.
    pub(super) held: bool,
    /// Set when a write found the turn no longer held by this session: the next turn connects again.
    pub(super) lost: bool,
    _conn: tokio::task::JoinHandle<()>,
}

impl TurnSession {
    /// Connects a session (holding nothing yet). The server ends it (and so the turn it holds) when it stays idle
    /// for `idle_ms`: a relay that hangs while it holds the turn (stopped, not dead) blocks the others' writes that
    /// long at most. Servers before PostgreSQL 14 lack the setting: there, only the relay's death ends its turn.
    pub(super) async fn connect(pg: tokio_postgres::Config, idle_ms: u64) -> StateResult<Self> {
        let (client, conn) = pg.connect(tokio_postgres::NoTls).await.map_err(backend)?;
        let conn = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "postgres: the write turn's session closed");
            }
        });
        if let Err(e) = client
            .batch_execute(&format!("SET idle_session_timeout = {idle_ms}"))
            .await
        {
            tracing::warn!(error = %e, "postgres: idle_session_timeout is not supported by this server");
        }
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(backend)?
            .get(0);
        Ok(Self {
            statements: None,
            client: Arc::new(client),
            pid,
            held: false,
            lost: false,
            _conn: conn,
        })
    }

    /// Prepares the turn's statements (the schema must be up to date).
    pub(super) async fn prepared(mut self) -> StateResult<Self> {
        self.statements = Some(Statements::prepare(&self.client).await?);
        Ok(self)
    }

    /// Whether the session can be used (else a new one is connected).
    pub(super) fn usable(&self) -> bool {
        !self.lost && !self.client.is_closed()
    }
}

/// The turn session's prepared statements.
#[derive(Clone)]
pub(super) struct Statements {
    lock: tokio_postgres::Statement,
    epoch: tokio_postgres::Statement,
    unlock: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &tokio_postgres::Client) -> StateResult<Self> {
        Ok(Self {
            lock: client
                .prepare("SELECT pg_advisory_lock($1)")
                .await
                .map_err(backend)?,
            epoch: client
                .prepare("SELECT n FROM write_epoch")
                .await
                .map_err(backend)?,
            unlock: client
                .prepare("SELECT pg_advisory_unlock($1)")
                .await
                .map_err(backend)?,
        })
    }
}

fn unprepared() -> StateError {
    StateError::Backend("postgres: the write turn's statements are not prepared".into())
}

/// Waits for the turn on `client`'s session (while another relay writes; at most the server's
/// `statement_timeout`), then reads the write epoch. The two statements are sent together but run one after the
/// other on the session, the second with a snapshot taken once the first returned: it sees every batch committed
/// before the turn began.
pub(super) async fn take(
    client: Arc<tokio_postgres::Client>,
    statements: Option<Statements>,
) -> StateResult<i64> {
    let statements = statements.ok_or_else(unprepared)?;
    let (locked, epoch) = futures_util::future::join(
        client.execute(&statements.lock, &[&WRITE_TURN]),
        client.query_one(&statements.epoch, &[]),
    )
    .await;
    locked.map_err(backend)?;
    epoch
        .map_err(backend)?
        .try_get(0)
        .map_err(|_| StateError::Corrupt("write_epoch".into()))
}

/// Ends the turn on `client`'s session.
pub(super) async fn release(
    client: Arc<tokio_postgres::Client>,
    statements: Option<Statements>,
) -> StateResult<()> {
    let statements = statements.ok_or_else(unprepared)?;
    client
        .execute(&statements.unlock, &[&WRITE_TURN])
        .await
        .map_err(backend)
        .map(drop)
}

/// At start: during a turn, brings the schema up to date (so that relays starting together migrate one at a time)
/// and reads the write epoch.
pub(super) async fn migrate(session: &mut TurnSession) -> StateResult<i64> {
    let client = Arc::get_mut(&mut session.client).ok_or_else(|| {
        StateError::Backend("postgres: the write turn's session is shared at start".into())
    })?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&WRITE_TURN])
        .await
        .map_err(backend)?;
    super::migrations::runner()
        .set_migration_table_name("tessera_schema_history")
        .run_async(client)
        .await
        .map_err(|e| StateError::Backend(format!("postgres migrations: {e}")))?;
    let epoch = client
        .query_one("SELECT n FROM write_epoch", &[])
        .await
        .map_err(backend)?
        .try_get(0)
        .map_err(|_| StateError::Corrupt("write_epoch".into()))?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&WRITE_TURN])
        .await
        .map_err(backend)?;
    Ok(epoch)
}
