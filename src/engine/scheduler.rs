//! Runs a dependency graph of packages on a bounded pool of workers, after make's own model with
//! `-k`: a node starts once every node it depends on has succeeded; a failure stops only what
//! depends on it (reported as not run), and every other node still runs, so one broken package
//! does not hide the state of the rest — all failures are reported together at the end.
//!
//! CPU is shared through one GNU make jobserver (`JobSlots`): `-j N` means N jobs in total, not N
//! per package. A package that has real work takes a slot before it runs: the first one takes the
//! implicit slot every jobserver client owns, the others a token from the pipe, which now holds
//! N-1 tokens. Every `make` inside a sandbox draws its extra jobs from the same pipe, so package
//! parallelism and make parallelism together never exceed N.

use std::io;
use std::sync::{Condvar, Mutex};

/// GNU make's jobserver: a pipe holding one byte per free job slot beyond the implicit one.
///
/// Hand-written rather than the `jobserver` crate: that crate keeps the pipe's fd numbers private
/// and publishes them only by editing a `Command`'s environment, while a sandbox's environment is
/// rebuilt from its OCI spec, which must name the fds (`MAKEFLAGS` and the preserved-fd list).
pub struct Jobserver {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
}

/// The most jobs `-j` or `[build] jobs` may ask for. The jobserver pipe holds one byte per job
/// slot, and filling it past its capacity would block ovm forever before anything runs. A pipe
/// holds 64 KiB by default, but only 2 pages (8 KiB; 1 page on older kernels) once the user's pipes
/// pass `fs.pipe-user-pages-soft`: 4096 jobs (4095 tokens) fit in every case, and are far more than
/// any host runs usefully at once.
pub const MAX_JOBS: usize = 4096;

impl Jobserver {
    fn new(tokens: usize) -> io::Result<Jobserver> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let js = Jobserver { read, write };
        // Filled without blocking: a pipe smaller than expected is an error, not a hang. The flag
        // is taken off again, since every make of the build writes its tokens back through it.
        set_nonblocking(&js.write, true)?;
        let filled = (0..tokens).try_for_each(|_| js.put_now(b'+'));
        set_nonblocking(&js.write, false)?;
        match filled {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::other(format!(
                "the jobserver pipe holds fewer than the {tokens} tokens of {} jobs",
                tokens + 1
            ))),
            other => other.map(|()| js),
        }
    }

    /// The (read, write) descriptors, for `--jobserver-auth=R,W` and the sandbox's preserved fds.
    pub fn fds(&self) -> (i32, i32) {
        use std::os::fd::AsRawFd;
        (self.read.as_raw_fd(), self.write.as_raw_fd())
    }

    /// `MAKEFLAGS` for a make that joins this jobserver (make 4.2+ reads `--jobserver-auth`).
    pub fn makeflags(&self) -> String {
        let (r, w) = self.fds();
        format!("-j --jobserver-fds={r},{w} --jobserver-auth={r},{w}")
    }

    /// Takes a token, waiting for one. The pipe is shared with every make of the build, and a
    /// make joining as a client may set O_NONBLOCK on it — a flag of the open file description,
    /// so ours too: an empty pipe then answers EAGAIN instead of blocking, and the wait becomes a
    /// poll(2) for the next token.
    fn take(&self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        loop {
            match nix::unistd::read(&self.read, &mut b) {
                Ok(1) => return Ok(b[0]),
                Ok(_) => return Err(io::Error::other("jobserver pipe closed")),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => wait_for(&self.read, nix::poll::PollFlags::POLLIN)?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives a token back; like [`Jobserver::take`], it waits rather than fails when another
    /// process made the pipe non-blocking and it is momentarily full.
    fn put(&self, b: u8) -> io::Result<()> {
        loop {
            match self.put_now(b) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_for(&self.write, nix::poll::PollFlags::POLLOUT)?
                }
                other => return other,
            }
        }
    }

    /// One attempt at writing a token: on a non-blocking pipe that is full, WouldBlock (which is
    /// how [`Jobserver::new`] finds a pipe too small for the tokens).
    fn put_now(&self, b: u8) -> io::Result<()> {
        loop {
            match nix::unistd::write(&self.write, &[b]) {
                Ok(1) => return Ok(()),
                Ok(_) => return Err(io::Error::other("jobserver pipe full")),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Blocks until `fd` is ready for `events` (or poll is interrupted: the caller retries either way).
fn wait_for(fd: &std::os::fd::OwnedFd, events: nix::poll::PollFlags) -> io::Result<()> {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), events)];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn set_nonblocking(fd: &std::os::fd::OwnedFd, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    let flags = if on { flags | OFlag::O_NONBLOCK } else { flags - OFlag::O_NONBLOCK };
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop).map_err(io::Error::from)
}

/// A package-level job slot; gives itself back when dropped.
pub struct Slot<'a> {
    slots: &'a JobSlots,
    token: Option<u8>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        // A slot that cannot be returned (a poisoned lock, a failed write) only lowers
        // parallelism for the rest of the run.
        let Ok(mut implicit) = self.slots.implicit() else { return };
        let put = match self.token.take() {
            Some(b) => {
                implicit.tokens_held -= 1;
                if implicit.promoted > 0 {
                    // This holder ran on the implicit slot since its token went back (see
                    // `release_implicit`): what it gives back now is the implicit slot.
                    implicit.promoted -= 1;
                    implicit.release_implicit()
                } else if implicit.lent && implicit.waiting == 0 {
                    // Nobody waits for it: the token repays the implicit slot's loan.
                    implicit.lent = false;
                    implicit.free = true;
                    None
                } else {
                    Some(b)
                }
            }
            None => implicit.release_implicit(),
        };
        drop(implicit);
        if let Some(b) = put {
            let _ = self.slots.server.put(b);
        }
    }
}

pub struct JobSlots {
    server: Jobserver,
    implicit: Mutex<Implicit>,
    jobs: usize,
}

/// The implicit slot (make's "one job without a token") and who waits on the pipe. Workers that
/// found it taken block reading the pipe, so a freed implicit slot would reach none of them: it is
/// lent to them as a token instead, and the next token given back while nobody waits repays the
/// loan (the byte is dropped and the implicit slot is free again).
///
/// Nor may the implicit slot sit free while packages holding tokens still run: the makes inside
/// them draw extra jobs from the pipe only, so a long package that started on a token (cmake's
/// compile, after the shorter packages beside it finished) would run one job at a time on two
/// cores. As GNU make does, whoever gives the implicit slot back while token holders run returns
/// one of their tokens to the pipe instead, and that holder runs on the implicit slot from then on
/// (`promoted`). Tokens in the pipe, plus held tokens not promoted, plus one for the implicit slot
/// unless it is lent (then its token is among the others), always add up to the job count.
struct Implicit {
    free: bool,
    /// Lent to the pipe as one extra token.
    lent: bool,
    /// Workers in [`JobSlots::acquire`] waiting for a token.
    waiting: usize,
    /// Slots holding a token from the pipe.
    tokens_held: usize,
    /// Of those, how many run on the implicit slot, their token given back (at most one).
    promoted: usize,
}

impl Implicit {
    /// The implicit slot is given back: to a worker waiting on the pipe (lent as a token), else to
    /// a running token holder (its token goes back to the pipe for the makes), else it is free.
    /// The byte to write to the pipe, if any.
    fn release_implicit(&mut self) -> Option<u8> {
        if self.waiting > 0 {
            self.lent = true;
            Some(b'+')
        } else if self.tokens_held > self.promoted {
            self.promoted += 1;
            Some(b'+')
        } else {
            self.free = true;
            None
        }
    }
}

impl JobSlots {
    pub fn new(jobs: usize) -> io::Result<JobSlots> {
        let jobs = jobs.max(1);
        let implicit = Implicit { free: true, lent: false, waiting: 0, tokens_held: 0, promoted: 0 };
        Ok(JobSlots { server: Jobserver::new(jobs - 1)?, implicit: Mutex::new(implicit), jobs })
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// The jobserver every sandboxed `make` joins.
    pub fn server(&self) -> &Jobserver {
        &self.server
    }

    /// Blocks until a slot is free.
    pub fn acquire(&self) -> io::Result<Slot<'_>> {
        {
            let mut implicit = self.implicit()?;
            if implicit.free {
                implicit.free = false;
                return Ok(Slot { slots: self, token: None });
            }
            implicit.waiting += 1;
        }
        let token = self.server.take();
        let mut implicit = self.implicit()?;
        implicit.waiting -= 1;
        let token = token?;
        implicit.tokens_held += 1;
        Ok(Slot { slots: self, token: Some(token) })
    }

    fn implicit(&self) -> io::Result<std::sync::MutexGuard<'_, Implicit>> {
        self.implicit.lock().map_err(|_| io::Error::other("job slot lock poisoned"))
    }
}

/// What happened to one node.
#[derive(Debug)]
pub enum NodeResult<E> {
    Done,
    Failed(E),
    /// Not started: a dependency (or a dependency's dependency) failed.
    NotRun,
}

struct State<E> {
    waiting_on: Vec<usize>,
    ready: Vec<usize>,
    running: usize,
    results: Vec<Option<NodeResult<E>>>,
}

/// Runs `work(node)` for every node of the graph (`deps[i]` = the nodes `i` depends on) on at
/// most `workers` threads. Nodes become ready in index order among equals, so a run is repeatable.
pub fn run_graph<E, F>(deps: &[Vec<usize>], workers: usize, work: F) -> Vec<NodeResult<E>>
where
    E: Send,
    F: Fn(usize) -> Result<(), E> + Sync,
{
    let n = deps.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
    ready.reverse(); // popped from the back: lowest index first
    let state = Mutex::new(State { waiting_on, ready, running: 0, results: (0..n).map(|_| None).collect() });
    let cv = Condvar::new();

    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            s.spawn(|| worker(&state, &cv, &dependents, &work));
        }
    });

    let state = match state.into_inner() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    state.results.into_iter().map(|r| r.unwrap_or(NodeResult::NotRun)).collect()
}

fn worker<E, F>(state: &Mutex<State<E>>, cv: &Condvar, dependents: &[Vec<usize>], work: &F)
where
    F: Fn(usize) -> Result<(), E>,
{
    loop {
        let node = {
            let Ok(mut st) = state.lock() else { return };
            loop {
                if let Some(node) = st.ready.pop() {
                    st.running += 1;
                    break node;
                }
                if st.running == 0 {
                    // Nothing ready, nothing running: the rest waits on failed nodes or is done.
                    cv.notify_all();
                    return;
                }
                st = match cv.wait(st) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
        };

        let result = work(node);

        let Ok(mut st) = state.lock() else { return };
        st.running -= 1;
        match result {
            Ok(()) => {
                st.results[node] = Some(NodeResult::Done);
                let mut newly_ready = Vec::new();
                for &d in &dependents[node] {
                    st.waiting_on[d] -= 1;
                    if st.waiting_on[d] == 0 {
                        newly_ready.push(d);
                    }
                }
                newly_ready.sort_unstable_by(|a, b| b.cmp(a));
                let keep: Vec<usize> = std::mem::take(&mut st.ready);
                st.ready = keep.into_iter().chain(newly_ready).collect();
                st.ready.sort_unstable_by(|a, b| b.cmp(a));
            }
            // Its dependents never become ready: they end as not run.
            Err(e) => st.results[node] = Some(NodeResult::Failed(e)),
        }
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A bound on waiting for another thread, not an expected duration: only a scheduler that
    /// never lets the awaited thread run reaches it.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// GNU make joining the jobserver as a client (as every make in a step does) sets O_NONBLOCK
    /// on the pipe's read end, to wait for tokens and children at once. The flag belongs to the
    /// open file description, so ovm's descriptor is non-blocking from then on: a slot asked for
    /// while the pipe is empty must still wait for the next token, not fail with EAGAIN (which
    /// failed a whole aarch64 build: "jobserver: Resource temporarily unavailable"). The make here
    /// is the host's (scripts/setup.sh installs it); that it sets the flag is checked, not assumed.
    #[test]
    fn after_a_real_make_joined_the_jobserver_a_wait_for_a_slot_still_waits() {
        use std::os::unix::process::CommandExt;
        let slots = JobSlots::new(2).unwrap();
        let (r, w) = slots.server().fds();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Makefile"), "all: a b\na:\n\ttrue\nb:\n\ttrue\n").unwrap();
        let mut make = std::process::Command::new("make");
        make.current_dir(dir.path()).env("MAKEFLAGS", slots.server().makeflags());
        // SAFETY: between fork and exec only fcntl on two descriptors this process owns.
        unsafe {
            make.pre_exec(move || {
                for fd in [r, w] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let out = make.output().expect("running the host's make (scripts/setup.sh installs it)");
        assert!(out.status.success(), "make failed: {}", String::from_utf8_lossy(&out.stderr));
        let flags = nix::fcntl::fcntl(&slots.server.read, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert!(
            nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK),
            "this make left the pipe blocking: the case under test did not arise"
        );

        let first = slots.acquire().unwrap(); // the implicit slot
        let second = slots.acquire().unwrap(); // the one token: the pipe is empty now
        let got = Mutex::new(None);
        let cv = Condvar::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                let third = slots.acquire().map(drop);
                *got.lock().unwrap() = Some(third);
                cv.notify_all();
            });
            // The waiter either has failed at once (the bug) or is blocked; give it the time to.
            std::thread::sleep(Duration::from_millis(200));
            assert!(got.lock().unwrap().is_none(), "a slot was handed out (or refused) while none was free");
            drop(second); // gives the token back through the non-blocking pipe
            assert!(wait_until(&got, &cv, Option::is_some), "the waiter never got the token");
        });
        let third = got.into_inner().unwrap().unwrap();
        assert!(third.is_ok(), "waiting for a token on a non-blocking pipe failed: {third:?}");
        drop(first);
    }

    /// Waits (woken by `cv`, never by polling) until `ready` holds for the guarded value or
    /// [`PATIENCE`] has passed; returns whether it held.
    fn wait_until<T>(m: &Mutex<T>, cv: &Condvar, mut ready: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut g = m.lock().unwrap();
        while !ready(&g) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        true
    }

    #[test]
    fn dependencies_run_first_and_independent_nodes_overlap() {
        // 0 and 1 independent, 2 needs both. 0 and 1 each wait, inside their work, until the other
        // has started too: they can only both get there if two workers run them at the same time.
        let deps = vec![vec![], vec![], vec![0, 1]];
        let order = Mutex::new(Vec::new());
        let started = Mutex::new(0usize);
        let cv = Condvar::new();
        let met = AtomicUsize::new(0);
        let res = run_graph(&deps, 2, |i| {
            if i < 2 {
                *started.lock().unwrap() += 1;
                cv.notify_all();
                if wait_until(&started, &cv, |n| *n == 2) {
                    met.fetch_add(1, Ordering::SeqCst);
                }
            }
            order.lock().unwrap().push(i);
            Ok::<(), ()>(())
        });
        assert!(res.iter().all(|r| matches!(r, NodeResult::Done)));
        assert_eq!(met.load(Ordering::SeqCst), 2, "nodes 0 and 1 never ran at the same time");
        assert_eq!(order.lock().unwrap().last(), Some(&2), "2 ran before a node it depends on");
    }

    #[test]
    fn a_failure_skips_its_dependents_and_the_rest_still_runs() {
        // 0 fails; 1 depends on 0 and 3 on 1 (transitively skipped); 2 is independent but queued
        // after the failure on one worker; 4 fails too, independently: both failures are reported.
        let deps = vec![vec![], vec![0], vec![], vec![1], vec![2]];
        let ran = Mutex::new(Vec::new());
        let res = run_graph(&deps, 1, |i| {
            ran.lock().unwrap().push(i);
            if i == 0 || i == 4 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert!(matches!(res[0], NodeResult::Failed("boom")));
        assert!(matches!(res[1], NodeResult::NotRun));
        assert!(matches!(res[2], NodeResult::Done), "an independent node was not run after a failure");
        assert!(matches!(res[3], NodeResult::NotRun));
        assert!(matches!(res[4], NodeResult::Failed("boom")));
        assert_eq!(ran.into_inner().unwrap(), [0, 2, 4]);
    }

    /// Whether the jobserver pipe holds a token right now (poll with a zero timeout: a state, not
    /// a wait).
    fn token_available(slots: &JobSlots) -> bool {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(slots.server.read.as_fd(), nix::poll::PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap() > 0
    }

    #[test]
    fn job_slots_hand_out_exactly_the_limit() {
        let slots = JobSlots::new(3).unwrap();
        let a = slots.acquire().unwrap();
        assert!(a.token.is_none(), "the first slot is the implicit one");
        let b = slots.acquire().unwrap();
        let c = slots.acquire().unwrap();
        assert!(b.token.is_some() && c.token.is_some());
        assert!(!token_available(&slots), "a fourth slot is free with -j 3");
        assert!(!slots.implicit.lock().unwrap().free);
        drop(b);
        assert!(token_available(&slots), "a returned slot is not free again");
        // c still runs: it moves to the implicit slot and its token goes back to the pipe.
        drop(a);
        assert!(!slots.implicit.lock().unwrap().free);
        drop(c);
        assert!(slots.implicit.lock().unwrap().free, "the implicit slot was not given back");
        let all: Vec<Slot<'_>> = (0..3).map(|_| slots.acquire().unwrap()).collect();
        assert!(!token_available(&slots), "a fourth slot is free with -j 3 after the slots came back");
        drop(all);
    }

    /// The implicit slot given back while a package holding a token still runs: that package's
    /// token goes back to the pipe (where the makes inside it find it) and the package runs on the
    /// implicit slot. Before, the implicit slot sat free and cmake's compile, which had started on
    /// a token, ran one job at a time on two cores.
    #[test]
    fn a_token_holder_left_running_moves_to_the_implicit_slot_and_its_token_goes_to_the_makes() {
        let slots = JobSlots::new(2).unwrap();
        let first = slots.acquire().unwrap();
        let long = slots.acquire().unwrap();
        assert!(first.token.is_none() && long.token.is_some());
        assert!(!token_available(&slots));
        drop(first);
        assert!(token_available(&slots), "the long package's makes get no second job");
        let i = slots.implicit.lock().unwrap();
        assert!(!i.free && !i.lent && i.promoted == 1, "the implicit slot is the long package's now");
        drop(i);
        // A make inside takes the token and gives it back, as make does.
        let make_job = slots.server.take().unwrap();
        assert!(!token_available(&slots), "a third job with -j 2");
        slots.server.put(make_job).unwrap();
        drop(long);
        let i = slots.implicit.lock().unwrap();
        assert!(i.free && i.promoted == 0 && i.tokens_held == 0);
        drop(i);
        // Exactly two slots again: the implicit one and one token.
        let a = slots.acquire().unwrap();
        let b = slots.acquire().unwrap();
        assert!(a.token.is_none() && b.token.is_some());
        assert!(!token_available(&slots), "more than two slots after the promotion");
    }

    /// A worker blocked on the pipe while the implicit slot is given back gets that slot (lent to
    /// it as a token) instead of waiting for a token holder; the loan is repaid afterwards, so the
    /// limit stays exact. Before, the freed implicit slot reached nobody blocked on the pipe: a
    /// build ran one job short and the limit test below could wait out its patience.
    #[test]
    fn the_implicit_slot_given_back_reaches_a_worker_waiting_on_the_pipe() {
        let slots = JobSlots::new(2).unwrap();
        let implicit = slots.acquire().unwrap();
        let token = slots.acquire().unwrap();
        let got = Mutex::new(None);
        let cv = Condvar::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                let slot = slots.acquire().unwrap();
                *got.lock().unwrap() = Some(slot.token.is_some());
                cv.notify_all();
                // Held until the test has looked at the limit.
                assert!(wait_until(&got, &cv, Option::is_none));
            });
            // Nothing signals that the waiter reached the pipe: look, briefly and boundedly.
            let deadline = Instant::now() + PATIENCE;
            while slots.implicit.lock().unwrap().waiting == 0 {
                assert!(Instant::now() < deadline, "the third acquire never waited on the pipe");
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(implicit);
            if !wait_until(&got, &cv, Option::is_some) {
                // Free the waiter so the scope can end: the test fails, it does not hang.
                slots.server.put(b'+').unwrap();
                panic!("the waiter never got the freed implicit slot");
            }
            assert!(!token_available(&slots), "a third slot is free with -j 2");
            *got.lock().unwrap() = None;
            cv.notify_all();
        });
        // The waiter's token, given back while nobody waited, repaid the loan; the other token goes
        // back to the pipe: one token there and the implicit slot free, as at the start.
        drop(token);
        let i = slots.implicit.lock().unwrap();
        assert!(i.free && !i.lent && i.waiting == 0);
        drop(i);
        let a = slots.acquire().unwrap();
        let b = slots.acquire().unwrap();
        assert!(a.token.is_none() && b.token.is_some());
        assert!(!token_available(&slots), "more than two slots after the loan was repaid");
    }

    #[test]
    fn job_slots_never_exceed_the_limit() {
        // Six workers compete for two slots. A holder keeps its slot until a second one is held
        // too (or every other node is done), so the limit is reached; while two are held, no
        // third can be free — checked on the pipe itself, not by hoping a third thread tries in
        // time.
        let slots = JobSlots::new(2).unwrap();
        let live = Mutex::new((0usize, 0usize)); // (holding now, finished)
        let cv = Condvar::new();
        let max_live = AtomicUsize::new(0);
        let spare_at_limit = AtomicUsize::new(0);
        let deps = vec![vec![]; 6];
        let res = run_graph(&deps, 6, |_| {
            let _slot = slots.acquire().map_err(|_| ())?;
            {
                let mut g = live.lock().unwrap();
                g.0 += 1;
                max_live.fetch_max(g.0, Ordering::SeqCst);
                if g.0 == 2 && token_available(&slots) {
                    spare_at_limit.fetch_add(1, Ordering::SeqCst);
                }
            }
            cv.notify_all();
            assert!(wait_until(&live, &cv, |(holding, finished)| *holding >= 2 || *finished == 5));
            let mut g = live.lock().unwrap();
            g.0 -= 1;
            g.1 += 1;
            drop(g);
            cv.notify_all();
            Ok::<(), ()>(())
        });
        assert!(res.iter().all(|r| matches!(r, NodeResult::Done)));
        assert_eq!(max_live.load(Ordering::SeqCst), 2);
        assert_eq!(spare_at_limit.load(Ordering::SeqCst), 0, "a third slot was free while two were held");
    }

    /// Attack: `-j 100000` filled the jobserver pipe past its capacity and blocked forever. The
    /// bound is checked before (see `build::jobs_for`); the fill itself never blocks either.
    #[test]
    fn the_largest_job_count_fits_the_pipe_and_a_full_pipe_is_an_error_not_a_hang() {
        let slots = JobSlots::new(MAX_JOBS).unwrap();
        assert_eq!(slots.jobs(), MAX_JOBS);
        // Far more than any pipe holds (the maximum pipe size is 1 MiB by default).
        let err = Jobserver::new(64 << 20).err().expect("64 Mi tokens cannot fit in a pipe");
        assert!(err.to_string().contains("the jobserver pipe holds fewer than"), "{err}");
    }

    #[test]
    fn empty_graph_is_fine() {
        let res = run_graph::<(), _>(&[], 4, |_| Ok(()));
        assert!(res.is_empty());
    }
}
