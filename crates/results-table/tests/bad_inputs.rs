//! Bad inputs, run through the binary as a user would.

use assert_cmd::Command;

#[test]
fn a_missing_report_names_the_file_and_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let a = Command::cargo_bin("results-table")
        .unwrap()
        .arg("--report")
        .arg(format!("base={}", missing.display()))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(stderr.contains("nope.json"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}
