//! What a file is, in words, for the refusals that name it ("… is a FIFO"): a source that must be
//! a regular file (`fetch`), a package output that may hold only files, directories and symlinks
//! (`engine`). One wording everywhere.

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

/// `ft` with its article: "a FIFO", "a character device", "a directory", …
pub fn described(ft: FileType) -> &'static str {
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symlink"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a file of an unknown type"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_it_finds() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let kind = |p: &std::path::Path| described(std::fs::symlink_metadata(p).unwrap().file_type());
        assert_eq!(kind(&fifo), "a FIFO");
        assert_eq!(kind(std::path::Path::new("/dev/zero")), "a character device");
        assert_eq!(kind(dir.path()), "a directory");
    }
}
