//! Careful file handling shared by every store: private directories,
//! permission checks, an exclusive lock for writers, and atomic replacement
//! (temp file in the same directory, fsync, rename, fsync the directory), so a
//! failed or killed command never leaves a half-written file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::libc;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) as 0700 if missing, then checks it is private.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<PrivateDir<'_>> {
    match fs::metadata(dir) {
        Ok(meta) => check_private_meta(dir, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            check_private(dir)?;
        }
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    Ok(PrivateDir(dir))
}

/// A directory `ensure_private_dir` just found private: the files opened
/// through it skip checking it again (a launch opens several).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrivateDir<'a>(&'a Path);

impl PrivateDir<'_> {
    /// Opens `path`, a file directly in this directory, as `open_trusted`
    /// does with `Readers::OwnerOnly`.
    pub(crate) fn open(
        self,
        path: &Path,
        what: &str,
        options: &mut OpenOptions,
    ) -> Result<Option<File>> {
        debug_assert_eq!(
            path.parent(),
            Some(self.0),
            "{} is not in {}",
            path.display(),
            self.0.display()
        );
        let opened = open_checked(path, what, Readers::OwnerOnly, options, DirCheck::Done)?;
        Ok(opened.map(|(file, _)| file))
    }
}

/// Refuses a file or directory that group or others can access, or that
/// is not ours.
pub(crate) fn check_private(path: &Path) -> Result<()> {
    let meta =
        fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    check_private_meta(path, &meta)
}

/// `check_private` on metadata already read.
fn check_private_meta(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let what = if meta.is_dir() {
        "the directory"
    } else {
        "the file"
    };
    check_owner(path, what, meta)?;
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
pub(crate) struct Lock {
    _held: Flock<File>,
}

/// Takes the writers' lock at `path` (created 0600), waiting for other
/// writers to finish.
pub(crate) fn lock_exclusive(path: &Path) -> Result<Lock> {
    let file = open_trusted(
        path,
        "the lock file",
        Readers::OwnerOnly,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600),
    )?
    .ok_or_else(|| {
        Error::io(
            format!("opening lock file {}", path.display()),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    let held = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(format!("locking {}", path.display()), errno.into()))?;
    Ok(Lock { _held: held })
}

/// Replaces `path` with `bytes` atomically, mode 0600. The caller holds the
/// writers' lock, so any leftover temp file is a dead writer's: it is removed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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

/// Who besides its owner may read a file `secret` trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readers {
    /// Only the owner (mode 0600 or stricter, in a 0700 directory): the
    /// vault, the audit trail, the store's own state.
    OwnerOnly,
    /// Anyone may read it, nobody but the owner may change it (and the
    /// directory holding it): env files, which are safe to commit.
    Anyone,
}

/// Reads a whole file `secret` trusts (a vault, the trail, `config.toml`,
/// `grants.toml`, an env file, `plugins.toml`, `broker.toml`): a regular
/// file, never followed through a symbolic link, owned by us, that group
/// and others cannot change (nor read, for `Readers::OwnerOnly`), in a
/// directory only we can change, at most `max_len` bytes. It is opened
/// without blocking and checked on the open descriptor, so a FIFO or a
/// device fails at once and a file swapped after the check is not read.
/// `Ok(None)` when it does not exist. `what` names it in errors ("the
/// vault", "env file"), and every error says what fixes it.
pub(crate) fn read_private_file(
    path: &Path,
    what: &str,
    max_len: u64,
    readers: Readers,
) -> Result<Option<Vec<u8>>> {
    read_checked(path, what, max_len, readers, DirCheck::Needed)
}

/// Whether `open_checked` still has to check the directory holding the
/// file (`Done`: the caller found it private, which is stricter).
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirCheck {
    Needed,
    Done,
}

fn read_checked(
    path: &Path,
    what: &str,
    max_len: u64,
    readers: Readers,
    dir: DirCheck,
) -> Result<Option<Vec<u8>>> {
    let Some((file, meta)) = open_checked(path, what, readers, OpenOptions::new().read(true), dir)?
    else {
        return Ok(None);
    };
    let len = meta.len();
    check_len(path, what, len, max_len)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    (&file)
        .take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    check_len(path, what, bytes.len() as u64, max_len)?;
    Ok(Some(bytes))
}

fn check_len(path: &Path, what: &str, len: u64, max_len: u64) -> Result<()> {
    if len > max_len {
        return Err(Error::UnsafeFile {
            path: path.to_owned(),
            problem: format!("{what} is {len} bytes, over the limit of {max_len} bytes"),
            fix: format!("check that {} is the file you meant", path.display()),
        });
    }
    Ok(())
}

/// Opens `path` with `options` (plus no-follow, non-blocking and
/// close-on-exec) and checks the open file as `read_private_file` does,
/// except its size. `Ok(None)` when it does not exist (and `options` do
/// not create it).
pub(crate) fn open_trusted(
    path: &Path,
    what: &str,
    readers: Readers,
    options: &mut OpenOptions,
) -> Result<Option<File>> {
    Ok(open_checked(path, what, readers, options, DirCheck::Needed)?.map(|(file, _)| file))
}

/// `open_trusted`, returning the metadata it checked with the file.
fn open_checked(
    path: &Path,
    what: &str,
    readers: Readers,
    options: &mut OpenOptions,
    dir: DirCheck,
) -> Result<Option<(File, fs::Metadata)>> {
    let unsafe_file = |problem: String, fix: String| Error::UnsafeFile {
        path: path.to_owned(),
        problem,
        fix,
    };
    let file = match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_file(
                format!("{what} is a symbolic link, which secret does not follow"),
                format!(
                    "put the file itself there: mv \"$(readlink -f {0})\" {0}",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.file_type().is_file() {
        return Err(unsafe_file(
            format!("{what} is {}, not a regular file", kind_of(&meta)),
            format!("put a regular file at {}", path.display()),
        ));
    }
    check_owner(path, what, &meta)?;
    let mode = meta.mode() & 0o7777;
    let loose = match readers {
        Readers::OwnerOnly => mode & 0o077,
        Readers::Anyone => mode & 0o022,
    };
    if loose != 0 {
        return Err(match readers {
            Readers::OwnerOnly => Error::InsecurePermissions {
                path: path.to_owned(),
                mode,
                fix: format!("restrict it with: chmod 600 {}", path.display()),
            },
            Readers::Anyone => unsafe_file(
                format!("group or others can change {what} (mode {mode:04o})"),
                format!("restrict it with: chmod go-w {}", path.display()),
            ),
        });
    }
    if dir == DirCheck::Needed {
        check_dir(parent_dir(path), what, readers)?;
    }
    Ok(Some((file, meta)))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

fn check_owner(path: &Path, what: &str, meta: &fs::Metadata) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::UnsafeFile {
            path: path.to_owned(),
            problem: format!(
                "{what} belongs to uid {}, not to you (uid {me})",
                meta.uid()
            ),
            fix: format!("take it over with: chown {me} {}", path.display()),
        });
    }
    Ok(())
}

/// The directory holding a trusted file: ours (or root's), and nobody else
/// can add, remove or rename files in it (a sticky directory such as /tmp
/// stops them); private for `Readers::OwnerOnly`.
fn check_dir(dir: &Path, what: &str, readers: Readers) -> Result<()> {
    if readers == Readers::OwnerOnly {
        return check_private(dir);
    }
    let meta = fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me && meta.uid() != 0 {
        return Err(Error::UnsafeFile {
            path: dir.to_owned(),
            problem: format!(
                "the directory holding {what} belongs to uid {}, who could replace it",
                meta.uid()
            ),
            fix: "move the file into a directory of yours".into(),
        });
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(Error::UnsafeFile {
            path: dir.to_owned(),
            problem: format!(
                "group or others can replace files in the directory holding {what} (mode {mode:04o})"
            ),
            fix: format!("restrict it with: chmod go-w {}", dir.display()),
        });
    }
    Ok(())
}

/// Reads a policy file (`config.toml`, `grants.toml`): it decides what runs
/// and what is handed over, so before a byte of it is used its directory
/// must be private and ours (when the directory exists at all; a missing
/// one holds no file), and the file itself as `read_private_file` checks
/// with `Readers::Anyone`: nobody else may change it, reading it is harmless.
pub(crate) fn read_policy_file(path: &Path, what: &str, max_len: u64) -> Result<Option<String>> {
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(meta) => check_private_meta(dir, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    // The directory is private, which is stricter than what
    // `read_private_file` asks of it.
    let Some(bytes) = read_checked(path, what, max_len, Readers::Anyone, DirCheck::Done)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::UnsafeFile {
            path: path.to_owned(),
            problem: format!("{what} is not UTF-8 text"),
            fix: format!("check that {} is the file you meant", path.display()),
        })
}

/// Reads a whole file that must be private (mode 0600 or stricter, in a
/// private directory), at most 1 GiB. `Ok(None)` when it does not exist.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    read_private_file(path, "the file", 1 << 30, Readers::OwnerOnly)
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

    #[test]
    fn a_policy_file_needs_a_private_directory_and_a_missing_one_holds_none() {
        let dir = crate::fsio::private_tempdir();
        let missing = dir.path().join("absent").join("config.toml");
        assert!(
            read_policy_file(&missing, "config", 100)
                .expect("read")
                .is_none()
        );
        let path = dir.path().join("config.toml");
        fs::write(&path, b"a = 1").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let text = read_policy_file(&path, "config", 100).expect("read");
        assert_eq!(text.as_deref(), Some("a = 1"));
        assert!(
            read_policy_file(&path, "config", 4).is_err(),
            "over max_len"
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).expect("chmod");
        let err = read_policy_file(&path, "config", 100).expect_err("loose directory");
        assert!(err.hint().expect("hint").contains("chmod 700"), "{err}");
    }

    #[test]
    fn a_private_dir_opens_its_files_with_the_file_checks() {
        let parent = crate::fsio::private_tempdir();
        let sub = parent.path().join("made");
        let dir = ensure_private_dir(&sub).expect("created");
        assert_eq!(fs::metadata(&sub).expect("meta").mode() & 0o777, 0o700);
        let path = sub.join("f");
        fs::write(&path, b"x").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = dir
            .open(&path, "f", OpenOptions::new().read(true))
            .expect_err("group-readable");
        assert!(err.hint().expect("hint").contains("chmod 600"), "{err}");
        assert!(
            dir.open(&sub.join("none"), "f", OpenOptions::new().read(true))
                .expect("open")
                .is_none()
        );
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(
            ensure_private_dir(&sub).is_err(),
            "an existing loose directory"
        );
    }
}
