#!/usr/bin/env bash
# Install into the venv whose python is $1 (the rest: what to install) with uv from PyPI, else with pip.
# uv does not read pip's configuration, so the indexes, find-links and constraints pip is configured with
# (files and PIP_* variables) are handed to uv as its own variables.
set -euo pipefail
py=$1
shift
if ! "$py" -m pip install --quiet uv; then
    exec "$py" -m pip install --quiet "$@"
fi
while IFS= read -r line; do
    key=${line%%=*}
    value=${line#*=}
    value=${value#\'}
    value=${value%\'}
    case "${key#*.}" in
        index-url) export UV_INDEX_URL=$value ;;
        extra-index-url) export UV_EXTRA_INDEX_URL=$value ;;
        find-links) export UV_FIND_LINKS=$value ;;
        constraint) export UV_CONSTRAINT=$value ;;
    esac
done < <("$py" -m pip config list 2>/dev/null)
# pip picks the best version across all indexes; uv's default stops at the first index that has the package
export UV_INDEX_STRATEGY=unsafe-best-match
exec "$(dirname "$py")/uv" pip install --quiet --python "$py" "$@"
