//! The command line as users run it: `check config`, `promql-test`, and Prometheus's own
//! `promtool` querying Osprey.

mod common;

use std::process::Command;

use common::*;

#[test]
fn check_config_accepts_good_files_and_names_the_problem_in_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.yml");
    write_file(
        &good,
        "storage: {retention: 30d}\nscrape_configs: [{job_name: a, static_configs: [{targets: ['127.0.0.1:9']}]}]\n",
    );
    let out = Command::new(osprey_bin()).args(["check", "config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let bad = tmp.path().join("bad.yml");
    write_file(&bad, "storage: {retension: 30d}\n");
    let out = Command::new(osprey_bin()).args(["check", "config"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retension"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn promql_test_runs_a_script_and_reports_per_file_and_total() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("mini.test");
    write_file(
        &script,
        "load 1m\n  http_requests{job=\"a\"} 0+10x10\n\neval instant at 5m sum(http_requests)\n  {} 50\n\neval instant at 5m http_requests * 2\n  {job=\"a\"} 999\n",
    );
    let out = Command::new(osprey_bin()).arg("promql-test").arg(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a failing eval must fail the run:\n{stdout}");
    assert!(stdout.contains("mini.test: 1 passed, 1 failed, 0 skipped"), "{stdout}");
    assert!(stdout.trim_end().ends_with("total: 1 passed, 1 failed, 0 skipped"), "{stdout}");
}

#[test]
fn promtool_queries_osprey_like_a_prometheus() {
    if !require("promtool") {
        return;
    }
    let osprey = Osprey::start(&[]);
    // Recent data: promtool's label queries look at roughly the last two years.
    let t0 = (now_ms() / 60_000 - 10) * 60_000;
    let s0 = t0 / 1000;
    assert_eq!(osprey.remote_write(None, &series_batch("promtool_metric", 2, 5, t0)).status().as_u16(), 204);
    let server = format!("http://127.0.0.1:{}", osprey.port);
    let out = Command::new("promtool")
        .args(["query", "instant", &format!("--time={}", s0 + 60), &server, "sum(promtool_metric)"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("=> 1008 @[{}]", s0 + 60)), "{stdout}");

    let out = Command::new("promtool")
        .args([
            "query",
            "range",
            &format!("--start={s0}"),
            &format!("--end={}", s0 + 60),
            "--step=30s",
            &server,
            "promtool_metric{instance=\"host-0\"}",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("0 @[{s0}]")) && stdout.contains(&format!("4 @[{}]", s0 + 60)), "{stdout}");

    let out = Command::new("promtool").args(["query", "labels", &server, "instance"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>(), ["host-0", "host-1"]);
}
