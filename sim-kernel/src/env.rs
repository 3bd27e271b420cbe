//! Can this host run the kernel backend? Root, `/dev/net/tun`, Linux 5.14+
//! (socket migration), network namespaces.

use crate::error::EnvError;

/// What the checks found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvInfo {
    /// `uname -r`.
    pub kernel_release: String,
    /// `(major, minor)` parsed from it.
    pub kernel_version: (u32, u32),
}

/// The minimum kernel: `tcp_migrate_req` and
/// `BPF_SK_REUSEPORT_SELECT_OR_MIGRATE` appeared in 5.14.
pub const MIN_KERNEL: (u32, u32) = (5, 14);

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: zeroed utsname is a valid out buffer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: the kernel NUL-terminates the field.
    let cstr = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    cstr.to_string_lossy().into_owned()
}

/// `(major, minor)` of a release string like `6.18.44-fc-v1272`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks every requirement, the cheapest first; the error says which one
/// failed and why.
pub fn check_environment() -> Result<EnvInfo, EnvError> {
    // SAFETY: plain syscall.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(EnvError::NotRoot(euid));
    }
    let release = kernel_release();
    let version =
        parse_release(&release).ok_or_else(|| EnvError::UnknownKernel(release.clone()))?;
    if version < MIN_KERNEL {
        return Err(EnvError::KernelTooOld(release));
    }
    if let Err(e) = std::fs::metadata("/proc/self/ns/net") {
        return Err(EnvError::NoNetns(format!("/proc/self/ns/net: {e}")));
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => {}
        Err(e) => return Err(EnvError::NoTun(format!("cannot open /dev/net/tun: {e}"))),
    }
    Ok(EnvInfo {
        kernel_release: release,
        kernel_version: version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(parse_release("5.14.0-284.el9.x86_64"), Some((5, 14)));
        assert_eq!(parse_release("5.4"), Some((5, 4)));
        assert_eq!(parse_release("garbage"), None);
        assert!(parse_release("5.13.19").unwrap() < MIN_KERNEL);
        assert!(parse_release("5.14.0").unwrap() >= MIN_KERNEL);
        assert!(parse_release("10.0.1").unwrap() >= MIN_KERNEL);
    }
}
