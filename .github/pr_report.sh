#!/usr/bin/env bash
# shellcheck disable=SC2016  # backticks in printf formats are markdown
# Metrics, params and plots of the checkout against a base revision, for a pull-request comment.
#   usage: [BASE_LABEL=text] .github/pr_report.sh BASE_REV OUT_DIR [IMAGE_URL]
# Writes OUT_DIR/report.md, OUT_DIR/plots/index.html (`dvc plots diff`) and OUT_DIR/plots/png/<plot>.png
# for each plot whose data changed. With IMAGE_URL, report.md shows those PNGs from IMAGE_URL/<plot>.png
# (where the workflow publishes them); without, it names them. Every plot is opened in headless
# Chromium (scripts/check_plots.py) and the script fails if one does not draw. Reads only files in git
# (metrics, params and plots are `cache: false`): no `dvc pull`, no stage runs.
# Run by .github/workflows/pr-metrics.yml; tests/test_pipeline.py runs it locally.
set -euo pipefail
base=${1:?usage: pr_report.sh BASE_REV OUT_DIR [IMAGE_URL]}
out=${2:?usage: pr_report.sh BASE_REV OUT_DIR [IMAGE_URL]}
image_url=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

dvc plots diff "$base" -o "$out/plots" > /dev/null
read -r -a changed <<< "$(dvc plots diff "$base" --json --split | python "$here/changed_plots.py" "$base")"
if ((${#changed[@]})); then
  python "$here/../scripts/check_plots.py" "$out/plots" --png-dir "$out/plots/png" --only "${changed[@]}"
else
  python "$here/../scripts/check_plots.py" "$out/plots"
fi

section() {  # title, metrics file
  local table
  table=$(dvc metrics diff "$base" --targets "$2" --md --precision 3 --no-path)
  printf '\n### %s (`%s`)\n\n%s\n' "$1" "$2" "${table:-No change.}"
}

{
  printf '## crossling: metrics against `%s`\n' "${BASE_LABEL:-$base}"
  section "Headline" metrics/summary.json
  section "Learning curve: joint models per test language" metrics/joint.json
  section "Zero-shot transfer: monolingual models per test language" metrics/transfer.json
  section "Paired differences (macro-F1, with intervals)" metrics/differences.json
  section "Data: counts per language" metrics/data.json
  params=$(dvc params diff "$base" --md)
  printf '\n### Params that changed\n\n%s\n' "${params:-None.}"
  printf '\n### Plots that changed\n\n'
  if ((${#changed[@]} == 0)); then
    printf 'None.\n'
  fi
  for plot in "${changed[@]}"; do
    if [ -n "$image_url" ]; then
      printf '![%s](%s/%s.png)\n\n' "$plot" "$image_url" "$plot"
    else
      printf -- '- `%s`: `plots/png/%s.png` in the `pr-report` artifact\n' "$plot" "$plot"
    fi
  done
  printf '\nAll plots, both revisions: `plots/index.html` in the `pr-report` artifact of this run.\n'
} > "$out/report.md"
echo "wrote $out/report.md, $out/plots/index.html and ${#changed[@]} plot images"
