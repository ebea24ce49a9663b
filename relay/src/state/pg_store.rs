//! The shared backend: PostgreSQL through tokio-postgres, pooled by deadpool, its schema created and upgraded by
//! the versioned migrations in `relay/migrations/` when the relay starts.
//!
//! The engine is synchronous; this store runs its queries on a small runtime of its own and waits for each
//! answer, as it waits for sled's disk. Records are the JSON the sled backend keeps, in `jsonb` columns.
//!
//! Several relays may share one database: each writes an event's batch during its write turn ([`turn`]) and,
//! when a turn shows that another relay wrote since, drops what it cached (docs/operations.md, "Running several
//! relays").

use std::future::Future;
use std::sync::mpsc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_proto::audit::AuditEntry;
use tessera_proto::ids::{AgentId, CredentialId, CredentialName};
use tessera_proto::receipt::Receipt;
use tessera_proto::statement::{RevocationList, Signed};
use tokio_postgres::types::{Json, ToSql};

use self::turn::TurnSession;
use super::decoded::Decoded;
use super::records::StoredSealed;
use super::{
    AgentRecord, Batch, BatchEnvelopeRecord, CredentialRecord, DeliveryRow, JobRecord,
    OperatorSealed, PendingRewrap, ReceiptKind, RelayStore, RenewalRecord, StateError, StateResult,
    Write,
};
use crate::alerts::Alert;

refinery::embed_migrations!("migrations");

/// `[state.postgres]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// A libpq-style connection string or URL (`postgres://tessera@db.example:5432/tessera`). A password is
    /// better kept in `password_file`.
    pub url: String,
    /// A file holding the password (first line), read at start.
    pub password_file: Option<std::path::PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long to wait for a connection, ms.
    pub connect_timeout_ms: u64,
    /// How long one statement may run on the server (`statement_timeout`), and so how long the relay waits for a
    /// query, ms.
    pub statement_timeout_ms: u64,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            url: "postgres://tessera@127.0.0.1:5432/tessera".to_owned(),
            password_file: None,
            pool_size: 4,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 10_000,
        }
    }
}

impl PgConfig {
    /// What can be checked without connecting: the URL parses (naming no TLS mode the relay cannot honour), the
    /// password file reads, the numbers are in range. Run when the configuration loads (`check-config` included).
    pub fn check(&self) -> Result<(), String> {
        let parsed: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("state.postgres.url does not parse: {e}"))?;
        if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(
                "state.postgres.url asks for sslmode=require: TLS to PostgreSQL is not supported yet \
                 (docs/operations.md, \"State backends\")"
                    .into(),
            );
        }
        if let Some(path) = &self.password_file {
            std::fs::read_to_string(path)
                .map_err(|e| format!("state.postgres.password_file {}: {e}", path.display()))?;
        }
        if self.connect_timeout_ms == 0 {
            return Err("state.postgres.connect_timeout_ms must be positive".into());
        }
        if !(100..=3_600_000).contains(&self.statement_timeout_ms) {
            return Err("state.postgres.statement_timeout_ms must be 100..=3600000".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only where it points.
        let shown = self.url.parse::<tokio_postgres::Config>().map_or_else(
            |_| "<unparsable>".to_owned(),
            |c| format!("{:?}/{:?}", c.get_hosts(), c.get_dbname()),
        );
        f.debug_struct("PgConfig")
            .field("url", &shown)
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// The error with its causes: tokio-postgres says only "db error" at the top, the server's message is below.
fn backend(e: impl std::error::Error) -> StateError {
    let mut msg = format!("postgres: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    StateError::Backend(msg)
}

type Param = Box<dyn ToSql + Sync + Send>;

/// The store's own runtime, shut down without waiting when dropped (allowed inside another runtime, where the
/// relay opens and drops its store).
struct Rt(Option<tokio::runtime::Runtime>);

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// PostgreSQL-backed relay state.
pub struct PgStore {
    rt: Rt,
    pool: Pool,
    /// The write turn's session and the write epoch this store last saw (locked before `audit_head`).
    writer: std::sync::Mutex<Writer>,
    /// The thread running the event that holds the write turn: its reads may use the decoded caches, which are
    /// coherent only while no other relay writes and only this thread applies (other threads read through).
    turn_thread: std::sync::Mutex<Option<std::thread::ThreadId>>,
    /// Where to connect the turn's session again after it is lost.
    pg: tokio_postgres::Config,
    /// How long the server lets the turn's session stay idle ([`turn_idle_ms`]).
    turn_idle_ms: u64,
    /// How long a caller waits for one query's answer.
    wait: std::time::Duration,
    /// The audit chain's newest entry, read again at a turn that finds another relay wrote; held while a batch
    /// is applied.
    audit_head: std::sync::Mutex<Option<AuditEntry>>,
    agent_cache: Decoded<AgentId, AgentRecord>,
    credential_cache: Decoded<CredentialId, CredentialRecord>,
    /// Delivery rows and in-flight records the rewrap path reads several times per delivery (a database round
    /// trip each otherwise).
    delivery_cache: Decoded<(CredentialId, AgentId), DeliveryRow>,
    pending_cache: Decoded<uuid::Uuid, PendingRewrap>,
}

/// What every relay's sessions' `application_name` starts with; the replica's name follows.
const APPLICATION: &str = "tessera-relay/";

/// How a batch's transaction ended.
enum Written {
    Committed(i64),
    /// The write epoch had moved: rolled back.
    Stale,
    /// The turn's session no longer holds the turn: rolled back.
    TurnLost,
}

/// How long the server lets the write turn's session stay idle (an event runs while it is idle): six statement
/// timeouts, at least a minute.
fn turn_idle_ms(cfg: &PgConfig) -> u64 {
    cfg.statement_timeout_ms.saturating_mul(6).max(60_000)
}

/// The write turn's state.
#[derive(Default)]
struct Writer {
    /// The session taking the turn; `None` after it failed (the next turn connects another).
    session: Option<TurnSession>,
    /// The write epoch as of this store's last turn or batch; `None` when unknown (a write whose answer was lost).
    epoch: Option<i64>,
}

/// Delivery rows kept decoded.
const DELIVERY_CACHE: usize = 100_000;
/// In-flight records kept decoded.
const PENDING_CACHE: usize = 20_000;

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// [`PgStore::open_as`] for a relay named `relay`.
    pub fn open(cfg: &PgConfig) -> StateResult<Self> {
        Self::open_as(cfg, "relay")
    }

    /// Connects as replica `replica` (its sessions' `application_name` is `tessera-relay/<replica>`, which
    /// [`RelayStore::replicas`] counts) and brings the schema up to date.
    pub fn open_as(cfg: &PgConfig, replica: &str) -> StateResult<Self> {
        let mut pg: tokio_postgres::Config = cfg
            .url
            .parse()
            .map_err(|e| StateError::Backend(format!("postgres url: {e}")))?;
        if let Some(path) = &cfg.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StateError::Backend(format!("{}: {e}", path.display())))?;
            pg.password(text.lines().next().unwrap_or_default());
        }
        pg.connect_timeout(std::time::Duration::from_millis(cfg.connect_timeout_ms));
        // The server's side of a relay that vanishes: a transaction left open (its host gone or frozen mid-write)
        // is ended, and a dead connection noticed, within about a minute, so that the other replicas' writes do
        // not wait on its locks (docs/operations.md, "Running several relays").
        pg.options(format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} \
             -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
            cfg.statement_timeout_ms,
            turn_idle_ms(cfg)
        ));
        // A server or network that vanishes without closing the connection is noticed.
        pg.keepalives(true);
        pg.keepalives_idle(std::time::Duration::from_secs(30));
        pg.application_name(format!("{APPLICATION}{replica}"));
        let rt = Rt(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tessera-pg")
                .enable_all()
                .build()
                .map_err(backend)?,
        ));
        let manager = Manager::from_config(
            pg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_millis(
                cfg.connect_timeout_ms,
            )))
            .create_timeout(Some(std::time::Duration::from_millis(
                cfg.connect_timeout_ms,
            )))
            .build()
            .map_err(backend)?;
        let timeout = std::time::Duration::from_millis(cfg.connect_timeout_ms);
        // Migrating may take its time (and wait for another relay's turn); every other wait is one statement.
        let wait = std::time::Duration::from_millis(cfg.statement_timeout_ms)
            + 2 * timeout
            + std::time::Duration::from_secs(60);
        let idle_ms = turn_idle_ms(cfg);
        let (session, epoch) = on(&rt, wait, {
            let pg = pg.clone();
            async move {
                let mut session = TurnSession::connect(pg, idle_ms).await?;
                let epoch = turn::migrate(&mut session).await?;
                Ok((session.prepared().await?, epoch))
            }
        })?;
        let mut store = Self {
            rt,
            pool,
            writer: std::sync::Mutex::new(Writer {
                session: Some(session),
                epoch: Some(epoch),
            }),
            turn_thread: std::sync::Mutex::new(None),
            turn_idle_ms: idle_ms,
            pg,
            wait: std::time::Duration::from_millis(cfg.statement_timeout_ms)
                + timeout
                + std::time::Duration::from_secs(1),
            audit_head: std::sync::Mutex::new(None),
            agent_cache: Decoded::new(),
            credential_cache: Decoded::new(),
            delivery_cache: Decoded::bounded(DELIVERY_CACHE),
            pending_cache: Decoded::bounded(PENDING_CACHE),
        };
        let head = store.read_head()?;
        *store
            .audit_head
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
        Ok(store)
    }

    /// Runs `fut` on the store's runtime and waits for it (callable from synchronous code and from inside another
    /// runtime's tasks alike).
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = StateResult<T>> + Send + 'static,
    ) -> StateResult<T> {
        on(&self.rt, self.wait, fut)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn head(&self) -> std::sync::MutexGuard<'_, Option<AuditEntry>> {
        self.audit_head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `key` through `cache` when the caller is the event holding the write turn, else from the database.
    fn through<K: Eq + std::hash::Hash + Clone, V: Clone>(
        &self,
        cache: &Decoded<K, V>,
        key: &K,
        load: impl FnOnce() -> StateResult<Option<V>>,
    ) -> StateResult<Option<V>> {
        let holder = *self
            .turn_thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if holder == Some(std::thread::current().id()) {
            cache.get_or(key, load)
        } else {
            load()
        }
    }

    fn set_turn_thread(&self, holder: Option<std::thread::ThreadId>) {
        *self
            .turn_thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = holder;
    }

    /// The chain's newest entry, as the database has it.
    fn read_head(&self) -> StateResult<Option<AuditEntry>> {
        self.row("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1", vec![])
    }

    /// The write turn's session, connected again when it was lost.
    fn session<'w>(&self, w: &'w mut Writer) -> StateResult<&'w mut TurnSession> {
        if !w.session.as_ref().is_some_and(TurnSession::usable) {
            // A lost session took its lock (if it held one) with it.
            w.session = None;
            let (pg, idle_ms) = (self.pg.clone(), self.turn_idle_ms);
            w.session = Some(on(&self.rt, self.wait, async move {
                TurnSession::connect(pg, idle_ms).await?.prepared().await
            })?);
            tracing::info!("postgres: the write turn's session is connected again");
        }
        w.session
            .as_mut()
            .ok_or_else(|| StateError::Backend("postgres: no write turn session".into()))
    }

    /// Writes `batch` during the turn `w` holds.
    fn apply_in_turn(&self, w: &mut Writer, batch: &Batch) -> StateResult<()> {
        let mut stmts = Vec::new();
        for wr in &batch.0 {
            stmts.extend(statement(wr)?);
        }
        let session = self.session(w)?;
        let turn_pid = session.pid;
        // What this batch was built on: the epoch its turn began at (or this relay's last batch of the turn). The
        // write counts it up only from there, so a batch built on what another relay has since changed is refused
        // even if the turn was lost in between (a timed-out write whose commit landed late, a dropped session).
        let Some(built_on) = w.epoch else {
            return Err(StateError::Conflict(
                "the write epoch is not known (a write's outcome was lost); nothing written".into(),
            ));
        };
        let mut head = self.head();
        batch.check_audit_chain(head.as_ref())?;
        let pool = self.pool.clone();
        let written = self.block(async move {
            let mut client = pool.get().await.map_err(backend)?;
            let tx = client.transaction().await.map_err(backend)?;
            let mut prepared = Vec::with_capacity(stmts.len());
            for (sql, params) in &stmts {
                prepared.push((tx.prepare_cached(sql).await.map_err(backend)?, params));
            }
            let refs: Vec<Vec<&(dyn ToSql + Sync)>> = prepared
                .iter()
                .map(|(_, params)| {
                    params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect()
                })
                .collect();
            // Sent together, answered together (after the statements are prepared, cached per connection): the
            // batch's statements, the fence and the epoch. The fence: this relay's turn session still holds the
            // turn. The epoch: nobody wrote since the turn began. Either failing rolls the batch back.
            let (high, low) = turn::lock_halves();
            let (fence, written, epoch) = futures_util::future::join3(
                tx.query_opt(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND classid = $1 AND objid = $2 AND objsubid = 1 \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[&high, &low],
                ),
                futures_util::future::try_join_all(
                    prepared
                        .iter()
                        .zip(&refs)
                        .map(|((stmt, _), params)| tx.execute(stmt, params)),
                ),
                tx.query_opt(
                    "UPDATE write_epoch SET n = n + 1 WHERE n = $1 RETURNING n",
                    &[&built_on],
                ),
            )
            .await;
            written.map_err(backend)?;
            let Some(epoch) = epoch.map_err(backend)? else {
                // Another relay wrote since this batch's turn began; dropped without a commit: rolled back.
                return Ok(Written::Stale);
            };
            let holder: Option<i32> = fence.map_err(backend)?.map(|r| r.get(0));
            if holder != Some(turn_pid) {
                return Ok(Written::TurnLost);
            }
            tx.commit().await.map_err(backend)?;
            Ok(Written::Committed(epoch.get(0)))
        });
        match written {
            Ok(Written::Committed(epoch)) => w.epoch = Some(epoch),
            Ok(Written::Stale) => {
                w.epoch = None;
                self.forget();
                return Err(StateError::Conflict(
                    "another relay wrote since this batch's turn began; nothing written".into(),
                ));
            }
            Ok(Written::TurnLost) => {
                if let Some(s) = w.session.as_mut() {
                    s.lost = true;
                }
                w.epoch = None;
                self.forget();
                return Err(StateError::Backend(
                    "postgres: this relay's write turn was lost (its session was dropped); nothing written"
                        .into(),
                ));
            }
            Err(e) => {
                // The commit may have happened with its answer lost: what the caches hold is no longer known, nor
                // the epoch (the next turn reads everything again), nor the chain's head (read again when the
                // database answers, else at the next turn).
                w.epoch = None;
                self.forget();
                if let Ok(now) = self.read_head() {
                    *head = now;
                }
                return Err(e);
            }
        }
        self.committed(batch, &mut head);
        Ok(())
    }

    /// A batch was committed: the chain's head and the decoded caches follow it.
    fn committed(&self, batch: &Batch, head: &mut Option<AuditEntry>) {
        if let Some(last) = batch.0.iter().rev().find_map(|wr| match wr {
            Write::Audit(e) => Some(e),
            _ => None,
        }) {
            *head = Some(last.clone());
        }
        // Committed: the decoded caches follow.
        for wr in &batch.0 {
            match wr {
                Write::Agent(a) => self.agent_cache.set(&a.id, a),
                Write::Credential(c) => self.credential_cache.set(&c.id, c),
                Write::Delivery(r) => self.delivery_cache.set(&(r.credential, r.agent.clone()), r),
                Write::Pending(pr) => self.pending_cache.set(&pr.request_id, pr),
                Write::RemovePending(id) => self.pending_cache.remove(id),
                _ => {}
            }
        }
    }

    /// Drops every cached record (their database may have changed without this relay).
    fn forget(&self) {
        self.agent_cache.clear();
        self.credential_cache.clear();
        self.delivery_cache.clear();
        self.pending_cache.clear();
    }

    fn rows<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> StateResult<Vec<T>> {
        let pool = self.pool.clone();
        self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            let stmt = client.prepare_cached(sql).await.map_err(backend)?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(&stmt, &refs).await.map_err(backend)?;
            rows.iter()
                .map(|r| {
                    r.try_get::<_, Json<T>>(0)
                        .map(|j| j.0)
                        .map_err(|_| StateError::Corrupt(sql.to_owned()))
                })
                .collect()
        })
    }

    fn row<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> StateResult<Option<T>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

/// Runs `fut` on the store's runtime and waits up to `limit` for it from this (synchronous) thread: unlike
/// `Runtime::block_on`, this is allowed inside another runtime's task, where the engine and the admin API call the
/// store from. On a multi-threaded runtime the wait tells it so (`block_in_place`): its other tasks (the MQTT event
/// loop, the admin API) move to another worker meanwhile.
fn on<T: Send + 'static>(
    rt: &Rt,
    limit: std::time::Duration,
    fut: impl Future<Output = StateResult<T>> + Send + 'static,
) -> StateResult<T> {
    let Some(rt) = &rt.0 else {
        return Err(StateError::Backend("postgres: the store is closed".into()));
    };
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = || rx.recv_timeout(limit);
    let answer = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    answer.map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => StateError::Backend(format!(
            "postgres: no answer within {} ms",
            limit.as_millis()
        )),
        mpsc::RecvTimeoutError::Disconnected => {
            StateError::Backend("postgres: the query task stopped".into())
        }
    })?
}

fn p(v: impl ToSql + Sync + Send + 'static) -> Param {
    Box::new(v)
}

fn kind_tag(kind: ReceiptKind) -> &'static str {
    match kind {
        ReceiptKind::Stored => "stored",
        ReceiptKind::Purged => "purged",
    }
}

fn i64_of(v: u64) -> StateResult<i64> {
    i64::try_from(v).map_err(|_| StateError::Backend(format!("{v} is out of PostgreSQL's range")))
}

/// A record as a `jsonb` parameter.
fn j<T: Serialize + Clone + Send + Sync + std::fmt::Debug + 'static>(v: &T) -> Param {
    Box::new(Json(v.clone()))
}

/// One write as its statements and their parameters.
fn statement(w: &Write) -> StateResult<Vec<(&'static str, Vec<Param>)>> {
    Ok(match w {
        Write::Credential(c) => {
            let id = c.id.to_string();
            let name = c.name.as_str().to_owned();
            let names = if c.deleted {
                (
                    "DELETE FROM credential_names WHERE name = $1 AND id = $2",
                    vec![p(name), p(id.clone())],
                )
            } else {
                (
                    "INSERT INTO credential_names (name, id) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET id = EXCLUDED.id",
                    vec![p(name), p(id.clone())],
                )
            };
            vec![
                (
                    "INSERT INTO credentials (id, rec) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![p(id.clone()), j(c)],
                ),
                // A name this credential held before (renamed) is given up.
                (
                    "DELETE FROM credential_names WHERE id = $1 AND name <> $2",
                    vec![p(id), p(c.name.as_str().to_owned())],
                ),
                names,
            ]
        }
        Write::Envelope {
            credential,
            version,
            agent,
            sealed,
            key,
        } => vec![(
            "INSERT INTO envelopes (credential, version, agent, rec) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (credential, version, agent) DO UPDATE SET rec = EXCLUDED.rec",
            vec![
                p(credential.to_string()),
                p(i64_of(*version)?),
                p(agent.as_str().to_owned()),
                Box::new(Json(StoredSealed::new(sealed, *key))) as Param,
            ],
        )],
        Write::BatchEnvelope {
            batch,
            agent,
            record,
        } => vec![(
            "INSERT INTO batch_envelopes (batch, agent, rec) VALUES ($1, $2, $3) \
             ON CONFLICT (batch, agent) DO UPDATE SET rec = EXCLUDED.rec",
            vec![
                p(batch.to_string()),
                p(agent.as_str().to_owned()),
                j(record),
            ],
        )],
        Write::Block {
            credential,
            peer,
            until_ms,
        } => vec![(
            "INSERT INTO blocklist (credential, peer, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (credential, peer) DO UPDATE SET until_ms = EXCLUDED.until_ms",
            vec![
                p(credential.to_string()),
                p(peer.as_str().to_owned()),
                p(i64_of(*until_ms)?),
            ],
        )],
        Write::Receipt {
            credential,
            agent,
            kind,
            receipt,
        } => vec![(
            "INSERT INTO receipts (credential, agent, kind, rec) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (credential, agent, kind) DO UPDATE SET rec = EXCLUDED.rec",
            vec![
                p(credential.to_string()),
                p(agent.as_str().to_owned()),
                p(kind_tag(*kind)),
                j(receipt),
            ],
        )],
        _ => vec![one(w)?],
    })
}

/// A write that is one statement.
fn one(w: &Write) -> StateResult<(&'static str, Vec<Param>)> {
    Ok(match w {
        Write::Agent(a) => (
            "INSERT INTO agents (id, rec) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec",
            vec![p(a.id.as_str().to_owned()), j(a)],
        ),
        Write::Delivery(r) => (
            "INSERT INTO deliveries (credential, agent, rec) VALUES ($1, $2, $3) \
             ON CONFLICT (credential, agent) DO UPDATE SET rec = EXCLUDED.rec",
            vec![
                p(r.credential.to_string()),
                p(r.agent.as_str().to_owned()),
                j(r),
            ],
        ),
        Write::Pending(pr) => (
            "INSERT INTO in_flight (request_id, target, rec) VALUES ($1, $2, $3) \
             ON CONFLICT (request_id) DO UPDATE SET target = EXCLUDED.target, rec = EXCLUDED.rec",
            vec![p(pr.request_id), p(pr.target.as_str().to_owned()), j(pr)],
        ),
        Write::RemovePending(id) => ("DELETE FROM in_flight WHERE request_id = $1", vec![p(*id)]),
        Write::Alert { key, alert } => (
            "INSERT INTO alerts (key, rec) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec",
            vec![p(key.clone()), j(alert)],
        ),
        Write::Audit(e) => (
            "INSERT INTO audit (seq, entry) VALUES ($1, $2)",
            vec![p(i64_of(e.seq)?), j(e)],
        ),
        Write::Job(job) => (
            "INSERT INTO jobs (id, rec) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec",
            vec![p(job.id), j(job)],
        ),
        Write::Revocations(list) => (
            "INSERT INTO meta (key, rec) VALUES ('revocations', $1) \
             ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec",
            vec![j(list)],
        ),
        Write::Renewal(r) => (
            "INSERT INTO renewals (agent, rec) VALUES ($1, $2) \
             ON CONFLICT (agent) DO UPDATE SET rec = EXCLUDED.rec",
            vec![p(r.agent.as_str().to_owned()), j(r)],
        ),
        _ => {
            return Err(StateError::Backend(
                "postgres: a write without its statement".into(),
            ))
        }
    })
}

impl RelayStore for PgStore {
    fn agent(&self, id: &AgentId) -> StateResult<Option<AgentRecord>> {
        self.through(&self.agent_cache, id, || {
            self.row(
                "SELECT rec FROM agents WHERE id = $1",
                vec![p(id.as_str().to_owned())],
            )
        })
    }
    fn agents(&self) -> StateResult<Vec<AgentRecord>> {
        self.rows("SELECT rec FROM agents ORDER BY id", vec![])
    }

    fn credential(&self, id: &CredentialId) -> StateResult<Option<CredentialRecord>> {
        self.through(&self.credential_cache, id, || {
            self.row(
                "SELECT rec FROM credentials WHERE id = $1",
                vec![p(id.to_string())],
            )
        })
    }
    fn credential_by_name(&self, name: &CredentialName) -> StateResult<Option<CredentialRecord>> {
        self.row(
            "SELECT c.rec FROM credential_names n JOIN credentials c ON c.id = n.id WHERE n.name = $1",
            vec![p(name.as_str().to_owned())],
        )
    }
    fn credentials(&self) -> StateResult<Vec<CredentialRecord>> {
        self.rows("SELECT rec FROM credentials ORDER BY id", vec![])
    }

    fn delivery(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
    ) -> StateResult<Option<DeliveryRow>> {
        self.through(&self.delivery_cache, &(*credential, agent.clone()), || {
            self.row(
                "SELECT rec FROM deliveries WHERE credential = $1 AND agent = $2",
                vec![p(credential.to_string()), p(agent.as_str().to_owned())],
            )
        })
    }
    fn deliveries_of_credential(&self, credential: &CredentialId) -> StateResult<Vec<DeliveryRow>> {
        self.rows(
            "SELECT rec FROM deliveries WHERE credential = $1 ORDER BY agent",
            vec![p(credential.to_string())],
        )
    }
    fn deliveries_of_agent(&self, agent: &AgentId) -> StateResult<Vec<DeliveryRow>> {
        self.rows(
            "SELECT rec FROM deliveries WHERE agent = $1 ORDER BY credential",
            vec![p(agent.as_str().to_owned())],
        )
    }
    fn deliveries(&self) -> StateResult<Vec<DeliveryRow>> {
        self.rows(
            "SELECT rec FROM deliveries ORDER BY credential, agent",
            vec![],
        )
    }

    fn envelope(
        &self,
        credential: &CredentialId,
        version: u64,
        agent: &AgentId,
    ) -> StateResult<Option<(OperatorSealed, [u8; 32])>> {
        Ok(self
            .row::<StoredSealed>(
                "SELECT rec FROM envelopes WHERE credential = $1 AND version = $2 AND agent = $3",
                vec![
                    p(credential.to_string()),
                    p(i64_of(version)?),
                    p(agent.as_str().to_owned()),
                ],
            )?
            .and_then(StoredSealed::into_sealed))
    }

    fn batch_envelope(
        &self,
        batch: &uuid::Uuid,
        agent: &AgentId,
    ) -> StateResult<Option<BatchEnvelopeRecord>> {
        self.row(
            "SELECT rec FROM batch_envelopes WHERE batch = $1 AND agent = $2",
            vec![p(batch.to_string()), p(agent.as_str().to_owned())],
        )
    }

    fn pending(&self, request_id: &uuid::Uuid) -> StateResult<Option<PendingRewrap>> {
        self.through(&self.pending_cache, request_id, || {
            self.row(
                "SELECT rec FROM in_flight WHERE request_id = $1",
                vec![p(*request_id)],
            )
        })
    }
    fn pendings(&self) -> StateResult<Vec<PendingRewrap>> {
        self.rows("SELECT rec FROM in_flight ORDER BY request_id", vec![])
    }
    fn in_flight_keys(&self) -> StateResult<Vec<(uuid::Uuid, CredentialId, AgentId)>> {
        let pool = self.pool.clone();
        self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            let stmt = client
                .prepare_cached("SELECT request_id, rec->>'credential', target FROM in_flight")
                .await
                .map_err(backend)?;
            let rows = client.query(&stmt, &[]).await.map_err(backend)?;
            rows.iter()
                .map(|r| {
                    let corrupt = || StateError::Corrupt("in_flight".into());
                    let request: uuid::Uuid = r.try_get(0).map_err(|_| corrupt())?;
                    let credential: String = r.try_get(1).map_err(|_| corrupt())?;
                    let target: String = r.try_get(2).map_err(|_| corrupt())?;
                    Ok((
                        request,
                        credential.parse().map_err(|_| corrupt())?,
                        AgentId::new(target).map_err(|_| corrupt())?,
                    ))
                })
                .collect()
        })
    }
    fn pendings_of_target(&self, target: &AgentId) -> StateResult<Vec<PendingRewrap>> {
        self.rows(
            "SELECT rec FROM in_flight WHERE target = $1 ORDER BY request_id",
            vec![p(target.as_str().to_owned())],
        )
    }

    fn blocked_until(&self, credential: &CredentialId, peer: &AgentId) -> StateResult<Option<u64>> {
        let pool = self.pool.clone();
        let (c, peer) = (credential.to_string(), peer.as_str().to_owned());
        self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            let stmt = client
                .prepare_cached(
                    "SELECT until_ms FROM blocklist WHERE credential = $1 AND peer = $2",
                )
                .await
                .map_err(backend)?;
            let row = client
                .query_opt(&stmt, &[&c, &peer])
                .await
                .map_err(backend)?;
            Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn alert(&self, key: &str) -> StateResult<Option<Alert>> {
        self.row(
            "SELECT rec FROM alerts WHERE key = $1",
            vec![p(key.to_owned())],
        )
    }
    fn alerts(&self) -> StateResult<Vec<Alert>> {
        self.rows("SELECT rec FROM alerts ORDER BY key", vec![])
    }

    fn audit(&self) -> StateResult<Vec<AuditEntry>> {
        self.rows("SELECT entry FROM audit ORDER BY seq", vec![])
    }
    fn audit_head(&self) -> StateResult<Option<AuditEntry>> {
        Ok(self.head().clone())
    }

    fn job(&self, id: &uuid::Uuid) -> StateResult<Option<JobRecord>> {
        self.row("SELECT rec FROM jobs WHERE id = $1", vec![p(*id)])
    }
    fn jobs(&self) -> StateResult<Vec<JobRecord>> {
        self.rows("SELECT rec FROM jobs ORDER BY id", vec![])
    }

    fn revocations(&self) -> StateResult<Option<Signed<RevocationList>>> {
        self.row("SELECT rec FROM meta WHERE key = 'revocations'", vec![])
    }

    fn receipt(
        &self,
        credential: &CredentialId,
        agent: &AgentId,
        kind: ReceiptKind,
    ) -> StateResult<Option<Receipt>> {
        self.row(
            "SELECT rec FROM receipts WHERE credential = $1 AND agent = $2 AND kind = $3",
            vec![
                p(credential.to_string()),
                p(agent.as_str().to_owned()),
                p(kind_tag(kind)),
            ],
        )
    }

    fn renewal(&self, agent: &AgentId) -> StateResult<Option<RenewalRecord>> {
        self.row(
            "SELECT rec FROM renewals WHERE agent = $1",
            vec![p(agent.as_str().to_owned())],
        )
    }
    fn renewals(&self) -> StateResult<Vec<RenewalRecord>> {
        self.rows("SELECT rec FROM renewals ORDER BY agent", vec![])
    }

    fn begin_turn(&self) -> StateResult<bool> {
        let mut w = self.writer();
        if w.session.as_ref().is_some_and(|s| s.held) {
            return Ok(false);
        }
        let session = self.session(&mut w)?;
        let taken = on(
            &self.rt,
            self.wait,
            turn::take(session.client.clone(), session.statements.clone()),
        );
        let epoch = match taken {
            Ok(epoch) => {
                session.held = true;
                self.set_turn_thread(Some(std::thread::current().id()));
                epoch
            }
            Err(e) => {
                // Whether it holds the lock is not known: the session goes, and the lock with it.
                w.session = None;
                return Err(e);
            }
        };
        if w.epoch == Some(epoch) {
            return Ok(false);
        }
        // Another relay wrote (or this one lost track): nothing cached can be trusted, the head moved.
        w.epoch = Some(epoch);
        self.forget();
        let head = self.read_head();
        match head {
            Ok(head) => *self.head() = head,
            Err(e) => {
                w.epoch = None;
                drop(w);
                self.end_turn();
                return Err(e);
            }
        }
        Ok(true)
    }

    fn end_turn(&self) {
        let mut w = self.writer();
        // Whatever became of the session, the caches are this thread's no longer.
        self.set_turn_thread(None);
        let Some(session) = w.session.as_mut().filter(|s| s.held) else {
            return;
        };
        session.held = false;
        if let Err(e) = on(
            &self.rt,
            self.wait,
            turn::release(session.client.clone(), session.statements.clone()),
        ) {
            // The session goes, and the lock with it.
            tracing::warn!(error = %e, "postgres: the write turn could not be ended; its session is closed");
            w.session = None;
        }
    }

    fn replicas(&self) -> StateResult<Option<Vec<String>>> {
        let pool = self.pool.clone();
        let names = self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            let rows = client
                .query(
                    "SELECT DISTINCT substr(application_name, $1) FROM pg_stat_activity \
                     WHERE datname = current_database() AND starts_with(application_name, $2) ORDER BY 1",
                    &[&i32::try_from(APPLICATION.len() + 1).unwrap_or(i32::MAX), &APPLICATION],
                )
                .await
                .map_err(backend)?;
            Ok(rows
                .iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .collect::<Vec<_>>())
        })?;
        Ok(Some(names))
    }

    fn record_replica_status(&self, replica: &str, status: &serde_json::Value) -> StateResult<()> {
        let (pool, replica, status) = (self.pool.clone(), replica.to_owned(), status.clone());
        self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            client
                .execute(
                    "INSERT INTO replica_status (replica, application_name, status) \
                     VALUES ($1, current_setting('application_name'), $2) \
                     ON CONFLICT (replica) DO UPDATE \
                     SET application_name = EXCLUDED.application_name, status = EXCLUDED.status",
                    &[&replica, &tokio_postgres::types::Json(&status)],
                )
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn replica_statuses(&self) -> StateResult<Option<Vec<serde_json::Value>>> {
        let pool = self.pool.clone();
        let statuses = self.block(async move {
            let client = pool.get().await.map_err(backend)?;
            let rows = client
                .query(
                    "SELECT status FROM replica_status WHERE application_name IN (\
                     SELECT application_name FROM pg_stat_activity \
                     WHERE datname = current_database() AND starts_with(application_name, $1)) ORDER BY replica",
                    &[&APPLICATION],
                )
                .await
                .map_err(backend)?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    r.try_get::<_, tokio_postgres::types::Json<serde_json::Value>>(0)
                        .ok()
                        .map(|j| j.0)
                })
                .collect::<Vec<_>>())
        })?;
        Ok(Some(statuses))
    }

    fn apply(&self, batch: &Batch) -> StateResult<()> {
        let mut w = self.writer();
        if w.session.as_ref().is_some_and(|s| s.held) {
            return self.apply_in_turn(&mut w, batch);
        }
        // Outside an event's turn (a caller that did not take one): a turn for this batch alone, refused when
        // another relay wrote since this one last did, since the batch was built on what it had seen then.
        drop(w);
        let others_wrote = self.begin_turn()?;
        let result = if others_wrote {
            Err(StateError::Conflict(
                "another relay wrote since this batch was built; nothing written".into(),
            ))
        } else {
            self.apply_in_turn(&mut self.writer(), batch)
        };
        self.end_turn();
        result
    }

    fn flush(&self) -> StateResult<()> {
        // Every batch is committed (and so durable, with the server's synchronous_commit) before `apply` returns.
        Ok(())
    }
}

mod turn;

#[cfg(test)]
mod tests;
