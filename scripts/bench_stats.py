#!/usr/bin/env python3
"""Parse the raw output of scripts/bench and print its result table.

Subcommands (all print plain numbers separated by spaces, or the table):

  iperf FILE...              sum of end.sum_received over iperf3 --json reports:
                             "<bytes> <Mbit/s>"
  ping FILE                  "<median ms> <p99 ms> <replies>" of the "time=" lines of ping
  connect-time START LOG     milliseconds from START (unix seconds) to the timestamp of the
                             "Initialization Sequence Completed" line of an openvpn log
                             written with --machine-readable-output
  median VALUE...            the median of the values
  table RESULTS              the result table in Markdown, with the ratio sslvpn / OpenVPN

RESULTS is a tab-separated file with one measurement a line: round, transport, cipher,
measure, unit, target, server ("openvpn" or "sslvpn"), value. A target is empty, or ">=X" or
"<=X" for the ratio. A measurement taken in several rounds is reported as the median of the
rounds, and the ratio is that of the medians. The last column lists the ratio of each round.

Only the Python standard library is used.
"""

import json
import math
import statistics
import sys

INITIALIZED = "Initialization Sequence Completed"


def fail(message):
    print(f"bench_stats: {message}", file=sys.stderr)
    sys.exit(1)


def iperf(paths):
    total_bytes = 0
    total_bps = 0.0
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                report = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            fail(f"cannot read the iperf3 report {path}: {error}")
        if "error" in report:
            fail(f"iperf3 failed in {path}: {report['error']}")
        try:
            received = report["end"]["sum_received"]
            total_bytes += int(received["bytes"])
            total_bps += float(received["bits_per_second"])
        except (KeyError, TypeError, ValueError):
            fail(f"no end.sum_received in the iperf3 report {path}")
    print(f"{total_bytes} {total_bps / 1e6:.1f}")


def percentile(values, fraction):
    """Return the nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ping(path):
    times = []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            for field in line.split():
                if field.startswith("time="):
                    times.append(float(field[len("time=") :]))
    if not times:
        fail(f"no replies in the ping output {path}")
    print(f"{statistics.median(times):.3f} {percentile(times, 0.99):.3f} {len(times)}")


def connect_time(start, path):
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            if INITIALIZED in line:
                try:
                    stamp = float(line.split()[0])
                except (IndexError, ValueError):
                    fail(f"no timestamp on the line {line.strip()!r} of {path}")
                print(f"{(stamp - float(start)) * 1000:.0f}")
                return
    fail(f"no {INITIALIZED!r} line in {path}")


def median(values):
    if not values:
        fail("median of no values")
    print(f"{statistics.median(float(value) for value in values):g}")


def format_value(value):
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def check_target(target, ratio):
    """Return "met", "NOT met" or "" for a target such as ">=1.0" and a ratio."""
    if not target:
        return ""
    if ratio is None:
        return "n/a"
    bound = float(target[2:])
    if target.startswith(">="):
        return "met" if ratio >= bound else "NOT met"
    if target.startswith("<="):
        return "met" if ratio <= bound else "NOT met"
    fail(f"invalid target {target!r}, expected >=X or <=X")


def ratio_of(ours, reference):
    if ours is None or reference is None or reference == 0:
        return None
    return ours / reference


def table(path):
    # key -> server -> round -> value, in the order the keys first appear
    rows = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 8:
                fail(f"{path}:{number}: expected 8 tab-separated fields, found {len(fields)}")
            round_number, transport, cipher, measure, unit, target, server, value = fields
            key = (transport, cipher, measure, unit, target)
            rows.setdefault(key, {}).setdefault(server, {})[round_number] = float(value)

    print(
        "| transport | cipher | measure | unit | OpenVPN 2.6 | sslvpn | ratio | target "
        "| ratio per round |"
    )
    print("|---|---|---|---|---:|---:|---:|---|---|")
    for (transport, cipher, measure, unit, target), servers in rows.items():
        reference_rounds = servers.get("openvpn", {})
        our_rounds = servers.get("sslvpn", {})
        reference = statistics.median(reference_rounds.values()) if reference_rounds else None
        ours = statistics.median(our_rounds.values()) if our_rounds else None
        ratio = ratio_of(ours, reference)
        status = check_target(target, ratio)
        verdict = f"{target} {status}" if target else ""
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f}"
        per_round = []
        if len(reference_rounds) > 1 or len(our_rounds) > 1:
            for round_number in sorted(reference_rounds, key=int):
                round_ratio = ratio_of(our_rounds.get(round_number), reference_rounds[round_number])
                if round_ratio is not None:
                    per_round.append(f"{round_ratio:.2f}")
        print(
            f"| {transport} | {cipher} | {measure} | {unit} | {format_value(reference)} "
            f"| {format_value(ours)} | {ratio_text} | {verdict} | {' '.join(per_round)} |"
        )


def main(argv):
    if len(argv) < 2:
        fail("usage: bench_stats.py iperf|ping|connect-time|median|table ARGS")
    command, args = argv[1], argv[2:]
    if command == "iperf" and args:
        iperf(args)
    elif command == "ping" and len(args) == 1:
        ping(args[0])
    elif command == "connect-time" and len(args) == 2:
        connect_time(args[0], args[1])
    elif command == "median":
        median(args)
    elif command == "table" and len(args) == 1:
        table(args[0])
    else:
        fail(f"invalid arguments for {command!r}; see the usage at the top of {argv[0]}")


if __name__ == "__main__":
    main(sys.argv)
