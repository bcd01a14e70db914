//! Runs `scripts/bench --smoke` with the debug build of sslvpn and checks that it prints the
//! result table with a ratio for every measurement. The figures of a debug build mean
//! nothing; this only shows that the benchmark still works end to end.

mod common;

use std::process::Command;

use common::tools::{BASE_TOOLS, require_tools};

/// Measures that the smoke run must report for both servers.
const EXPECTED_MEASURES: &[&str] = &[
    "connect time, median of 1",
    "RTT median",
    "RTT added to the bare path, median",
    "throughput up, 1 client",
    "server CPU up, 1 client",
    "throughput up, 2 clients",
    "server RSS idle",
    "server RSS per client, 2 clients",
];

/// Returns the cells of a Markdown table row, without the outer pipes.
fn cells(row: &str) -> Vec<&str> {
    row.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

#[test]
fn bench_smoke_prints_ratios() {
    let mut tools = BASE_TOOLS.to_vec();
    tools.push(("python3", "python3"));
    require_tools(&tools);

    let root = env!("CARGO_MANIFEST_DIR");
    let out = tempfile::tempdir().expect("create the result folder");
    let out_path = out.path().to_str().expect("UTF-8 temporary path");
    let path = std::env::var("PATH").unwrap_or_default();
    let output = Command::new(format!("{root}/scripts/bench"))
        .args(["--smoke", "--sslvpn", env!("CARGO_BIN_EXE_sslvpn")])
        .args(["--out", out_path])
        .env("PATH", format!("{path}:/usr/local/sbin:/usr/sbin:/sbin"))
        .output()
        .expect("run scripts/bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/bench --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let header = "| transport | cipher | measure | unit | OpenVPN 2.6 | sslvpn | ratio | target \
                  | ratio per round |";
    assert!(stdout.contains(header), "no result table in:\n{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|line| line.starts_with("| udp "))
        .map(cells)
        .collect();
    for measure in EXPECTED_MEASURES {
        let row = rows.iter().find(|row| row[2] == *measure);
        assert!(row.is_some(), "no row {measure:?} in:\n{stdout}");
    }
    for row in &rows {
        assert_eq!(row.len(), 9, "row {row:?} does not have 9 cells");
        let ratio = row[6].parse::<f64>();
        assert!(ratio.is_ok(), "row {row:?} has no numeric ratio");
        if row[2].starts_with("throughput") {
            assert!(
                ratio.unwrap_or(0.0) > 0.0,
                "row {row:?} reports no throughput"
            );
        }
    }

    let table = std::fs::read_to_string(out.path().join("table.md")).expect("read table.md");
    assert!(
        table.starts_with(header),
        "table.md does not start with the table header:\n{table}"
    );
}
