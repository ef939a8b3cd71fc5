//! Files that are whole or absent: written beside their final name, then renamed over it, so that a
//! reader, a kill or a second writer (two shards finishing together) never sees a torn file.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// This machine's name (empty where it cannot be read), read once: it tells apart the processes of
/// several nodes that share a folder.
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string())
}

/// A fresh temporary path beside `path` with the same extension (writers such as image encoders
/// choose the format by it): `name.tmp-<host>-<pid>-<n>.ext`; the host, since Slurm tasks on
/// different nodes share a store and may have the same process id.
pub fn beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let unique = format!("{}-{}-{n}", host(), std::process::id());
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.tmp-{unique}.{}", ext.to_string_lossy()),
        None => format!("{stem}.tmp-{unique}"),
    };
    path.with_file_name(name)
}

/// Moves the finished temporary file `tmp` to `path`.
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).with_context(|| format!("writing {} (renaming {} over it)", path.display(), tmp.display()))
}

/// Writes `bytes` to `path` whole or not at all.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let tmp = beside(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    publish(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_atomic(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        let plot = beside(&dir.path().join("plots/cell.png"));
        assert_eq!(plot.extension().unwrap(), "png");
        assert_ne!(plot, beside(&dir.path().join("plots/cell.png")), "every temporary path is new");
    }
}
