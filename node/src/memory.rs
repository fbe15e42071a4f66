//! The process's allocator: how it is set up, what it reports, and giving freed memory back.
//!
//! Two allocators, chosen when building:
//! - **glibc's malloc** (the default): one arena, fixed mmap and trim thresholds
//!   ([`setup`]), figures from `mallinfo2`, freed memory returned by `malloc_trim`.
//! - **jemalloc** (the `jemalloc` feature: `cargo build --release --features jemalloc`):
//!   one arena, a background thread that returns pages freed for more than a second on its
//!   own ([`malloc_conf`]), figures from jemalloc's statistics (its count of allocated bytes
//!   is exact), freed memory returned by purging the arena. Measured in the soak (README,
//!   run J): every node kept ~9 MiB more, and the province's slow rise was the same as under
//!   glibc, so it is not glibc's fragmentation (it was the verifier's set of checked seal
//!   roots, bounded since; run K). glibc stays the default; this build is for
//!   measuring.
//!
//! Every figure and call is the same for both, so the rest of the node does not know which
//! runs: [`heap_usage`] for metrics and traces, [`release_memory`] after bulk work and every
//! few seconds in a serving node.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it starts (its `malloc_conf` symbol, prefixed as the
/// crate builds it): one arena, as with glibc (a node's threads are few and mostly idle);
/// a background thread for the decay; freed ("dirty") pages returned after a second instead
/// of jemalloc's 10 s (a node frees in bursts: a self-check, an import's chunk, a sync
/// batch, and has nothing to gain from keeping them), and at once rather than kept "muzzy".
/// `_RJEM_MALLOC_CONF` in the environment (jemalloc's `MALLOC_CONF`, prefixed) overrides it.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static u8> =
    Some(&b"narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

/// Set the allocator up (call once, first thing in `main`, before any other thread).
///
/// glibc: one malloc arena. glibc gives every thread that allocates its own arena (up to 8
/// per core), each keeping its freed memory: a node's tokio workers, blocking pool, sled
/// threads and gRPC tasks then hold several times the memory they use. With two arenas a
/// serving county's self-check (on a blocking thread, in the second arena) left it ~15 MiB
/// larger until the next trim; with one, the check's blocks are freed at the top of the one
/// heap and go back at once (a realistic county served for 100 s with a check every 20 s:
/// RSS 29.6–31.6 MiB against 29.6–46.3 with two, the import's peak unchanged). Thread caches
/// (tcache) keep the one arena's lock cold.
///
/// Also fixes the mmap and trim thresholds at 128 KiB. glibc otherwise raises its mmap
/// threshold (up to 32 MiB) each time a large mmapped block is freed, after which large
/// buffers come from the arenas and, freed between long-lived small blocks, stay there: the
/// soak (issue #19) saw serving nodes' RSS creep after each self-check with their heap in use
/// flat and their free heap growing. Fixed, a block of 128 KiB or more is mapped and
/// unmapped on its own, and an arena's free top beyond 128 KiB is given back at once.
///
/// An operator's own `MALLOC_ARENA_MAX` (glibc's environment setting) is left in force.
/// With jemalloc this does nothing: [`malloc_conf`] holds its options.
pub fn setup() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    // SAFETY: mallopt only sets glibc tunables; called before any other thread exists.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// Which allocator this build uses ("glibc", "jemalloc" or "system").
pub fn allocator_name() -> &'static str {
    if cfg!(feature = "jemalloc") {
        "jemalloc"
    } else if cfg!(all(target_os = "linux", target_env = "gnu")) {
        "glibc"
    } else {
        "system"
    }
}

/// The process's heap as its allocator sees it: bytes in use, and bytes freed but still
/// held in memory (fragmentation, or not yet returned). `None` where neither is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapUsage {
    /// Allocated and not freed.
    pub in_use: u64,
    /// Freed and still resident, held by the allocator.
    pub free: u64,
}

/// See [`HeapUsage`]. glibc: `mallinfo2` (a walk of the arenas, microseconds): in use =
/// small and mmapped blocks allocated, free = the arenas' free bytes. jemalloc: its
/// statistics after an epoch advance: in use = `stats.allocated`, free = `stats.resident`
/// less that (pages it holds beyond live blocks, its own metadata included).
pub fn heap_usage() -> Option<HeapUsage> {
    #[cfg(feature = "jemalloc")]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        epoch::advance().ok()?;
        let in_use = stats::allocated::read().ok()? as u64;
        let resident = stats::resident::read().ok()? as u64;
        Some(HeapUsage {
            in_use,
            free: resident.saturating_sub(in_use),
        })
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    {
        // SAFETY: mallinfo2 only reads glibc's own arena statistics under its locks.
        let m = unsafe { libc::mallinfo2() };
        Some(HeapUsage {
            in_use: (m.uordblks + m.hblkhd) as u64,
            free: m.fordblks as u64,
        })
    }
    #[cfg(not(any(feature = "jemalloc", all(target_os = "linux", target_env = "gnu"))))]
    None
}

/// What the process has resident (`/proc/self/status`): anonymous memory (the heap, stacks,
/// the allocator's held pages) and file-backed pages (mostly the binary's own), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    /// `RssAnon`.
    pub anon: u64,
    /// `RssFile`.
    pub file: u64,
}

/// See [`Resident`]; `None` where `/proc` does not say.
pub fn resident() -> Option<Resident> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let n = line[name.len()..].trim().trim_end_matches("kB").trim();
        Some(n.parse::<u64>().ok()? * 1024)
    };
    Some(Resident {
        anon: kib("RssAnon:")?,
        file: kib("RssFile:")?,
    })
}

/// The allocator's figures and what is resident, in MiB to a tenth: what a long job (the
/// check, an import) logs at debug level to show what it holds as it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// [`HeapUsage::in_use`].
    pub heap_in_use_mib: f64,
    /// [`HeapUsage::free`].
    pub heap_free_mib: f64,
    /// [`Resident::anon`].
    pub rss_anon_mib: f64,
}

/// See [`Figures`] (zeros for what is not known here).
pub fn figures() -> Figures {
    let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    let h = heap_usage().unwrap_or_default();
    let r = resident().unwrap_or_default();
    Figures {
        heap_in_use_mib: mib(h.in_use),
        heap_free_mib: mib(h.free),
        rss_anon_mib: mib(r.anon),
    }
}

/// Return freed memory to the OS now (either allocator keeps some otherwise): call after
/// bulk work; a serving node calls it every few seconds. glibc: `malloc_trim(0)`, which also
/// returns whole free pages inside the heap. jemalloc: purge every arena's unused pages.
pub fn release_memory() {
    #[cfg(feature = "jemalloc")]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge" (4096 in jemalloc 5): every arena at once.
        // SAFETY: a void mallctl, the name NUL-terminated; no input or output buffers.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live allocation shows in the figures, and its pages are not counted free. (Other
    /// tests allocate and free concurrently in this process, so only what they cannot undo is
    /// asserted: a 64 MiB block, written so its pages are resident, counts in `in_use` while
    /// it lives.)
    #[cfg(any(feature = "jemalloc", all(target_os = "linux", target_env = "gnu")))]
    #[test]
    fn heap_usage_counts_a_live_allocation() {
        let block = vec![7u8; 64 << 20];
        let during = heap_usage().expect("a known allocator");
        assert!(during.in_use >= 64 << 20, "{during:?}");
        assert_eq!(block[12345], 7);
        drop(block);
        release_memory();
        assert!(heap_usage().is_some());
    }

    /// `/proc/self/status` is read: a test process has anonymous and file-backed pages.
    #[cfg(target_os = "linux")]
    #[test]
    fn resident_reads_proc() {
        let r = resident().expect("/proc/self/status");
        assert!(r.anon > 0 && r.file > 0, "{r:?}");
    }

    /// The build says which allocator it has.
    #[test]
    fn the_allocator_is_named() {
        let name = allocator_name();
        if cfg!(feature = "jemalloc") {
            assert_eq!(name, "jemalloc");
            #[cfg(feature = "jemalloc")]
            {
                // jemalloc read our options: one arena, the background thread on.
                assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().unwrap(), 1);
                assert!(tikv_jemalloc_ctl::opt::background_thread::read().unwrap());
            }
        } else {
            assert!(["glibc", "system"].contains(&name));
        }
    }
}
