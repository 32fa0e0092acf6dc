//! `ovm graph build ARCH`: every task of ARCH's last build on a time line, one row per package
//! (Buildroot's `graph-build`, Yocto's buildstats chart), from the context logs the engine writes.
//!
//! One `ovm build` writes into the logs of several domains — the toolchain parts, the build tools,
//! the target packages and the image — each under a `run` header that names the ovm process. The
//! build drawn is the run that did the last work in any of ARCH's domains, with the runs of the
//! same process in the others.
//!
//! The critical path is the longest chain of packages through the dependency graph, weighed by the
//! time their tasks took: recipe dependencies inside a domain, and the phases in the order they ran
//! (the target packages start only once the toolchain and the build tools are ready; the image only
//! once every target package is). Nothing on it could have started earlier, whatever `-j` is.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::engine::context_log::{LoggedRun, TaskEventKind};
use crate::layout::IMAGE;

use super::svg::{self, Svg};

/// How a task's bar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarState {
    Done,
    Failed,
    /// Started but never finished (the run was killed, or is still going).
    Unfinished,
    /// Restored from the shared-state cache (no task ran).
    Restored,
}

/// One task of one package: milliseconds from the start of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub task: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub state: BarState,
}

impl Bar {
    pub fn ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// One package of one domain in the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The domain's directory name (`x86_64`, `tools`, `cross-x86_64`, `toolchain`).
    pub domain: String,
    pub package: String,
    /// Which of the build's domain runs (phases) it belongs to, in the order they ran.
    pub phase: usize,
    pub bars: Vec<Bar>,
}

impl Row {
    /// The time its tasks took together.
    pub fn busy_ms(&self) -> u64 {
        self.bars.iter().map(Bar::ms).sum()
    }
    pub fn start_ms(&self) -> u64 {
        self.bars.iter().map(|b| b.start_ms).min().unwrap_or(0)
    }
    pub fn end_ms(&self) -> u64 {
        self.bars.iter().map(|b| b.end_ms).max().unwrap_or(0)
    }
}

/// What the build picture shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The command of the build (`ovm build x86_64`).
    pub what: String,
    /// When its first domain run began (time zero).
    pub started: SystemTime,
    /// Rows by phase, then by when they started, then by name.
    pub rows: Vec<Row>,
    /// Indexes into `rows`, from the first package of the critical path to its last.
    pub critical: Vec<usize>,
    /// The critical path's length: the time its packages' tasks took.
    pub critical_ms: u64,
    /// From time zero to the last task's end.
    pub wall_ms: u64,
}

impl Timeline {
    /// The most tasks that ran at the same time.
    pub fn max_parallel(&self) -> usize {
        concurrency(self).iter().map(|&(_, n)| n).max().unwrap_or(0)
    }

    pub fn tasks(&self) -> usize {
        self.rows.iter().map(|r| r.bars.len()).sum()
    }
}

/// The build to draw from the runs of each domain log (`(domain dir name, runs)`; the target
/// domain's first), or `None` when no run of them ran a task. `deps` gives a package's recipe
/// dependencies (empty for a package whose recipe is gone).
pub fn from_runs(logs: &[(String, Vec<LoggedRun>)], deps: &dyn Fn(&str) -> Vec<String>) -> Option<Timeline> {
    // The anchor: the run whose last task ended last, in whichever domain (a build that only
    // rebuilt the tools has no target task); ties to the earlier log, the target's.
    let last_event = |r: &LoggedRun| r.events.last().map(|e| e.at);
    let (anchor_log, anchor_idx) = logs
        .iter()
        .enumerate()
        .flat_map(|(l, (_, runs))| runs.iter().enumerate().map(move |(i, r)| (l, i, r)))
        .filter_map(|(l, i, r)| last_event(r).map(|at| (at, std::cmp::Reverse(l), i)))
        .max()
        .map(|(_, std::cmp::Reverse(l), i)| (l, i))?;
    let anchor = &logs[anchor_log].1[anchor_idx];
    let end = anchor.events.last().map_or(anchor.at, |e| e.at);
    // The other domains' runs of the same process: after the anchor log's previous run (a pid can
    // come back much later) and before the anchor's last line.
    let after = anchor_idx.checked_sub(1).map(|i| logs[anchor_log].1[i].at);
    let mut group: Vec<(&str, &LoggedRun)> = vec![(logs[anchor_log].0.as_str(), anchor)];
    if anchor.pid.is_some() {
        for (l, (domain, runs)) in logs.iter().enumerate() {
            if l == anchor_log {
                continue;
            }
            let same = runs.iter().rev().find(|r| {
                r.pid == anchor.pid && r.at <= end && after.map_or(true, |a| r.at > a) && r.what == anchor.what
            });
            if let Some(r) = same {
                group.push((domain.as_str(), r));
            }
        }
    }
    group.sort_by(|a, b| (a.1.at, a.0).cmp(&(b.1.at, b.0)));
    let started =
        group.iter().map(|(_, r)| r.at).chain(group.iter().flat_map(|(_, r)| r.events.iter().map(|e| e.at))).min()?;
    let ms = |t: SystemTime| t.duration_since(started).unwrap_or(Duration::ZERO).as_millis() as u64;
    let last = group.iter().flat_map(|(_, r)| r.events.iter().map(|e| ms(e.at))).max().unwrap_or(0);

    let mut rows: Vec<Row> = Vec::new();
    for (phase, (_, run)) in group.iter().enumerate() {
        let mut open: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        let mut bars: BTreeMap<(&str, &str), Vec<Bar>> = BTreeMap::new();
        for e in &run.events {
            let key = (e.domain.as_str(), e.package.as_str(), e.task.as_str());
            let at = ms(e.at);
            let (took, state) = match e.kind {
                TaskEventKind::Start => {
                    open.insert(key, at);
                    continue;
                }
                TaskEventKind::Done(d) if e.task == "sstate" => (d, BarState::Restored),
                TaskEventKind::Done(d) => (d, BarState::Done),
                TaskEventKind::Failed(d) => (d, BarState::Failed),
            };
            let start = open.remove(&key).unwrap_or_else(|| at.saturating_sub(took.as_millis() as u64));
            bars.entry((key.0, key.1)).or_default().push(Bar {
                task: e.task.clone(),
                start_ms: start,
                end_ms: at,
                state,
            });
        }
        for ((domain, package, task), start) in open {
            let bar = Bar { task: task.into(), start_ms: start, end_ms: last.max(start), state: BarState::Unfinished };
            bars.entry((domain, package)).or_default().push(bar);
        }
        let mut phase_rows: Vec<Row> = bars
            .into_iter()
            .map(|((domain, package), mut bars)| {
                bars.sort_by(|a, b| (a.start_ms, a.end_ms, &a.task).cmp(&(b.start_ms, b.end_ms, &b.task)));
                Row { domain: domain.into(), package: package.into(), phase, bars }
            })
            .collect();
        // The image last: it is packed after every package of its phase.
        phase_rows.sort_by(|a, b| {
            (a.package == IMAGE, a.start_ms(), &a.package).cmp(&(b.package == IMAGE, b.start_ms(), &b.package))
        });
        rows.extend(phase_rows);
    }
    let (critical, critical_ms) = critical_path(&rows, deps);
    let wall_ms = rows.iter().map(Row::end_ms).max().unwrap_or(0);
    Some(Timeline { what: anchor.what.clone(), started, rows, critical, critical_ms, wall_ms })
}

/// The longest chain through the rows by busy time (see the module comment): what each row waited
/// for is its recipe dependencies in its phase (for the image, every package of its phase) and
/// every row of the phase before. Returns the chain, first to last, and its length.
pub fn critical_path(rows: &[Row], deps: &dyn Fn(&str) -> Vec<String>) -> (Vec<usize>, u64) {
    let preds: Vec<Vec<usize>> = rows
        .iter()
        .map(|row| {
            let in_phase = |j: &usize| rows[*j].phase == row.phase && rows[*j].domain == row.domain;
            let mut p: Vec<usize> = if row.package == IMAGE {
                (0..rows.len()).filter(|j| in_phase(j) && rows[*j].package != IMAGE).collect()
            } else {
                let d = deps(&row.package);
                (0..rows.len()).filter(|j| in_phase(j) && d.contains(&rows[*j].package)).collect()
            };
            if let Some(prev) = row.phase.checked_sub(1) {
                p.extend((0..rows.len()).filter(|j| rows[*j].phase == prev));
            }
            p
        })
        .collect();
    // Longest path in a DAG, memoised; a cycle (a log that no longer matches the recipes) is cut
    // where it closes rather than followed.
    let mut best: Vec<Option<(u64, Option<usize>)>> = vec![None; rows.len()];
    let mut on_stack = vec![false; rows.len()];
    for root in 0..rows.len() {
        let mut stack = vec![(root, 0usize)];
        on_stack[root] = true;
        while let Some(&(node, next)) = stack.last() {
            if best[node].is_some() {
                on_stack[node] = false;
                stack.pop();
                continue;
            }
            if let Some(&p) = preds[node].get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                if best[p].is_none() && !on_stack[p] {
                    on_stack[p] = true;
                    stack.push((p, 0));
                }
                continue;
            }
            // Every predecessor is done (or on a cycle): the heaviest one, the first on ties.
            let mut pick: Option<(u64, usize)> = None;
            for &p in &preds[node] {
                if let Some((len, _)) = best[p] {
                    if pick.map_or(true, |(l, _)| len > l) {
                        pick = Some((len, p));
                    }
                }
            }
            best[node] = Some((rows[node].busy_ms() + pick.map_or(0, |(l, _)| l), pick.map(|(_, p)| p)));
            on_stack[node] = false;
            stack.pop();
        }
    }
    let mut end: Option<(u64, usize)> = None;
    for (i, b) in best.iter().enumerate() {
        if let Some((len, _)) = b {
            if end.map_or(true, |(l, _)| *len > l) {
                end = Some((*len, i));
            }
        }
    }
    let Some((length, last)) = end else { return (Vec::new(), 0) };
    let mut path = vec![last];
    let mut at = last;
    while let Some(Some((_, Some(p)))) = best.get(at) {
        if path.contains(p) {
            break;
        }
        path.push(*p);
        at = *p;
    }
    path.reverse();
    (path, length)
}

/// How many tasks ran from each moment on: `(ms, count)` steps, in time order, from 0.
pub fn concurrency(t: &Timeline) -> Vec<(u64, usize)> {
    let mut edges: Vec<(u64, i64)> = Vec::new();
    for bar in t.rows.iter().flat_map(|r| &r.bars).filter(|b| b.ms() > 0) {
        edges.push((bar.start_ms, 1));
        edges.push((bar.end_ms, -1));
    }
    edges.sort();
    let mut steps = vec![(0u64, 0usize)];
    let mut n: i64 = 0;
    for (at, d) in edges {
        n += d;
        let count = n.max(0) as usize;
        match steps.last_mut() {
            Some(last) if last.0 == at => last.1 = count,
            _ => steps.push((at, count)),
        }
    }
    steps
}

/// The colour of a task: the engine's own tasks have fixed ones, a recipe's own steps one from
/// their name.
pub fn task_colour(task: &str) -> &'static str {
    match task {
        "fetch" => "#9c755f",
        "unpack" => "#edc948",
        "patch" => "#b07aa1",
        "configure" => "#76b7b2",
        "compile" => "#4e79a7",
        "install" => "#59a14f",
        "package" => "#f28e2b",
        "sstate" => "#bab0ac",
        "pack" => "#ff9da7",
        other => svg::colour_of(other),
    }
}

/// Where a task comes in the legend: the chain's order, then a recipe's own steps by name.
fn task_rank(task: &str) -> (usize, &str) {
    const ORDER: [&str; 9] =
        ["fetch", "unpack", "patch", "configure", "compile", "install", "package", "sstate", "pack"];
    match ORDER.iter().position(|t| *t == task) {
        Some(i) if i < 7 => (i, ""),
        Some(i) => (i + 1, ""),
        None => (7, task),
    }
}

/// `ms` as people say it: `0.35 s`, `12.5 s`, `2m 05s`, `1h 02m`.
pub fn fmt_ms(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms < 10_000 {
        format!("{s:.2} s")
    } else if ms < 60_000 {
        format!("{s:.1} s")
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// A round tick interval that puts about `ticks` ticks on `total` ms.
fn tick_step(total: u64, ticks: u64) -> u64 {
    const STEPS: [u64; 24] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000,
    ];
    let raw = total / ticks.max(1);
    STEPS.iter().copied().find(|s| *s >= raw).unwrap_or(14_400_000)
}

fn fmt_tick(ms: u64, step: u64) -> String {
    if step >= 60_000 {
        if ms >= 3_600_000 {
            format!("{}h{:02}", ms / 3_600_000, (ms / 60_000) % 60)
        } else {
            format!("{}m", ms / 60_000)
        }
    } else if step >= 1000 {
        format!("{} s", ms / 1000)
    } else if step >= 100 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// Dark red: the critical path.
const CRITICAL: &str = "#b2182b";

/// The picture: one row per package, a bar per task coloured by task, a time axis, the critical
/// path outlined in red with its length, and how many tasks ran at once below.
pub fn svg(t: &Timeline, arch: &str) -> String {
    const W: f64 = 1200.0;
    const ROW: f64 = 22.0;
    const PHASE: f64 = 20.0;
    const STRIP: f64 = 64.0;
    let label_w =
        t.rows.iter().map(|r| svg::text_width(&r.package, 12.0)).fold(0.0, f64::max).clamp(110.0, 300.0) + 20.0;
    let x0 = 16.0 + label_w;
    let x1 = W - 28.0;
    let total = t.wall_ms.max(1);
    let scale = (x1 - x0) / total as f64;
    let x = |ms: u64| x0 + ms as f64 * scale;

    // Header lines; the critical path's may wrap.
    let names: Vec<&str> = t.critical.iter().map(|&i| t.rows[i].package.as_str()).collect();
    let path_text = format!("critical path {} of task time: {}", fmt_ms(t.critical_ms), names.join(" → "));
    let path_lines = wrap(&path_text, W - 32.0, 13.0);
    let phases = t.rows.last().map_or(0, |r| r.phase + 1);
    let legend_y = 58.0 + 18.0 * path_lines.len() as f64;
    let axis_y = legend_y + 34.0;
    let rows_y = axis_y + 8.0;
    let rows_h = t.rows.len() as f64 * ROW + phases as f64 * PHASE;
    let strip_y = rows_y + rows_h + 16.0;
    let height = strip_y + STRIP + 40.0;

    let title = format!("{} — build timeline", t.what);
    let mut s = Svg::new(W, height, &title);
    s.raw(&format!(
        "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"2.5\" height=\"6\" fill=\"{CRITICAL}\" fill-opacity=\"0.75\"/>\
         </pattern><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"6\" \
         markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{CRITICAL}\"/></marker></defs>"
    ));
    s.text(16.0, 26.0, &title, "font-size=\"18\" font-weight=\"bold\" fill=\"#222\"");
    let started = humantime::format_rfc3339_seconds(t.started).to_string();
    let packages = t.rows.len();
    s.text(
        16.0,
        46.0,
        &format!(
            "started {started} · wall time {} · {} tasks in {packages} packages · up to {} tasks at once",
            fmt_ms(t.wall_ms),
            t.tasks(),
            t.max_parallel()
        ),
        "font-size=\"13\" fill=\"#444\"",
    );
    for (i, line) in path_lines.iter().enumerate() {
        s.text(
            16.0,
            64.0 + 18.0 * i as f64,
            line,
            &format!("font-size=\"13\" font-weight=\"bold\" fill=\"{CRITICAL}\""),
        );
    }

    // Legend: the tasks present, then the markings.
    let mut tasks: Vec<&str> = t.rows.iter().flat_map(|r| r.bars.iter().map(|b| b.task.as_str())).collect();
    tasks.sort_by_key(|t| task_rank(t));
    tasks.dedup();
    let mut lx = 16.0;
    let ly = legend_y + 8.0;
    for task in &tasks {
        s.rect(lx, ly - 10.0, 12.0, 12.0, task_colour(task), "rx=\"2\"", None);
        s.text(lx + 16.0, ly, task, "font-size=\"12\" fill=\"#333\"");
        lx += 26.0 + svg::text_width(task, 12.0);
    }
    lx += 12.0;
    s.rect(lx, ly - 10.0, 12.0, 12.0, "url(#hatch)", "stroke=\"#666\"", None);
    s.text(lx + 16.0, ly, "failed", "font-size=\"12\" fill=\"#333\"");
    lx += 26.0 + svg::text_width("failed", 12.0);
    s.rect(lx, ly - 10.0, 12.0, 12.0, "#ffffff", "stroke=\"#666\" stroke-dasharray=\"2,2\"", None);
    s.text(lx + 16.0, ly, "unfinished", "font-size=\"12\" fill=\"#333\"");
    lx += 26.0 + svg::text_width("unfinished", 12.0);
    s.rect(lx, ly - 10.0, 12.0, 12.0, "#fde0dd", &format!("stroke=\"{CRITICAL}\" stroke-width=\"2\""), None);
    s.text(lx + 16.0, ly, "critical path", "font-size=\"12\" fill=\"#333\"");

    // Time axis and grid.
    let step = tick_step(total, 10);
    let grid_bottom = rows_y + rows_h;
    let mut tick = 0;
    while tick <= total {
        let tx = x(tick);
        s.line(tx, axis_y, tx, grid_bottom, "#e4e4e4", "stroke-width=\"1\"");
        s.text(tx, axis_y - 4.0, &fmt_tick(tick, step), "font-size=\"11\" fill=\"#555\" text-anchor=\"middle\"");
        tick += step;
    }
    s.line(x0, axis_y, x1, axis_y, "#999", "stroke-width=\"1\"");

    // Rows, with a header per phase.
    let critical_set: Vec<bool> = (0..t.rows.len()).map(|i| t.critical.contains(&i)).collect();
    let mut y = rows_y;
    let mut row_y = vec![0.0; t.rows.len()];
    let mut phase = usize::MAX;
    for (i, row) in t.rows.iter().enumerate() {
        if row.phase != phase {
            phase = row.phase;
            s.rect(16.0, y + 2.0, x1 - 16.0, PHASE - 4.0, "#f3f3f3", "", None);
            s.text(
                22.0,
                y + 14.0,
                &phase_name(&row.domain, arch),
                "font-size=\"11\" font-weight=\"bold\" fill=\"#555\"",
            );
            y += PHASE;
        }
        row_y[i] = y;
        let crit = critical_set[i];
        if crit {
            s.rect(16.0, y + 1.0, x1 - 16.0, ROW - 2.0, "#fde0dd", "", None);
        } else if i % 2 == 1 {
            s.rect(16.0, y + 1.0, x1 - 16.0, ROW - 2.0, "#fafafa", "", None);
        }
        let label = svg::fit(&row.package, label_w - 12.0, 12.0);
        let attrs = if crit {
            format!("font-size=\"12\" font-weight=\"bold\" fill=\"{CRITICAL}\" text-anchor=\"end\"")
        } else {
            "font-size=\"12\" fill=\"#222\" text-anchor=\"end\"".to_string()
        };
        s.text(x0 - 8.0, y + 15.0, &label, &attrs);
        for bar in &row.bars {
            let bx = x(bar.start_ms);
            let bw = (bar.ms() as f64 * scale).max(2.0);
            let fill = task_colour(&bar.task);
            let mut extra = String::from("rx=\"2\"");
            if bar.state == BarState::Unfinished {
                extra.push_str(" stroke=\"#333\" stroke-dasharray=\"3,2\" fill-opacity=\"0.5\"");
            } else if crit {
                extra.push_str(&format!(" stroke=\"{CRITICAL}\" stroke-width=\"1.5\""));
            }
            let state = match bar.state {
                BarState::Done => "",
                BarState::Failed => " (failed)",
                BarState::Unfinished => " (unfinished)",
                BarState::Restored => " (restored from the shared-state cache)",
            };
            let tip = format!(
                "{} {}: {}{state}, {} → {}",
                row.package,
                bar.task,
                fmt_ms(bar.ms()),
                fmt_ms(bar.start_ms),
                fmt_ms(bar.end_ms)
            );
            s.rect(bx, y + 4.0, bw, ROW - 8.0, fill, &extra, Some(&tip));
            if bar.state == BarState::Failed {
                s.rect(bx, y + 4.0, bw, ROW - 8.0, "url(#hatch)", "", None);
            }
            if bw > svg::text_width(&bar.task, 10.0) + 6.0 {
                let ink = if svg::dark_text_on(fill) { "#222" } else { "#fff" };
                s.text(
                    bx + 3.0,
                    y + 15.0,
                    &bar.task,
                    &format!("font-size=\"10\" fill=\"{ink}\" pointer-events=\"none\""),
                );
            }
        }
        y += ROW;
    }
    // The critical path's hand-overs: from one package's end to the next one's start.
    for pair in t.critical.windows(2) {
        let (a, b) = (&t.rows[pair[0]], &t.rows[pair[1]]);
        let (ax, ay) = (x(a.end_ms()), row_y[pair[0]] + ROW / 2.0);
        let (bx, by) = (x(b.start_ms()), row_y[pair[1]] + ROW / 2.0);
        s.raw(&format!(
            "<path d=\"M{} {} C{} {} {} {} {} {}\" fill=\"none\" stroke=\"{CRITICAL}\" stroke-width=\"1.5\" \
             stroke-dasharray=\"4,3\" marker-end=\"url(#arrow)\"/>",
            svg::num(ax),
            svg::num(ay),
            svg::num(ax + 12.0),
            svg::num(ay),
            svg::num(bx - 12.0),
            svg::num(by),
            svg::num(bx),
            svg::num(by)
        ));
    }

    // How many tasks ran at once.
    let steps = concurrency(t);
    let peak = steps.iter().map(|&(_, n)| n).max().unwrap_or(0).max(1);
    let base = strip_y + STRIP;
    let h = |n: usize| base - (STRIP - 8.0) * n as f64 / peak as f64;
    let mut d = format!("M{} {}", svg::num(x0), svg::num(base));
    let mut level = base;
    for &(at, n) in &steps {
        let sx = x(at);
        d.push_str(&format!(" L{} {} L{} {}", svg::num(sx), svg::num(level), svg::num(sx), svg::num(h(n))));
        level = h(n);
    }
    d.push_str(&format!(" L{} {} L{} {} Z", svg::num(x1), svg::num(level), svg::num(x1), svg::num(base)));
    s.line(x0, base, x1, base, "#999", "stroke-width=\"1\"");
    s.raw(&format!("<path d=\"{d}\" fill=\"#4e79a7\" fill-opacity=\"0.35\" stroke=\"#4e79a7\" stroke-width=\"1\"/>"));
    s.text(x0 - 8.0, strip_y + 14.0, "tasks at once", "font-size=\"12\" fill=\"#222\" text-anchor=\"end\"");
    s.text(x0 - 8.0, strip_y + 30.0, &format!("(peak {peak})"), "font-size=\"11\" fill=\"#666\" text-anchor=\"end\"");
    s.text(
        16.0,
        height - 12.0,
        "ovm graph build: from logs/*/context.log; bars are tasks, rows packages; the critical path is the longest chain \
         of dependencies by task time",
        "font-size=\"11\" fill=\"#888\"",
    );
    s.finish()
}

/// A phase's header: what its domain is.
fn phase_name(domain: &str, arch: &str) -> String {
    match domain {
        "tools" => "build tools (host)".into(),
        "toolchain" => "toolchain".into(),
        d if d.starts_with("cross-") => format!("cross toolchain parts ({d})"),
        d if d == arch => format!("{d} packages and image"),
        d => d.to_string(),
    }
}

/// `text` cut at spaces into lines of about `width` px at `size` px.
fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && svg::text_width(&format!("{line} {word}"), size) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context_log::runs;

    /// A context log: `run` header at `t0`, then lines `(ms, event, pkg, task, secs)`.
    fn log(domain: &str, pid: u32, t0_ms: u64, lines: &[(u64, &str, &str, &str, f64)]) -> String {
        let ts = |ms: u64| {
            humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms))
        };
        let mut s = format!("{} run    ovm build x86_64 (pid {pid})\n", ts(t0_ms));
        for (ms, ev, pkg, task, secs) in lines {
            let tail = match *ev {
                "start" => "sig=ab".to_string(),
                "done" => format!("{secs:.2}s sig=ab"),
                _ => format!("{secs:.2}s log=x"),
            };
            s.push_str(&format!("{} {ev:<6} {domain} {pkg} {task} {tail}\n", ts(*ms)));
        }
        s
    }

    fn deps(pkg: &str) -> Vec<String> {
        match pkg {
            "hello" => vec!["libgreet".into()],
            _ => vec![],
        }
    }

    #[test]
    fn a_build_across_domains_is_one_timeline_with_its_critical_path() {
        let tools =
            log("tools", 7, 0, &[(10, "start", "make", "compile", 0.0), (2010, "done", "make", "compile", 2.0)]);
        let target = log(
            "x86_64",
            7,
            2100,
            &[
                (2200, "start", "libgreet", "compile", 0.0),
                (2200, "start", "bye", "compile", 0.0),
                (3200, "done", "bye", "compile", 1.0),
                (5200, "done", "libgreet", "compile", 3.0),
                (5300, "start", "hello", "compile", 0.0),
                (6300, "done", "hello", "compile", 1.0),
                (6400, "done", "cached", "sstate", 0.0),
                (6500, "start", "image", "pack", 0.0),
                (6600, "done", "image", "pack", 0.1),
            ],
        );
        // An older build of another process, which must not be mixed in.
        let old_tools = log("tools", 3, 0, &[(0, "start", "busybox-tools", "compile", 0.0)]);
        let logs =
            vec![("x86_64".to_string(), runs(&target)), ("tools".to_string(), runs(&format!("{old_tools}{tools}")))];
        let t = from_runs(&logs, &deps).expect("a build");
        let names: Vec<&str> = t.rows.iter().map(|r| r.package.as_str()).collect();
        assert_eq!(names, ["make", "bye", "libgreet", "hello", "cached", "image"]);
        let critical: Vec<&str> = t.critical.iter().map(|&i| t.rows[i].package.as_str()).collect();
        assert_eq!(critical, ["make", "libgreet", "hello", "image"]);
        assert_eq!(t.critical_ms, 2000 + 3000 + 1000 + 100);
        assert_eq!((t.wall_ms, t.max_parallel(), t.tasks()), (6600, 2, 6));
        let cached = &t.rows[4].bars[0];
        assert_eq!((cached.state, cached.ms()), (BarState::Restored, 0));
        let doc = svg(&t, "x86_64");
        assert!(doc.contains("critical path 6.10 s of task time: make → libgreet → hello → image"), "{doc}");
        assert!(doc.contains("build tools (host)") && doc.contains(">libgreet</text>"), "{doc}");
        assert_eq!(doc, svg(&from_runs(&logs, &deps).expect("a build"), "x86_64"), "same logs, same bytes");
    }

    #[test]
    fn the_build_drawn_is_the_last_that_did_work_in_any_domain() {
        // Build 1 compiled a target package; build 2 only rebuilt a tool (its target run is empty).
        let target = format!(
            "{}{}",
            log("x86_64", 1, 0, &[(10, "start", "hello", "compile", 0.0), (20, "done", "hello", "compile", 0.01)]),
            log("x86_64", 2, 9000, &[])
        );
        let tools =
            log("tools", 2, 5000, &[(5000, "start", "make", "compile", 0.0), (8000, "done", "make", "compile", 3.0)]);
        let logs = vec![("x86_64".to_string(), runs(&target)), ("tools".to_string(), runs(&tools))];
        let t = from_runs(&logs, &deps).expect("a build");
        let rows: Vec<(&str, &str)> = t.rows.iter().map(|r| (r.domain.as_str(), r.package.as_str())).collect();
        assert_eq!(rows, [("tools", "make")]);
        assert_eq!((t.wall_ms, t.critical_ms), (3000, 3000));
    }

    #[test]
    fn a_failed_and_an_unfinished_task_are_drawn_and_a_no_op_run_is_skipped() {
        let mut text = log(
            "x86_64",
            9,
            0,
            &[
                (0, "start", "a", "compile", 0.0),
                (500, "failed", "a", "compile", 0.5),
                (600, "start", "b", "install", 0.0),
                (900, "done", "c", "compile", 0.25),
            ],
        );
        text.push_str(&log("x86_64", 10, 5000, &[]));
        let t = from_runs(&[("x86_64".into(), runs(&text))], &deps).expect("the run with tasks");
        let states: Vec<(&str, BarState, u64, u64)> = t
            .rows
            .iter()
            .map(|r| (r.package.as_str(), r.bars[0].state, r.bars[0].start_ms, r.bars[0].end_ms))
            .collect();
        assert_eq!(
            states,
            [("a", BarState::Failed, 0, 500), ("b", BarState::Unfinished, 600, 900), ("c", BarState::Done, 650, 900)]
        );
        assert!(from_runs(&[("x86_64".into(), runs(&log("x86_64", 1, 0, &[])))], &deps).is_none());
    }

    #[test]
    fn a_dependency_cycle_in_stale_logs_does_not_hang() {
        let row = |p: &str, ms: u64| Row {
            domain: "x".into(),
            package: p.into(),
            phase: 0,
            bars: vec![Bar { task: "t".into(), start_ms: 0, end_ms: ms, state: BarState::Done }],
        };
        let cyc = |p: &str| vec![if p == "a" { "b".to_string() } else { "a".to_string() }];
        let (path, len) = critical_path(&[row("a", 5), row("b", 7)], &cyc);
        assert!(!path.is_empty() && len >= 7, "{path:?} {len}");
    }
}
