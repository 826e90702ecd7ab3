#!/usr/bin/env bash
# Train on local_test/test_dir as SageMaker would: `train_local.sh [IMAGE]`.
#   with IMAGE: docker run -v test_dir:/opt/ml IMAGE train
#   without:    container/train from .venv with SAGEMAKER_BASE_DIR=test_dir
# The model lands in test_dir/model/, metrics in test_dir/output/data/, a failure reason in
# test_dir/output/failure. Earlier outputs are removed first (SageMaker starts every job empty).
set -euo pipefail
source "$(dirname "$0")/common.sh"
IMAGE="${1:-}"
require_test_dir
rm -rf "$TEST_DIR/model" "$TEST_DIR/output"
mkdir -p "$TEST_DIR/model" "$TEST_DIR/output"

if [[ -n "$IMAGE" ]]; then
    require_docker_image "$IMAGE"
    # As the invoking user, so the model and outputs in test_dir stay yours (SageMaker itself runs as root).
    exec docker run --rm --user "$(id -u):$(id -g)" -v "$TEST_DIR:/opt/ml" "$IMAGE" train
fi
require_venv
SAGEMAKER_BASE_DIR="$TEST_DIR" exec "$REPO/.venv/bin/python" "$REPO/container/train"
