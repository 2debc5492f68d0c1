//! In-memory files (`--file VAR=@handle`, `# secret-file:`): a sealed memfd
//! the child inherits, named by `/dev/fd/N`. Nothing touches a disk, and the
//! file is gone when the last holder exits.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::value::SecretValue;

/// A value as an in-memory file, and the path the child opens it by.
pub(crate) struct MemFile {
    pub(crate) fd: OwnedFd,
}

impl MemFile {
    /// Writes `value` into a new sealed memfd (close-on-exec here; the
    /// spawn keeps it open in the child). `var` names it in errors.
    pub(crate) fn new(var: &str, value: &SecretValue) -> Result<Self> {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let io = |e: nix::errno::Errno| {
            Error::io(
                format!("--file {var}: creating the in-memory file"),
                e.into(),
            )
        };
        let name = CString::new(format!("secret-{var}"))
            .map_err(|_| Error::internal("an in-memory file name holds a NUL byte"))?;
        let fd = memfd_create(
            name.as_c_str(),
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(io)?;
        let mut written = 0;
        while written < value.len() {
            written += nix::unistd::write(&fd, &value.expose()[written..]).map_err(io)?;
        }
        let seals = SealFlag::F_SEAL_WRITE
            | SealFlag::F_SEAL_GROW
            | SealFlag::F_SEAL_SHRINK
            | SealFlag::F_SEAL_SEAL;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(io)?;
        Ok(Self { fd })
    }

    /// `/dev/fd/N`: where the child finds it.
    #[must_use]
    pub(crate) fn path(&self) -> String {
        format!("/dev/fd/{}", self.fd.as_raw_fd())
    }
}
