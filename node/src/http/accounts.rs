//! People's accounts for the dashboard and the JSON API: one TOML file, managed by
//! `bottomline user add|passwd|remove|list` and read by the running node.
//!
//! ```toml
//! [[user]]
//! name = "wang"
//! role = "viewer"            # or "operator"
//! division = "610102"        # the subtree the person works in (within the node's division)
//! hash = "$argon2id$v=19$m=7168,t=5,p=1$…"
//! created = "2026-05-01"
//! ```
//!
//! Passwords are stored as argon2id PHC strings ([`HASH_PARAMS`]: m = 7 MiB, t = 5, p = 1, one
//! verification ≈ 20–50 ms on a county server) with a random 16-byte salt. A hash carries its
//! parameters: one made with others (the crate's defaults, m = 19 MiB, t = 2, before
//! 2026-12) is verified with those.
//! The file is rewritten atomically (a temporary file in the same directory, fsync, rename,
//! directory fsync) with mode 0600, and concurrent `bottomline user` commands are serialized
//! by an exclusive `flock` on the file's directory. A running node ([`Accounts`]) notices a
//! new version of the file (inode, size, modification time) at its next lookup, so the CLI
//! takes effect without a restart; it never writes the file.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::division::Code;
use crate::security::identity::check_name;
use crate::security::Role;

/// Fewest characters (Unicode scalar values, not bytes) a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters a password may have.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Most password verifications [`Accounts::verify`] runs at once; more wait their turn. Each
/// takes its hash's memory (7 MiB) and tens of milliseconds of one core: a burst of logins
/// must not take a county server's memory.
pub const MAX_CONCURRENT_VERIFY: usize = 2;

/// A person who can log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Login name (ASCII letters, digits, `.`, `_`, `-`; 1–64 characters).
    pub name: String,
    /// Read only, or read and act.
    pub role: Role,
    /// The division whose subtree the person works in.
    pub division: Code,
    /// A digest of the password hash: a session compares it with the account's now, so a
    /// changed password ends the sessions opened with the old one.
    pub credential: u64,
}

/// The digest an [`Account`] carries of its password hash (compared within one process).
fn credential_of(hash: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash.hash(&mut h);
    h.finish()
}

/// What can go wrong with the accounts file or a change to it.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The file (or its directory) could not be read or written.
    #[error("accounts file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid accounts file.
    #[error("accounts file {path} is not valid: {message} (fix or remove that entry by hand, then retry)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// An account lies outside the node's division.
    #[error(
        "accounts file {path}, line {line}: account {name:?} works in division {division}, \
         which is not within this node's division {node}; remove it with \
         `bottomline user remove {name}` (or correct its division)"
    )]
    OutsideNode {
        /// The file.
        path: PathBuf,
        /// Line of its `[[user]]` table.
        line: usize,
        /// The account.
        name: String,
        /// Its division.
        division: String,
        /// The node's division.
        node: String,
    },
    /// A new account's division is outside the node's division.
    #[error(
        "division {division} is not within this node's division {node}: an account can only \
         work in the node's division or below it"
    )]
    DivisionOutside {
        /// The division asked for.
        division: String,
        /// The node's division.
        node: String,
    },
    /// `add` with a name that is taken.
    #[error(
        "there is already an account named {name:?} in {path}; choose another name, or change \
         its password with `bottomline user passwd {name}`"
    )]
    Exists {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// `passwd` or `remove` with a name that is not in the file.
    #[error("there is no account named {name:?} in {path} (see `bottomline user list`)")]
    Unknown {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// The name breaks the naming rule.
    #[error("{0}")]
    BadName(String),
    /// The password is too short or too long.
    #[error(
        "the password has {chars} characters; it must have at least {MIN_PASSWORD_CHARS} \
         (and at most {MAX_PASSWORD_CHARS})"
    )]
    BadPassword {
        /// Its length in characters.
        chars: usize,
    },
    /// argon2 failed (should not happen with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The accounts a running node checks logins against.
///
/// Every lookup first compares the file's inode, size and modification time with those of
/// the version last read and re-reads it when they differ (one `stat` per lookup). A file
/// that fails to re-read leaves the last good set in place, with a warning in the log.
pub struct Accounts {
    path: PathBuf,
    node: Code,
    state: Mutex<State>,
    gate: Gate,
}

/// A counting semaphore for the verifications.
#[derive(Default)]
struct Gate {
    busy: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Gate);

impl Gate {
    fn enter(&self) -> Permit<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= MAX_CONCURRENT_VERIFY {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

struct State {
    /// The version of the file `users` came from (or the last one that failed to read);
    /// `None`: there was no file.
    stamp: Option<Stamp>,
    users: HashMap<String, User>,
}

#[derive(Clone)]
struct User {
    account: Account,
    hash: String,
}

/// Which version of the file was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    mode: u32,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            mode: m.mode(),
        }
    }
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("path", &self.path)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Read the accounts file at `path` for a node serving `node`. A missing file means no
    /// accounts; a malformed file, or an account outside `node`'s subtree, is an error.
    pub fn open(path: &Path, node: Code) -> Result<Accounts, AccountsError> {
        let (stamp, users) = match read_file(path)? {
            None => (None, HashMap::new()),
            Some((stamp, text)) => {
                warn_if_readable(path, stamp);
                let users = parse(path, &text, Some(node))?;
                (Some(stamp), index(users))
            }
        };
        // Made now, so the first login with an unknown name takes no longer than others.
        dummy_hash();
        Ok(Accounts {
            path: path.to_owned(),
            node,
            state: Mutex::new(State { stamp, users }),
            gate: Gate::default(),
        })
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// No accounts (after re-reading a changed file).
    pub fn is_empty(&self) -> bool {
        self.current().users.is_empty()
    }

    /// How many accounts (after re-reading a changed file).
    pub fn len(&self) -> usize {
        self.current().users.len()
    }

    /// The account when `name` exists and `password` is its password. An unknown name costs
    /// the same argon2 verification (against a dummy hash) as a known one, so the time taken
    /// does not tell which names exist. Blocks (call it off the async threads): at most
    /// [`MAX_CONCURRENT_VERIFY`] run at once, others wait; the accounts are not locked
    /// meanwhile.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        let found = self.current().users.get(name).cloned();
        let _permit = self.gate.enter();
        match found {
            Some(user) => password_matches(&user.hash, password).then_some(user.account),
            None => {
                let _ = password_matches(dummy_hash(), password);
                None
            }
        }
    }

    /// The account named `name`, if it (still) exists.
    pub fn get(&self, name: &str) -> Option<Account> {
        self.current().users.get(name).map(|u| u.account.clone())
    }

    /// The state, re-read first when the file changed.
    fn current(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut st);
        st
    }

    fn refresh(&self, st: &mut State) {
        let now = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    "cannot look at the accounts file; keeping the accounts already loaded"
                );
                return;
            }
        };
        if now == st.stamp {
            return;
        }
        let result = read_file(&self.path).and_then(|file| match file {
            None => Ok((None, Vec::new())),
            Some((stamp, text)) => {
                warn_if_readable(&self.path, stamp);
                Ok((Some(stamp), parse(&self.path, &text, Some(self.node))?))
            }
        });
        match result {
            Ok((stamp, users)) => {
                st.stamp = stamp;
                st.users = index(users);
                tracing::info!(
                    path = %self.path.display(),
                    accounts = st.users.len(),
                    "accounts file re-read"
                );
            }
            Err(e) => {
                // Remember the bad version so it is reported once, not at every lookup; the
                // next change to the file is read again.
                st.stamp = now;
                tracing::warn!(
                    error = %e,
                    accounts = st.users.len(),
                    "the changed accounts file cannot be used; keeping the accounts loaded before"
                );
            }
        }
    }
}

fn index(users: Vec<(User, String)>) -> HashMap<String, User> {
    users
        .into_iter()
        .map(|(u, _)| (u.account.name.clone(), u))
        .collect()
}

/// Add an account to the file at `path` (created if missing) for a node serving `node`;
/// `division` defaults to the node's. Refuses a name already in the file.
pub fn add(
    path: &Path,
    node: Code,
    name: &str,
    role: Role,
    division: Option<Code>,
    password: &str,
) -> Result<Account, AccountsError> {
    check_name(name).map_err(AccountsError::BadName)?;
    check_password(password)?;
    let division = division.unwrap_or(node);
    if !node.contains(division) {
        return Err(AccountsError::DivisionOutside {
            division: show(division),
            node: show(node),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let _lock = lock_dir(path)?;
    let mut users = read_all(path)?;
    if users.iter().any(|(u, _)| u.account.name == name) {
        return Err(AccountsError::Exists {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    let hash = hash_password(password)?;
    let account = Account {
        name: name.to_owned(),
        role,
        division,
        credential: credential_of(&hash),
    };
    let created = crate::period::today_in_china().to_string();
    users.push((
        User {
            account: account.clone(),
            hash,
        },
        created,
    ));
    write(path, &users)?;
    Ok(account)
}

/// Give the account `name` a new password.
pub fn set_password(path: &Path, name: &str, password: &str) -> Result<Account, AccountsError> {
    check_password(password)?;
    let _lock = lock_dir(path)?;
    let mut users = read_all(path)?;
    let Some((user, _)) = users.iter_mut().find(|(u, _)| u.account.name == name) else {
        return Err(AccountsError::Unknown {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    };
    user.hash = hash_password(password)?;
    user.account.credential = credential_of(&user.hash);
    let account = user.account.clone();
    write(path, &users)?;
    Ok(account)
}

/// Remove the account `name`.
pub fn remove(path: &Path, name: &str) -> Result<Account, AccountsError> {
    let _lock = lock_dir(path)?;
    let mut users = read_all(path)?;
    let Some(i) = users.iter().position(|(u, _)| u.account.name == name) else {
        return Err(AccountsError::Unknown {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    };
    let (user, _) = users.remove(i);
    write(path, &users)?;
    Ok(user.account)
}

/// The accounts in the file, in file order (none when it does not exist).
pub fn list(path: &Path) -> Result<Vec<Account>, AccountsError> {
    Ok(read_all(path)?
        .into_iter()
        .map(|(u, _)| u.account)
        .collect())
}

/// The password rule: 8 to 1024 characters.
pub fn check_password(password: &str) -> Result<(), AccountsError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(AccountsError::BadPassword { chars })
    }
}

/// A division for messages (the national root has no digits).
fn show(code: Code) -> String {
    if code == Code::ROOT {
        "(national root)".to_owned()
    } else {
        code.to_string()
    }
}

/// argon2id's parameters for new hashes (memory in KiB, passes, lanes): OWASP's Password
/// Storage Cheat Sheet lists m = 7 MiB with t = 5 as giving the same defence as the crate's
/// default m = 19 MiB with t = 2 (the same work: 7168 × 5 ≈ 19456 × 2 block passes). The
/// memory is what a node holds while it verifies a login, and every node makes one hash at
/// start ([`dummy_hash`]): 19 MiB was more than a third of a county node's budget (48 MB).
pub const HASH_PARAMS: (u32, u32, u32) = (7168, 5, 1);

/// argon2id with [`HASH_PARAMS`], a random 16-byte salt from the OS-seeded CSPRNG; the PHC
/// string.
fn hash_password(password: &str) -> Result<String, AccountsError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountsError::Hash(e.to_string()))?;
    let (m, t, p) = HASH_PARAMS;
    let params =
        argon2::Params::new(m, t, p, None).map_err(|e| AccountsError::Hash(e.to_string()))?;
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

fn password_matches(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password with the same parameters, verified against for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 16];
        rand::rng().fill_bytes(&mut pw);
        let pw: String = pw.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&pw).expect("argon2 with default parameters hashes")
    })
}

/// The file's text and version; `None` when it does not exist.
fn read_file(path: &Path) -> Result<Option<(Stamp, String)>, AccountsError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    // The version of exactly what is read: a change after this is seen at the next lookup.
    let stamp = Stamp::of(&f.metadata().map_err(io(path))?);
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            AccountsError::Malformed {
                path: path.to_owned(),
                message: "the file is not UTF-8 text".into(),
            }
        } else {
            io(path)(e)
        }
    })?;
    Ok(Some((stamp, text)))
}

fn warn_if_readable(path: &Path, stamp: Stamp) {
    if stamp.mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", stamp.mode & 0o777),
            "the accounts file can be read by other users; it should be mode 0600 \
             (`chmod 600`)"
        );
    }
}

/// Every account in the file (no division check), with its creation date.
fn read_all(path: &Path) -> Result<Vec<(User, String)>, AccountsError> {
    match read_file(path)? {
        None => Ok(Vec::new()),
        Some((_, text)) => parse(path, &text, None),
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<toml::Spanned<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    role: String,
    division: String,
    hash: String,
    #[serde(default)]
    created: String,
}

/// Check the text of an accounts file; with `node`, every account must lie within it.
fn parse(
    path: &Path,
    text: &str,
    node: Option<Code>,
) -> Result<Vec<(User, String)>, AccountsError> {
    let malformed = |message: String| AccountsError::Malformed {
        path: path.to_owned(),
        message,
    };
    // toml's message already names the line and column.
    let raw: RawFile =
        toml::from_str(text).map_err(|e| malformed(e.to_string().trim_end().to_owned()))?;
    let mut users: Vec<(User, String)> = Vec::with_capacity(raw.user.len());
    let mut lines: HashMap<String, usize> = HashMap::new();
    for spanned in raw.user {
        let line = text[..spanned.span().start.min(text.len())]
            .matches('\n')
            .count()
            + 1;
        let u = spanned.into_inner();
        let at = |what: String| malformed(format!("line {line}: {what}"));
        check_name(&u.name).map_err(at)?;
        let role = Role::parse(&u.role).map_err(|e| at(format!("account {:?}: {e}", u.name)))?;
        let division =
            Code::parse(&u.division).map_err(|e| at(format!("account {:?}: {e}", u.name)))?;
        if let Err(e) = PasswordHash::new(&u.hash) {
            return Err(at(format!(
                "account {:?}: hash is not a PHC password hash ({e}); set a new password \
                 with `bottomline user passwd {}`",
                u.name, u.name
            )));
        }
        if let Some(first) = lines.insert(u.name.clone(), line) {
            return Err(at(format!(
                "account {:?} appears a second time (first at line {first})",
                u.name
            )));
        }
        if let Some(node) = node {
            if !node.contains(division) {
                return Err(AccountsError::OutsideNode {
                    path: path.to_owned(),
                    line,
                    name: u.name,
                    division: show(division),
                    node: show(node),
                });
            }
        }
        users.push((
            User {
                account: Account {
                    name: u.name,
                    role,
                    division,
                    credential: credential_of(&u.hash),
                },
                hash: u.hash,
            },
            u.created,
        ));
    }
    Ok(users)
}

#[derive(Serialize)]
struct OutFile<'a> {
    user: Vec<OutUser<'a>>,
}

#[derive(Serialize)]
struct OutUser<'a> {
    name: &'a str,
    role: &'a str,
    division: String,
    hash: &'a str,
    created: &'a str,
}

const HEADER: &str = "\
# Bottomline dashboard accounts: managed with `bottomline user add|passwd|remove|list`.
# A running node picks up changes without a restart. Keep this file private (mode 0600).

";

fn write(path: &Path, users: &[(User, String)]) -> Result<(), AccountsError> {
    let out = OutFile {
        user: users
            .iter()
            .map(|(u, created)| OutUser {
                name: &u.account.name,
                role: u.account.role.as_str(),
                division: u.account.division.to_string(),
                hash: &u.hash,
                created,
            })
            .collect(),
    };
    let body = toml::to_string(&out).map_err(|e| AccountsError::Malformed {
        path: path.to_owned(),
        message: format!("cannot write it: {e}"),
    })?;
    write_atomic(path, format!("{HEADER}{body}").as_bytes())
}

/// Write `path` by way of a temporary file in the same directory (mode 0600), synced, then
/// renamed over `path`; the directory is synced after.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AccountsError> {
    let dir = parent(path);
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Hold an exclusive `flock` on the file's directory while reading, changing and writing
/// the file, so two `bottomline user` commands at once do not lose a change. Released when
/// the returned handle is dropped.
fn lock_dir(path: &Path) -> Result<File, AccountsError> {
    let dir = parent(path);
    let d = File::open(dir).map_err(io(dir))?;
    // SAFETY: flock on a descriptor we own; released when `d` is closed.
    let rc = unsafe { libc::flock(d.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(io(dir)(std::io::Error::last_os_error()));
    }
    Ok(d)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AccountsError + '_ {
    move |source| AccountsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
