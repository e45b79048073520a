#!/usr/bin/env bash
# Metrics and plots of the workspace against a base revision, for a pull-request comment.
#   usage: .github/pr_report.sh BASE_REV OUT_DIR
# Writes OUT_DIR/report.md (markdown tables, per language) and OUT_DIR/plots/index.html (plots diff).
# Run by .github/workflows/pr-metrics.yml; tests/test_pipeline.py runs it locally.
set -euo pipefail
base=${1:?usage: pr_report.sh BASE_REV OUT_DIR}
out=${2:?usage: pr_report.sh BASE_REV OUT_DIR}
mkdir -p "$out"

section() {  # title, metrics file
  local table
  table=$(dvc metrics diff "$base" --targets "$2" --md --precision 3 --no-path)
  printf '\n### %s (`%s`)\n\n%s\n' "$1" "$2" "${table:-No change.}"
}

{
  printf '## crossling: metrics against `%s`\n' "$base"
  section "Headline" metrics/summary.json
  section "Learning curve: joint models per test language" metrics/joint.json
  section "Zero-shot transfer: monolingual models per test language" metrics/transfer.json
  section "Paired differences (macro-F1, with intervals)" metrics/differences.json
  section "Data: counts per language" metrics/data.json
  printf '\nParams that changed:\n\n%s\n' "$(dvc params diff "$base" --md || true)"
  printf '\nPlots (learning curves, transfer heatmap, label distribution, training loss, dev macro-F1, confusion matrices): see the `plots-diff` artifact of this run.\n'
} > "$out/report.md"

dvc plots diff "$base" -o "$out/plots" > /dev/null
echo "wrote $out/report.md and $out/plots/index.html"
