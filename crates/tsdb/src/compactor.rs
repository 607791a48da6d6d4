//! Compaction: choosing blocks to merge and merging them into one new block.
//!
//! Plans follow Prometheus: blocks whose time ranges overlap are merged first; otherwise
//! adjacent blocks that together fill one window of a larger range (block_range x 3^k) are
//! merged once newer data exists past that window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use osprey_model::{HistogramSample, Labels, Sample};

use crate::block::{Block, BlockCompaction, BlockSeries};
use crate::block_writer::BlockWriter;
use crate::compact_labels::CompactLabels;
use crate::{starts, TsdbError};

/// The next set of blocks to merge, if any. `blocks` is sorted by min time.
pub(crate) fn plan(blocks: &[Arc<Block>], ranges: &[i64]) -> Option<Vec<Arc<Block>>> {
    if let Some(group) = overlapping(blocks) {
        return Some(group);
    }
    let newest = blocks.iter().map(|b| b.meta.max_time).max()?;
    for &range in ranges {
        let mut i = 0;
        while i < blocks.len() {
            let window = blocks[i].meta.min_time.div_euclid(range);
            let window_end = (window + 1).saturating_mul(range);
            let mut j = i;
            while j < blocks.len() && blocks[j].meta.min_time.div_euclid(range) == window {
                j += 1;
            }
            let group = &blocks[i..j];
            let fits = group.iter().all(|b| b.meta.max_time <= window_end);
            if group.len() >= 2 && fits && newest >= window_end {
                return Some(group.to_vec());
            }
            i = j;
        }
    }
    None
}

fn overlapping(blocks: &[Arc<Block>]) -> Option<Vec<Arc<Block>>> {
    let mut group: Vec<Arc<Block>> = Vec::new();
    let mut group_max = i64::MIN;
    for b in blocks {
        if !group.is_empty() && b.meta.min_time < group_max {
            group.push(b.clone());
        } else {
            if group.len() >= 2 {
                return Some(group);
            }
            group = vec![b.clone()];
        }
        group_max = if group.len() == 1 { b.meta.max_time } else { group_max.max(b.meta.max_time) };
    }
    (group.len() >= 2).then_some(group)
}

/// Writes one block holding all samples of `sources` (overlapping samples deduplicated) and
/// returns its directory. Sources are left in place; the caller deletes them.
pub(crate) fn compact(blocks_dir: &Path, sources: &[Arc<Block>]) -> Result<Option<PathBuf>, TsdbError> {
    let min_time = sources.iter().map(|b| b.meta.min_time).min().unwrap_or_default();
    let max_time = sources.iter().map(|b| b.meta.max_time).max().unwrap_or_default();
    // Chunk references of every series, grouped by labels (the merge order).
    let mut merged: BTreeMap<Labels, Vec<(usize, BlockSeries)>> = BTreeMap::new();
    for (bi, b) in sources.iter().enumerate() {
        for si in 0..b.num_series() {
            let series = b.series(si)?;
            merged.entry(b.labels(&series.pairs)).or_default().push((bi, series));
        }
    }
    let mut writer = BlockWriter::new(blocks_dir, min_time).map_err(TsdbError::io(blocks_dir))?;
    for (labels, parts) in merged {
        let (mut samples, mut histograms): (Vec<Sample>, Vec<HistogramSample>) = (Vec::new(), Vec::new());
        let with_starts = parts.iter().any(|(_, series)| !series.starts.is_empty());
        // Per-sample starts of every part, expanded against the part's own samples (only
        // for series with any), so that they merge exactly as the samples do.
        let mut start_pairs = Vec::new();
        for (bi, series) in &parts {
            let (from_floats, from_histograms) = (samples.len(), histograms.len());
            samples.extend(sources[*bi].samples(series, i64::MIN, i64::MAX)?);
            histograms.extend(sources[*bi].histograms(series, i64::MIN, i64::MAX)?);
            if with_starts {
                let mut times: Vec<i64> = samples[from_floats..].iter().map(|s| s.t).collect();
                times.extend(histograms[from_histograms..].iter().map(|h| h.t));
                times.sort_unstable();
                starts::expand(&series.starts, times, &mut start_pairs);
            }
        }
        if parts.len() > 1 {
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            histograms.sort_by_key(|s| s.t);
            histograms.dedup_by_key(|s| s.t);
        }
        let points = match &parts[..] {
            [(_, only)] => only.starts.clone(),
            _ if with_starts => starts::compress(&starts::merge_sources(start_pairs)),
            _ => Vec::new(),
        };
        writer
            .add_series(CompactLabels::new(&labels), &samples, &histograms, &points)
            .map_err(TsdbError::io(blocks_dir))?;
    }
    let leaves: BTreeSet<String> = sources.iter().flat_map(|b| b.meta.compaction.sources.iter().cloned()).collect();
    let compaction = BlockCompaction {
        level: sources.iter().map(|b| b.meta.compaction.level).max().unwrap_or(1) + 1,
        sources: leaves.into_iter().collect(),
        parents: sources.iter().map(|b| b.id().to_string()).collect(),
    };
    writer.finish(min_time, max_time, compaction).map_err(TsdbError::io(blocks_dir))
}
