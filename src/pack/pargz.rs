//! A deterministic parallel gzip writer in pigz's scheme.
//!
//! The input is cut into fixed 128 KiB blocks. Each block is raw-deflated on its own, with the
//! previous block's last 32 KiB as preset dictionary (so matches still reach back across the
//! border, which keeps the size within a fraction of a percent of a single-stream `gzip -9`), and
//! ends with a sync flush (byte-aligned, no final bit); the last block ends the stream. The
//! pieces, concatenated in order, are ONE valid deflate stream inside ONE gzip member, whose CRC32
//! is combined from the per-block CRCs. Each piece is a pure function of (block, previous block,
//! is-last, level), so the bytes never depend on how many threads compress them.
//!
//! Why not a crate: `gzp` implements this scheme, but its dictionary mode needs a C zlib
//! (`libz-sys`/`libz-ng-sys`, the latter needing cmake) besides flate2's pure-Rust zlib-rs backend,
//! and its one-thread path switches to a different (single-stream) encoder, so 1 and N threads
//! would differ. This is the ~150 lines that remain with flate2 + zlib-rs and std threads.
//!
//! Pipeline: the caller's thread fills blocks and hands them to `threads` workers over a bounded
//! queue; finished pieces come back tagged with their sequence number and are written in order
//! by the caller's thread, so memory stays bounded by the number of blocks in flight.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// pigz's default block size.
pub const BLOCK: usize = 128 << 10;
/// deflate's window: how much of the previous block serves as dictionary.
const DICT: usize = 32 << 10;

struct Job {
    seq: u64,
    data: Arc<Vec<u8>>,
    /// The previous block, whose tail is this block's dictionary.
    prev: Option<Arc<Vec<u8>>>,
    last: bool,
}

struct Piece {
    seq: u64,
    result: io::Result<(Vec<u8>, Crc)>,
}

pub struct ParGzWriter<W: Write> {
    /// `None` only after `finish` moved it out.
    out: Option<W>,
    level: u32,
    block: Vec<u8>,
    prev: Option<Arc<Vec<u8>>>,
    next_seq: u64,
    next_to_write: u64,
    in_flight: usize,
    max_in_flight: usize,
    done: BTreeMap<u64, (Vec<u8>, Crc)>,
    crc: Crc,
    jobs: Option<mpsc::SyncSender<Job>>,
    pieces: mpsc::Receiver<Piece>,
    workers: Vec<JoinHandle<()>>,
    header_written: bool,
}

impl<W: Write> ParGzWriter<W> {
    /// `level` 0..=9, `threads` ≥ 1 compression workers.
    pub fn new(out: W, level: u32, threads: usize) -> ParGzWriter<W> {
        let threads = threads.max(1);
        let max_in_flight = 2 * threads + 2;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(max_in_flight);
        let (piece_tx, piece_rx) = mpsc::channel::<Piece>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let piece_tx = piece_tx.clone();
                std::thread::spawn(move || worker(level, &job_rx, &piece_tx))
            })
            .collect();
        ParGzWriter {
            out: Some(out),
            level: level.min(9),
            block: Vec::with_capacity(BLOCK),
            prev: None,
            next_seq: 0,
            next_to_write: 0,
            in_flight: 0,
            max_in_flight,
            done: BTreeMap::new(),
            crc: Crc::new(),
            jobs: Some(job_tx),
            pieces: piece_rx,
            workers,
            header_written: false,
        }
    }

    /// Compresses the rest, writes the trailer, stops the workers and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None; // workers see the closed queue and return
        for w in self.workers.drain(..) {
            w.join().map_err(|_| io::Error::other("a gzip worker thread panicked"))?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        let mut out = self.out.take().ok_or_else(finished)?;
        out.write_all(&trailer)?;
        out.flush()?;
        Ok(out)
    }

    fn sink(&mut self) -> io::Result<&mut W> {
        self.out.as_mut().ok_or_else(finished)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        if !self.header_written {
            // gzip header: deflate, no flags (no name/comment), MTIME 0, XFL 2 (best), OS 3 (Unix).
            let xfl = if self.level >= 9 { 2 } else { 0 };
            self.sink()?.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            self.header_written = true;
        }
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = Arc::new(std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK)));
        let job = Job { seq: self.next_seq, data: Arc::clone(&data), prev: self.prev.take(), last };
        self.prev = Some(data);
        self.next_seq += 1;
        let jobs = self.jobs.as_ref().ok_or_else(finished)?;
        jobs.send(job).map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one piece, then writes every piece that is next in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let piece = self.pieces.recv().map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.in_flight -= 1;
        self.done.insert(piece.seq, piece.result?);
        while let Some((bytes, crc)) = self.done.remove(&self.next_to_write) {
            self.sink()?.write_all(&bytes)?;
            self.crc.combine(&crc);
            self.next_to_write += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            let take = (BLOCK - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == BLOCK {
                self.submit(false)?;
            }
        }
        Ok(total)
    }
    /// Block borders must depend on the data alone, so flushing does not cut a block.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    /// Without `finish` (an error path), just stop the workers; the output is abandoned anyway.
    fn drop(&mut self) {
        self.jobs = None;
        while self.in_flight > 0 && self.pieces.recv().is_ok() {
            self.in_flight -= 1;
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn finished() -> io::Error {
    io::Error::other("gzip writer already finished")
}

fn worker(level: u32, jobs: &Mutex<mpsc::Receiver<Job>>, pieces: &mpsc::Sender<Piece>) {
    let mut z = Compress::new(flate2::Compression::new(level.min(9)), false);
    loop {
        // The lock is held only while taking a job, never while compressing.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panic must become an error for the collecting thread, which would otherwise wait
        // forever for this block's piece.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deflate_block(&mut z, &job)))
            .unwrap_or_else(|_| {
                z = Compress::new(flate2::Compression::new(level.min(9)), false);
                Err(io::Error::other("a gzip worker panicked while compressing"))
            });
        if pieces.send(Piece { seq: job.seq, result }).is_err() {
            return;
        }
    }
}

fn deflate_block(z: &mut Compress, job: &Job) -> io::Result<(Vec<u8>, Crc)> {
    let zerr = |e: flate2::CompressError| io::Error::other(format!("deflate: {e}"));
    z.reset();
    if let Some(prev) = &job.prev {
        z.set_dictionary(&prev[prev.len().saturating_sub(DICT)..]).map_err(zerr)?;
    }
    let input: &[u8] = &job.data;
    let flush = if job.last { FlushCompress::Finish } else { FlushCompress::Sync };
    // deflate never grows data by more than ~0.03 % plus a few bytes per stored block.
    let mut out = Vec::with_capacity(input.len() + input.len() / 16 + 256);
    let start_in = z.total_in();
    loop {
        let consumed = (z.total_in() - start_in) as usize;
        let status = z.compress_vec(&input[consumed..], &mut out, flush).map_err(zerr)?;
        let all_in = (z.total_in() - start_in) as usize == input.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError if all_in && room_left && !job.last => break,
            _ => out.reserve(64 << 10),
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 9, threads);
        for c in data.chunks(7_001) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn one_member_that_round_trips_for_every_border_case() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{} ", i % 977).into_bytes()).collect();
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, text.len()] {
            let data = &text[..len];
            let out = gz(data, 2);
            assert_eq!(gunzip(&out), data, "len {len}");
            // A single member: the strict single-member decoder reads it all.
            let mut single = Vec::new();
            flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut single).unwrap();
            assert_eq!(single, data, "len {len}");
        }
    }

    #[test]
    fn bytes_do_not_depend_on_threads_and_dictionaries_pay_off() {
        let text: Vec<u8> = (0..300_000u32).flat_map(|i| format!("word{} ", i % 5000).into_bytes()).collect();
        let one = gz(&text, 1);
        assert_eq!(one, gz(&text, 2));
        assert_eq!(one, gz(&text, 5));
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
        single.write_all(&text).unwrap();
        let single = single.finish().unwrap();
        assert!((one.len() as f64) < single.len() as f64 * 1.01, "{} vs single-stream {}", one.len(), single.len());
    }
}
