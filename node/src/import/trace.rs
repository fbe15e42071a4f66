//! The import's memory trace at debug level.

use super::ImportEvent;

/// At debug level (`RUST_LOG=bottomline::import=debug`), what an import holds every 100 ms of
/// its progress ([`crate::memory::figures`]), whoever runs it (the CLI, the inbox, the API):
/// how the footprint benchmark's outliers are read.
pub(super) struct MemoryTrace {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
}

impl MemoryTrace {
    pub(super) fn new() -> MemoryTrace {
        MemoryTrace {
            started: std::time::Instant::now(),
            last: None,
        }
    }

    pub(super) fn note(&mut self, ev: &ImportEvent) {
        if !tracing::enabled!(tracing::Level::DEBUG)
            || self
                .last
                .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let (file, step, rows) = match ev {
            ImportEvent::Read { file, rows } => (file, "read", *rows as usize),
            ImportEvent::Written { file, progress } => (file, "written", progress.done),
        };
        let f = crate::memory::figures();
        tracing::debug!(
            file = %file.display(),
            rows,
            ms = self.started.elapsed().as_millis() as u64,
            heap_in_use_mib = f.heap_in_use_mib,
            heap_free_mib = f.heap_free_mib,
            rss_anon_mib = f.rss_anon_mib,
            "import: {step}"
        );
    }
}
