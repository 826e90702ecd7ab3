#!/usr/bin/env bash
# Serve test_dir/model on http://localhost:${PORT:-8080} as SageMaker would: `serve_local.sh [IMAGE]`.
#   with IMAGE: docker run -p PORT:8080 -v test_dir:/opt/ml IMAGE serve
#   without:    container/serve from .venv with SAGEMAKER_BASE_DIR=test_dir
# Ctrl-C (SIGINT/SIGTERM) stops the server gracefully. Train first with train_local.sh.
# DOCKER_RUN_ARGS adds options to docker run (e.g. "-e SAGEMAKER_CONTAINER_LOG_LEVEL=10").
set -euo pipefail
source "$(dirname "$0")/common.sh"
IMAGE="${1:-}"
PORT="${PORT:-8080}"
require_test_dir
[[ -f "$TEST_DIR/model/model.joblib" ]] || die "no model in $TEST_DIR/model: run local_test/train_local.sh ${IMAGE} first"

if [[ -n "$IMAGE" ]]; then
    require_docker_image "$IMAGE"
    tty=(); [[ -t 0 ]] && tty=(-it)
    exec docker run --rm ${DOCKER_RUN_ARGS:-} "${tty[@]}" -p "$PORT:8080" -v "$TEST_DIR:/opt/ml" "$IMAGE" serve
fi
require_venv
SAGEMAKER_BASE_DIR="$TEST_DIR" SAGEMAKER_BIND_TO_PORT="$PORT" exec "$REPO/.venv/bin/python" "$REPO/container/serve"
