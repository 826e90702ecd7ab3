# Shared by train_local.sh, serve_local.sh and predict.sh (sourced, not run).
# Without an image argument the scripts run the same entry points from the repository's .venv,
# with SAGEMAKER_BASE_DIR pointing at test_dir instead of /opt/ml.
LOCAL_TEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$LOCAL_TEST")"
TEST_DIR="${BYOC_TEST_DIR:-$LOCAL_TEST/test_dir}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

require_test_dir() {
    [[ -f "$TEST_DIR/input/config/hyperparameters.json" ]] \
        || die "$TEST_DIR is not laid out like /opt/ml (no input/config/hyperparameters.json)"
}

require_docker_image() {
    command -v docker >/dev/null || die "Docker is not installed; run without an image name to use .venv instead"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (start Docker; scripts/docker-engine.sh on Debian)"
    docker image inspect "$1" >/dev/null 2>&1 \
        || die "no image '$1': build it first with: docker build -t $1 $REPO"
}

require_venv() {
    [[ -x "$REPO/.venv/bin/python" ]] \
        || die "no image name given and no $REPO/.venv: run 'make venv' (or pass an image name, e.g. byoc-sklearn)"
}
