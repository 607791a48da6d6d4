use super::*;

/// Parses and renders every sample as `labels value [@ts] [# exemplar]`, one per line.
fn render(body: &str, format: ExpositionFormat) -> Result<(String, Vec<MetricMetadata>), String> {
    let (mut out, mut meta) = (Vec::new(), Vec::new());
    parse(body.as_bytes(), format, &mut out, &mut meta).map_err(|e| e.to_string())?;
    let mut s = String::new();
    for p in &out {
        s.push_str(&format!("{} {}", p.labels, p.value));
        if let Some(t) = p.timestamp {
            s.push_str(&format!(" @{t}"));
        }
        if let Some(e) = &p.exemplar {
            s.push_str(&format!(" # {} {}", e.labels, e.value));
            if let Some(t) = e.timestamp {
                s.push_str(&format!(" @{t}"));
            }
        }
        s.push('\n');
    }
    Ok((s, meta))
}

fn check_text(body: &str, want: &str) {
    let (got, _) = render(body, ExpositionFormat::PrometheusText).unwrap();
    assert_eq!(got, want, "body:\n{body}");
}

fn check_om(body: &str, want: &str) {
    let (got, _) = render(body, ExpositionFormat::OpenMetrics).unwrap();
    assert_eq!(got, want, "body:\n{body}");
}

fn check_err(body: &str, format: ExpositionFormat, want: &str) {
    assert_eq!(render(body, format).unwrap_err(), want, "body:\n{body}");
}

#[test]
fn reads_the_prometheus_text_format() {
    let body = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds_sum 1.8652e-03
go_gc_duration_seconds_count 99
# some comment
   
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{ method = "post" , code="400" }    3   1395066363000
metric_without_labels 12.47
inf_and_nan{a="x"} +Inf
inf_and_nan{a="y"} -Inf
empty_label{a="",b="1"} 1
no_space_before_value{a="b"}7
"#;
    check_text(
        body,
        r#"{__name__="go_gc_duration_seconds", quantile="0.0"} 0.000049351
{__name__="go_gc_duration_seconds", quantile="0.25"} 0.00007424100000000001
{__name__="go_gc_duration_seconds_sum"} 0.0018652
{__name__="go_gc_duration_seconds_count"} 99
{__name__="http_requests_total", code="200", method="post"} 1027 @1395066363000
{__name__="http_requests_total", code="400", method="post"} 3 @1395066363000
{__name__="metric_without_labels"} 12.47
{__name__="inf_and_nan", a="x"} inf
{__name__="inf_and_nan", a="y"} -inf
{__name__="empty_label", b="1"} 1
{__name__="no_space_before_value", a="b"} 7
"#,
    );
}

#[test]
fn reads_nan_and_crlf_line_ends() {
    let (mut out, mut meta) = (Vec::new(), Vec::new());
    parse(b"a NaN\r\nb 1\r\n", ExpositionFormat::PrometheusText, &mut out, &mut meta).unwrap();
    assert!(out[0].value.is_nan());
    assert_eq!(out[1].labels.metric_name(), Some("b"));
}

#[test]
fn unescapes_label_values_and_help() {
    let body = "# HELP m Help with \\\\ and \\n newline.\nm{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"other\\t\"} 1\n";
    let (out, meta) = render(body, ExpositionFormat::PrometheusText).unwrap();
    assert_eq!(out, "{__name__=\"m\", a=\"q\\\"uote\", b=\"back\\\\slash\", c=\"new\\nline\", d=\"other\\\\t\"} 1\n");
    assert_eq!(meta[0].help, "Help with \\ and \n newline.");
}

#[test]
fn collects_metadata_per_family() {
    let body = "# HELP a_total Requests.\n# TYPE a_total counter\na_total 1\n# TYPE b gauge\n# HELP b Bees.\nb 2\n";
    let (_, meta) = render(body, ExpositionFormat::PrometheusText).unwrap();
    assert_eq!(
        meta,
        vec![
            MetricMetadata {
                metric_family_name: "a_total".into(),
                metric_type: MetricType::Counter,
                help: "Requests.".into(),
                unit: String::new(),
            },
            MetricMetadata {
                metric_family_name: "b".into(),
                metric_type: MetricType::Gauge,
                help: "Bees.".into(),
                unit: String::new(),
            },
        ]
    );
}

#[test]
fn merges_metadata_lines_of_one_family_wherever_they_are() {
    let body = "# TYPE a histogram\n# TYPE b counter\n# HELP a Ays.\na_bucket{le=\"1\"} 1\n";
    let (_, meta) = render(body, ExpositionFormat::PrometheusText).unwrap();
    let summary: Vec<_> =
        meta.iter().map(|m| (m.metric_family_name.as_str(), m.metric_type, m.help.as_str())).collect();
    assert_eq!(summary, [("a", MetricType::Histogram, "Ays."), ("b", MetricType::Counter, "")]);
    // The HELP line switched back to the histogram family, so its buckets are normalised.
    check_text(body, "{__name__=\"a_bucket\", le=\"1.0\"} 1\n");
}

#[test]
fn normalises_le_of_histograms_only() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"1e6\"} 2\n# TYPE g gauge\ng{le=\"1\"} 1\n";
    check_text(
        body,
        "{__name__=\"h_bucket\", le=\"1.0\"} 1\n{__name__=\"h_bucket\", le=\"+Inf\"} 2\n{__name__=\"h_bucket\", le=\"1e+06\"} 2\n{__name__=\"g\", le=\"1\"} 1\n",
    );
}

#[test]
fn reads_openmetrics_with_exemplars_units_and_created() {
    let body = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
# TYPE hist histogram
hist_bucket{le="0.01"} 0 # {trace_id="KOO5S4vxi0o"} 0.67 1.6e9
hist_bucket{le="+Inf"} 17
hist_count 17
hist_sum 324789.3
# TYPE build info
build_info{version="1.2"} 1
# TYPE state stateset
state{state="a"} 1
state{state="bb"} 0
# TYPE gh gaugehistogram
gh_bucket{le="1"} 2
gh_gcount 2
gh_gsum 1
gh_created 1
# TYPE other_created gauge
other_created 5
# EOF
"#;
    check_om(
        body,
        r#"{__name__="acme_http_router_request_seconds_sum", method="GET", path="/api/v1"} 9036.32
{__name__="acme_http_router_request_seconds_count", method="GET", path="/api/v1"} 807283
{__name__="foo_total"} 17 @1520879607789 # {id="counter-test"} 5
{__name__="hist_bucket", le="0.01"} 0 # {trace_id="KOO5S4vxi0o"} 0.67 @1600000000000
{__name__="hist_bucket", le="+Inf"} 17
{__name__="hist_count"} 17
{__name__="hist_sum"} 324789.3
{__name__="build_info", version="1.2"} 1
{__name__="state", state="a"} 1
{__name__="state", state="bb"} 0
{__name__="gh_bucket", le="1.0"} 2
{__name__="gh_gcount"} 2
{__name__="gh_gsum"} 1
{__name__="other_created"} 5
"#,
    );
    let (_, meta) = render(body, ExpositionFormat::OpenMetrics).unwrap();
    let summary = &meta[0];
    assert_eq!(summary.metric_type, MetricType::Summary);
    assert_eq!(summary.unit, "seconds");
    assert_eq!(summary.help, "Latency though all of ACME's HTTP request router.");
    let types: Vec<_> = meta.iter().map(|m| m.metric_type.as_str()).collect();
    assert_eq!(types, ["summary", "counter", "histogram", "info", "stateset", "gaugehistogram", "gauge"]);
}

#[test]
fn openmetrics_needs_eof_and_nothing_after_it() {
    check_om("a 1\n# EOF", "{__name__=\"a\"} 1\n");
    check_err("a 1\n", ExpositionFormat::OpenMetrics, "line 2: an OpenMetrics body must end with '# EOF'");
    check_err(
        "# EOF\na 1\n",
        ExpositionFormat::OpenMetrics,
        "line 2: content after '# EOF'; the end marker must be the last line",
    );
    check_err(
        "# EOF\n\n",
        ExpositionFormat::OpenMetrics,
        "line 2: content after '# EOF'; the end marker must be the last line",
    );
    // In the Prometheus format it is an ordinary comment.
    check_text("# EOF\na 1\n", "{__name__=\"a\"} 1\n");
}

#[test]
fn reports_what_is_wrong_and_where() {
    use ExpositionFormat::{OpenMetrics as Om, PrometheusText as Text};
    for (body, format, want) in [
        ("a 1\nb 2\nc abc\n", Text, r#"line 3: expected value after metric, got "abc""#),
        ("c\n", Text, r#"line 1: expected value after metric, got """#),
        ("c{a=\"1\"}\n", Text, r#"line 1: expected value after metric, got """#),
        ("1abc 1\n", Text, r#"line 1: expected a metric name, got "1abc""#),
        ("a{1=\"x\"} 1\n", Text, r#"line 1: expected a label name, got "1""#),
        ("a{b \"x\"} 1\n", Text, r#"line 1: expected '=' after label name "b""#),
        ("a{b=x} 1\n", Text, r#"line 1: expected a double-quoted value for label "b""#),
        ("a{b=\"x} 1\n", Text, r#"line 1: label value of "b" is missing its closing quote"#),
        ("a{b=\"x\" c=\"y\"} 1\n", Text, r#"line 1: expected ',' or '}' after a label, got "c=\"y\"} 1""#),
        (
            "a{b=\"x\",b=\"y\"} 1\n",
            Text,
            r#"line 1: label name "b" appears twice in one series; each label may be given once"#,
        ),
        ("a 1 1.5\n", Text, r#"line 1: expected a timestamp (integer milliseconds) after the value, got "1.5""#),
        (
            "a 1 2 3\n",
            Text,
            r#"line 1: unexpected "3" after the sample; a sample line is: name{labels} value [timestamp]"#,
        ),
        (
            "a 1 # {a=\"b\"} 1\n",
            Text,
            "line 1: exemplars are only allowed in OpenMetrics; serve the page as application/openmetrics-text",
        ),
        (
            "# TYPE a bogus\n",
            Text,
            r#"line 1: unknown metric type "bogus"; known are counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown, untyped"#,
        ),
        ("# TYPE\n", Text, "line 1: malformed TYPE line: expected '# TYPE <metric name> ...'"),
        ("a 1 x\n# EOF\n", Om, r#"line 1: expected a timestamp (seconds) after the value, got "x""#),
        ("a 1 # trace 1\n# EOF\n", Om, r#"line 1: expected '{' opening the exemplar's labels, got "trace""#),
        ("a 1 # {t=\"x\"} y\n# EOF\n", Om, r#"line 1: expected the exemplar's value, got "y""#),
        (
            "# random comment\n# EOF\n",
            Om,
            r##"line 1: OpenMetrics allows only '# HELP', '# TYPE', '# UNIT' and '# EOF' comments, got "# random comment""##,
        ),
    ] {
        check_err(body, format, want);
    }
}

#[test]
fn rejects_invalid_utf8_with_its_line() {
    let err = parse(b"ok 1\n\xff 1\n", ExpositionFormat::PrometheusText, &mut Vec::new(), &mut Vec::new());
    assert_eq!(err.unwrap_err().to_string(), "line 2: the body is not valid UTF-8");
}

#[test]
fn long_tokens_are_clipped_in_errors() {
    let body = format!("a {}\n", "x".repeat(100));
    let err = render(&body, ExpositionFormat::PrometheusText).unwrap_err();
    assert_eq!(err, format!("line 1: expected value after metric, got \"{}...\"", "x".repeat(40)));
}

#[test]
fn content_types() {
    use ExpositionFormat::*;
    assert_eq!(ExpositionFormat::from_content_type("text/plain; version=0.0.4; charset=utf-8"), Some(PrometheusText));
    assert_eq!(
        ExpositionFormat::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Some(OpenMetrics)
    );
    assert_eq!(ExpositionFormat::from_content_type("Application/OpenMetrics-Text"), Some(OpenMetrics));
    assert_eq!(
        ExpositionFormat::from_content_type("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"),
        None
    );
    assert_eq!(ExpositionFormat::from_content_type(""), None);
    for f in [PrometheusText, OpenMetrics] {
        assert_eq!(ExpositionFormat::from_content_type(f.content_type()), Some(f));
    }
}

/// A node_exporter-like page of about 2000 lines.
fn big_page() -> String {
    let mut s = String::new();
    for family in 0..200 {
        s.push_str(&format!("# HELP node_metric_{family} Some help text for this metric family.\n"));
        s.push_str(&format!("# TYPE node_metric_{family} gauge\n"));
        for series in 0..8 {
            s.push_str(&format!(
                "node_metric_{family}{{device=\"sda{series}\",mode=\"idle\",cpu=\"{series}\"}} {}.{}e+03\n",
                family * series,
                series
            ));
        }
    }
    s
}

#[test]
fn parses_a_large_page_quickly_and_completely() {
    let page = big_page();
    let (mut out, mut meta) = (Vec::new(), Vec::new());
    let start = std::time::Instant::now();
    parse(page.as_bytes(), ExpositionFormat::PrometheusText, &mut out, &mut meta).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out.len(), 1600);
    assert_eq!(meta.len(), 200);
    // Generous bound so debug builds on a loaded machine pass; release takes ~0.3 ms.
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn never_panics_on_truncations_of_valid_input() {
    let body = "# HELP a x\\\n# TYPE h histogram\nh_bucket{le=\"1\",a=\"\\\\\\\"\"} 1 # {t=\"1\"} 2 3\n# EOF\n";
    for format in [ExpositionFormat::PrometheusText, ExpositionFormat::OpenMetrics] {
        for end in 0..=body.len() {
            let (mut out, mut meta) = (Vec::new(), Vec::new());
            let _ = parse(&body.as_bytes()[..end], format, &mut out, &mut meta);
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines built from the format's own pieces, so the parser's deeper states are reached.
    fn fragment() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a",
            "b_total",
            "_created",
            "{",
            "}",
            "=",
            "\"",
            "\\",
            "\\n",
            ",",
            " ",
            "\t",
            "# ",
            "HELP ",
            "TYPE ",
            "UNIT ",
            "EOF",
            "counter",
            "histogram",
            "le",
            "1",
            "-Inf",
            "NaN",
            "1.5e9",
            "\n",
            "\r\n",
            "é",
            "#",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #[test]
        fn never_panics_and_samples_always_have_names(pieces in prop::collection::vec(fragment(), 0..40)) {
            let body = pieces.concat();
            for format in [ExpositionFormat::PrometheusText, ExpositionFormat::OpenMetrics] {
                let (mut out, mut meta) = (Vec::new(), Vec::new());
                if parse(body.as_bytes(), format, &mut out, &mut meta).is_ok() {
                    prop_assert!(out.iter().all(|s| s.labels.metric_name().is_some()));
                }
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            for format in [ExpositionFormat::PrometheusText, ExpositionFormat::OpenMetrics] {
                let _ = parse(&bytes, format, &mut Vec::new(), &mut Vec::new());
            }
        }
    }
}
