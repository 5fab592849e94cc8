//! Starting a real server for a test: a fresh data directory, a listener on `127.0.0.1:0` bound before
//! the server starts (so there is nothing to wait for), and a client holding the platform admin key.
//!
//! With `TRAILKEEP_TEST_STORE=postgres` every server keeps its data in PostgreSQL instead of the embedded
//! store: a throwaway cluster started for the test binary, a fresh database per server (kept across a
//! restart), the store running as a role that owns nothing and migrating as the owner on start.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use trailkeep_client::Client;
use trailkeep_postgres::testing::{OWNER_ROLE, SERVICE_ROLE, TestDatabase};
use trailkeep_server::config::ConnectionString;
use trailkeep_server::{App, Config, serve};
use trailkeep_wire::CreateKeyRequest;

pub struct TestApp {
    /// The platform admin key's client.
    pub admin: Client,
    pub base_url: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database, when the tests run on PostgreSQL.
    database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = on_postgres().then(|| {
        trailkeep_postgres::testing::cluster().database().unwrap_or_else(|e| panic!("a PostgreSQL database: {e}"))
    });
    start_in(tempfile::tempdir().expect("temp dir"), database, adjust).await
}

/// Whether the tests run on PostgreSQL (`TRAILKEEP_TEST_STORE=postgres`) rather than the embedded store.
pub fn on_postgres() -> bool {
    match std::env::var("TRAILKEEP_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("TRAILKEEP_TEST_STORE must be `sqlite` or `postgres`, not `{other}`"),
    }
}

/// Starts a server on `dir/data` (and `database`), which may hold the data of an earlier server.
async fn start_in(dir: tempfile::TempDir, database: Option<TestDatabase>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = dir.path().join("data");
    let mut config = Config { data_dir: data_dir.clone(), listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    if let Some(db) = &database {
        config.database_url = Some(ConnectionString::new(db.url(SERVICE_ROLE)));
        config.database_owner_url = Some(ConnectionString::new(db.url(OWNER_ROLE)));
    }
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = App::build(&config).await.expect("build app");
    let key = match &app.new_admin_key {
        Some(key) => key.clone(),
        None => std::fs::read_to_string(data_dir.join("admin.key"))
            .expect("the first start wrote admin.key")
            .trim()
            .to_owned(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async {
        let _ = rx.await;
    }));
    let admin = Client::new(&base_url, Some(key)).unwrap();
    TestApp { admin, base_url, data_dir, _dir: dir, database, shutdown: Some(tx), task: Some(task) }
}

impl TestApp {
    /// A client with a new key limited to `org`, with the given permissions.
    pub async fn org_client(&self, org: &str, permissions: &[&str]) -> Client {
        let created = self
            .admin
            .create_key(&CreateKeyRequest {
                name: format!("test key for {org}"),
                organization_id: Some(org.to_owned()),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            })
            .await
            .expect("create key");
        self.admin.with_key(created.key)
    }

    /// Stops the server, changes its stored data behind its back as someone with write access to the
    /// database could — `sqlite` run on the embedded store's main database file (its ledger attached as
    /// `ledger`), or `postgres` run by PostgreSQL's superuser on the server's database — and starts it
    /// again.
    pub async fn tamper(mut self, sqlite: &str, postgres: &str) -> TestApp {
        self.halt().await;
        match &self.database {
            Some(db) => {
                let client = db.connect("postgres").await.expect("connect as the superuser");
                client.batch_execute(postgres).await.unwrap_or_else(|e| panic!("{postgres}: {e}"));
            }
            None => {
                let conn =
                    rusqlite::Connection::open(self.data_dir.join("trailkeep.db")).expect("open the database file");
                let ledger = self.data_dir.join("ledger.db");
                conn.execute("ATTACH DATABASE ?1 AS ledger", [ledger.to_str().expect("a UTF-8 path")])
                    .expect("attach the ledger");
                conn.execute_batch(sqlite).unwrap_or_else(|e| panic!("{sqlite}: {e}"));
            }
        }
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("temp dir"));
        start_in(dir, self.database.take(), |_| {}).await
    }

    /// Stops the server gracefully and waits until its store is closed.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran cleanly");
        }
    }

    /// Polls until a full-text query sees `expected` events (the index is asynchronous), or gives up
    /// after a generous bound and returns what it saw last.
    pub async fn wait_for_text(&self, org: &str, text: &str, expected: usize) -> usize {
        let mut seen = 0;
        for _ in 0..200 {
            let page = self
                .admin
                .list_events(&[("organization_id", org), ("text", text), ("limit", "1000")])
                .await
                .expect("text query");
            seen = page.data.len();
            if seen >= expected {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        seen
    }
}

/// A minimal valid event for `org`.
pub fn event(org: &str, action: &str) -> Value {
    json!({ "organization_id": org, "action": action })
}
