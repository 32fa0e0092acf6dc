//! Named sets of modules, like dracut's driver lists for an image that must boot on hardware it
//! was not built on (`hostonly=no`). A member the kernel at hand has neither as a module nor built
//! in is skipped (the sets span x86_64 and aarch64, whose drivers differ); a member named in
//! `modules = [...]` must exist.

use serde::{Deserialize, Serialize};

/// `[kernel] groups = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// Disks, network and console of a QEMU/KVM guest: PCI and MMIO transports.
    Virtio,
    /// NVMe disks.
    Nvme,
    /// SATA disks behind an AHCI controller (PCI, or a platform device on arm64 boards).
    Ahci,
    /// USB disks and card readers: the host controllers, usb-storage and UAS.
    UsbStorage,
    /// The ext4 file system (also mounts ext2 and ext3).
    Ext4,
    /// The XFS file system.
    Xfs,
    /// FAT/VFAT (EFI system partitions, USB sticks) with the code pages mount uses by default.
    Vfat,
    /// dm-crypt for LUKS, with the ciphers and the kernel crypto interface cryptsetup uses
    /// (aes-xts-plain64, the default), accelerated where the architecture has it.
    DmCrypt,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Virtio,
        Group::Nvme,
        Group::Ahci,
        Group::UsbStorage,
        Group::Ext4,
        Group::Xfs,
        Group::Vfat,
        Group::DmCrypt,
    ];

    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Group::Virtio => "virtio",
            Group::Nvme => "nvme",
            Group::Ahci => "ahci",
            Group::UsbStorage => "usb-storage",
            Group::Ext4 => "ext4",
            Group::Xfs => "xfs",
            Group::Vfat => "vfat",
            Group::DmCrypt => "dm-crypt",
        }
    }

    /// The modules the group names; their dependencies come with them.
    pub fn members(self) -> &'static [&'static str] {
        match self {
            Group::Virtio => {
                &["virtio_pci", "virtio_mmio", "virtio_blk", "virtio_scsi", "virtio_net", "virtio_console"]
            }
            Group::Nvme => &["nvme"],
            Group::Ahci => &["ahci", "ahci_platform", "sd_mod"],
            Group::UsbStorage => &[
                "xhci_pci",
                "xhci_plat_hcd",
                "ehci_pci",
                "ehci_platform",
                "ohci_pci",
                "uhci_hcd",
                "usb_storage",
                "uas",
                "sd_mod",
            ],
            Group::Ext4 => &["ext4"],
            Group::Xfs => &["xfs"],
            Group::Vfat => &["vfat", "nls_cp437", "nls_ascii", "nls_utf8"],
            Group::DmCrypt => &[
                "dm_crypt",
                "xts",
                "essiv",
                "algif_skcipher",
                "algif_hash",
                "aesni_intel",
                "sha256_ssse3",
                "aes_ce_blk",
                "sha256_arm64",
            ],
        }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_parses_by_its_name_and_has_members() {
        #[derive(Deserialize)]
        struct T {
            g: Group,
        }
        for g in Group::ALL {
            let t: T = toml::from_str(&format!("g = \"{}\"", g.name())).unwrap();
            assert_eq!(t.g, g);
            assert!(!g.members().is_empty());
            assert!(g.members().iter().all(|m| !m.contains('-')), "{g}: members are written with _");
        }
        let err = toml::from_str::<T>("g = \"nvm\"").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("nvm") && err.contains("usb-storage"), "{err}");
    }
}
