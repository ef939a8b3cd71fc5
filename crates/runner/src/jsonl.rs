//! Line-oriented files that survive `kill -9`: a killed writer leaves at worst one partial last line,
//! which readers ignore and the next writer cuts off.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Opens (creating) a line-oriented file for appending, first cutting off a partial last line left by
/// a killed writer, so that the next line never glues onto it.
pub fn open_for_append(path: &Path) -> Result<File> {
    let mut file =
        OpenOptions::new().create(true).read(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).with_context(|| format!("reading {}", path.display()))?;
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < text.len() {
        file.set_len(keep as u64).with_context(|| format!("cutting the partial last line of {}", path.display()))?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

/// The complete lines of `text`: a partial last line is what a kill leaves.
pub fn complete_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}

/// The files `<prefix>*.jsonl` of `dir`, sorted by name; none when `dir` does not exist.
pub fn files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading folder {}", dir.display())),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jsonl")))
        .collect();
    found.sort();
    Ok(found)
}
