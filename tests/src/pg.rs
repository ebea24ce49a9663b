//! A PostgreSQL database of its own for one test: created on the server the machine runs (127.0.0.1:5432, or
//! `TESSERA_TEST_PG_URL`), dropped when the handle is. And the switch that runs the relay's tests on PostgreSQL:
//! `TESSERA_TEST_STATE=postgres`.

use std::future::Future;

/// The server's maintenance database, connected to for `CREATE DATABASE`.
fn admin_url() -> String {
    std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Whether this run puts the relay's state on PostgreSQL (`TESSERA_TEST_STATE=postgres`).
pub fn state_on_postgres() -> bool {
    std::env::var("TESSERA_TEST_STATE").is_ok_and(|v| v == "postgres")
}

/// Runs `fut` on a runtime of its own on a thread of its own: callable from tests, from inside another runtime
/// and from `Drop`.
fn run<T: Send + 'static>(
    fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
) -> Result<T, PgError> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError(e.to_string()))?;
        rt.block_on(fut).map_err(|e| {
            // The server's message is the error's source ("db error" at the top).
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            PgError(cause.map_or_else(|| e.to_string(), |c| format!("{e}: {c}")))
        })
    })
    .join()
    .map_err(|_| PgError("the database thread panicked".into()))?
}

/// A database could not be made or reached.
#[derive(Debug, thiserror::Error)]
#[error("test database: {0}")]
pub struct PgError(String);

async fn admin(sql: String) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    client.batch_execute(&sql).await?;
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// A fresh, empty database, dropped (with its connections) with this handle.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates one.
    pub fn create() -> Result<Self, PgError> {
        let name = format!("tessera_t_{}", uuid::Uuid::new_v4().simple());
        run(admin(format!("CREATE DATABASE {name}")))?;
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => return Err(PgError(format!("{base} names no database"))),
        };
        Ok(Self { name, url })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs SQL on it (a test reading or tampering with the relay's tables).
    pub fn execute(&self, sql: &str) -> Result<(), PgError> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        run(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let conn = tokio::spawn(conn);
            let r = client.batch_execute(&sql).await;
            drop(client);
            let _ = conn.await;
            r
        })
    }

    /// How many rows `table` holds.
    pub fn count(&self, table: &str) -> Result<i64, PgError> {
        let (url, sql) = (self.url.clone(), format!("SELECT count(*) FROM {table}"));
        run(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let conn = tokio::spawn(conn);
            let n: i64 = client.query_one(&sql, &[]).await?.get(0);
            drop(client);
            let _ = conn.await;
            Ok(n)
        })
    }

    /// A `[state]` section putting a relay's state in it.
    pub fn relay_state_toml(&self) -> String {
        format!(
            "[state]\nbackend = \"postgres\"\n[state.postgres]\nurl = \"{}\"\n",
            self.url
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = run(admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )));
    }
}
