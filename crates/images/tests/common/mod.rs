#![allow(dead_code)]

use std::path::{Path, PathBuf};

use reddwarf_images::unmount_rootfs;

/// Unmounts `dir/rootfs` when the test ends, also on panic.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = unmount_rootfs(&self.0);
    }
}

pub fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

/// A busybox layout tagged `v1` in `dir/layout`.
pub fn busybox_layout(dir: &Path) -> (PathBuf, reddwarf_images::testsupport::LayoutImage) {
    let layout = dir.join("layout");
    let img = reddwarf_images::testsupport::build_busybox_oci_layout_image(&layout, "v1").unwrap();
    (layout, img)
}
