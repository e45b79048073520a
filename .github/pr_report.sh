#!/usr/bin/env bash
# shellcheck disable=SC2016  # backticks in printf formats are markdown
# Metrics, params and plots of the checkout against a base revision, for a pull-request comment.
#   usage: [BASE_LABEL=text] [CHECK_FAILURE=text] .github/pr_report.sh BASE_REV OUT_DIR [IMAGE_URL]
# CHECK_FAILURE: what check_outputs.py said when it failed; both files then say it first (its first 2000 characters).
# Writes OUT_DIR/report.md (everything), OUT_DIR/comment.md (what fits in a pull-request comment, COMMENT_LIMIT
# characters at most, default 60000), OUT_DIR/plots/index.html (`dvc plots diff`) and OUT_DIR/plots/png/<plot>.png
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
# assigned first: a failure inside `read <<< "$(...)"` would not stop the script (set -e sees only read's status)
ids=$(dvc plots diff "$base" --json --split | python "$here/changed_plots.py" "$base")
read -r -a changed <<< "$ids"
if ((${#changed[@]})); then
  python "$here/../scripts/check_plots.py" "$out/plots" --png-dir "$out/plots/png" --only "${changed[@]}"
else
  python "$here/../scripts/check_plots.py" "$out/plots"
fi

limit=${COMMENT_LIMIT:-60000}  # GitHub refuses a comment over 65,536 characters; 400 left for the workflow's Run line
parts="$out/parts"
rm -rf "$parts"
mkdir -p "$parts"

# dvc's --md diffs print a table's header and rule even when nothing changed: no rows below them is no change
rows() { grep -c '^|' <<< "$1" || true; }

missing=()
section() {  # file, title, metrics file
  local table
  if [ ! -e "$3" ]; then  # dvc would print an empty table (and rc 0): said in the report, which then fails
    missing+=("$3")
    table="**Missing:** \`$3\` is not in this checkout; run \`dvc repro\` and commit the metrics files"
    table+=" dvc.yaml declares."
  else
    table=$(dvc metrics diff "$base" --targets "$3" --md --precision 3 --no-path)
    (($(rows "$table") > 2)) || table="No change."
  fi
  printf '\n### %s (`%s`)\n\n%s\n' "$2" "$3" "$table" > "$parts/$1"
}

printf '## crossling: metrics against `%s`\n' "${BASE_LABEL:-$base}" > "$parts/0-title"
if [ -n "${CHECK_FAILURE:-}" ]; then
  printf '\n> **The outputs check failed**, so this pull request cannot merge as it is: %s\n' "${CHECK_FAILURE:0:2000}" \
    > "$parts/1-check"
fi
section 1-headline "Headline" metrics/headline.json
section 5-joint "Learning curve: joint models per test language" metrics/joint.json
section 6-transfer "Zero-shot transfer: monolingual models per test language" metrics/transfer.json
section 7-differences "Paired differences (macro-F1, with intervals)" metrics/differences.json
section 8-budgets "Training budgets: examples, optimizer steps, kept epochs" metrics/budgets.json
section 9-data "Data: counts per language" metrics/data.json
params=$(dvc params diff "$base" --md)
(($(rows "$params") > 2)) || params="None."
printf '\n### Params that changed\n\n%s\n' "$params" > "$parts/2-params"
{
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
} > "$parts/3-plots"

# report.md: every section. comment.md: the title, headline, params and plots, then the tables in order as
# long as they fit GitHub's limit; the ones left out are named (they are in report.md, the job summary).
cat "$parts"/* > "$out/report.md"
cat "$parts"/[0-3]-* > "$out/comment.md"
left_out=()
for part in "$parts"/[5-9]-*; do
  if (($(wc -c < "$out/comment.md") + $(wc -c < "$part") + 400 <= limit)); then
    cat "$part" >> "$out/comment.md"
  else
    left_out+=("$(sed -n 's/^### \(.*\) (`\(.*\)`)$/\2/p' "$part")")
  fi
done
if ((${#left_out[@]})); then
  printf '\nLeft out of this comment for its length (GitHub allows 65,536 characters): the diffs of %s; they are in the job summary and in `report.md` of the `pr-report` artifact.\n' \
    "$(IFS=,; echo "${left_out[*]}" | sed 's/,/, /g')" >> "$out/comment.md"
fi
rm -rf "$parts"
echo "wrote $out/report.md ($(wc -c < "$out/report.md") characters), $out/comment.md, $out/plots/index.html and ${#changed[@]} plot images"
if ((${#missing[@]})); then
  echo "pr_report.sh: ${missing[*]} not in this checkout; run dvc repro and commit them (the report says so)" >&2
  exit 1
fi
