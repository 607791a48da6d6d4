//! Runs the PromQL test-script runner over the paths given on the command line.
fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let summary =
        osprey_promql::promqltest::run_paths(&paths, &Default::default(), &mut std::io::stdout());
    std::process::exit(i32::from(summary.failed > 0));
}
