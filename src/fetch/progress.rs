//! Download progress: one `indicatif` bar per active download when stderr is a terminal, plain
//! log lines (start, resume, finish) otherwise, so CI logs stay readable and greppable.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise.
    Auto,
    Bars,
    Lines,
}

pub(super) struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let bars = match mode {
            ProgressMode::Bars => true,
            ProgressMode::Lines => false,
            ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        Progress { multi: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    /// Starts showing one transfer of `file` from `from`, `offset` bytes already present.
    pub fn start(&self, file: &str, from: &str, offset: u64, total: Option<u64>) -> Transfer {
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
                let template = if total.is_some() {
                    "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>11} {eta:>4}"
                } else {
                    "{msg:30!} {spinner} {bytes:>10} {bytes_per_sec:>11}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_message(file.to_string());
                bar.set_position(offset);
                Transfer { bar: Some(bar), file: file.to_string(), started: Instant::now(), offset, done: offset }
            }
            None => {
                if offset > 0 {
                    tracing::info!("{file}: resuming at byte {offset} from {from}");
                } else {
                    tracing::info!("{file}: downloading from {from}");
                }
                Transfer { bar: None, file: file.to_string(), started: Instant::now(), offset, done: offset }
            }
        }
    }

    /// A message that must not tear the bars.
    pub fn note(&self, message: &str) {
        match &self.multi {
            Some(multi) => {
                if multi.println(message).is_err() {
                    eprintln!("{message}");
                }
            }
            None => tracing::info!("{message}"),
        }
    }
}

pub(super) struct Transfer {
    bar: Option<ProgressBar>,
    file: String,
    started: Instant,
    offset: u64,
    done: u64,
}

impl Transfer {
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Ends the display of this transfer; `ok` says whether the bytes arrived (not yet verified).
    pub fn finish(self, ok: bool) {
        let fetched = self.done - self.offset;
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if ok => {
                let secs = self.started.elapsed().as_secs_f64();
                tracing::info!("{}: received {} bytes in {secs:.1} s", self.file, fetched);
            }
            None => tracing::info!("{}: transfer interrupted after {} bytes", self.file, fetched),
        }
    }
}
