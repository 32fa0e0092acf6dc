//! ovm's own seccomp filter, installed in every sandboxed command right before `execve`: `ioctl`
//! with `TIOCSTI` (push bytes into a terminal's input queue) or `TIOCLINUX` (the Linux console's
//! selection paste, the same effect) fails with EPERM, and the kernel keyring's calls (`add_key`,
//! `request_key`, `keyctl`) fail with ENOSYS.
//!
//! Why the keyring too: keys are not namespaced. They belong to the host uid the sandbox's root
//! maps to, and the caller's user keyring (`_uid.N`) grants that uid every permission, so a build
//! that finds its serial number (random 31 bits, but `/proc/keys` being masked only slows a search
//! down) could link it and read the caller's keys. The sandbox's own new session keyring (see
//! `runtime`) keeps the caller's session keys out of reach by name; refusing the calls closes the
//! search as well, as Docker's default seccomp profile does. A build needs no kernel keyring.
//!
//! The sandbox's first wall against terminal injection is that it never holds the caller's
//! terminal (no controlling terminal, or a pty of its own that ovm relays); this filter is the
//! second, for the day a terminal reaches the sandbox anyway (a descriptor passed down, a future
//! code path). It is built in and always on — the OCI spec's `linux.seccomp` is refused, and
//! [`super::spec::ANNOTATION_SECCOMP`] says so in every spec. Nothing else is filtered, so the
//! kernel's per-syscall result cache makes every other syscall as cheap as without a filter.
//!
//! The program is classic BPF over `struct seccomp_data` (linux/seccomp.h: `nr` at offset 0, `arch`
//! at 4, `args[i]` at 16 + 8·i). The kernel takes the ioctl request as an `unsigned int`, so only the
//! low 32 bits of argument 1 count (offset 24 on a little-endian machine). Every ABI a kernel of
//! ours runs is checked with its own ioctl number: x86-64, its x32 variant (the x32 bit in `nr`)
//! and i386 compat; aarch64 and arm compat. A 32-bit binary in the sandbox is thus no way around.

use nix::errno::Errno;

use super::error::SandboxError;
use super::hints;

#[cfg(not(target_endian = "little"))]
compile_error!("the seccomp filter reads the low half of a 64-bit argument at a little-endian offset");

/// `AUDIT_ARCH_*` from linux/audit.h: the ELF machine with the 64-bit and little-endian flags.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

/// `ioctl`'s number in each ABI (arch/x86/entry/syscalls, include/uapi/asm-generic/unistd.h,
/// arch/arm/tools/syscall.tbl). x32 calls carry `__X32_SYSCALL_BIT` and use the compat entry 514.
const NR_IOCTL_X86_64: u32 = 16;
const NR_IOCTL_X32: u32 = 0x4000_0000 | 514;
const NR_IOCTL_I386: u32 = 54;
const NR_IOCTL_AARCH64: u32 = 29;
const NR_IOCTL_ARM: u32 = 54;

/// The kernel keyring's three calls per ABI: `add_key`, `request_key`, `keyctl` (same tables).
/// x32 uses the common x86-64 numbers with `__X32_SYSCALL_BIT`.
const NR_KEYS_X86_64: [u32; 3] = [248, 249, 250];
const NR_KEYS_X32: [u32; 3] = [0x4000_0000 | 248, 0x4000_0000 | 249, 0x4000_0000 | 250];
const NR_KEYS_I386: [u32; 3] = [286, 287, 288];
const NR_KEYS_AARCH64: [u32; 3] = [217, 218, 219];
const NR_KEYS_ARM: [u32; 3] = [309, 310, 311];

/// The refused requests (the same numbers on x86 and arm).
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

const SECCOMP_RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const SECCOMP_RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
/// What a refused terminal ioctl returns.
const DENY_IOCTL: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
/// What the keyring calls return: ENOSYS, the answer of a kernel built without keys, which tools
/// and test suites already treat as "no keyring here" rather than as a failure.
const DENY_KEYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG1_LOW: u32 = 16 + 8;

const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Load the 32-bit word at `offset` of `seccomp_data`.
const fn load(offset: u32) -> libc::sock_filter {
    ins(LD_ABS_W, 0, 0, offset)
}

/// If the accumulator equals `k`, skip `jt` instructions, else `jf` (jumps only go forward).
const fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    ins(JEQ_K, jt, jf, k)
}

const fn ret(k: u32) -> libc::sock_filter {
    ins(RET_K, 0, 0, k)
}

// Instruction indices the jumps below are computed from (a jump from `i` by `n` lands on i + 1 + n).
const I386: usize = 11;
const AARCH64: usize = 17;
const ARM: usize = 23;
const ALLOW: usize = 29;
const KEYS: usize = 30;
const CHECK: usize = 31;

/// Offset of a jump from instruction `from` to instruction `to`.
const fn to(from: usize, target: usize) -> u8 {
    (target - from - 1) as u8
}

/// The filter: by architecture, is this a keyring call (refused), or `ioctl`; if so, is the
/// request one of the refused two.
pub(crate) const FILTER: [libc::sock_filter; 36] = [
    /* 0 */ load(OFFSET_ARCH),
    /* 1 */ jeq(AUDIT_ARCH_X86_64, 0, to(1, I386)),
    /* 2 */ load(OFFSET_NR),
    /* 3 */ jeq(NR_IOCTL_X86_64, to(3, CHECK), 0),
    /* 4 */ jeq(NR_IOCTL_X32, to(4, CHECK), 0),
    /* 5 */ jeq(NR_KEYS_X86_64[0], to(5, KEYS), 0),
    /* 6 */ jeq(NR_KEYS_X86_64[1], to(6, KEYS), 0),
    /* 7 */ jeq(NR_KEYS_X86_64[2], to(7, KEYS), 0),
    /* 8 */ jeq(NR_KEYS_X32[0], to(8, KEYS), 0),
    /* 9 */ jeq(NR_KEYS_X32[1], to(9, KEYS), 0),
    /* 10 */ jeq(NR_KEYS_X32[2], to(10, KEYS), to(10, ALLOW)),
    /* 11 = I386 */ jeq(AUDIT_ARCH_I386, 0, to(11, AARCH64)),
    /* 12 */ load(OFFSET_NR),
    /* 13 */ jeq(NR_IOCTL_I386, to(13, CHECK), 0),
    /* 14 */ jeq(NR_KEYS_I386[0], to(14, KEYS), 0),
    /* 15 */ jeq(NR_KEYS_I386[1], to(15, KEYS), 0),
    /* 16 */ jeq(NR_KEYS_I386[2], to(16, KEYS), to(16, ALLOW)),
    /* 17 = AARCH64 */ jeq(AUDIT_ARCH_AARCH64, 0, to(17, ARM)),
    /* 18 */ load(OFFSET_NR),
    /* 19 */ jeq(NR_IOCTL_AARCH64, to(19, CHECK), 0),
    /* 20 */ jeq(NR_KEYS_AARCH64[0], to(20, KEYS), 0),
    /* 21 */ jeq(NR_KEYS_AARCH64[1], to(21, KEYS), 0),
    /* 22 */ jeq(NR_KEYS_AARCH64[2], to(22, KEYS), to(22, ALLOW)),
    /* 23 = ARM */ jeq(AUDIT_ARCH_ARM, 0, to(23, ALLOW)),
    /* 24 */ load(OFFSET_NR),
    /* 25 */ jeq(NR_IOCTL_ARM, to(25, CHECK), 0),
    /* 26 */ jeq(NR_KEYS_ARM[0], to(26, KEYS), 0),
    /* 27 */ jeq(NR_KEYS_ARM[1], to(27, KEYS), 0),
    /* 28 */ jeq(NR_KEYS_ARM[2], to(28, KEYS), to(28, ALLOW)),
    /* 29 = ALLOW */ ret(SECCOMP_RET_ALLOW),
    /* 30 = KEYS */ ret(DENY_KEYS),
    /* 31 = CHECK */ load(OFFSET_ARG1_LOW),
    /* 32 */ jeq(TIOCSTI, to(32, 34), 0),
    /* 33 */ jeq(TIOCLINUX, 0, to(33, 35)),
    /* 34 */ ret(DENY_IOCTL),
    /* 35 */ ret(SECCOMP_RET_ALLOW),
];

/// Install [`FILTER`] in the calling process (inherited by everything it starts, irremovable).
/// Needs `no_new_privs` (set just before) since the process holds no capability by then.
pub(crate) fn install() -> Result<(), SandboxError> {
    let prog = libc::sock_fprog { len: FILTER.len() as libc::c_ushort, filter: FILTER.as_ptr().cast_mut() };
    let attempt = |flags: libc::c_ulong| {
        // SAFETY: `prog` points at FILTER, a static array of `len` instructions; the kernel copies
        // the program during the call and keeps no pointer to our memory.
        let ret = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &prog as *const libc::sock_fprog)
        };
        Errno::result(ret).map(drop)
    };
    // Do not force the speculative-store-bypass mitigation on the sandbox: this filter is about
    // terminals, not side channels, and on kernels that tie the mitigation to seccomp a forced SSBD
    // makes every build markedly slower; the system's own mitigation policy still applies.
    // Kernels before 4.17 do not know the flag (EINVAL): the filter matters more than the flag.
    attempt(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW)
        .or_else(|errno| if errno == Errno::EINVAL { attempt(0) } else { Err(errno) })
        .map_err(|errno| SandboxError::Seccomp { errno, hint: hints::seccomp_hint(errno) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the filter over one `seccomp_data` as the kernel would (only the three opcodes it uses).
    fn verdict(arch: u32, nr: u32, arg1: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[24..32].copy_from_slice(&arg1.to_le_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = FILTER[pc];
            match i.code {
                LD_ABS_W => {
                    let at = i.k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K => pc += 1 + usize::from(if acc == i.k { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x} at {pc}"),
            }
        }
    }

    const DENY: u32 = DENY_IOCTL;

    #[test]
    fn tiocsti_and_tioclinux_are_refused_in_every_abi() {
        let abis = [
            (AUDIT_ARCH_X86_64, NR_IOCTL_X86_64),
            (AUDIT_ARCH_X86_64, NR_IOCTL_X32),
            (AUDIT_ARCH_I386, NR_IOCTL_I386),
            (AUDIT_ARCH_AARCH64, NR_IOCTL_AARCH64),
            (AUDIT_ARCH_ARM, NR_IOCTL_ARM),
        ];
        for (arch, nr) in abis {
            assert_eq!(verdict(arch, nr, TIOCSTI.into()), DENY, "arch {arch:#x} nr {nr}");
            assert_eq!(verdict(arch, nr, TIOCLINUX.into()), DENY, "arch {arch:#x} nr {nr}");
            // The kernel ignores the upper half of the request: so does the filter.
            assert_eq!(verdict(arch, nr, 0xdead_beef_0000_0000 | u64::from(TIOCSTI)), DENY);
            // Other terminal ioctls (TCGETS, TIOCGWINSZ, TIOCSCTTY) pass.
            for other in [0x5401u64, 0x5413, 0x540E] {
                assert_eq!(verdict(arch, nr, other), SECCOMP_RET_ALLOW, "arch {arch:#x} request {other:#x}");
            }
        }
    }

    #[test]
    fn the_keyring_calls_are_refused_in_every_abi() {
        for (arch, nrs) in [
            (AUDIT_ARCH_X86_64, NR_KEYS_X86_64),
            (AUDIT_ARCH_X86_64, NR_KEYS_X32),
            (AUDIT_ARCH_I386, NR_KEYS_I386),
            (AUDIT_ARCH_AARCH64, NR_KEYS_AARCH64),
            (AUDIT_ARCH_ARM, NR_KEYS_ARM),
        ] {
            for nr in nrs {
                assert_eq!(verdict(arch, nr, 0), DENY_KEYS, "arch {arch:#x} nr {nr}");
            }
        }
        // Numbers are per ABI: aarch64's keyctl (219) is restart_syscall on x86-64, allowed there.
        assert_eq!(verdict(AUDIT_ARCH_X86_64, 219, 0), SECCOMP_RET_ALLOW);
    }

    #[test]
    fn other_syscalls_pass_whatever_their_arguments() {
        // read (x86-64 0, aarch64 63), write, and i386's 16 (lchown) and x86-64's 54 (setsockopt).
        for (arch, nr) in [
            (AUDIT_ARCH_X86_64, 0),
            (AUDIT_ARCH_X86_64, 54),
            (AUDIT_ARCH_AARCH64, 63),
            (AUDIT_ARCH_I386, 16),
            (AUDIT_ARCH_ARM, 29),
            (0x1234, NR_IOCTL_X86_64),
        ] {
            assert_eq!(verdict(arch, nr, TIOCSTI.into()), SECCOMP_RET_ALLOW, "arch {arch:#x} nr {nr}");
        }
    }
}
