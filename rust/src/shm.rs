//! A named POSIX shared memory segment (`shm_open` + `mmap(MAP_SHARED)`),
//! seen as a slice of `AtomicU64` words.
//!
//! One process creates it (`O_CREAT | O_EXCL`, mode 0600: the user's alone)
//! and sizes it; any process of the same user opens it by name, forked or
//! not. The mapping lives as long as the [`Segment`]; [`unlink`] removes the
//! name, and the memory goes when the last process unmaps it. On Linux the
//! segment is the file `/dev/shm/<name>`.

use std::ffi::CString;
use std::io;
use std::sync::atomic::AtomicU64;

/// What went wrong, and with which segment.
#[derive(Debug)]
pub enum ShmError {
    /// Not a name this module accepts (see [`shm_name`]).
    InvalidName(String),
    /// `create` found a segment of that name.
    Exists(String),
    /// `open` found none.
    NotFound(String),
    /// The segment is not one this code made (size or header).
    Incompatible(String),
    /// Any other failure of a system call.
    Os(String),
}

impl std::fmt::Display for ShmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShmError::InvalidName(m)
            | ShmError::Exists(m)
            | ShmError::NotFound(m)
            | ShmError::Incompatible(m)
            | ShmError::Os(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ShmError {}

fn os_error(what: &str, name: &str) -> ShmError {
    let err = io::Error::last_os_error();
    let msg = format!("{what} shared memory {name:?}: {err}");
    match err.kind() {
        io::ErrorKind::AlreadyExists => ShmError::Exists(msg),
        io::ErrorKind::NotFound => ShmError::NotFound(msg),
        _ => ShmError::Os(msg),
    }
}

/// The name as `shm_open` wants it: `/` then 1 to 200 of `[A-Za-z0-9._-]`.
/// A name given without the leading `/` gets one.
pub fn shm_name(name: &str) -> Result<CString, ShmError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 200
        && bare != "."
        && bare != ".."
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ShmError::InvalidName(format!(
            "shared memory name must be 1 to 200 of A-Z a-z 0-9 . _ -, got {name:?}"
        )));
    }
    Ok(CString::new(format!("/{bare}")).expect("no NUL in a checked name"))
}

/// A mapped segment. Every access goes through atomics, so it may be shared
/// between threads.
pub struct Segment {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is only read and written through `AtomicU64`s.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Segment {
    /// Make a new segment of `words` zeroed 64-bit words; fails if the name
    /// is taken.
    pub fn create(name: &str, words: usize) -> Result<Segment, ShmError> {
        let c = shm_name(name)?;
        let len = words
            .checked_mul(8)
            .filter(|&n| n > 0 && libc::off_t::try_from(n).is_ok())
            .ok_or_else(|| ShmError::Os(format!("shared memory of {words} words is too large")))?;
        // SAFETY: `c` is a valid C string.
        let fd = unsafe {
            libc::shm_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600 as libc::mode_t,
            )
        };
        if fd < 0 {
            return Err(os_error("cannot create", name));
        }
        // SAFETY: `fd` is ours; the length was checked to fit off_t.
        let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) } == 0;
        let mapped = if sized {
            map(fd, len, name)
        } else {
            Err(os_error("cannot size", name))
        };
        // SAFETY: `fd` is ours and no longer needed once mapped.
        unsafe { libc::close(fd) };
        if mapped.is_err() {
            // SAFETY: `c` is a valid C string; the segment is ours.
            unsafe { libc::shm_unlink(c.as_ptr()) };
        }
        mapped
    }

    /// Map an existing segment whole.
    pub fn open(name: &str) -> Result<Segment, ShmError> {
        let c = shm_name(name)?;
        // SAFETY: `c` is a valid C string.
        let fd = unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            return Err(os_error("cannot open", name));
        }
        // SAFETY: an all-zero stat is a valid value for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open, `st` is writable.
        let mapped = if unsafe { libc::fstat(fd, &mut st) } != 0 {
            Err(os_error("cannot stat", name))
        } else {
            match usize::try_from(st.st_size) {
                Ok(len) if len > 0 && len % 8 == 0 => map(fd, len, name),
                _ => Err(ShmError::Incompatible(format!(
                    "shared memory {name:?} has a size of {} bytes, not a limit table",
                    st.st_size
                ))),
            }
        };
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        mapped
    }

    /// The whole segment as 64-bit words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, `len` bytes long, lives as long
        // as `self`, and AtomicU64 has the size of u64 and no invalid values.
        unsafe { std::slice::from_raw_parts(self.ptr as *const AtomicU64, self.len / 8) }
    }
}

fn map(fd: libc::c_int, len: usize, name: &str) -> Result<Segment, ShmError> {
    // SAFETY: a fresh shared mapping of an open descriptor, at no fixed address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(os_error("cannot map", name));
    }
    Ok(Segment { ptr, len })
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing borrows it past `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Remove the name (mappings stay valid); false if there was none.
pub fn unlink(name: &str) -> Result<bool, ShmError> {
    let c = shm_name(name)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::shm_unlink(c.as_ptr()) } == 0 {
        return Ok(true);
    }
    match os_error("cannot remove", name) {
        ShmError::NotFound(_) => Ok(false),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::SeqCst;

    fn unique(tag: &str) -> String {
        format!("relay-shm-test-{tag}-{}", std::process::id())
    }

    #[test]
    fn names() {
        assert_eq!(shm_name("a.b_c-1").unwrap().to_str().unwrap(), "/a.b_c-1");
        assert_eq!(shm_name("/x").unwrap().to_str().unwrap(), "/x");
        for bad in ["", "/", "a/b", "..", "sp ace", "é", &"x".repeat(201)] {
            assert!(
                matches!(shm_name(bad), Err(ShmError::InvalidName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn create_open_share_unlink() {
        let name = unique("share");
        let a = Segment::create(&name, 4).unwrap();
        assert!(matches!(
            Segment::create(&name, 4),
            Err(ShmError::Exists(_))
        ));
        let b = Segment::open(&name).unwrap();
        assert_eq!(b.words().len(), 4);
        assert!(b.words().iter().all(|w| w.load(SeqCst) == 0));
        a.words()[3].store(42, SeqCst);
        assert_eq!(b.words()[3].load(SeqCst), 42);
        assert!(unlink(&name).unwrap());
        assert!(!unlink(&name).unwrap());
        assert!(matches!(Segment::open(&name), Err(ShmError::NotFound(_))));
        // Both mappings outlive the name.
        b.words()[0].store(7, SeqCst);
        assert_eq!(a.words()[0].load(SeqCst), 7);
    }
}
