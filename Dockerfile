# byoc: scikit-learn for SageMaker's bring-your-own-container path.
#
#   docker build -t byoc-sklearn .
#   docker run -v "$PWD/local_test/test_dir:/opt/ml" byoc-sklearn train
#   docker run -p 8080:8080 -v "$PWD/local_test/test_dir:/opt/ml" byoc-sklearn serve
#
# No registry reachable (air-gapped)? Build a base with scripts/bootstrap-base-image.sh and pass
#   --build-arg BASE_IMAGE=byoc-base:bookworm
# The base only has to provide `python3` (>= 3.11, with the venv module) on PATH and Debian's apt.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------------------------
# Stage 1: build wheels for the project and its runtime dependencies, install them into a venv.
# Anything a wheel build needs (compilers, pip caches, build isolation envs) stays in this stage.
# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

# Optional: a package mirror for networks without PyPI (pip reads these from the environment).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A venv works the same on the official python image (/usr/local/bin/python3) and on a Debian
# base (/usr/bin/python3, where a system-wide pip install is refused by PEP 668).
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --upgrade "pip>=24" wheel

WORKDIR /src
# Dependencies first, in their own layer: they change far less often than the code, so an edit
# under container/byoc rebuilds only the small layer below. A placeholder package lets pip resolve
# pyproject's `dependencies` (never the test extras) before the code is copied. README.md (pyproject's
# `readme`) is a placeholder here too: copied at this step, every README edit re-downloaded and
# reinstalled every dependency.
COPY pyproject.toml ./
RUN mkdir -p container/byoc && touch container/byoc/__init__.py README.md \
 && /opt/venv/bin/python -m pip wheel --wheel-dir /wheels . \
 && rm -f /wheels/byoc-*.whl \
 && /opt/venv/bin/python -m pip install --no-index /wheels/*.whl \
 && /opt/venv/bin/python -m pip uninstall -y wheel \
 && rm -rf /wheels container

# Drop what a training/serving runtime never imports (about 107 MB): test suites (onnx's backend test data too), C headers,
# Cython sources, and pyarrow's Arrow Flight RPC and S3 filesystem libraries (data
# arrives under /opt/ml; pyarrow.fs reports S3FileSystem as unavailable instead of failing).
# Byte-code stays: it is compiled at install time and speeds up every cold start.
RUN site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && for pkg in numpy scipy pandas sklearn pyarrow dask distributed; do \
        find "$site/$pkg" -depth -type d -name tests -exec rm -rf {} +; \
    done \
 && rm -rf "$site"/pyarrow/include "$site"/pyarrow/src "$site"/numpy/_core/include \
           "$site"/pyarrow/_flight.* "$site"/pyarrow/libarrow_flight.* "$site"/pyarrow/libarrow_python_flight.* \
           "$site"/pyarrow/_s3fs.* "$site"/pyarrow/libarrow_s3.* "$site"/pyarrow/_pyarrow_cpp_tests.* \
           "$site"/onnx/backend/test \
 && find "$site" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.c' -o -name '*.cpp' \) -delete \
 && /opt/venv/bin/python -c "import sklearn, scipy.sparse, pandas, pyarrow.parquet, pyarrow.fs, pyarrow.dataset, pyarrow.csv, numpy, flask, gunicorn, distributed.cli.dask_worker, onnx.helper, onnxruntime, orjson; print('runtime imports ok')"

# The project itself (a regular, non-editable install of this checkout).
COPY README.md ./
COPY container/byoc ./container/byoc
RUN /opt/venv/bin/python -m pip install --no-deps . \
 && /opt/venv/bin/python -c "import byoc.training, byoc.serving.server, byoc.serving.app"

# --------------------------------------------------------------------------------------------
# Stage 2: the runtime. The same base, the venv, the entry points, tini as PID 1. No compilers.
# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# tini is PID 1: it forwards SIGTERM (docker stop / StopTrainingJob / endpoint shutdown) to the
# Python process and reaps orphaned joblib/gunicorn children.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

COPY --from=build /opt/venv /opt/venv
COPY container/train container/serve container/evaluate container/start container/predictor.py /opt/program/
RUN chmod 0755 /opt/program/train /opt/program/serve /opt/program/evaluate /opt/program/start \
 && /opt/venv/bin/python -c "import byoc.training, byoc.serving.server, byoc.serving.app, byoc.evaluation" \
 && test ! -e /opt/ml

# HOME may be unset or unwritable under `docker run --user 1000:1000`: keep every library's
# scratch space in /tmp. Nothing is written outside /opt/ml and /tmp (script mode's pip installs
# excepted: they go into /opt/venv, like the AWS framework containers' installs).
ENV PATH="/opt/program:/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONIOENCODING=utf-8 \
    LANG=C.UTF-8 \
    TMPDIR=/tmp \
    JOBLIB_TEMP_FOLDER=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache

# multi-models: SageMaker may host this image as a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      com.amazonaws.sagemaker.capabilities.multi-models=true \
      org.opencontainers.image.title="byoc-sklearn" \
      org.opencontainers.image.description="scikit-learn for SageMaker bring-your-own-container: train, serve, batch transform" \
      org.opencontainers.image.licenses="Apache-2.0"

# Processing (ScriptProcessor command=["python3"]) and SDK v3's script-mode drivers run
# python3, pip3 and bash from PATH: python3 and pip3 are the venv's, with the image's libraries.
RUN test "$(command -v python3)" = /opt/venv/bin/python3 \
 && test "$(command -v pip3)" = /opt/venv/bin/pip3 \
 && command -v bash \
 && python3 -c "import sklearn, pandas, byoc.evaluation"

WORKDIR /opt/program
EXPOSE 8080

# `docker run IMAGE train` / `docker run IMAGE serve` run /opt/program/{train,serve} (on PATH);
# `evaluate` scores a model for a Processing job; any other command runs as given, e.g.
# `docker run IMAGE python3 -c 'import sklearn'`. With no command (SDK v3 ModelTrainer without
# source code), `start` trains when /opt/ml/input/config/*.json exists and serves otherwise.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["start"]
