"""``python -m byoc.automl.dask_node {scheduler|worker} ARGS``: Dask's own ``dask scheduler`` and
``dask worker`` commands, without their HTTP server.

Every Dask scheduler and worker opens a diagnostics HTTP server, ``--no-dashboard`` or not: the
scheduler on port 8787 of every interface (``/json/identity.json``, ``/info/main/workers.html``
with each worker's logs and call stacks, Prometheus metrics), each worker on a free port of every
interface; nobody authenticates there.  A training job serves nothing over HTTP (README,
"Security"), so the nodes start with no such server: their own TCP ports, where the tasks travel,
are all that listens.
"""

from __future__ import annotations

import sys
from typing import Any


def _no_http_server(*args: Any, **kwargs: Any) -> None:
    """In place of ``distributed.node.ServerNode.start_http_server`` (nothing else uses the
    server when the dashboard is off: ``--no-dashboard`` is passed too)."""


def main(argv: list[str]) -> None:
    from distributed.node import ServerNode

    ServerNode.start_http_server = _no_http_server
    kind, *args = argv
    if kind == "scheduler":
        from distributed.cli.dask_scheduler import main as command
    else:
        from distributed.cli.dask_worker import main as command
    command(args, prog_name=f"dask {kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
