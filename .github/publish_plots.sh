#!/usr/bin/env bash
# Commit the PNGs of a directory to BRANCH under DEST (other files of BRANCH kept) and push it to
# origin, without touching the checkout, so that a pull-request comment can show them as images.
#   usage: .github/publish_plots.sh PNG_DIR BRANCH DEST
# Retries when another run pushed to BRANCH in between. Run by .github/workflows/pr-metrics.yml.
set -euo pipefail
pngs=${1:?usage: publish_plots.sh PNG_DIR BRANCH DEST}
branch=${2:?usage: publish_plots.sh PNG_DIR BRANCH DEST}
dest=${3:?usage: publish_plots.sh PNG_DIR BRANCH DEST}
shopt -s nullglob
files=("$pngs"/*.png)
if ((${#files[@]} == 0)); then
  echo "no PNG in $pngs; nothing to publish"
  exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export GIT_INDEX_FILE=$scratch/index  # a separate index: the checkout's stays as it is
for attempt in 1 2 3; do
  parent=""
  if git ls-remote --exit-code origin "refs/heads/$branch" > /dev/null; then
    git fetch -q origin "refs/heads/$branch"
    parent=$(git rev-parse FETCH_HEAD)
    git read-tree "$parent"
  else
    git read-tree --empty
  fi
  for file in "${files[@]}"; do
    git update-index --add --cacheinfo "100644,$(git hash-object -w "$file"),$dest/$(basename "$file")"
  done
  commit=$(git commit-tree "$(git write-tree)" ${parent:+-p "$parent"} -m "Plots for $dest")
  if git push -q origin "$commit:refs/heads/$branch"; then
    echo "published ${#files[@]} images to $branch:$dest"
    exit 0
  fi
  echo "push to $branch rejected (attempt $attempt); retrying" >&2
done
exit 1
