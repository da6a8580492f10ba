#!/usr/bin/env bash
# Regenerate the published report: the standard chaos suite (quick) on every installed
# backend, plus a fault-free procurement run for latency and overhead, then one report.
#   bash reports/build.sh            (from the repository root, after the README install)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d /tmp/durabench-published-XXXX)
out=reports/latest

"$python" -m harness.cli run scenarios/procurement.yaml --out "$work/steady"
# exit code 1 = an expectation was not met: that is a finding for the report, not an error
"$python" -m harness.cli suite --quick --out "$work/suite" || [ $? -eq 1 ]
rm -rf "$out"
"$python" -m harness.cli report "$work"/steady/2* "$work"/suite/suite-* --out "$out"
echo "published report: $out/report.html (raw results kept in $work)"
