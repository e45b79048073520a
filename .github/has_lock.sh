#!/usr/bin/env bash
# Does this pull request carry pipeline results to check? Writes run=true or run=false to $GITHUB_OUTPUT.
#   usage: BASE_REF=<base branch> GITHUB_OUTPUT=<file> .github/has_lock.sh
# true: the checkout has dvc.lock. false, with a notice: neither it nor the base branch has one (the committed
# params.yaml has not been run and committed yet: no results to check or compare). A pull request that
# deletes the base branch's dvc.lock fails.
set -euo pipefail
: "${BASE_REF:?set BASE_REF to the base branch}" "${GITHUB_OUTPUT:?set GITHUB_OUTPUT to a file}"
if [ -f dvc.lock ]; then
  echo "run=true" >> "$GITHUB_OUTPUT"
elif git cat-file -e "origin/$BASE_REF:dvc.lock" 2> /dev/null; then
  echo "::error::dvc.lock is on $BASE_REF but not in this pull request: run the pipeline (dvc exp run) and commit dvc.lock with the results"
  exit 1
else
  echo "::notice::no dvc.lock here or on $BASE_REF: the committed params.yaml has not been run and committed yet, so there are no results to check or compare (docs/workflow.md, From idea to merged result)"
  echo "run=false" >> "$GITHUB_OUTPUT"
fi
