#!/usr/bin/env bash
# Train on local_test/test_dir as SageMaker would: `train_local.sh [IMAGE]`.
#   with IMAGE: docker run -v test_dir:/opt/ml IMAGE train
#   without:    container/train from .venv with SAGEMAKER_BASE_DIR=test_dir
# The model lands in test_dir/model/, metrics in test_dir/output/data/, a failure reason in
# test_dir/output/failure. Earlier outputs are removed first (SageMaker starts every job empty).
# DOCKER_RUN_ARGS adds options to docker run (e.g. "-e SAGEMAKER_CONTAINER_LOG_LEVEL=10").
set -euo pipefail
source "$(dirname "$0")/common.sh"
IMAGE="${1:-}"
require_test_dir
if [[ -n "$IMAGE" ]]; then require_docker_image "$IMAGE"; else require_venv; fi
rm -rf "$TEST_DIR/model" "$TEST_DIR/output"
mkdir -p "$TEST_DIR/model" "$TEST_DIR/output"

if [[ -n "$IMAGE" ]]; then
    # As the invoking user, so the model and outputs in test_dir stay yours (SageMaker itself runs as root).
    exec docker run --rm ${DOCKER_RUN_ARGS:-} --user "$(id -u):$(id -g)" -v "$TEST_DIR:/opt/ml" "$IMAGE" train
fi
SAGEMAKER_BASE_DIR="$TEST_DIR" exec "$REPO/.venv/bin/python" "$REPO/container/train"
