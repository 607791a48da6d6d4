//! The write-ahead log of one tenant: numbered segment files of CRC-framed records
//! (`record.rs`), plus at most one checkpoint that replaces the segments before it.
//!
//! Durability: [`Wal::append`] issues one `write()` per batch before returning, so an
//! acknowledged batch survives the process being killed; fsync happens per the
//! [`crate::WalSync`] policy, with concurrent callers sharing one fsync (group commit).
//! Replay stops a file at its first bad record, truncates it there and reports the loss: a torn
//! tail never keeps the engine from starting.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::record::{decode_frame, Record};

/// What replay had to drop from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRepair {
    pub file: PathBuf,
    /// Where the first bad record starts; the file was truncated to this length.
    pub offset: u64,
    pub bytes_dropped: u64,
    /// At least the damaged record; more if the dropped bytes held several.
    pub records_dropped: u64,
    pub reason: String,
}

pub(crate) struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    /// Held while fsyncing so that concurrent callers wait for, and then share, one fsync.
    sync_lock: Mutex<()>,
    written: AtomicU64,
    synced: AtomicU64,
    fsyncs: AtomicU64,
}

struct Writer {
    file: Arc<File>,
    segment: u64,
    size: u64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

fn checkpoint_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("checkpoint.{n:08}"))
}

fn open_segment(dir: &Path, n: u64) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(segment_path(dir, n))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Makes a created, renamed or deleted directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replays every record of one file; on the first bad record truncates the file there.
fn replay_file(path: &Path, on_record: &mut dyn FnMut(Record)) -> io::Result<(u64, Option<WalRepair>)> {
    let data = fs::read(path)?;
    let (mut pos, mut records) = (0usize, 0u64);
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((record, n)) => {
                on_record(record);
                records += 1;
                pos += n;
            }
            Err(e) => {
                let repair = WalRepair {
                    file: path.to_path_buf(),
                    offset: pos as u64,
                    bytes_dropped: (data.len() - pos) as u64,
                    records_dropped: count_frames_after_damage(&data[pos..]),
                    reason: e.to_string(),
                };
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(pos as u64)?;
                f.sync_all()?;
                tracing::warn!(
                    file = %path.display(),
                    offset = pos,
                    bytes_dropped = repair.bytes_dropped,
                    records_dropped = repair.records_dropped,
                    reason = %repair.reason,
                    "wal truncated at damaged record; data after it is lost"
                );
                return Ok((records, Some(repair)));
            }
        }
    }
    Ok((records, None))
}

/// Counts the damaged record plus any intact-looking frames after it, for the loss report.
fn count_frames_after_damage(data: &[u8]) -> u64 {
    let header_len = u32::from_le_bytes(data.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4])) as usize;
    let mut pos = crate::record::FRAME_HEADER_LEN + header_len;
    let mut count = 1;
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((_, n)) => {
                count += 1;
                pos += n;
            }
            Err(_) => break,
        }
    }
    count
}

/// Parses `NNNNNNNN` and `checkpoint.NNNNNNNN` names.
enum WalFile {
    Segment(u64),
    Checkpoint(u64),
    Temporary,
}

fn classify(name: &str) -> Option<WalFile> {
    if name.ends_with(".tmp") {
        return Some(WalFile::Temporary);
    }
    if let Some(n) = name.strip_prefix("checkpoint.") {
        return n.parse().ok().map(WalFile::Checkpoint);
    }
    name.parse().ok().map(WalFile::Segment)
}

impl Wal {
    /// Opens the WAL in `dir`, replaying the checkpoint and segments into `on_record`, and
    /// starts a fresh segment for new writes.
    pub(crate) fn open(
        dir: &Path,
        segment_bytes: u64,
        on_record: &mut dyn FnMut(Record),
    ) -> io::Result<(Wal, u64, Vec<WalRepair>)> {
        fs::create_dir_all(dir)?;
        let (mut segments, mut checkpoints) = (Vec::new(), Vec::new());
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            match classify(&name.to_string_lossy()) {
                Some(WalFile::Segment(n)) => segments.push(n),
                Some(WalFile::Checkpoint(n)) => checkpoints.push(n),
                Some(WalFile::Temporary) => fs::remove_file(entry.path())?,
                None => {}
            }
        }
        segments.sort_unstable();
        checkpoints.sort_unstable();
        let (mut records, mut repairs) = (0, Vec::new());
        let first_kept = checkpoints.last().copied().unwrap_or(0);
        // A crash after writing a checkpoint but before deleting what it replaces leaves both.
        for &n in &checkpoints[..checkpoints.len().saturating_sub(1)] {
            fs::remove_file(checkpoint_path(dir, n))?;
        }
        for &n in segments.iter().filter(|&&n| n < first_kept) {
            fs::remove_file(segment_path(dir, n))?;
        }
        segments.retain(|&n| n >= first_kept);
        let files = checkpoints.last().map(|&n| checkpoint_path(dir, n)).into_iter();
        for path in files.chain(segments.iter().map(|&n| segment_path(dir, n))) {
            let (n, repair) = replay_file(&path, on_record)?;
            records += n;
            repairs.extend(repair);
        }
        let next = segments.last().map_or(first_kept, |&n| n + 1);
        let file = open_segment(dir, next)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: Mutex::new(Writer { file: Arc::new(file), segment: next, size: 0 }),
            sync_lock: Mutex::new(()),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
        };
        Ok((wal, records, repairs))
    }

    /// Writes `buf` (whole records) with a single `write()`; fsyncs first when `fsync`.
    pub(crate) fn append(&self, buf: &[u8], fsync: bool) -> io::Result<()> {
        let end = {
            let mut w = self.writer.lock();
            if w.size > 0 && w.size + buf.len() as u64 > self.segment_bytes {
                self.rotate_locked(&mut w)?;
            }
            if let Err(e) = (&*w.file).write_all(buf) {
                // Cut off a partial write so later records do not land behind garbage.
                let _ = w.file.set_len(w.size);
                return Err(e);
            }
            w.size += buf.len() as u64;
            self.written.fetch_add(buf.len() as u64, Ordering::SeqCst) + buf.len() as u64
        };
        if fsync {
            self.sync_to(end)?;
        }
        Ok(())
    }

    /// fsyncs everything written so far.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.sync_to(self.written.load(Ordering::SeqCst))
    }

    fn sync_to(&self, end: u64) -> io::Result<()> {
        let _guard = self.sync_lock.lock();
        if self.synced.load(Ordering::SeqCst) >= end {
            return Ok(());
        }
        // Read the target before taking the file: bytes up to it are either in this file or in
        // an earlier segment, which rotation fsynced.
        let target = self.written.load(Ordering::SeqCst);
        let file = self.writer.lock().file.clone();
        file.sync_data()?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.synced.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    fn rotate_locked(&self, w: &mut Writer) -> io::Result<()> {
        w.file.sync_data()?;
        let next = w.segment + 1;
        w.file = Arc::new(open_segment(&self.dir, next)?);
        w.segment = next;
        w.size = 0;
        Ok(())
    }

    /// Starts a new segment; returns its number. Everything written before is in older ones.
    pub(crate) fn rotate(&self) -> io::Result<u64> {
        let mut w = self.writer.lock();
        self.rotate_locked(&mut w)?;
        Ok(w.segment)
    }

    /// Atomically replaces all segments before `first_kept` with a checkpoint holding `body`
    /// (whole records): write a temporary file, fsync, rename, then delete what it replaces.
    pub(crate) fn checkpoint(&self, first_kept: u64, body: &[u8]) -> io::Result<()> {
        let path = checkpoint_path(&self.dir, first_kept);
        let tmp = path.with_extension(format!("{first_kept:08}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let stale = match classify(&entry.file_name().to_string_lossy()) {
                Some(WalFile::Segment(n)) | Some(WalFile::Checkpoint(n)) => n < first_kept,
                _ => false,
            };
            if stale {
                fs::remove_file(entry.path())?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Bytes of all WAL files on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// Bytes appended since open.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub(crate) fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub(crate) fn needs_sync(&self) -> bool {
        self.synced.load(Ordering::SeqCst) < self.written.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode_samples;
    use osprey_model::Sample;

    fn samples_record(t: i64) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_samples(&mut buf, &[(1, Sample::new(t, t as f64))]);
        buf
    }

    fn replay(dir: &Path) -> (Vec<Record>, Vec<WalRepair>) {
        let mut records = Vec::new();
        let (_, _, repairs) = Wal::open(dir, 1 << 20, &mut |r| records.push(r)).unwrap();
        (records, repairs)
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = Wal::open(dir.path(), 1 << 20, &mut |_| {}).unwrap();
            for t in 0..3 {
                wal.append(&samples_record(t), t == 2).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();
        let (records, repairs) = replay(dir.path());
        assert_eq!(records.len(), 2);
        assert_eq!(repairs.len(), 1);
        assert_eq!(repairs[0].records_dropped, 1);
        assert_eq!(repairs[0].bytes_dropped, len / 3 - 3);
        // Repaired: a second open finds nothing wrong.
        let (records, repairs) = replay(dir.path());
        assert_eq!((records.len(), repairs.len()), (2, 0));
    }

    #[test]
    fn checkpoint_replaces_older_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = Wal::open(dir.path(), 1 << 20, &mut |_| {}).unwrap();
            wal.append(&samples_record(1), false).unwrap();
            let first = wal.rotate().unwrap();
            wal.append(&samples_record(3), true).unwrap();
            wal.checkpoint(first, &samples_record(2)).unwrap();
        }
        let (records, _) = replay(dir.path());
        let ts: Vec<i64> = records
            .iter()
            .map(|r| match r {
                Record::Samples(s) => s[0].1.t,
                _ => -1,
            })
            .collect();
        assert_eq!(ts, vec![2, 3]);
    }
}
