//! A throwaway PostgreSQL cluster for tests, started from the installed binaries (`testing` feature).
//!
//! The first test of a test binary that asks for a database starts one cluster for the whole binary
//! ([`cluster`]): `initdb` into a fresh temporary directory, then `pg_ctl start` with the server listening
//! only on a unix socket inside that directory (on a port other than the default, so it can never be
//! mistaken for a system server). Each test then gets a database of its own ([`TestCluster::database`]),
//! dropped when the test ends. Nothing has to be running beforehand.
//!
//! A cluster kept in a `static` is never dropped, so a small watchdog process stops the server and
//! removes the directory once the test binary has exited, however it exited.
//!
//! The binaries are looked up in `TRAILKEEP_PG_BIN`, then on `PATH`, then in Debian's
//! `/usr/lib/postgresql/<version>/bin` (the highest version). When none is found the tests fail with a
//! message naming what to install: a missing database must never let a suite pass silently. `initdb`
//! refuses to run as root, so as root the server runs as the unprivileged user `nobody` (created as
//! `trailkeep-test` when there is no `nobody`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The role that owns the schema and runs migrations.
pub const OWNER_ROLE: &str = "trailkeep_owner";
/// The role the store runs as: it owns nothing and cannot bypass row-level security.
pub const SERVICE_ROLE: &str = "trailkeep_service";
const SUPERUSER: &str = "postgres";
/// Not PostgreSQL's default 5432: the socket lives in a private directory, but a name that cannot be
/// confused with a system server's socket is clearer in every log line.
const PORT: u16 = 54329;

/// Why the cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "PostgreSQL's initdb and pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin; \
         the PostgreSQL tests need a PostgreSQL 14 or newer server installed (Debian and Ubuntu: \
         `apt-get install postgresql`), or TRAILKEEP_PG_BIN naming the directory that holds initdb and pg_ctl"
    )]
    NotInstalled,
    #[error("{what}: {message}")]
    Step { what: String, message: String },
}

fn step(what: impl Into<String>) -> impl FnOnce(String) -> HarnessError {
    let what = what.into();
    move |message| HarnessError::Step { what, message }
}

/// A running cluster in a temporary directory.
pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The unprivileged user the server runs as when the tests run as root.
    run_as: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// The test binary's cluster, started on first use; panics with the reason (such as what to install)
/// when it cannot be started, so that every test needing it fails.
pub fn cluster() -> &'static TestCluster {
    let started = CLUSTER.get_or_init(|| {
        let cluster = TestCluster::start().map_err(|e| e.to_string())?;
        cluster.watch_for_exit().map_err(|e| e.to_string())?;
        Ok(cluster)
    });
    match started {
        Ok(cluster) => cluster,
        Err(message) => panic!("cannot start the test PostgreSQL cluster: {message}"),
    }
}

/// The directory holding `initdb` and `pg_ctl`.
pub fn find_binaries() -> Result<PathBuf, HarnessError> {
    find_binaries_in(
        std::env::var_os("TRAILKEEP_PG_BIN"),
        std::env::var_os("PATH").unwrap_or_default(),
        Path::new("/usr/lib/postgresql"),
    )
}

/// [`find_binaries`] with its inputs given: the override, the `PATH` value and Debian's versioned root.
pub fn find_binaries_in(
    explicit: Option<std::ffi::OsString>,
    path: std::ffi::OsString,
    versioned: &Path,
) -> Result<PathBuf, HarnessError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = explicit {
        let dir = PathBuf::from(dir);
        return if has_both(&dir) { Ok(dir) } else { Err(HarnessError::NotInstalled) };
    }
    for dir in std::env::split_paths(&path) {
        if has_both(&dir) {
            // A symlink on PATH (Debian links into /usr/lib/postgresql/<version>/bin): use the directory
            // it points to, so that every binary comes from the same version.
            let initdb = std::fs::canonicalize(dir.join("initdb")).unwrap_or_else(|_| dir.join("initdb"));
            let real = initdb.parent().map(Path::to_path_buf).unwrap_or(dir.clone());
            return Ok(if has_both(&real) { real } else { dir });
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versioned)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or(HarnessError::NotInstalled)
}

/// The effective user id of this process.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn run(what: &str, command: &mut Command) -> Result<String, HarnessError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Step { what: what.to_owned(), message: e.to_string() })?;
    if !output.status.success() {
        let message = format!(
            "{}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
        return Err(HarnessError::Step { what: what.to_owned(), message });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The uid and gid of an unprivileged user to run the server as, creating one if need be.
fn unprivileged_user() -> Result<(u32, u32), HarnessError> {
    let ids = |user: &str| -> Option<(u32, u32)> {
        let uid = run("id", Command::new("id").args(["-u", user])).ok()?.parse().ok()?;
        let gid = run("id", Command::new("id").args(["-g", user])).ok()?.parse().ok()?;
        Some((uid, gid))
    };
    if let Some(found) = ids("nobody").or_else(|| ids("trailkeep-test")) {
        return Ok(found);
    }
    run(
        "creating the user trailkeep-test to run PostgreSQL as (initdb refuses root)",
        Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "trailkeep-test",
        ]),
    )?;
    ids("trailkeep-test").ok_or_else(|| step("useradd")("the new user trailkeep-test has no id".into()))
}

/// A cluster of the caller's own, for a test that restarts the server, which would disturb every other
/// test sharing [`cluster`]; like that one, it is stopped and removed once the test binary exits.
pub fn private_cluster() -> Result<&'static TestCluster, HarnessError> {
    let cluster: &'static TestCluster = Box::leak(Box::new(TestCluster::start()?));
    cluster.watch_for_exit()?;
    Ok(cluster)
}

impl TestCluster {
    /// Restarts the server the way a crash and a recovery would (`pg_ctl restart -m immediate`: no
    /// shutdown checkpoint, crash recovery on start), returning once it accepts connections again.
    pub fn restart(&self) -> Result<(), HarnessError> {
        let data = self.data_dir();
        // The server's output goes to its log, not to a pipe this process would wait on.
        let log = self.dir.path().join("server.log");
        self.command(
            "pg_ctl restart",
            "pg_ctl",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-m"),
                OsStr::new("immediate"),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("60"),
                OsStr::new("restart"),
            ],
        )
        .map(|_| ())
    }

    /// Restarts the server with TLS on 127.0.0.1 (the cluster's port) besides its unix socket, serving
    /// `cert_pem` with `key_pem`: TCP connections must use TLS (plain ones are refused), the socket
    /// stays as it was. For a test of the cluster's own ([`private_cluster`]).
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), HarnessError> {
        let data = self.data_dir();
        let write = |name: &str, text: &str, mode: u32| -> Result<(), HarnessError> {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            let fail = |e: std::io::Error| step(format!("writing {name}"))(e.to_string());
            std::fs::write(&path, text).map_err(fail)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(fail)?;
            }
            Ok(())
        };
        write("server.crt", cert_pem, 0o644)?;
        write("server.key", key_pem, 0o600)?;
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        )?;
        let conf = std::fs::read_to_string(data.join("postgresql.conf"))
            .map_err(|e| step("reading postgresql.conf")(e.to_string()))?;
        write(
            "postgresql.conf",
            &format!("{conf}\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"),
            0o600,
        )?;
        let options = format!(
            "-k '{}' -p {PORT} -c listen_addresses='127.0.0.1' -c max_connections=200",
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log");
        let restarted = self.command(
            "pg_ctl restart with TLS",
            "pg_ctl",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("60"),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("restart"),
            ],
        );
        restarted.map(|_| ()).map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            step("pg_ctl restart with TLS")(format!("{e}\nserver log:\n{log}"))
        })
    }

    /// Runs `initdb` and starts the server; see the module documentation.
    pub fn start() -> Result<TestCluster, HarnessError> {
        TestCluster::start_with(&[])
    }

    /// [`TestCluster::start`] with server settings of the caller's on top (`-c name=value` each), such as
    /// a larger `shared_buffers` for a benchmark. Durability settings are PostgreSQL's defaults unless
    /// given here.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<TestCluster, HarnessError> {
        let bin = find_binaries()?;
        let run_as = if effective_uid() == Some(0) { Some(unprivileged_user()?) } else { None };
        // A unix socket path is limited to about 100 bytes: keep the directory short.
        let base = std::env::temp_dir();
        let base = if base.as_os_str().len() > 60 { PathBuf::from("/tmp") } else { base };
        let dir = tempfile::Builder::new()
            .prefix("tk-pg-")
            .tempdir_in(&base)
            .map_err(|e| step("creating the cluster directory")(e.to_string()))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| step("handing the cluster directory to the server's user")(e.to_string()))?;
        }
        let cluster = TestCluster { dir, bin, run_as };
        let data = cluster.data_dir();
        cluster.command(
            "initdb",
            "initdb",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-U"),
                OsStr::new(SUPERUSER),
                OsStr::new("--auth=trust"),
                OsStr::new("--encoding=UTF8"),
                OsStr::new("--locale=C"),
                OsStr::new("--no-sync"),
            ],
        )?;
        let mut options =
            format!("-k '{}' -p {PORT} -c listen_addresses='' -c max_connections=200", cluster.socket_dir().display());
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = cluster.dir.path().join("server.log");
        let started = cluster.command(
            "pg_ctl start",
            "pg_ctl",
            [
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("60"),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("start"),
            ],
        );
        if let Err(e) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(step("pg_ctl start")(format!("{e}\nserver log:\n{log}")));
        }
        cluster.on_thread(|cluster| async move {
            let client = cluster.connect(SUPERUSER, "postgres").await?;
            client
                .batch_execute(&format!(
                    "CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; \
                     CREATE ROLE {SERVICE_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;"
                ))
                .await
                .map_err(|e| step("creating the roles")(e.to_string()))
        })?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's unix socket: the `host` to connect to.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        PORT
    }

    /// Runs one of the PostgreSQL binaries, as the unprivileged user when the tests run as root.
    fn command<'a>(
        &self,
        what: &str,
        program: &str,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> Result<String, HarnessError> {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(self.dir.path());
        run(what, &mut command)
    }

    /// Runs `f` to completion on a runtime of its own, on a thread of its own, so that it works whether
    /// or not the caller is inside a runtime.
    fn on_thread<'a, T, F>(&'a self, f: impl FnOnce(&'a TestCluster) -> F + Send) -> Result<T, HarnessError>
    where
        T: Send,
        F: std::future::Future<Output = Result<T, HarnessError>>,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| step("starting a runtime")(e.to_string()))?;
                    runtime.block_on(f(self))
                })
                .join()
                .unwrap_or_else(|_| Err(step("the harness thread")("panicked".into())))
        })
    }

    /// Connection settings for `user` on `database`.
    pub fn config(&self, user: &str, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host_path(self.socket_dir()).port(PORT).user(user).dbname(database);
        config
    }

    async fn connect(&self, user: &str, database: &str) -> Result<tokio_postgres::Client, HarnessError> {
        let (client, connection) = self
            .config(user, database)
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| step(format!("connecting to {database} as {user}"))(e.to_string()))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A new, empty database owned by [`OWNER_ROLE`], dropped when the returned guard is.
    pub fn database(&'static self) -> Result<TestDatabase, HarnessError> {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let name = format!("tk_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.create_database(&name)?;
        Ok(TestDatabase { cluster: self, name })
    }

    /// Creates the empty database `name` (an identifier of letters, digits and `_`), owned by
    /// [`OWNER_ROLE`]. Works inside or outside a runtime.
    pub fn create_database(&self, name: &str) -> Result<(), HarnessError> {
        self.on_thread(|cluster| async move {
            let client = cluster.connect(SUPERUSER, "postgres").await?;
            client
                .batch_execute(&format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}"))
                .await
                .map_err(|e| step(format!("creating the database {name}"))(e.to_string()))
        })
    }

    /// Drops the database `name`, ending its connections first.
    pub fn drop_database(&self, name: &str) -> Result<(), HarnessError> {
        self.on_thread(|cluster| async move {
            let client = cluster.connect(SUPERUSER, "postgres").await?;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .map_err(|e| step(format!("dropping the database {name}"))(e.to_string()))
        })
    }

    /// The connection string of `role` on `database`, as `database_url` takes it.
    pub fn url(&self, role: &str, database: &str) -> String {
        format!("host='{}' port={PORT} user={role} dbname={database}", self.socket_dir().display())
    }

    /// The server's version, as `SHOW server_version` gives it.
    pub fn server_version(&self) -> Result<String, HarnessError> {
        self.on_thread(|cluster| async move {
            let client = cluster.connect(SUPERUSER, "postgres").await?;
            let row = client
                .query_one("SHOW server_version", &[])
                .await
                .map_err(|e| step("reading the server version")(e.to_string()))?;
            Ok(row.get(0))
        })
    }

    /// Starts a process that, once this process has exited, stops the server at once and removes the
    /// cluster's directory: a cluster in a `static` is never dropped, and a process stopped by a signal
    /// drops nothing.
    pub fn watch_for_exit(&self) -> Result<(), HarnessError> {
        use std::os::unix::process::CommandExt;
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .map_err(|e| step("reading postmaster.pid")(e.to_string()))?;
        let server = pid_file.lines().next().unwrap_or_default().trim().to_owned();
        Command::new("sh")
            .arg("-c")
            .arg(
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
                   kill -QUIT "$2" 2>/dev/null
                   while kill -0 "$2" 2>/dev/null; do sleep 0.2; done
                   rm -rf "$3""#,
            )
            .arg("trailkeep-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(server)
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a Ctrl-C aimed at the tests does not stop the clean-up.
            .process_group(0)
            .spawn()
            .map_err(|e| step("starting the clean-up watchdog")(e.to_string()))?;
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.command(
            "pg_ctl stop",
            "pg_ctl",
            [OsStr::new("-D"), data.as_os_str(), OsStr::new("-m"), OsStr::new("immediate"), OsStr::new("stop")],
        );
    }
}

/// One test's database; dropped (its connections ended) with the guard.
pub struct TestDatabase {
    cluster: &'static TestCluster,
    name: String,
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection settings for the role that owns the schema and runs migrations.
    pub fn owner_config(&self) -> tokio_postgres::Config {
        self.cluster.config(OWNER_ROLE, &self.name)
    }

    /// Connection settings for the role the store runs as.
    pub fn service_config(&self) -> tokio_postgres::Config {
        self.cluster.config(SERVICE_ROLE, &self.name)
    }

    /// The connection string of `role` on this database, as `database_url` takes it.
    pub fn url(&self, role: &str) -> String {
        self.cluster.url(role, &self.name)
    }

    /// Store settings: run as the service role, migrating as the owner first.
    pub fn store_config(&self) -> crate::PostgresConfig {
        crate::PostgresConfig::new(self.service_config()).with_migrations(self.owner_config())
    }

    /// Connects as `role` to this database, for tests that look at it with raw SQL.
    pub async fn connect(&self, role: &str) -> Result<tokio_postgres::Client, HarnessError> {
        self.cluster.connect(role, &self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = self.cluster.drop_database(&self.name);
    }
}
