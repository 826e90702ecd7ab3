#!/usr/bin/env bash
# Build the byoc image for SageMaker's x86 hosts and push it to Amazon ECR.
#
#   ./build_and_push.sh IMAGE_NAME [TAG] [options]
#
# Prints the full image URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE_NAME:TAG) as the last line
# on stdout: pass it to sagemaker.estimator.Estimator(image_uri=...). Progress goes to stderr.
#
# Arguments:
#   IMAGE_NAME            ECR repository name (created if missing), e.g. byoc-sklearn
#   TAG                   image tag (default: git short sha of this checkout, "-dirty" when it
#                         has uncommitted changes); "latest" is always pushed as well
# Options (a variable named in parentheses sets the same from the environment):
#   --region REGION       AWS region (AWS_REGION, AWS_DEFAULT_REGION, or the profile's region).
#                         There is no default: a region is never picked silently.
#   --profile PROFILE     AWS CLI profile (AWS_PROFILE)
#   --account ID          the AWS account whose ECR registry gets the image (AWS_ACCOUNT_ID; default:
#                         your own, from sts get-caller-identity; another account's needs its permission)
#   --registry HOST[:PORT] push to this registry instead of the ECR repository's URI
#                         (BYOC_REGISTRY; for mirrors and for tests against a local registry)
#   --platform PLATFORM   build platform (BYOC_PLATFORM; default linux/amd64: SageMaker's hosts
#                         are x86, an arm64 build from Apple silicon fails there with exec errors)
#   --build-arg K=V       passed to docker build (repeatable); BASE_IMAGE in the environment
#                         becomes --build-arg BASE_IMAGE=...
#   --no-build            push an image already built locally as IMAGE_NAME:TAG
#   --dry-run             print the commands instead of running them (needs no credentials)
#   -h, --help            this text
# The AWS CLI honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS (VPC endpoints,
# or a moto server in tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="build_and_push.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $1" >&2; exit "${2:-1}"; }
# What the AWS CLI said (its stderr, in file $1) on one line, and what to do when the cause is not
# the credentials or the repository: a profile that does not exist, or AWS out of reach; those
# two return 1, so a caller can tell them from a credentials or repository problem.
aws_cause() {
    local cause
    cause="$(grep -v '^[[:space:]]*$' "$1" | tail -n 2 | tr '\n' ' ')"
    cause="${cause% }"
    case "$cause" in
        *"profile ("*") could not be found"*)
            echo "$cause: check the name (aws configure list-profiles) or drop --profile/AWS_PROFILE"; return 1 ;;
        *"Could not connect to the endpoint URL"*|*"Connect timeout on endpoint URL"*|*"Read timeout on endpoint URL"*)
            echo "$cause: AWS is not reachable from here; check the network and proxy (HTTPS_PROXY), or AWS_ENDPOINT_URL"; return 1 ;;
        *) echo "$cause" ;;
    esac
}

# ---------------------------------------------------------------------------------- arguments
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
REGION_SOURCE="environment"
PROFILE="${AWS_PROFILE:-}"
ACCOUNT="${AWS_ACCOUNT_ID:-}"
REGISTRY="${BYOC_REGISTRY:-}"
PLATFORM="${BYOC_PLATFORM:-linux/amd64}"
DRY_RUN=0
BUILD=1
BUILD_ARGS=()
[[ -n "${BASE_IMAGE:-}" ]] && BUILD_ARGS+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
POSITIONAL=()

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value (see --help)" 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --region)    need_value "$@"; REGION="$2"; REGION_SOURCE="--region"; shift 2 ;;
        --profile)   need_value "$@"; PROFILE="$2"; shift 2 ;;
        --account)   need_value "$@"; ACCOUNT="$2"; shift 2 ;;
        --registry)  need_value "$@"; REGISTRY="$2"; shift 2 ;;
        --platform)  need_value "$@"; PLATFORM="$2"; shift 2 ;;
        --build-arg) need_value "$@"; BUILD_ARGS+=(--build-arg "$2"); shift 2 ;;
        --region=*|--profile=*|--account=*|--registry=*|--platform=*|--build-arg=*)
                     set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
        --no-build)  BUILD=0; shift ;;
        --dry-run)   DRY_RUN=1; shift ;;
        -h|--help)   usage; exit 0 ;;
        --)          shift; POSITIONAL+=("$@"); break ;;
        -*)          die "unknown option $1 (see --help)" 2 ;;
        *)           POSITIONAL+=("$1"); shift ;;
    esac
done
[[ ${#POSITIONAL[@]} -ge 1 && ${#POSITIONAL[@]} -le 2 ]] \
    || die "usage: $PROG IMAGE_NAME [TAG] [--region R] [--profile P] [--account ID] [--dry-run] (see --help)" 2
IMAGE_NAME="${POSITIONAL[0]}"
TAG="${POSITIONAL[1]:-}"

# ECR's own rules, checked here so a typo fails before a 10-minute build.
[[ "$IMAGE_NAME" =~ ^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$ && ${#IMAGE_NAME} -ge 2 && ${#IMAGE_NAME} -le 256 ]] \
    || die "IMAGE_NAME '$IMAGE_NAME' is not a valid ECR repository name: use lowercase letters, digits, and . _ - / between them (2-256 characters)" 2

if [[ -z "$TAG" ]]; then
    git -C "$HERE" rev-parse --git-dir >/dev/null 2>&1 \
        || die "no TAG given and $HERE is not a git checkout: pass a TAG, e.g. $PROG $IMAGE_NAME v1" 2
    TAG="$(git -C "$HERE" rev-parse --short HEAD)"
    # An image built from uncommitted changes must not pass for the commit it names.
    [[ -z "$(git -C "$HERE" status --porcelain --untracked-files=no 2>/dev/null)" ]] || TAG="$TAG-dirty"
fi
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] \
    || die "TAG '$TAG' is not a valid image tag: letters, digits, _ . - (up to 128, not starting with . or -)" 2
[[ "$TAG" != latest ]] || die "TAG 'latest' is pushed anyway; give a version tag (default: the git short sha)" 2

# ---------------------------------------------------------------------------------- commands
AWS=(aws)
[[ -n "$PROFILE" ]] && AWS+=(--profile "$PROFILE")

# Shell-quote a command for printing; the dry-run's ${ACCOUNT} placeholder stays expandable.
quote() {
    local out="" a
    for a in "$@"; do out+="$(printf '%q' "$a") "; done
    out="${out% }"
    echo "${out//\\\$\\\{ACCOUNT\\\}/\${ACCOUNT\}}"
}
# run CMD...: print it; unless dry-run, run it.
# Dry-run output goes to the original stdout (fd 3) even where a command's own output is sent to stderr.
exec 3>&1
run() {
    if ((DRY_RUN)); then quote "$@" >&3; else say "+ $(quote "$@")"; "$@"; fi
}

if ((!DRY_RUN)); then
    command -v aws >/dev/null \
        || die "the AWS CLI is not installed (need 'aws' on PATH): https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html, or pip install awscli"
    command -v docker >/dev/null \
        || die "Docker is not installed (need 'docker' on PATH): https://docs.docker.com/engine/install/"
    docker info >/dev/null 2>&1 \
        || die "cannot reach the Docker engine: start Docker (Docker Desktop, or 'sudo systemctl start docker'; scripts/docker-engine.sh on Debian)"
    # Before any AWS call: a missing image must not leave a new ECR repository and a login behind.
    ((BUILD)) || docker image inspect "$IMAGE_NAME:$TAG" >/dev/null 2>&1 \
        || die "--no-build: no local image $IMAGE_NAME:$TAG (build it first: docker build -t $IMAGE_NAME:$TAG $HERE; or drop --no-build)"
fi

if [[ -z "$REGION" ]] && ((!DRY_RUN)); then
    errfile="$(mktemp)"
    REGION="$("${AWS[@]}" configure get region 2>"$errfile" || true)"
    cause="$(aws_cause "$errfile")" || { rm -f "$errfile"; die "cannot read the region of AWS profile ${PROFILE:-default}: $cause" 2; }
    rm -f "$errfile"
    REGION_SOURCE="profile ${PROFILE:-default}"
fi
[[ -n "$REGION" ]] \
    || die "no AWS region: pass --region REGION or set AWS_REGION (or set one in your AWS profile). It is never guessed: the region decides where the image, and so your training jobs, live." 2
[[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "'$REGION' does not look like an AWS region (e.g. eu-west-1)" 2
AWS+=(--region "$REGION")

if [[ -z "$ACCOUNT" ]]; then
    if ((DRY_RUN)); then
        echo "ACCOUNT=\$($(quote "${AWS[@]}" sts get-caller-identity --query Account --output text))"
        ACCOUNT='${ACCOUNT}'
    else
        errfile="$(mktemp)"
        if ! ACCOUNT="$("${AWS[@]}" sts get-caller-identity --query Account --output text 2>"$errfile")"; then
            # not the credentials (aws_cause returns 1): say so rather than send the user to fix them
            cause="$(aws_cause "$errfile")" || { rm -f "$errfile"; die "cannot look up the AWS account (sts get-caller-identity): $cause"; }
            rm -f "$errfile"
            die "no usable AWS credentials${PROFILE:+ for profile $PROFILE}: $cause
Configure them with 'aws configure${PROFILE:+ --profile $PROFILE}', 'aws sso login${PROFILE:+ --profile $PROFILE}', or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        fi
        rm -f "$errfile"
    fi
elif [[ ! "$ACCOUNT" =~ ^[0-9]{12}$ ]]; then
    die "account '$ACCOUNT' is not a 12-digit AWS account id" 2
fi
say "region $REGION (from $REGION_SOURCE), account $ACCOUNT${PROFILE:+, profile $PROFILE}"

# 1. The ECR repository (created when missing; other errors, e.g. access denied, stop here), in
# ACCOUNT's registry: --account names another account's registry (cross-account push), not a label.
ECR_DESCRIBE=("${AWS[@]}" ecr describe-repositories --repository-names "$IMAGE_NAME" --registry-id "$ACCOUNT" --query 'repositories[0].repositoryUri' --output text)
ECR_CREATE=("${AWS[@]}" ecr create-repository --repository-name "$IMAGE_NAME" --registry-id "$ACCOUNT" --image-scanning-configuration scanOnPush=true --query 'repository.repositoryUri' --output text)
if ((DRY_RUN)); then
    echo "$(quote "${ECR_DESCRIBE[@]}") || $(quote "${ECR_CREATE[@]}")"
    REPO_URI="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com/$IMAGE_NAME"
else
    errfile="$(mktemp)"
    if REPO_URI="$("${ECR_DESCRIBE[@]}" 2>"$errfile")"; then
        say "ECR repository $IMAGE_NAME exists"
    elif grep -q RepositoryNotFoundException "$errfile"; then
        say "creating ECR repository $IMAGE_NAME"
        REPO_URI="$(run "${ECR_CREATE[@]}")" || { rm -f "$errfile"; die "could not create ECR repository $IMAGE_NAME"; }
    else
        cause="$(aws_cause "$errfile")" || true; rm -f "$errfile"
        die "could not look up ECR repository $IMAGE_NAME in account $ACCOUNT ($REGION): $cause"
    fi
    rm -f "$errfile"
fi

if [[ -n "$REGISTRY" ]]; then
    REPO_URI="$REGISTRY/$IMAGE_NAME"
    say "pushing to $REGISTRY instead of ECR's registry (--registry / BYOC_REGISTRY)"
fi
REGISTRY_HOST="${REPO_URI%%/*}"
IMAGE_URI="$REPO_URI:$TAG"

# 2. Log in with get-login-password (the old `aws ecr get-login` is gone from AWS CLI v2).
if ((DRY_RUN)); then
    echo "$(quote "${AWS[@]}" ecr get-login-password) | $(quote docker login --username AWS --password-stdin "$REGISTRY_HOST")"
else
    say "+ $(quote "${AWS[@]}" ecr get-login-password) | docker login --username AWS --password-stdin $REGISTRY_HOST"
    "${AWS[@]}" ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY_HOST" >&2 \
        || die "docker login to $REGISTRY_HOST failed (see above)"
fi

# 3. Build for SageMaker's platform, 4. tag TAG and latest, 5. push both.
if ((BUILD)); then
    run docker build --platform "$PLATFORM" ${BUILD_ARGS[@]+"${BUILD_ARGS[@]}"} \
        -t "$IMAGE_NAME:$TAG" -t "$IMAGE_NAME:latest" "$HERE" >&2
fi
run docker tag "$IMAGE_NAME:$TAG" "$IMAGE_URI"
run docker tag "$IMAGE_NAME:$TAG" "$REPO_URI:latest"
run docker push "$IMAGE_URI" >&2
run docker push "$REPO_URI:latest" >&2

if ((DRY_RUN)); then
    echo "# image URI: $IMAGE_URI"
else
    say "pushed $IMAGE_URI (and :latest); use it as Estimator(image_uri=...)"
    echo "$IMAGE_URI"
fi
