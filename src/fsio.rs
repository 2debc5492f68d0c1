//! Careful file handling shared by every store: private directories,
//! permission checks, an exclusive lock for writers, and atomic replacement
//! (temp file in the same directory, fsync, rename, fsync the directory), so a
//! failed or killed command never leaves a half-written file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Creates `dir` (and parents) as 0700 if missing, then checks it is private.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    check_private(dir)
}

/// Refuses a file or directory that group or others can access.
pub fn check_private(path: &Path) -> Result<()> {
    let meta =
        fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let want = if meta.is_dir() { "700" } else { "600" };
        return Err(Error::InsecurePermissions {
            path: path.to_owned(),
            mode,
            fix: format!("restrict it with: chmod {want} {}", path.display()),
        });
    }
    Ok(())
}

/// An exclusive advisory lock, released on drop.
#[derive(Debug)]
pub struct Lock {
    _held: Flock<File>,
}

/// Takes the writers' lock at `path` (created 0600), waiting for other
/// writers to finish.
pub fn lock_exclusive(path: &Path) -> Result<Lock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("opening lock file {}", path.display()), e))?;
    let held = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(format!("locking {}", path.display()), errno.into()))?;
    Ok(Lock { _held: held })
}

/// Replaces `path` with `bytes` atomically, mode 0600. The caller holds the
/// writers' lock, so any leftover temp file is a dead writer's: it is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.tmp-");
    remove_stale(dir, &prefix);
    let tmp: PathBuf = dir.join(format!("{prefix}{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads a whole file that must be private (mode 0600 or stricter, in a
/// private directory). `Ok(None)` when it does not exist.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        Ok(_) => {}
    }
    if let Some(dir) = path.parent() {
        check_private(dir)?;
    }
    check_private(path)?;
    fs::read(path)
        .map(Some)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// A temporary directory with mode 0700, as `mktemp -d` makes (tempfile's
/// default follows the umask).
#[cfg(test)]
pub(crate) fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod 700");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("f");
        fs::write(dir.path().join(".f.tmp-99999"), b"stale").expect("stale");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn loose_permissions_are_refused_with_the_fix() {
        let dir = crate::fsio::private_tempdir();
        let path = dir.path().join("v");
        fs::write(&path, b"x").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = read_private(&path).expect_err("group-readable");
        assert!(err.hint().expect("hint").contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(read_private(&path).expect("read").is_some());
        assert!(
            read_private(&dir.path().join("missing"))
                .expect("read")
                .is_none()
        );
    }
}
