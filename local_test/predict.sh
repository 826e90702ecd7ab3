#!/usr/bin/env bash
# POST a payload to a running server's /invocations: `predict.sh PAYLOAD [CONTENT_TYPE] [ACCEPT]`.
#   CONTENT_TYPE defaults from the file name (.csv text/csv, .json application/json,
#   .jsonl application/jsonlines, .npy application/x-npy, .parquet application/x-parquet);
#   ACCEPT defaults to the server's choice. Server: http://localhost:${PORT:-8080} (or $ENDPOINT).
# Examples: predict.sh payloads/payload.csv
#           predict.sh payloads/records.json application/json text/csv
set -euo pipefail
source "$(dirname "$0")/common.sh"
[[ $# -ge 1 && $# -le 3 ]] || die "usage: predict.sh PAYLOAD [CONTENT_TYPE] [ACCEPT]"
PAYLOAD="$1"
[[ -f "$PAYLOAD" ]] || die "no such payload file: $PAYLOAD (samples are in $LOCAL_TEST/payloads/)"
command -v curl >/dev/null || die "curl is not installed"
ENDPOINT="${ENDPOINT:-http://localhost:${PORT:-8080}}"

CONTENT_TYPE="${2:-}"
if [[ -z "$CONTENT_TYPE" ]]; then
    case "$PAYLOAD" in
        *.csv)     CONTENT_TYPE=text/csv ;;
        *.jsonl)   CONTENT_TYPE=application/jsonlines ;;
        *.json)    CONTENT_TYPE=application/json ;;
        *.npy)     CONTENT_TYPE=application/x-npy ;;
        *.parquet) CONTENT_TYPE=application/x-parquet ;;
        *)         die "cannot tell the content type of $PAYLOAD from its name: pass it, e.g. predict.sh $PAYLOAD text/csv" ;;
    esac
fi
headers=(-H "Content-Type: $CONTENT_TYPE")
[[ -n "${3:-}" ]] && headers+=(-H "Accept: $3")

status=0
curl -sS --fail-with-body --max-time 70 "${headers[@]}" --data-binary "@$PAYLOAD" "$ENDPOINT/invocations" \
    || status=$?
case $status in
    0) echo ;;
    # curl's exit code for an HTTP status >= 400: the server answered, its JSON body says what is wrong
    22) echo; die "the server answered with an error: its JSON body above says what is wrong" ;;
    *) die "no answer from $ENDPOINT (curl exit $status; is the server running? start it with local_test/serve_local.sh [IMAGE])" ;;
esac
