//! Helpers for the client-side tests: they drive a running PostgreSQL (started by
//! `scripts/test.sh`, found through PGHOST/PGPORT/PGUSER) over real connections, as real login
//! roles, the way applications, PostgREST and poolers do.
use postgres::{Client, NoTls};
use std::process::Command;

pub mod hostile;

/// A new API key of `tenant`, made by the service (the superuser, in the tenant).
pub fn new_api_key(db: &TestDb, tenant: &str, name: &str) -> String {
    let mut c = db.connect("postgres");
    let mut t = c.transaction().unwrap();
    t.execute(&format!("SELECT tenancy.set_tenant('{tenant}')"), &[])
        .unwrap();
    let key: String = t
        .query_one("SELECT tenancy.create_api_key($1)", &[&name])
        .unwrap()
        .get(0);
    t.commit().unwrap();
    key
}

/// Connection string for `db` as `user` (no password: the test cluster trusts local connections).
/// On a Citus cluster ([`citus_port`]): the coordinator.
pub fn conninfo(db: &str, user: &str) -> String {
    if let Some(port) = citus_port() {
        return format!("host=127.0.0.1 port={port} user={user} dbname={db}");
    }
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "54325".into());
    format!("host={host} port={port} user={user} dbname={db}")
}

pub fn connect(db: &str, user: &str) -> Client {
    Client::connect(&conninfo(db, user), NoTls)
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"))
}

/// The bindir of the server under test (pg_dump, pg_restore).
pub fn bin(name: &str) -> String {
    let dir = std::env::var("PGT_BINDIR").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    format!("{dir}/{name}")
}

/// A fresh database with pg_tenancy installed and the demo data loaded; dropped when it goes out
/// of scope.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// On a Citus cluster ([`citus_port`]) the database is made on every node and pg_tenancy is
    /// distributed (`tenancy.distribute()`) before the demo data is seeded: the same suite then
    /// runs through the coordinator and the workers.
    pub fn new(name: &str) -> TestDb {
        let db = TestDb::empty(name);
        let distribute = if citus_port().is_some() {
            "SELECT tenancy.distribute()"
        } else {
            ""
        };
        // One statement at a time: Citus creates the extension on the workers in this
        // statement's transaction, which distribute()'s own connections to them must see.
        let mut c = db.connect("postgres");
        for sql in [
            "CREATE EXTENSION pg_tenancy",
            distribute,
            "SELECT tenancy.seed_demo()",
        ] {
            c.batch_execute(sql).unwrap();
        }
        db
    }

    /// A fresh, empty database (on a Citus cluster: on every node, Citus installed, the workers
    /// added to the coordinator's metadata).
    pub fn empty(name: &str) -> TestDb {
        let Some(port) = citus_port() else {
            let mut admin = connect("postgres", "postgres");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            return TestDb {
                name: name.to_string(),
            };
        };
        for n in 0..3 {
            let mut admin = citus_node(port + n, "postgres");
            admin
                .batch_execute("SET citus.enable_create_database_propagation = off")
                .unwrap();
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            citus_node(port + n, name)
                .batch_execute("CREATE EXTENSION citus")
                .unwrap();
        }
        citus_node(port, name)
            .batch_execute(&format!(
                "SELECT citus_set_coordinator_host('127.0.0.1', {port});
                 SELECT citus_add_node('127.0.0.1', {}); SELECT citus_add_node('127.0.0.1', {});",
                port + 1,
                port + 2
            ))
            .unwrap();
        TestDb {
            name: name.to_string(),
        }
    }

    pub fn connect(&self, user: &str) -> Client {
        connect(&self.name, user)
    }

    /// Run a command-line tool of the server's bindir against this database.
    pub fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        let (host, port) = match citus_port() {
            Some(p) => ("127.0.0.1".to_string(), p.to_string()),
            None => (
                std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into()),
                std::env::var("PGPORT").unwrap_or_else(|_| "54325".into()),
            ),
        };
        Command::new(bin(name))
            .args(["-h", &host, "-p", &port, "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {name}: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let ports = match citus_port() {
            Some(port) => vec![port, port + 1, port + 2],
            None => vec![0],
        };
        for port in ports {
            let conninfo = match port {
                0 => conninfo("postgres", "postgres"),
                p => format!("host=127.0.0.1 port={p} user=postgres dbname=postgres"),
            };
            if let Ok(mut admin) = Client::connect(&conninfo, NoTls) {
                if port != 0 {
                    let _ =
                        admin.batch_execute("SET citus.enable_create_database_propagation = off");
                }
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

/// The coordinator's port of the Citus cluster the suites run on (`scripts/citus.sh test` sets
/// PGT_CITUS_PORT); the workers listen on the next two ports.  None on a single node.
pub fn citus_port() -> Option<u16> {
    std::env::var("PGT_CITUS_PORT")
        .ok()
        .map(|p| p.parse().expect("PGT_CITUS_PORT is a port"))
}

/// The superuser's connection to database `db` of the Citus node on `port`.
fn citus_node(port: u16, db: &str) -> Client {
    Client::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={db}"),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect to {db} on the Citus node on {port}: {e}"))
}

/// Create a login role if it does not exist, with the given memberships.
pub fn login_role(name: &str, options: &str, member_of: &[&str]) {
    // On a Citus cluster, on every node (roles are the cluster's; a worker needs the role for the
    // objects it owns and the grants to it that Citus propagates).
    let admins: Vec<Client> = match citus_port() {
        Some(port) => (0..3).map(|n| citus_node(port + n, "postgres")).collect(),
        None => vec![connect("postgres", "postgres")],
    };
    for mut admin in admins {
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE {name} LOGIN {options}; END IF; END $$;"
            ))
            .unwrap();
        for role in member_of {
            admin
                .batch_execute(&format!("GRANT {role} TO {name}"))
                .unwrap();
        }
    }
}

/// The SQLSTATE of a failed statement, or "ok".
pub fn sqlstate(result: Result<impl Sized, postgres::Error>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| format!("no sqlstate: {e}")),
    }
}

/// A throwaway cluster of the tests' own (for what needs server restarts: keyrings, crashes),
/// under `$PGT_STATE/<name>`, run by `$PGT_OS_USER` (PostgreSQL refuses root), listening only on
/// a socket in its folder.  Stopped when dropped.
pub struct Cluster {
    pub dir: std::path::PathBuf,
    pub port: u16,
    user: String,
    /// The server's bindir: `$PGT_BINDIR`, or another major's (`Cluster::init_with`).
    pub bindir: String,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    /// initdb a new, empty cluster (any old one of that name is removed).
    pub fn init(name: &str, port: u16) -> Cluster {
        let bindir = bin("");
        Cluster::init_with(name, port, bindir.trim_end_matches('/'))
    }

    /// initdb a new, empty cluster with the server programs of `bindir`.
    pub fn init_with(name: &str, port: u16, bindir: &str) -> Cluster {
        let state = std::env::var("PGT_STATE").unwrap_or_else(|_| "/var/tmp/pg_tenancy".into());
        let user = std::env::var("PGT_OS_USER").unwrap_or_else(|_| "tenancy".into());
        let dir = std::path::Path::new(&state).join(name);
        let cluster = Cluster {
            dir,
            port,
            user,
            bindir: bindir.to_string(),
        };
        cluster.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&cluster.dir);
        std::fs::create_dir_all(&cluster.dir).unwrap();
        cluster.chown(&cluster.dir);
        let out = cluster.as_server_user(
            &cluster.program("initdb"),
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            cluster.dir.join("data/postgresql.conf"),
            std::fs::read_to_string(cluster.dir.join("data/postgresql.conf")).unwrap()
                + "\ninclude_if_exists = 'pg_tenancy.conf'\n",
        )
        .unwrap();
        cluster
    }

    /// [`Cluster::init`], a fresh root keyring, the server started with it and `settings`, and
    /// pg_tenancy created with the demo data in `postgres`, then `sql` run there.
    pub fn with_demo(name: &str, port: u16, settings: &[String], sql: &str) -> Cluster {
        let cluster = Cluster::init(name, port);
        let path = cluster.write_file("keyring", &format!("k1 {} active\n", random_key()), 0o600);
        let mut all = vec![format!("tenancy.keyring_file = '{path}'")];
        all.extend_from_slice(settings);
        cluster.restart(&all);
        cluster
            .connect("postgres")
            .batch_execute(&format!(
                "CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo(); {sql}"
            ))
            .unwrap();
        cluster
    }

    /// A program of this cluster's bindir.
    pub fn program(&self, name: &str) -> String {
        format!("{}/{name}", self.bindir)
    }

    /// Run a client program of `bindir` (pg_dump, pg_restore, psql, ...) against this cluster.
    pub fn tool(&self, bindir: &str, name: &str, args: &[&str]) -> std::process::Output {
        let host = self.dir.to_string_lossy().into_owned();
        let port = self.port.to_string();
        Command::new(format!("{bindir}/{name}"))
            .args(["-h", &host, "-p", &port, "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {name}: {e}"))
    }

    pub fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn chown(&self, path: &std::path::Path) {
        if running_as_root() {
            let ok = Command::new("chown")
                .arg(&self.user)
                .arg(path)
                .status()
                .unwrap();
            assert!(ok.success(), "chown {}", path.display());
        }
    }

    fn as_server_user(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("sudo");
            c.args(["-u", &self.user, "--", program]);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.pg_ctl_env(&[], args)
    }

    /// pg_ctl with `env` (`NAME=value`) in the server's environment.
    fn pg_ctl_env(&self, env: &[&str], args: &[&str]) -> std::process::Output {
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        let data = self.data();
        let pg_ctl = self.program("pg_ctl");
        let mut all = env.to_vec();
        all.extend_from_slice(&[&pg_ctl, "-D", &data, "-l", &log, "-w", "-t", "60"]);
        all.extend_from_slice(args);
        self.as_server_user("env", &all)
    }

    /// Write a file in the cluster's folder (outside the data directory), owned by the server
    /// user, with `mode`.  Returns its path.
    pub fn write_file(&self, name: &str, contents: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        self.chown(&path);
        path.to_string_lossy().into_owned()
    }

    /// (Re)start the server with pg_tenancy preloaded and these extra settings (e.g. the keyring);
    /// panics if it does not come up.
    pub fn restart(&self, settings: &[String]) {
        self.restart_env(settings, &[]);
    }

    /// [`Cluster::restart`] with `env` (`NAME=value`) in the server's environment.
    pub fn restart_env(&self, settings: &[String], env: &[&str]) {
        self.pg_ctl(&["stop", "-m", "fast"]);
        let mut conf = format!(
            "port = {}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nshared_preload_libraries = 'pg_tenancy'\nfsync = off\n",
            self.port,
            self.dir.display()
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        std::fs::write(self.dir.join("data/pg_tenancy.conf"), conf).unwrap();
        let out = self.pg_ctl_env(env, &["start"]);
        assert!(
            out.status.success(),
            "the server did not start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Stop the server without a checkpoint, as a crash would.
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn connect(&self, db: &str) -> Client {
        self.connect_as(db, "postgres")
    }

    pub fn connect_as(&self, db: &str, user: &str) -> Client {
        Client::connect(
            &format!(
                "host={} port={} user={user} dbname={db}",
                self.dir.display(),
                self.port
            ),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }
}

/// The SQLSTATE and message of a failed statement, or "ok".
pub fn error_text(result: Result<impl Sized, postgres::Error>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => format!("no sqlstate: {e}"),
        },
    }
}

/// A PgBouncer in transaction pooling mode in front of the test cluster, on 127.0.0.1:`port`,
/// with ONE server connection per database and user, so that every client shares the same
/// backend: the harshest setting for a context that must not outlive its transaction.  Run by
/// `$PGT_OS_USER` (PgBouncer refuses root).  Stopped when dropped.
pub struct Bouncer {
    dir: std::path::PathBuf,
    pub port: u16,
}

impl Bouncer {
    pub fn start(db: &str, port: u16) -> Bouncer {
        let state = std::env::var("PGT_STATE").unwrap_or_else(|_| "/var/tmp/pg_tenancy".into());
        let user = std::env::var("PGT_OS_USER").unwrap_or_else(|_| "tenancy".into());
        let dir = std::path::Path::new(&state).join(format!("bouncer-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let server_port = std::env::var("PGPORT").unwrap_or_else(|_| "54325".into());
        let ini = format!(
            "[databases]\n{db} = host=127.0.0.1 port={server_port} dbname={db}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = transaction\ndefault_pool_size = 1\nmin_pool_size = 0\nmax_client_conn = 50\n\
             server_reset_query =\nignore_startup_parameters = extra_float_digits,options\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        // trust: no password, but only the users listed here.
        std::fs::write(
            dir.join("users.txt"),
            "\"postgres\" \"\"\n\"pgt_bouncer_app\" \"\"\n\"pgt_bouncer_login\" \"\"\n",
        )
        .unwrap();
        if running_as_root() {
            Command::new("chown")
                .args(["-R", &user])
                .arg(&dir)
                .status()
                .unwrap();
        }
        let ini = dir.join("pgbouncer.ini").to_string_lossy().into_owned();
        let mut cmd = if running_as_root() {
            let mut c = Command::new("sudo");
            c.args(["-u", &user, "--", "pgbouncer", "-d", &ini]);
            c
        } else {
            let mut c = Command::new("pgbouncer");
            c.args(["-d", &ini]);
            c
        };
        let out = cmd.output().expect("run pgbouncer");
        assert!(
            out.status.success(),
            "pgbouncer did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Bouncer { dir, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("pgbouncer is not listening on {port}");
    }

    /// A client connection through the pooler.  Use the simple query protocol only: PgBouncer
    /// 1.18 in transaction mode does not carry named prepared statements between clients.
    pub fn connect(&self, db: &str, user: &str) -> Client {
        Client::connect(
            &format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect through pgbouncer: {e}"))
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// The current transaction's id, if it was given one (`None`: it has written nothing, so its
/// commit writes no WAL and a standby could have served it).
pub fn transaction_id(c: &mut Client) -> Option<String> {
    c.query_one(
        "SELECT pg_catalog.pg_current_xact_id_if_assigned()::text",
        &[],
    )
    .unwrap()
    .get(0)
}

/// The first column of the first row of a simple-protocol query, as text (None for NULL).
pub fn simple_value(c: &mut Client, sql: &str) -> Result<Option<String>, postgres::Error> {
    for m in c.simple_query(sql)? {
        if let postgres::SimpleQueryMessage::Row(row) = m {
            return Ok(row.get(0).map(str::to_string));
        }
    }
    Ok(None)
}

/// 32 random bytes in base64: a root key for a test keyring.
pub fn random_key() -> String {
    use base64::Engine;
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every credential, decrypted in its tenant's context: (id, read_credential as text), ordered by
/// id, or the first error.
pub fn read_all_credentials(c: &mut Client) -> Result<Vec<(uuid::Uuid, String)>, String> {
    let ids: Vec<(uuid::Uuid, uuid::Uuid)> = c
        .query(
            "SELECT tenant_id, id FROM tenancy.integration_credentials ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Vec::new();
    for (tenant, id) in ids {
        c.batch_execute("BEGIN").unwrap();
        c.execute("SELECT tenancy.set_tenant($1)", &[&tenant])
            .unwrap();
        let r = c.query_one("SELECT tenancy.read_credential($1)::text", &[&id]);
        c.batch_execute("ROLLBACK").unwrap();
        match r {
            Ok(row) => out.push((id, row.get(0))),
            Err(e) => return Err(error_text(Err::<(), _>(e))),
        }
    }
    Ok(out)
}

/// Every ordinary table (partitions included) of the `tenancy`, `tenancy_private` and `public`
/// schemas, with its row count and a digest of its whole content: (table, rows, md5), ordered by
/// table.
pub fn table_digests(c: &mut Client) -> Vec<(String, i64, String)> {
    tenant_digests(c, None)
}

/// Like `table_digests`, of one tenant's rows only: every table with a `tenant_id` (partitions
/// each on their own) and the tenant's row in `tenancy.tenants`.
pub fn tenant_digests(c: &mut Client, tenant: Option<&str>) -> Vec<(String, i64, String)> {
    let tables: Vec<(String, bool)> = c
        .query(
            "SELECT c.oid::regclass::text,
                    EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
               FROM pg_class c
              WHERE c.relnamespace::regnamespace::text IN ('tenancy', 'tenancy_private', 'public') AND c.relkind = 'r'
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tables
        .into_iter()
        .filter_map(|(t, has_tenant)| {
            let filter = match tenant {
                None => String::new(),
                Some(id) if has_tenant => format!("WHERE tenant_id = '{id}'"),
                Some(id) if t == "tenancy.tenants" => format!("WHERE id = '{id}'"),
                Some(_) => return None,
            };
            let row = c
                .query_one(
                    &format!("SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x {filter}"),
                    &[],
                )
                .unwrap();
            Some((t, row.get(0), row.get(1)))
        })
        .collect()
}

/// The columns of every ordinary table of the `tenancy` and `public` schemas, in order.
pub fn table_columns(c: &mut Client) -> Vec<(String, Vec<String>)> {
    c.query(
        "SELECT c.oid::regclass::text, array_agg(quote_ident(a.attname) ORDER BY a.attnum)
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE c.relnamespace::regnamespace::text IN ('tenancy', 'tenancy_private', 'public') AND c.relkind = 'r'
          GROUP BY 1 ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Like `table_digests`, over the given columns of the given tables only: what an upgrade that
/// adds columns must leave as it was.
pub fn column_digests(
    c: &mut Client,
    columns: &[(String, Vec<String>)],
) -> Vec<(String, i64, String)> {
    columns
        .iter()
        .map(|(t, cols)| {
            let row = c
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '')
                           FROM (SELECT ROW({}) AS r FROM {t}) x",
                        cols.join(", ")
                    ),
                    &[],
                )
                .unwrap();
            (t.clone(), row.get(0), row.get(1))
        })
        .collect()
}

/// One PostgREST request, as PostgREST sends it or as a hostile session fakes it: in a
/// transaction rolled back after, `SET LOCAL ROLE as_role` (an authenticator's; none for a login
/// that is the role itself), `request.jwt.claims` and `request.headers`, `pre_request()`.  The
/// context it got, "tenant,user,role" ("-" for none), or the error of `pre_request`.
pub fn pre_request_context(
    c: &mut Client,
    as_role: Option<&str>,
    claims: &str,
    headers: &str,
) -> Result<String, postgres::Error> {
    c.batch_execute("BEGIN").unwrap();
    if let Some(role) = as_role {
        c.batch_execute(&format!("SET LOCAL ROLE {role}")).unwrap();
    }
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true), pg_catalog.set_config('request.headers', $2, true)",
        &[&claims, &headers],
    )
    .unwrap();
    let out = c.batch_execute("SELECT tenancy.pre_request()").map(|()| {
        c.query_one(
            "SELECT coalesce(tenancy.current_tenant_id()::text, '-') || ',' || coalesce(tenancy.current_user_id()::text, '-')
                    || ',' || coalesce(tenancy.current_role(), '-')",
            &[],
        )
        .unwrap()
        .get(0)
    });
    c.batch_execute("ROLLBACK").unwrap();
    out
}

/// Open a transaction in `tenant` as `user`, the way PostgREST's pre-request does it (the claims
/// as PostgREST would set them, then `tenancy.pre_request()`).
pub fn enter_as(c: &mut Client, user: &str, tenant: &str) {
    c.batch_execute("BEGIN").unwrap();
    c.execute(
        "SELECT pg_catalog.set_config('request.jwt.claims', $1, true)",
        &[&format!(r#"{{"sub": "{user}", "tenant_id": "{tenant}"}}"#)],
    )
    .unwrap();
    c.batch_execute("SELECT tenancy.pre_request()").unwrap();
}

/// The demo data `tenancy.seed_demo()` writes (sql/operations.sql): one definition for every
/// test.
pub mod demo {
    pub const ACME: &str = "a0000000-0000-4000-8000-000000000001";
    pub const GLOBEX: &str = "b0000000-0000-4000-8000-000000000002";
    /// Acme's owner, and a member of globex.
    pub const ALICE: &str = "00000000-0000-4000-8000-0000000000a1";
    /// Acme's admin.
    pub const BOB: &str = "00000000-0000-4000-8000-0000000000a2";
    /// Acme's manager.
    pub const CAROL: &str = "00000000-0000-4000-8000-0000000000a3";
    /// Acme's member.
    pub const DAVE: &str = "00000000-0000-4000-8000-0000000000a4";
    /// Acme's client.
    pub const ERIN: &str = "00000000-0000-4000-8000-0000000000a5";
    /// Globex's owner.
    pub const FRANK: &str = "00000000-0000-4000-8000-0000000000b1";
    /// Globex's admin.
    pub const GRACE: &str = "00000000-0000-4000-8000-0000000000b2";
    /// Globex's manager.
    pub const HEIDI: &str = "00000000-0000-4000-8000-0000000000b3";
    /// Globex's member.
    pub const IVAN: &str = "00000000-0000-4000-8000-0000000000b4";
    /// Globex's client.
    pub const JUDY: &str = "00000000-0000-4000-8000-0000000000b5";
    /// Each tenant's Slack integration.
    pub const SLACK_A: &str = "a1000000-0000-4000-8000-000000000101";
    pub const SLACK_B: &str = "b1000000-0000-4000-8000-000000000101";
    /// Each tenant's "Send message" action (input mappings $.message -> $.text and $.room ->
    /// $.channel with trim and lower case; output $.ts -> $.messageId as a string).
    pub const SEND_MESSAGE_A: &str = "a1000001-0000-4000-8000-000000000201";
    pub const SEND_MESSAGE_B: &str = "b1000001-0000-4000-8000-000000000201";
}
