//! Imports into a serving node: the **inbox** directory (`inbox = "DIR"` in the config) and the
//! `Import` API (`rpc/import_api.rs`) take the same path, [`import_set`], on the node's own
//! ledger, so a county takes a day's files without stopping and the changed cells start
//! travelling upward with the next flush.
//!
//! The inbox: every `inbox_poll_secs` the node looks at the files in `DIR` (not in its
//! subdirectories; names starting with `.` or ending in `.part` or `.tmp` are left alone, so
//! a writer can copy under such a name and rename). A file is taken once it showed the same
//! size and modification time at two looks, so a file still being copied waits. The files
//! taken are imported together, in dependency order ([`crate::import::import_files`]); each
//! imported file is moved to `DIR/done/`, a rejected one to `DIR/rejected/` beside a
//! `.report.txt` naming the file, line, field and reason. Files after a rejected one (in
//! dependency order) stay in the inbox and are tried again at the next look. Moved files get
//! a China-time stamp in front of their name, so the same name every day never collides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jiff::civil::Date;
use tokio::sync::watch;

use crate::import::{import_files, FileKind, FileReport, ImportError};
use crate::ledger::Ledger;

/// What importing a set of files did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The files imported, in the order they were written.
    pub imported: Vec<FileReport>,
    /// The first file refused and why (nothing of it was imported; the files after it in
    /// dependency order were not tried).
    pub rejected: Option<(PathBuf, ImportError)>,
}

/// Import `paths` into `ledger` (a county's running node): in dependency order, stopping at
/// the first refused file (the files before it stay imported).
pub fn import_set(ledger: &Ledger, paths: &[PathBuf], today: Date) -> Outcome {
    let mut out = Outcome::default();
    let mut done = |r: &FileReport| out.imported.push(r.clone());
    let result = import_files(ledger, paths, None, today, &mut |_| {}, &mut done);
    if let Err(e) = result {
        out.rejected = Some((e.file().to_owned(), e));
    }
    out
}

/// The inbox of a running node.
pub struct Inbox {
    dir: PathBuf,
    /// Size and modification time of each candidate at the last look.
    seen: HashMap<PathBuf, (u64, SystemTime)>,
}

/// A file name the inbox leaves alone (hidden, or still being written under a temporary name).
fn ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp")
}

/// `YYYYMMDDTHHMMSS-` in China time.
fn stamp() -> String {
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    jiff::Timestamp::now()
        .to_zoned(tz)
        .strftime("%Y%m%dT%H%M%S-")
        .to_string()
}

impl Inbox {
    /// The inbox at `dir`, with its `done/` and `rejected/` (created if missing).
    pub fn open(dir: &Path) -> std::io::Result<Inbox> {
        std::fs::create_dir_all(dir.join("done"))?;
        std::fs::create_dir_all(dir.join("rejected"))?;
        Ok(Inbox {
            dir: dir.to_owned(),
            seen: HashMap::new(),
        })
    }

    /// The files that showed the same size and time at this look and the previous one.
    fn stable(&mut self) -> std::io::Result<Vec<PathBuf>> {
        let mut now = HashMap::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let name = entry.file_name();
            if !meta.is_file() || ignored(&name.to_string_lossy()) {
                continue;
            }
            now.insert(entry.path(), (meta.len(), meta.modified()?));
        }
        let mut stable: Vec<PathBuf> = now
            .iter()
            .filter(|(p, v)| self.seen.get(*p) == Some(v))
            .map(|(p, _)| p.clone())
            .collect();
        stable.sort();
        self.seen = now;
        Ok(stable)
    }

    /// Move `file` into `sub` (done or rejected) with a stamp; returns the new path.
    fn file_away(&mut self, file: &Path, sub: &str, stamp: &str) -> std::io::Result<PathBuf> {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let to = self.dir.join(sub).join(format!("{stamp}{name}"));
        std::fs::rename(file, &to)?;
        self.seen.remove(file);
        Ok(to)
    }

    fn reject(&mut self, file: &Path, why: &str, stamp: &str) -> std::io::Result<()> {
        let to = self.file_away(file, "rejected", stamp)?;
        let report = format!(
            "{} was rejected at {} (China time); nothing of it was imported and the node's data \
             is as it was.\n\n{why}\n",
            file.display(),
            stamp.trim_end_matches('-')
        );
        let mut r = to.into_os_string();
        r.push(".report.txt");
        std::fs::write(&r, report)?;
        tracing::warn!(file = %file.display(), report = %PathBuf::from(r).display(), cause = %why, "inbox: file rejected");
        Ok(())
    }

    /// One look: import the stable files, file them away. Returns the outcome when files
    /// were taken.
    pub fn pass(&mut self, ledger: &Ledger, today: Date) -> std::io::Result<Option<Outcome>> {
        let files = self.stable()?;
        if files.is_empty() {
            return Ok(None);
        }
        let stamp = stamp();
        let (known, unknown): (Vec<PathBuf>, Vec<PathBuf>) = files
            .into_iter()
            .partition(|p| FileKind::from_path(p).is_some());
        for f in unknown {
            let why = ImportError::UnknownKind { file: f.clone() }.to_string();
            self.reject(&f, &why, &stamp)?;
        }
        if known.is_empty() {
            return Ok(Some(Outcome::default()));
        }
        let outcome = import_set(ledger, &known, today);
        for r in &outcome.imported {
            let a = &r.applied;
            tracing::info!(
                file = %r.file.display(), rows = r.rows, new = a.inserted,
                corrected = a.corrected, unchanged = a.unchanged, cells = a.cells_written,
                "inbox: imported"
            );
            self.file_away(&r.file, "done", &stamp)?;
        }
        if let Some((file, e)) = &outcome.rejected {
            self.reject(file, &e.to_string(), &stamp)?;
        }
        Ok(Some(outcome))
    }
}

/// Look into `inbox` every `poll` until `stop` turns true.
pub async fn watch(
    ledger: Arc<Ledger>,
    inbox: Inbox,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let dir = inbox.dir.clone();
    let inbox = Arc::new(std::sync::Mutex::new(inbox));
    tracing::info!(inbox = %dir.display(), poll_secs = poll.as_secs_f64(), "inbox: watching");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (l, i) = (ledger.clone(), inbox.clone());
        let r = tokio::task::spawn_blocking(move || {
            let today = crate::period::today_in_china();
            i.lock().unwrap_or_else(|p| p.into_inner()).pass(&l, today)
        })
        .await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(inbox = %dir.display(), cause = %e, "inbox: a look failed; retrying")
            }
            Err(e) => {
                tracing::error!(inbox = %dir.display(), cause = %e, "inbox: import task failed")
            }
        }
    }
}
