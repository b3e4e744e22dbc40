//! The root keyring: parsed strictly, held in memory that is zeroized, never shown.
//!
//! Format, one root key per line (from `tenancy.keyring_file` or the output of
//! `tenancy.keyring_command`):
//!
//! ```text
//! # comments and blank lines are ignored
//! <key id> <32 bytes, standard base64> [active]
//! ```
//!
//! Key ids are 1–64 characters of `A-Z a-z 0-9 _ - .`; exactly one key is marked `active` (the one
//! new data keys are wrapped with); the others stay to unwrap what they wrapped until
//! `tenancy.rotate_root_key()` has rewrapped it.  Anything else is an error that names the line and
//! what is wrong with it, never its content.  A missing keyring is an error at use, never a
//! generated key.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub const KEY_LEN: usize = 32;

#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootKey {
    #[zeroize(skip)]
    pub id: String,
    #[zeroize(skip)]
    pub active: bool,
    pub key: [u8; KEY_LEN],
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey")
            .field("id", &self.id)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl RootKey {
    /// A keyed fingerprint: HMAC-SHA256 under the key itself of a fixed label, first 16 bytes.
    /// Recorded with what the key wraps, so that a server started with a different key under
    /// the same id says "wrong root key" instead of "cannot decrypt".  It reveals nothing of the key.
    pub fn fingerprint(&self) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes a key of any length");
        mac.update(b"pg_tenancy root key fingerprint v1");
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

#[derive(Debug)]
pub struct Keyring {
    pub keys: Vec<RootKey>,
}

impl Keyring {
    pub fn active(&self) -> &RootKey {
        // ok: parse() guarantees exactly one active key
        self.keys.iter().find(|k| k.active).unwrap_or(&self.keys[0])
    }

    pub fn get(&self, id: &str) -> Option<&RootKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Parse a keyring.  `source` names where it came from, for the messages.
pub fn parse(text: &str, source: &str) -> Result<Keyring, String> {
    let mut keys: Vec<RootKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (id, encoded, active) = match fields.as_slice() {
            [id, key] => (*id, *key, false),
            [id, key, "active"] => (*id, *key, true),
            _ => {
                return Err(format!(
                    "{source}, line {line_no}: expected \"<key id> <base64 key> [active]\""
                ))
            }
        };
        if !valid_id(id) {
            return Err(format!(
                "{source}, line {line_no}: a key id is 1-64 characters of A-Z a-z 0-9 _ - ."
            ));
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| format!("{source}, line {line_no}: the key is not valid base64"))?,
        );
        if decoded.len() != KEY_LEN {
            return Err(format!(
                "{source}, line {line_no}: a root key must be exactly 32 bytes (256 bits), this one has {}",
                decoded.len()
            ));
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(format!(
                "{source}, line {line_no}: key id \"{id}\" appears twice"
            ));
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&decoded);
        keys.push(RootKey {
            id: id.to_string(),
            active,
            key,
        });
    }
    match keys.iter().filter(|k| k.active).count() {
        _ if keys.is_empty() => Err(format!("{source}: no root key")),
        1 => Ok(Keyring { keys }),
        0 => Err(format!("{source}: no key is marked active")),
        _ => Err(format!("{source}: more than one key is marked active")),
    }
}

/// A fresh keyring line with 256 bits from the OS CSPRNG.
pub fn generate_line(id: &str) -> Result<String, String> {
    if !valid_id(id) {
        return Err("a key id is 1-64 characters of A-Z a-z 0-9 _ - .".into());
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::getrandom(key.as_mut())
        .map_err(|_| "the OS random number generator failed".to_string())?;
    Ok(format!(
        "{id} {} active",
        base64::engine::general_purpose::STANDARD.encode(key.as_ref())
    ))
}

/// Read a keyring file: it must be a regular file that neither group nor others can access, and
/// it must not live inside the data directory (whose backups would then carry the keys).
pub fn read_file(path: &str, data_dir: Option<&std::path::Path>) -> Result<Keyring, String> {
    use std::os::unix::fs::PermissionsExt;
    let source = format!("keyring file \"{path}\"");
    let meta = std::fs::metadata(path).map_err(|e| format!("{source}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{source}: not a regular file"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{source}: group or others may access it (mode {:o}); chmod 600 it",
            meta.permissions().mode() & 0o777
        ));
    }
    if let (Some(dir), Ok(file)) = (data_dir, std::fs::canonicalize(path)) {
        if let Ok(dir) = std::fs::canonicalize(dir) {
            if file.starts_with(&dir) {
                return Err(format!("{source}: must not be inside the data directory"));
            }
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("{source}: {e}"))?);
    parse(&text, &source)
}

/// Run a keyring command (through `/bin/sh -c`) and parse what it prints.
pub fn run_command(command: &str) -> Result<Keyring, String> {
    let source = "keyring command";
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{source}: could not run it: {e}"))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(format!("{source}: exited with {}", out.status));
    }
    let text =
        std::str::from_utf8(&stdout).map_err(|_| format!("{source}: output is not UTF-8"))?;
    parse(text, source)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32

    #[test]
    fn a_good_keyring() {
        let text = format!(
            "# root keys\n\nold {K1}\nk-2026.11 {} active\n",
            K1.replace('A', "B")
        );
        let ring = parse(&text, "test").unwrap();
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.active().id, "k-2026.11");
        assert_eq!(ring.get("old").unwrap().key[31], 31);
        assert_ne!(
            ring.get("old").unwrap().fingerprint(),
            ring.active().fingerprint()
        );
        assert!(
            !format!("{ring:?}").contains(K1),
            "Debug never shows key material"
        );
    }

    #[test]
    fn every_malformed_keyring_says_why_without_the_key() {
        let short = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="; // 31 bytes
        let cases = [
            (String::new(), "test: no root key"),
            ("# only a comment\n".to_string(), "test: no root key"),
            (format!("k1 {K1}\n"), "test: no key is marked active"),
            (
                format!("k1 {K1} active\nk2 {K1} active\n"),
                "test: more than one key is marked active",
            ),
            (
                format!("k1 {K1} active\nk1 {K1}\n"),
                "test, line 2: key id \"k1\" appears twice",
            ),
            (
                format!("k1 {short} active\n"),
                "test, line 1: a root key must be exactly 32 bytes (256 bits), this one has 31",
            ),
            (
                "k1 not*base64 active\n".to_string(),
                "test, line 1: the key is not valid base64",
            ),
            (
                format!("bad/id {K1} active\n"),
                "test, line 1: a key id is 1-64 characters of A-Z a-z 0-9 _ - .",
            ),
            (
                format!("k1 {K1} enabled\n"),
                "test, line 1: expected \"<key id> <base64 key> [active]\"",
            ),
            (
                format!("{K1}\n"),
                "test, line 1: expected \"<key id> <base64 key> [active]\"",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text, "test").unwrap_err();
            assert_eq!(err, want, "{text:?}");
            assert!(!err.contains(K1) && !err.contains(short));
        }
    }

    #[test]
    fn generated_lines_parse_and_differ() {
        let a = generate_line("k1").unwrap();
        let b = generate_line("k1").unwrap();
        assert_ne!(a, b);
        let ring = parse(&a, "generated").unwrap();
        assert_eq!(ring.active().id, "k1");
        assert!(generate_line("no spaces").is_err());
    }

    #[test]
    fn files_must_be_private_and_outside_the_data_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgt-keyring-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let file = dir.join("keyring");
        std::fs::write(&file, format!("k1 {K1} active\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_file(file.to_str().unwrap(), None).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_file(file.to_str().unwrap(), Some(&dir.join("data")))
                .unwrap()
                .active()
                .id,
            "k1"
        );
        let inside = dir.join("data/keyring");
        std::fs::copy(&file, &inside).unwrap();
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_file(inside.to_str().unwrap(), Some(&dir.join("data"))).unwrap_err();
        assert!(
            err.ends_with("must not be inside the data directory"),
            "{err}"
        );
        assert!(read_file(dir.join("missing").to_str().unwrap(), None)
            .unwrap_err()
            .contains("No such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commands() {
        assert_eq!(
            run_command(&format!("echo 'k1 {K1} active'"))
                .unwrap()
                .active()
                .id,
            "k1"
        );
        assert_eq!(
            run_command("exit 3").unwrap_err(),
            "keyring command: exited with exit status: 3"
        );
        assert_eq!(
            run_command("echo nothing").unwrap_err(),
            "keyring command, line 1: expected \"<key id> <base64 key> [active]\""
        );
    }
}
