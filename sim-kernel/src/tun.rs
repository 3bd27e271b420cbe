//! TUN devices (`IFF_TUN | IFF_NO_PI`): the emulated link's end inside a
//! namespace. Reading the fd yields the IP packets the namespace sends out
//! of the device; writing one delivers it to the namespace as if received.
//! The device is not persistent: it disappears when its fd is closed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys::{cvt, owned};

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Name of the device in every namespace (names are per namespace).
pub const TUN_NAME: &str = "rpsim0";

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates the TUN device [`TUN_NAME`] in the calling thread's namespace
/// and returns its non-blocking fd.
pub fn create() -> io::Result<OwnedFd> {
    // SAFETY: valid C string.
    let fd = owned(unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..TUN_NAME.len()].copy_from_slice(TUN_NAME.as_bytes());
    // SAFETY: TUNSETIFF takes a struct ifreq, which IfReq lays out.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) })?;
    Ok(fd)
}
