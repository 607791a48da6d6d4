//! Runs the PromQL test-script runner over the paths given on the command line
//! (`--strict` adds upstream's range-consistency check).
fn main() {
    let mut opts = osprey_promql::promqltest::RunOptions::default();
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--strict" {
            opts.strict = true;
        } else {
            paths.push(a.into());
        }
    }
    let summary = osprey_promql::promqltest::run_paths(&paths, &opts, &mut std::io::stdout());
    std::process::exit(i32::from(summary.failed > 0));
}
