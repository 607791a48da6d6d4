//! From a scraped page to the batch written to storage: target labels merged in (with
//! Prometheus's `honor_labels` rules), metric relabelling, `sample_limit`, staleness markers
//! for series that disappeared, and the synthetic `up`/`scrape_*` series. No I/O: the scrape
//! loop hands it the page and a clock reading.

use std::collections::HashSet;
use std::time::Duration;

use osprey_model::{
    Exemplar, Labels, LabelsBuilder, MetricMetadata, Sample, TimeSeries, Timestamp, WriteRequest, METRIC_NAME,
    STALE_NAN,
};
use osprey_wire::exposition::{self, ExpositionFormat, ParsedSample};

use crate::config::JobConfig;
use crate::target::Target;

/// What a target's previous scrapes left behind, needed to write staleness markers.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    /// Series of the last scrape that carried no timestamp of their own.
    series: HashSet<Labels>,
    /// Whether the synthetic series have been written (so they need markers at the end).
    reported: bool,
    metadata: Vec<MetricMetadata>,
    /// Reused between scrapes.
    parsed: Vec<ParsedSample>,
}

/// The counts that become the synthetic series.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ScrapeReport {
    pub(crate) error: Option<String>,
    pub(crate) samples_scraped: usize,
    pub(crate) samples_post_relabel: usize,
    pub(crate) series_added: usize,
}

/// A fetched page or why fetching failed.
pub(crate) type Fetched = Result<(Vec<u8>, ExpositionFormat), String>;

/// Builds the write for one scrape at `ts`: samples (or, on failure, none), markers for every
/// series of the previous scrape that is gone, and the synthetic series.
pub(crate) fn build_write(
    fetched: Fetched,
    job: &JobConfig,
    target: &Target,
    cache: &mut SeriesCache,
    ts: Timestamp,
    duration: Duration,
) -> (WriteRequest, ScrapeReport) {
    let mut request = WriteRequest::default();
    let mut report = ScrapeReport::default();
    let mut current = HashSet::new();
    let outcome = fetched.and_then(|(body, format)| {
        let mut metadata = Vec::new();
        cache.parsed.clear();
        exposition::parse(&body, format, &mut cache.parsed, &mut metadata)
            .map_err(|e| format!("parsing the scraped page: {e}"))?;
        Ok(metadata)
    });
    match outcome {
        Ok(metadata) => {
            report.samples_scraped = cache.parsed.len();
            let appended = append_samples(&mut request, &mut current, cache, job, target, ts);
            report.samples_post_relabel = request.series.len();
            let limit = job.config.sample_limit;
            let within_sample_limit = limit == 0 || request.series.len() as u64 <= limit;
            if let Err(error) = appended {
                report.error = Some(error);
            } else if !within_sample_limit {
                report.error = Some(format!(
                    "sample limit exceeded: {} samples after metric relabelling, sample_limit is {limit}",
                    report.samples_post_relabel
                ));
            } else if metadata != cache.metadata {
                request.metadata = metadata.clone();
                cache.metadata = metadata;
            }
        }
        Err(error) => report.error = Some(error),
    }
    if report.error.is_some() {
        // A failed scrape stores nothing but markers and the synthetic series.
        request.series.clear();
        current.clear();
        report.samples_post_relabel = 0;
    }
    report.series_added = current.difference(&cache.series).count();
    for gone in cache.series.difference(&current) {
        request.series.push(stale(gone.clone(), ts));
    }
    cache.series = current;
    append_report(&mut request, target, ts, duration, &report);
    cache.reported = true;
    (request, report)
}

/// Markers for everything the target's last scrape wrote, for when the target goes away.
pub(crate) fn end_of_run(target: &Target, cache: &mut SeriesCache, ts: Timestamp) -> WriteRequest {
    let mut request = WriteRequest::default();
    request.series.extend(cache.series.drain().map(|labels| stale(labels, ts)));
    if std::mem::take(&mut cache.reported) {
        for name in REPORT_NAMES {
            request.series.push(stale(report_labels(target, name), ts));
        }
    }
    request
}

fn stale(labels: Labels, ts: Timestamp) -> TimeSeries {
    TimeSeries { labels, samples: vec![Sample::new(ts, STALE_NAN)], ..TimeSeries::default() }
}

/// Adds the page's samples; fails (as the whole scrape then fails) on a series over the
/// label limits.
fn append_samples(
    request: &mut WriteRequest,
    current: &mut HashSet<Labels>,
    cache: &SeriesCache,
    job: &JobConfig,
    target: &Target,
    ts: Timestamp,
) -> Result<(), String> {
    let config = &job.config;
    // Every series written, for de-duplication; minus those with their own timestamps
    // (unless tracked) it becomes the set that staleness is judged against.
    let mut written = HashSet::with_capacity(cache.parsed.len());
    let mut untracked = Vec::new();
    for parsed in &cache.parsed {
        let labels = merge_target_labels(&parsed.labels, target, config.honor_labels);
        let Some(labels) = osprey_relabel::process(labels, &config.metric_relabel_configs) else {
            continue;
        };
        // Prometheus keeps the first of two samples for one series in a page.
        if labels.is_empty() || !written.insert(labels.clone()) {
            continue;
        }
        check_label_limits(&labels, config)?;
        let own_timestamp = parsed.timestamp.filter(|_| config.honor_timestamps);
        let t = own_timestamp.unwrap_or(ts);
        if own_timestamp.is_some() && !config.track_timestamps_staleness {
            untracked.push(labels.clone());
        }
        let exemplars = parsed
            .exemplar
            .iter()
            .map(|e| Exemplar { labels: e.labels.clone(), t: e.timestamp.unwrap_or(t), v: e.value })
            .collect();
        request.series.push(TimeSeries {
            labels,
            samples: vec![Sample::new(t, parsed.value)],
            exemplars,
            histograms: Vec::new(),
            start_timestamps: Vec::new(),
        });
    }
    for labels in &untracked {
        written.remove(labels);
    }
    *current = written;
    Ok(())
}

/// Prometheus's `verifyLabelLimits`, with its messages.
fn check_label_limits(labels: &Labels, config: &crate::ScrapeConfig) -> Result<(), String> {
    let metric: String = labels.metric_name().unwrap_or("").chars().take(50).collect();
    let count = config.label_limit;
    if count > 0 && labels.len() as u64 > count {
        return Err(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {count})",
            labels.len()
        ));
    }
    let (name_limit, value_limit) = (config.label_name_length_limit, config.label_value_length_limit);
    for l in labels.iter() {
        let name: String = l.name.chars().take(50).collect();
        if name_limit > 0 && l.name.len() as u64 > name_limit {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {name_limit})",
                l.name.len()
            ));
        }
        if value_limit > 0 && l.value.len() as u64 > value_limit {
            let value: String = l.value.chars().take(50).collect();
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, length: {}, limit: {value_limit})",
                l.value.len()
            ));
        }
    }
    Ok(())
}

/// Prometheus's `mutateSampleLabels` before metric relabelling: with `honor_labels` the page
/// wins; otherwise the target wins and the page's clashing values move to `exported_<name>`
/// (prefixed again until the name is free), shortest names first.
fn merge_target_labels(scraped: &Labels, target: &Target, honor_labels: bool) -> Labels {
    let mut b = scraped.to_builder();
    if honor_labels {
        for l in target.public.iter().filter(|l| scraped.get(&l.name).is_none()) {
            b.set(l.name.as_str(), l.value.as_str());
        }
        return b.build();
    }
    let mut conflicts = Vec::new();
    for l in target.public.iter() {
        if let Some(existing) = scraped.get(&l.name) {
            conflicts.push((l.name.as_str(), existing));
        }
        b.set(l.name.as_str(), l.value.as_str());
    }
    conflicts.sort_by_key(|(name, _)| name.len());
    for (name, value) in conflicts {
        let mut exported = name.to_string();
        loop {
            exported.insert_str(0, "exported_");
            if b.get(&exported).unwrap_or("").is_empty() {
                b.set(exported, value);
                break;
            }
        }
    }
    b.build()
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn report_labels(target: &Target, name: &str) -> Labels {
    let mut b: LabelsBuilder = target.public.to_builder();
    b.set(METRIC_NAME, name);
    b.build()
}

fn append_report(request: &mut WriteRequest, target: &Target, ts: Timestamp, duration: Duration, r: &ScrapeReport) {
    let up = if r.error.is_none() { 1.0 } else { 0.0 };
    let values =
        [up, duration.as_secs_f64(), r.samples_scraped as f64, r.samples_post_relabel as f64, r.series_added as f64];
    for (name, value) in REPORT_NAMES.into_iter().zip(values) {
        request.series.push(TimeSeries {
            labels: report_labels(target, name),
            samples: vec![Sample::new(ts, value)],
            exemplars: Vec::new(),
            histograms: Vec::new(),
            start_timestamps: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, ScrapeConfig, ScrapeGlobals};
    use crate::target::{build_targets, TargetGroup};
    use osprey_model::{is_stale_nan, TenantId};

    fn setup(extra: &str) -> (JobConfig, Target) {
        let yaml = format!("- job_name: j\n{extra}");
        let configs: Vec<ScrapeConfig> = serde_norway::from_str(&yaml).unwrap();
        let job = resolve(&ScrapeGlobals::default(), configs, &TenantId::default_tenant()).unwrap().remove(0);
        let group = TargetGroup { targets: vec!["h:1".into()], ..Default::default() };
        let target = build_targets(&[group], &job).0.remove(0);
        (job, target)
    }

    fn page(text: &str) -> Fetched {
        Ok((text.as_bytes().to_vec(), ExpositionFormat::PrometheusText))
    }

    /// Renders the write as sorted `labels value@t` lines, markers as `STALE`.
    fn render(request: &WriteRequest) -> Vec<String> {
        let mut lines: Vec<String> = request
            .series
            .iter()
            .map(|s| {
                let v = s.samples[0].v;
                let v = if is_stale_nan(v) { "STALE".to_string() } else { v.to_string() };
                format!("{} {}@{}", s.labels, v, s.samples[0].t)
            })
            .collect();
        lines.sort();
        lines
    }

    const D: Duration = Duration::from_millis(250);

    #[test]
    fn writes_samples_with_target_labels_and_report() {
        let (job, target) = setup("");
        let mut cache = SeriesCache::default();
        let (req, report) = build_write(page("a 1\nb{x=\"y\"} 2 500\n"), &job, &target, &mut cache, 1000, D);
        assert_eq!(report, ScrapeReport { error: None, samples_scraped: 2, samples_post_relabel: 2, series_added: 1 });
        assert_eq!(
            render(&req),
            [
                r#"{__name__="a", instance="h:1", job="j"} 1@1000"#,
                r#"{__name__="b", instance="h:1", job="j", x="y"} 2@500"#,
                r#"{__name__="scrape_duration_seconds", instance="h:1", job="j"} 0.25@1000"#,
                r#"{__name__="scrape_samples_post_metric_relabeling", instance="h:1", job="j"} 2@1000"#,
                r#"{__name__="scrape_samples_scraped", instance="h:1", job="j"} 2@1000"#,
                r#"{__name__="scrape_series_added", instance="h:1", job="j"} 1@1000"#,
                r#"{__name__="up", instance="h:1", job="j"} 1@1000"#,
            ]
        );
    }

    #[test]
    fn marks_vanished_series_stale_and_all_on_failure() {
        let (job, target) = setup("");
        let mut cache = SeriesCache::default();
        build_write(page("a 1\nb 2\n"), &job, &target, &mut cache, 1000, D);
        let (req, report) = build_write(page("a 1\n"), &job, &target, &mut cache, 2000, D);
        assert_eq!(report.series_added, 0);
        assert!(render(&req).contains(&r#"{__name__="b", instance="h:1", job="j"} STALE@2000"#.to_string()));

        let (req, report) = build_write(Err("connection refused".into()), &job, &target, &mut cache, 3000, D);
        assert_eq!(report.error.as_deref(), Some("connection refused"));
        let lines = render(&req);
        assert!(lines.contains(&r#"{__name__="a", instance="h:1", job="j"} STALE@3000"#.to_string()));
        assert!(lines.contains(&r#"{__name__="up", instance="h:1", job="j"} 0@3000"#.to_string()));

        // When the target goes away, its synthetic series are marked too.
        let lines = render(&end_of_run(&target, &mut cache, 4000));
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| l.ends_with("STALE@4000")));
    }

    #[test]
    fn parse_errors_fail_the_scrape() {
        let (job, target) = setup("");
        let mut cache = SeriesCache::default();
        let (req, report) = build_write(page("a 1\nb abc\n"), &job, &target, &mut cache, 1000, D);
        assert_eq!(
            report.error.as_deref(),
            Some("parsing the scraped page: line 2: expected value after metric, got \"abc\"")
        );
        assert_eq!(req.series.len(), 5, "only the synthetic series");
    }

    #[test]
    fn honor_labels_and_exported_prefix() {
        let body = "a{job=\"page\",instance=\"p\",exported_job=\"taken\"} 1\n";
        let (job, target) = setup("");
        let (req, _) = build_write(page(body), &job, &target, &mut SeriesCache::default(), 1000, D);
        assert_eq!(
            render(&req)[0],
            r#"{__name__="a", exported_exported_job="page", exported_instance="p", exported_job="taken", instance="h:1", job="j"} 1@1000"#
        );
        let (job, target) = setup("  honor_labels: true\n");
        let (req, _) = build_write(page(body), &job, &target, &mut SeriesCache::default(), 1000, D);
        assert_eq!(render(&req)[0], r#"{__name__="a", exported_job="taken", instance="p", job="page"} 1@1000"#);
    }

    #[test]
    fn honor_timestamps_off_uses_scrape_time() {
        let (job, target) = setup("  honor_timestamps: false\n");
        let (req, _) = build_write(page("a 1 500\n"), &job, &target, &mut SeriesCache::default(), 1000, D);
        assert_eq!(render(&req)[0], r#"{__name__="a", instance="h:1", job="j"} 1@1000"#);
    }

    #[test]
    fn metric_relabelling_and_sample_limit() {
        let (job, target) = setup(
            "  sample_limit: 2\n  metric_relabel_configs: [{source_labels: [__name__], regex: 'drop_.*', action: drop}]\n",
        );
        let mut cache = SeriesCache::default();
        let (_, report) = build_write(page("a 1\nb 1\ndrop_me 1\ndrop_too 1\n"), &job, &target, &mut cache, 1000, D);
        assert_eq!(report.error, None);
        assert_eq!((report.samples_scraped, report.samples_post_relabel), (4, 2));
        let (req, report) = build_write(page("a 1\nb 1\nc 1\n"), &job, &target, &mut cache, 2000, D);
        assert_eq!(
            report.error.as_deref(),
            Some("sample limit exceeded: 3 samples after metric relabelling, sample_limit is 2")
        );
        let lines = render(&req);
        assert!(lines.contains(&r#"{__name__="a", instance="h:1", job="j"} STALE@2000"#.to_string()), "{lines:?}");
        assert!(lines.contains(&r#"{__name__="up", instance="h:1", job="j"} 0@2000"#.to_string()));
    }

    #[test]
    fn label_limits_fail_the_scrape() {
        for (limit, want) in [
            ("label_limit: 3", "label_limit exceeded (metric: a, number of labels: 4, limit: 3)"),
            (
                "label_name_length_limit: 4",
                "label_name_length_limit exceeded (metric: a, label name: __name__, length: 8, limit: 4)",
            ),
            (
                "label_value_length_limit: 4",
                "label_value_length_limit exceeded (metric: a, label name: x, value: \"long value\", length: 10, limit: 4)",
            ),
        ] {
            let (job, target) = setup(&format!("  {limit}\n"));
            let mut cache = SeriesCache::default();
            let (req, report) = build_write(page("a{x=\"long value\"} 1\n"), &job, &target, &mut cache, 1000, D);
            assert_eq!(report.error.as_deref(), Some(want));
            assert_eq!(req.series.len(), 5, "only the synthetic series");
        }
    }

    #[test]
    fn series_with_own_timestamps_are_marked_stale_only_when_tracked() {
        for (extra, want_marker) in [("", false), ("  track_timestamps_staleness: true\n", true)] {
            let (job, target) = setup(extra);
            let mut cache = SeriesCache::default();
            build_write(page("a 1 500\n"), &job, &target, &mut cache, 1000, D);
            let (req, _) = build_write(page(""), &job, &target, &mut cache, 2000, D);
            let marker = r#"{__name__="a", instance="h:1", job="j"} STALE@2000"#.to_string();
            assert_eq!(render(&req).contains(&marker), want_marker, "{extra}");
        }
    }

    #[test]
    fn keeps_exemplars_and_sends_metadata_when_it_changes() {
        let (job, target) = setup("");
        let body = "# TYPE a counter\na_total 1 # {trace_id=\"abc\"} 0.5\n# EOF\n";
        let fetched = || Ok((body.as_bytes().to_vec(), ExpositionFormat::OpenMetrics));
        let mut cache = SeriesCache::default();
        let (req, _) = build_write(fetched(), &job, &target, &mut cache, 1000, D);
        let series = req.series.iter().find(|s| s.labels.metric_name() == Some("a_total")).unwrap();
        assert_eq!(series.exemplars[0].labels.get("trace_id"), Some("abc"));
        assert_eq!(series.exemplars[0].t, 1000);
        assert_eq!(req.metadata.len(), 1);
        let (req, _) = build_write(fetched(), &job, &target, &mut cache, 2000, D);
        assert!(req.metadata.is_empty(), "unchanged metadata is not re-sent");
    }
}
