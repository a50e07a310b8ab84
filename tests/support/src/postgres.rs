//! A throwaway PostgreSQL server of the test's own (initdb into a temporary folder, a free port on
//! 127.0.0.1), which a test may stop and start again: the real "database down, then back" case,
//! without touching the local stack's shared server. Uses the Debian server binaries
//! (`/usr/lib/postgresql/<version>/bin`); as root it runs them as the `postgres` user, since the
//! server refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How users other than the owner log in.
#[derive(Clone, Copy)]
enum Login<'m> {
    Trust,
    Passwords,
    Tls(&'m str),
}

pub struct TempPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn server_binaries() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

impl TempPostgres {
    /// Initialises and starts a server that trusts every loopback connection; the error says
    /// what is missing.
    pub fn start() -> Result<Self, String> {
        Self::start_with(Login::Trust)
    }

    /// A server that trusts only its owner (`highlights`): every other user must give its
    /// password (SCRAM-SHA-256), as on RDS.
    pub fn start_with_passwords() -> Result<Self, String> {
        Self::start_with(Login::Passwords)
    }

    /// A server with TLS on (a fresh self-signed certificate: no CA anyone trusts) where every
    /// user but the owner must log in over TLS with `method` (`scram-sha-256` as on RDS with
    /// SCRAM only, or `password`, `md5` for a server that asks for less). The owner connects
    /// without a password over plain TCP ([`Self::url`]).
    pub fn start_with_tls(method: &str) -> Result<Self, String> {
        Self::start_with(Login::Tls(method))
    }

    /// Writes what `start_with_tls` needs into the data folder: a key and certificate, the
    /// login rules, and `ssl = on`.
    fn set_up_tls(&self, method: &str) -> Result<(), String> {
        let data = self.data();
        let (key, crt) = (data.join("self.key"), data.join("self.crt"));
        let (key, crt) = (key.display().to_string(), crt.display().to_string());
        let openssl = Path::new("/usr/bin/openssl");
        self.run(
            openssl,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ],
            true,
        )?;
        self.run(Path::new("/bin/chmod"), &["600", &key], true)?;
        let rules = format!(
            "local all highlights trust\n\
             hostnossl all highlights 127.0.0.1/32 trust\n\
             hostssl all all 127.0.0.1/32 {method}\n"
        );
        std::fs::write(data.join("pg_hba.conf"), rules).map_err(|e| e.to_string())?;
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).map_err(|e| e.to_string())?;
        conf.push_str("\nssl = on\nssl_cert_file = 'self.crt'\nssl_key_file = 'self.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).map_err(|e| e.to_string())
    }

    fn start_with(login: Login<'_>) -> Result<Self, String> {
        let bin =
            server_binaries().ok_or("PostgreSQL server binaries are missing (apt-get install postgresql)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Under /var/tmp: the postgres user can reach it whoever owns the checkout.
        let dir = PathBuf::from(format!("/var/tmp/highlights-test-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let server = Self { bin, dir, port, as_postgres: is_root() };
        if server.as_postgres {
            server.run(Path::new("chown"), &["postgres:", &server.dir.display().to_string()], false)?;
        }
        let data = server.data().display().to_string();
        let initdb = server.bin.join("initdb");
        server.run(
            &initdb,
            &["-D", &data, "-U", "highlights", "--auth=trust", "-E", "UTF8", "--no-locale"],
            true,
        )?;
        if let Login::Tls(method) = login {
            server.set_up_tls(method)?;
        }
        if let Login::Passwords = login {
            let rules = "local all highlights trust\n\
                         host all highlights 127.0.0.1/32 trust\n\
                         host all all 127.0.0.1/32 scram-sha-256\n";
            std::fs::write(server.data().join("pg_hba.conf"), rules).map_err(|e| e.to_string())?;
        }
        server.resume()?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `program` (as the postgres user when we are root and `as_postgres`).
    fn run(&self, program: &Path, args: &[&str], as_postgres: bool) -> Result<(), String> {
        let mut command = Command::new("runuser");
        if as_postgres && self.as_postgres {
            command.args(["-u", "postgres", "--"]).arg(program);
        } else {
            command = Command::new(program);
        }
        let output = command.args(args).output().map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{} failed: {}", program.display(), String::from_utf8_lossy(&output.stderr)))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data().display().to_string();
        let all: Vec<&str> =
            ["-D", data.as_str(), "-w", "-t", "60"].into_iter().chain(args.iter().copied()).collect();
        self.run(&self.bin.join("pg_ctl"), &all, true)
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn resume(&self) -> Result<(), String> {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("server.log").display().to_string();
        self.pg_ctl(&["-o", &options, "-l", &log, "start"])
    }

    /// Stops the server at once (connections are cut, as when a database fails).
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "immediate", "stop"])
    }

    /// A connection string for `database` (the `postgres` database always exists).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://highlights@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
