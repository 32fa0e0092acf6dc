//! ovm's own seccomp filter, installed in every sandboxed command right before `execve`: `ioctl`
//! with `TIOCSTI` (push bytes into a terminal's input queue) or `TIOCLINUX` (the Linux console's
//! selection paste, the same effect) fails with EPERM.
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

/// The refused requests (the same numbers on x86 and arm).
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

const SECCOMP_RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const SECCOMP_RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;

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
const ALLOW: usize = 14;
const CHECK: usize = 15;

/// Offset of a jump from instruction `from` to instruction `to`.
const fn to(from: usize, target: usize) -> u8 {
    (target - from - 1) as u8
}

/// The filter: by architecture, is this `ioctl`; if so, is the request one of the refused two.
pub(crate) const FILTER: [libc::sock_filter; 20] = [
    /* 0 */ load(OFFSET_ARCH),
    /* 1 */ jeq(AUDIT_ARCH_X86_64, 0, to(1, 5)),
    /* 2 */ load(OFFSET_NR),
    /* 3 */ jeq(NR_IOCTL_X86_64, to(3, CHECK), 0),
    /* 4 */ jeq(NR_IOCTL_X32, to(4, CHECK), to(4, ALLOW)),
    /* 5 */ jeq(AUDIT_ARCH_I386, 0, to(5, 8)),
    /* 6 */ load(OFFSET_NR),
    /* 7 */ jeq(NR_IOCTL_I386, to(7, CHECK), to(7, ALLOW)),
    /* 8 */ jeq(AUDIT_ARCH_AARCH64, 0, to(8, 11)),
    /* 9 */ load(OFFSET_NR),
    /* 10 */ jeq(NR_IOCTL_AARCH64, to(10, CHECK), to(10, ALLOW)),
    /* 11 */ jeq(AUDIT_ARCH_ARM, 0, to(11, ALLOW)),
    /* 12 */ load(OFFSET_NR),
    /* 13 */ jeq(NR_IOCTL_ARM, to(13, CHECK), to(13, ALLOW)),
    /* 14 = ALLOW */ ret(SECCOMP_RET_ALLOW),
    /* 15 = CHECK */ load(OFFSET_ARG1_LOW),
    /* 16 */ jeq(TIOCSTI, to(16, 18), 0),
    /* 17 */ jeq(TIOCLINUX, 0, to(17, 19)),
    /* 18 */ ret(SECCOMP_RET_ERRNO | libc::EPERM as u32),
    /* 19 */ ret(SECCOMP_RET_ALLOW),
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

    const DENY: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

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
