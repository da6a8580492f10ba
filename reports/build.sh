#!/usr/bin/env bash
# Regenerate the published report: a fault-free procurement run for latency and overhead,
# the fidelity workload with every backend's raw floor (the ratio to its own floor), the
# standard chaos suite (quick) on every installed backend, and a scaling sweep, then one
# report. Takes about 50 minutes on an idle 2-core machine.
#   bash reports/build.sh            (from the repository root, after the README install)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d /tmp/durabench-published-XXXX)
out=reports/latest

"$python" -m harness.cli run scenarios/procurement.yaml --out "$work/steady"
"$python" -m harness.cli run fidelity --with-floor -b baseline -b pgstore -b pgstore-naive -b temporal \
    -b 'langgraph:sqlite?durability=exit' -b 'langgraph:sqlite?durability=async' \
    -b 'langgraph:sqlite?durability=sync' -b 'langgraph:postgres?durability=exit' \
    -b 'langgraph:postgres?durability=async' -b 'langgraph:postgres?durability=sync' \
    -b dbos -b restate -b pydantic-ai:temporal -b pydantic-ai:dbos -b openai-agents:temporal \
    -b deepagents -b cloudflare \
    --out "$work/fidelity"
# exit code 1 = an expectation was not met, 4 = a cell was inconclusive (its faults
# exposed no run): findings for the report, not errors
"$python" -m harness.cli suite --quick --out "$work/suite" || { code=$?; [ "$code" -eq 1 ] || [ "$code" -eq 4 ]; }
"$python" -m harness.cli sweep scenarios/scaling.yaml -b baseline -b pgstore -b temporal \
    -b langgraph:sqlite -b dbos -b restate --concurrency 1,4,16 --steps 10,100 --out "$work/sweep"
rm -rf "$out"
"$python" -m harness.cli report "$work"/steady/2* "$work"/fidelity/2* "$work"/suite/suite-* \
    "$work"/sweep/sweep-* \
    --out "$out"
echo "published report: $out/report.html (raw results kept in $work)"
