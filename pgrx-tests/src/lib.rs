//! Helpers for the client-side tests: they drive a running PostgreSQL (started by
//! `scripts/test.sh`, found through PGHOST/PGPORT/PGUSER) over real connections, as real login
//! roles, the way applications, PostgREST and poolers do.
use postgres::{Client, NoTls};
use std::process::Command;

/// Connection string for `db` as `user` (no password: the test cluster trusts local connections).
pub fn conninfo(db: &str, user: &str) -> String {
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
    pub fn new(name: &str) -> TestDb {
        let db = TestDb::empty(name);
        db.connect("postgres")
            .batch_execute("CREATE EXTENSION pg_tenancy; SELECT tenancy.seed_demo();")
            .unwrap();
        db
    }

    /// A fresh, empty database.
    pub fn empty(name: &str) -> TestDb {
        let mut admin = connect("postgres", "postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
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
        let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/tmp/pg_tenancy/test".into());
        let port = std::env::var("PGPORT").unwrap_or_else(|_| "54325".into());
        Command::new(bin(name))
            .args(["-h", &host, "-p", &port, "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {name}: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&conninfo("postgres", "postgres"), NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Create a login role if it does not exist, with the given memberships.
pub fn login_role(name: &str, options: &str, member_of: &[&str]) {
    let mut admin = connect("postgres", "postgres");
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
