//! Boot: run an initrd under qemu (TCG, serial console) and turn what the console shows into a
//! verdict with its own exit code, so scripts and tests can tell *why* a boot failed.
//!
//! qemu's own exit status says little: with `panic=-1` on the kernel command line a panicking
//! kernel reboots at once, and `-no-reboot` turns that reboot into a clean qemu exit (status 0),
//! exactly like a `poweroff`. So the verdict is decided from the console text (`console`), and the
//! process status only tells a qemu failure (bad arguments, missing firmware) from a normal end.
//!
//! | verdict        | exit code | meaning                                                        |
//! |----------------|-----------|----------------------------------------------------------------|
//! | pass           | 0         | `--expect` text ended a console line and no panic was printed; without `--expect`: qemu ended normally without a panic |
//! | timeout        | 10        | `--timeout` seconds passed before the marker (or the end)      |
//! | kernel panic   | 11        | `Kernel panic - not syncing` on the console (even after the marker) |
//! | marker missing | 12        | the guest stopped without printing the marker                  |
//! | qemu failed    | 13        | qemu could not start or exited with an error status            |
//!
//! Errors before qemu runs (no kernel, no initrd, unwritable log) are ordinary errors (exit 1).
//! After the marker (or a panic) qemu gets `grace` more seconds to power off or panic on its own,
//! then it is stopped: a guest that prints the marker and then waits at a shell still passes.
//!
//! Machines: x86_64 is qemu's default `pc` with `console=ttyS0`; aarch64 is `-M virt -cpu
//! cortex-a57` (without `-cpu`, qemu's default CPU cannot run the kernel and the guest hangs
//! silently) with `console=ttyAMA0`. Always `-accel tcg -nographic -no-reboot -nic none`.
//!
//! Disks (`--disk FILE`, repeatable): each a raw image on its own virtio-blk PCI device, in the
//! order given, so the guest sees /dev/vda, /dev/vdb … in that order (both machines have a PCI
//! bus, and the slots are assigned in command-line order). A missing disk is an error before
//! qemu starts, like a missing kernel.

pub mod console;

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::pack::manifest::Manifest;
use crate::pack::MANIFEST_NAME;
use crate::project::Project;
use console::Scanner;

/// Seconds qemu gets to stop by itself after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(
        "no kernel for {arch}: {path} does not exist. Get Debian's with scripts/fetch-test-assets.sh, \
         set [boot] kernel.{arch} in config/ovm.toml, or pass --kernel PATH"
    )]
    KernelMissing { arch: Arch, path: PathBuf },
    #[error("no initrd at {path}: run `ovm pack {arch}` first, or pass --initrd PATH")]
    InitrdMissing { arch: Arch, path: PathBuf },
    #[error("no disk image at {path}: --disk takes an existing raw image file (or block device)")]
    DiskMissing { path: PathBuf },
    #[error("--disk {path} is {kind}, not a raw image file or block device")]
    DiskNotAnImage { path: PathBuf, kind: &'static str },
    #[error("cannot write the boot log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("waiting for qemu: {0}")]
    Wait(io::Error),
}

/// What an interactive `ovm boot` prints before qemu takes the terminal (qemu's `-nographic`
/// multiplexes the monitor onto the console: Ctrl-A is its escape key).
pub const QUIT_HINT: &str = "ovm boot: the terminal is now the guest's console; to quit qemu press Ctrl-A, then X \
                             (Ctrl-A H lists the other keys)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Added after ovm's own `console=… panic=-1`.
    pub append: Vec<String>,
    /// Raw disk images, attached as virtio block devices in this order (/dev/vda, /dev/vdb …).
    pub disks: Vec<PathBuf>,
    pub memory_mib: u32,
    /// Whole-run limit; `None` waits for the guest.
    pub timeout: Option<Duration>,
    /// Text that must end a console line for a pass.
    pub expect: Option<String>,
    /// Time left to the guest after the marker or a panic before it is stopped.
    pub grace: Duration,
    /// Console copy (qemu's command line first, then every byte of console and qemu stderr).
    pub log: PathBuf,
    /// Copy the console to our stdout.
    pub echo: bool,
    /// Give qemu our stdin (typing into the guest; Ctrl-A x quits). Otherwise /dev/null.
    pub interactive: bool,
}

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Timeout,
    Panic(String),
    MarkerMissing,
    QemuFailed(String),
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Timeout => 10,
            Verdict::Panic(_) => 11,
            Verdict::MarkerMissing => 12,
            Verdict::QemuFailed(_) => 13,
        }
    }
}

/// How the qemu process ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// qemu exited by itself; `success` is its exit status being 0.
    Exited { success: bool, status: String },
    /// The whole-run timeout passed; qemu was stopped.
    TimedOut,
    /// Stopped by us after the grace period that follows the marker or a panic.
    Stopped,
    /// qemu could not be started.
    SpawnFailed(String),
}

#[derive(Debug, Clone)]
pub struct BootOutcome {
    pub verdict: Verdict,
    pub elapsed: Duration,
    pub log: PathBuf,
    /// The kernel's complaint about /init, if any (`Failed to execute /init (error -8)`).
    pub init_failure: Option<String>,
}

impl BootOutcome {
    /// One line for the user, with a hint where the console gives one.
    pub fn summary(&self, expect: Option<&str>) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mut s = match &self.verdict {
            Verdict::Pass => match expect {
                Some(e) => format!("PASS: `{e}` seen, no kernel panic ({secs:.1} s)"),
                None => format!("PASS: qemu ended without a kernel panic ({secs:.1} s)"),
            },
            Verdict::Timeout => format!("TIMEOUT after {secs:.1} s"),
            Verdict::Panic(line) => format!("KERNEL PANIC: {line}"),
            Verdict::MarkerMissing => {
                format!("MARKER MISSING: the guest stopped without printing `{}`", expect.unwrap_or(""))
            }
            Verdict::QemuFailed(why) => format!("QEMU FAILED: {why}"),
        };
        if let Some(f) = &self.init_failure {
            s.push_str(&format!(" [{f}"));
            if f.contains("error -8") {
                s.push_str(": exec format error, /init or its interpreter is not built for this architecture");
            }
            s.push(']');
        }
        s.push_str(&format!("; console log: {}", self.log.display()));
        s
    }
}

/// The decision table of the module comment, as a pure function.
pub fn decide(scanner: &Scanner, expecting: bool, ending: &Ending) -> Verdict {
    if let Ending::SpawnFailed(why) = ending {
        return Verdict::QemuFailed(why.clone());
    }
    if let Some(line) = scanner.panic_line() {
        return Verdict::Panic(line.to_string());
    }
    if expecting && scanner.marker_seen() {
        return Verdict::Pass;
    }
    match ending {
        Ending::TimedOut => Verdict::Timeout,
        Ending::Exited { success: false, status } => Verdict::QemuFailed(format!("qemu exited with {status}")),
        _ if expecting => Verdict::MarkerMissing,
        _ => Verdict::Pass,
    }
}

/// Program and arguments for `req`.
pub fn qemu_command_line(req: &BootRequest) -> (String, Vec<String>) {
    let (program, machine, console): (&str, &[&str], &str) = match req.arch {
        Arch::X86_64 => ("qemu-system-x86_64", &[], "ttyS0"),
        Arch::Aarch64 => ("qemu-system-aarch64", &["-M", "virt", "-cpu", "cortex-a57"], "ttyAMA0"),
    };
    let mut append = vec![format!("console={console}"), "panic=-1".to_string()];
    append.extend(req.append.iter().cloned());
    let mut args: Vec<String> = machine.iter().map(|s| s.to_string()).collect();
    args.extend(
        ["-accel", "tcg", "-m", &req.memory_mib.to_string(), "-smp", "1", "-nographic", "-no-reboot", "-nic", "none"]
            .map(String::from),
    );
    args.extend(["-kernel".into(), req.kernel.display().to_string()]);
    args.extend(["-initrd".into(), req.initrd.display().to_string()]);
    args.extend(["-append".into(), append.join(" ")]);
    for (n, disk) in req.disks.iter().enumerate() {
        // qemu's option syntax ends a value at a comma; a comma in the file name is written twice.
        let file = disk.display().to_string().replace(',', ",,");
        args.extend(["-drive".into(), format!("file={file},if=none,format=raw,id=disk{n}")]);
        args.extend(["-device".into(), format!("virtio-blk-pci,drive=disk{n}")]);
    }
    (program.to_string(), args)
}

/// Options from the command line; `None` falls back to `[boot]` and the defaults.
#[derive(Debug, Clone, Default)]
pub struct BootOptions {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// Raw disk images, in order.
    pub disks: Vec<PathBuf>,
    pub timeout: Option<u64>,
    pub expect: Option<String>,
    pub grace: Option<u64>,
    pub memory_mib: Option<u32>,
    pub quiet: bool,
}

/// Where `scripts/fetch-test-assets.sh` puts Debian's kernel for `arch`.
pub fn test_asset_kernel(project: &Project, arch: Arch) -> PathBuf {
    project.layout().test_kernel(arch)
}

/// Resolves kernel (`--kernel`, `[boot] kernel.ARCH`, the fetched Debian kernel), initrd (`--initrd`,
/// the image named by output/ARCH/manifest.txt, the configured compression's image) and the rest.
pub fn request_for_project(project: &Project, arch: Arch, opts: &BootOptions) -> Result<BootRequest, BootError> {
    let cfg = &project.config.boot;
    let kernel = match (&opts.kernel, cfg.kernel.get(arch.name())) {
        (Some(k), _) => k.clone(),
        (None, Some(k)) => project.root().join(k),
        (None, None) => test_asset_kernel(project, arch),
    };
    if !kernel.is_file() {
        return Err(BootError::KernelMissing { arch, path: kernel });
    }
    let initrd = match &opts.initrd {
        Some(i) => i.clone(),
        None => default_initrd(project, arch),
    };
    if !initrd.is_file() {
        return Err(BootError::InitrdMissing { arch, path: initrd });
    }
    for disk in &opts.disks {
        check_disk(disk)?;
    }
    let mut append: Vec<String> = cfg.append.iter().cloned().collect();
    append.extend(opts.append.iter().cloned());
    let timeout_secs = match (opts.timeout, &opts.expect) {
        (Some(t), _) => t,
        (None, Some(_)) => cfg.timeout,
        (None, None) => 0,
    };
    Ok(BootRequest {
        arch,
        kernel,
        initrd,
        append,
        disks: opts.disks.clone(),
        memory_mib: opts.memory_mib.unwrap_or(cfg.memory_mib),
        timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs)),
        expect: opts.expect.clone(),
        grace: Duration::from_secs(opts.grace.unwrap_or(cfg.grace)),
        log: project.layout().boot_log(arch),
        echo: !opts.quiet,
        interactive: opts.expect.is_none() && io::stdin().is_terminal(),
    })
}

/// A disk qemu can open as a raw image: a regular file or a block device (following symlinks).
fn check_disk(disk: &std::path::Path) -> Result<(), BootError> {
    use std::os::unix::fs::FileTypeExt;
    let ft = match std::fs::metadata(disk) {
        Ok(m) => m.file_type(),
        Err(_) => return Err(BootError::DiskMissing { path: disk.to_path_buf() }),
    };
    if ft.is_file() || ft.is_block_device() {
        Ok(())
    } else {
        Err(BootError::DiskNotAnImage { path: disk.to_path_buf(), kind: crate::file_kind::described(ft) })
    }
}

fn default_initrd(project: &Project, arch: Arch) -> PathBuf {
    let out = project.layout().output(arch);
    if let Ok(text) = std::fs::read_to_string(out.join(MANIFEST_NAME)) {
        if let Ok(m) = Manifest::parse(&text) {
            if !m.image.file_name.is_empty() && !m.image.file_name.contains('/') {
                return out.join(m.image.file_name);
            }
        }
    }
    out.join(project.config.pack.compress.image_name())
}

enum Msg {
    Console(Vec<u8>),
    Stderr(Vec<u8>),
    Closed,
}

/// Runs qemu for `req` and decides the verdict.
pub fn boot(req: &BootRequest) -> Result<BootOutcome, BootError> {
    let log_err = |source| BootError::Log { path: req.log.clone(), source };
    if let Some(dir) = req.log.parent() {
        std::fs::create_dir_all(dir).map_err(log_err)?;
    }
    let mut log = std::fs::File::create(&req.log).map_err(log_err)?;
    let (program, args) = qemu_command_line(req);
    writeln!(log, "# {program} {}", shell_words(&args)).map_err(log_err)?;
    tracing::info!("booting {} with {}", req.initrd.display(), program);

    if req.interactive {
        // Once qemu has the terminal, Ctrl-C goes to the guest: say how out before it does.
        eprintln!("{QUIT_HINT}");
    }
    let start = Instant::now();
    let mut scanner = Scanner::new(req.expect.as_deref());
    let child = match Command::new(&program)
        .args(&args)
        .stdin(if req.interactive { Stdio::inherit() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let why = if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "{program} not found: install it (scripts/setup.sh installs qemu-system-x86 and qemu-system-arm)"
                )
            } else {
                format!("cannot start {program}: {e}")
            };
            let verdict = decide(&scanner, req.expect.is_some(), &Ending::SpawnFailed(why));
            return Ok(BootOutcome { verdict, elapsed: start.elapsed(), log: req.log.clone(), init_failure: None });
        }
    };

    let mut child = QemuGuard(child);
    let child = &mut child.0;
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, tx.clone(), Msg::Console);
        readers += 1;
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, tx.clone(), Msg::Stderr);
        readers += 1;
    }
    drop(tx);

    let deadline = req.timeout.map(|t| start + t);
    let mut grace_deadline: Option<Instant> = None;
    let mut stopped: Option<Ending> = None;
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    while readers > 0 {
        let wake = match (deadline, grace_deadline) {
            _ if stopped.is_some() => None,
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let msg = match wake {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Msg::Console(bytes)) => {
                if req.echo {
                    // A closed terminal must not stop the boot; the log still has everything.
                    let _ = stdout.write_all(&bytes).and_then(|_| stdout.flush());
                }
                log.write_all(&bytes).map_err(log_err)?;
                scanner.feed(&bytes);
                if grace_deadline.is_none() && (scanner.marker_seen() || scanner.panic_line().is_some()) {
                    grace_deadline = Some(Instant::now() + req.grace);
                }
            }
            Ok(Msg::Stderr(bytes)) => {
                let _ = stderr.write_all(&bytes);
                log.write_all(&bytes).map_err(log_err)?;
            }
            Ok(Msg::Closed) => readers -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let timed_out = deadline.is_some_and(|d| Instant::now() >= d) && grace_deadline.is_none();
                stopped = Some(if timed_out { Ending::TimedOut } else { Ending::Stopped });
                stop(child).map_err(BootError::Wait)?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    scanner.finish();
    let status = child.wait().map_err(BootError::Wait)?;
    let ending = stopped.unwrap_or_else(|| exited(status));
    let _ = writeln!(log, "\n# ovm: qemu ended: {ending:?}");
    let verdict = decide(&scanner, req.expect.is_some(), &ending);
    Ok(BootOutcome {
        verdict,
        elapsed: start.elapsed(),
        log: req.log.clone(),
        init_failure: scanner.init_failure().map(str::to_string),
    })
}

/// Stops qemu when `boot` returns early with an error (e.g. the log became unwritable), so no
/// guest is left running; after a normal end this finds the process already reaped.
struct QemuGuard(Child);

impl Drop for QemuGuard {
    fn drop(&mut self) {
        let _ = stop(&mut self.0);
        let _ = self.0.wait();
    }
}

fn exited(status: ExitStatus) -> Ending {
    Ending::Exited { success: status.success(), status: status.to_string() }
}

fn spawn_reader<R: Read + Send + 'static>(mut pipe: R, tx: mpsc::Sender<Msg>, wrap: fn(Vec<u8>) -> Msg) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Closed);
    });
}

/// SIGTERM first (qemu then restores the terminal it put in raw mode), SIGKILL if it lingers.
fn stop(child: &mut Child) -> io::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    terminate(child.id())?;
    let until = Instant::now() + TERM_GRACE;
    while Instant::now() < until {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()
}

fn terminate(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=./:,".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(arch: Arch) -> BootRequest {
        BootRequest {
            arch,
            kernel: "/k".into(),
            initrd: "/i".into(),
            append: vec!["quiet".into()],
            disks: Vec::new(),
            memory_mib: 256,
            timeout: None,
            expect: None,
            grace: Duration::from_secs(1),
            log: "/l".into(),
            echo: false,
            interactive: false,
        }
    }

    #[test]
    fn aarch64_gets_virt_cortex_a57_and_ttyama0() {
        let (prog, args) = qemu_command_line(&request(Arch::Aarch64));
        assert_eq!(prog, "qemu-system-aarch64");
        let line = args.join(" ");
        assert!(line.starts_with("-M virt -cpu cortex-a57 -accel tcg "), "{line}");
        assert!(line.contains("-nographic -no-reboot"), "{line}");
        assert!(line.ends_with("-append console=ttyAMA0 panic=-1 quiet"), "{line}");
    }

    #[test]
    fn x86_64_gets_ttys0() {
        let (prog, args) = qemu_command_line(&request(Arch::X86_64));
        assert_eq!(prog, "qemu-system-x86_64");
        assert_eq!(args.last().unwrap(), "console=ttyS0 panic=-1 quiet");
        assert!(args.windows(2).any(|w| w == ["-accel", "tcg"]));
    }

    /// Each disk is a raw drive on its own virtio-blk PCI device, in order, after the kernel
    /// arguments; the same on both machines (each has a PCI bus).
    #[test]
    fn disks_become_virtio_block_devices_in_order() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let mut req = request(arch);
            req.disks = vec!["/d/root.img".into(), "/d/a,b.img".into()];
            let (_, args) = qemu_command_line(&req);
            let at = args.iter().position(|a| a == "-append").unwrap();
            assert_eq!(
                args[at + 2..],
                [
                    "-drive",
                    "file=/d/root.img,if=none,format=raw,id=disk0",
                    "-device",
                    "virtio-blk-pci,drive=disk0",
                    "-drive",
                    "file=/d/a,,b.img,if=none,format=raw,id=disk1",
                    "-device",
                    "virtio-blk-pci,drive=disk1",
                ],
                "{arch:?}"
            );
        }
        // No disk, no drive.
        let (_, args) = qemu_command_line(&request(Arch::X86_64));
        assert!(!args.iter().any(|a| a == "-drive" || a == "-device"), "{args:?}");
    }

    #[test]
    fn a_missing_or_odd_disk_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.img");
        let err = check_disk(&missing).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()) && err.starts_with("no disk image at"), "{err}");
        let err = check_disk(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let image = dir.path().join("root.img");
        std::fs::write(&image, [0u8; 512]).unwrap();
        check_disk(&image).unwrap();
    }

    fn scanner(console: &[u8]) -> Scanner {
        let mut s = Scanner::new(Some("OK"));
        s.feed(console);
        s.finish();
        s
    }

    #[test]
    fn decision_table() {
        let ok_exit = Ending::Exited { success: true, status: "exit status: 0".into() };
        let bad_exit = Ending::Exited { success: false, status: "exit status: 1".into() };
        assert_eq!(decide(&scanner(b"OK\n"), true, &ok_exit), Verdict::Pass);
        assert_eq!(decide(&scanner(b"OK\n"), true, &Ending::Stopped), Verdict::Pass);
        // A panic after the marker still fails: a pass also needs no `Kernel panic` on the console.
        assert!(matches!(decide(&scanner(b"OK\nKernel panic - not syncing: x\n"), true, &ok_exit), Verdict::Panic(_)));
        assert_eq!(decide(&scanner(b"booting\n"), true, &ok_exit), Verdict::MarkerMissing);
        assert_eq!(decide(&scanner(b"booting\n"), true, &Ending::TimedOut), Verdict::Timeout);
        assert!(matches!(decide(&scanner(b""), true, &bad_exit), Verdict::QemuFailed(_)));
        assert!(matches!(decide(&scanner(b""), true, &Ending::SpawnFailed("x".into())), Verdict::QemuFailed(_)));
        assert_eq!(decide(&scanner(b"booting\n"), false, &ok_exit), Verdict::Pass);
        assert_eq!(decide(&scanner(b"booting\n"), false, &Ending::TimedOut), Verdict::Timeout);
        let codes: Vec<u8> = [
            Verdict::Pass,
            Verdict::Timeout,
            Verdict::Panic(String::new()),
            Verdict::MarkerMissing,
            Verdict::QemuFailed(String::new()),
        ]
        .iter()
        .map(Verdict::exit_code)
        .collect();
        assert_eq!(codes, [0, 10, 11, 12, 13]);
    }
}
