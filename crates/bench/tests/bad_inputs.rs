//! Bad outputs, run through the binary as a user would: an output that is one of the inputs.

use assert_cmd::Command;
use predicates::str::contains;

#[test]
fn the_report_may_not_overwrite_the_results_it_renders() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.json");
    std::fs::write(&results, "{}").unwrap();
    for flag in ["--out", "--json"] {
        Command::cargo_bin("bench")
            .unwrap()
            .arg("--results")
            .arg(&results)
            .arg(flag)
            .arg(&results)
            .assert()
            .failure()
            .stderr(contains(format!("{flag} is the same file as --results")));
    }
    let out = dir.path().join("r.md");
    Command::cargo_bin("bench")
        .unwrap()
        .arg("--results")
        .arg(&results)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .arg(dir.path().join("./r.md"))
        .assert()
        .failure()
        .stderr(contains("--out and --json name the same file"));
    assert_eq!(std::fs::read_to_string(&results).unwrap(), "{}");
    assert!(!out.exists());
}
