"""A real two-node Ray cluster on this machine for the cluster tests: a head and a second node, one CPU each, small
object stores; this process connected to it, the workers importing this checkout's hat_plugin."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STORE = 80 * 1024 * 1024


@contextmanager
def two_node_cluster() -> Iterator[Any]:
    """The cluster (``ray.cluster_utils.Cluster``) for the block; shut down after it."""
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1, object_store_memory=STORE)
    nodes.wait_for_nodes()
    ray.init(
        address=nodes.address,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}},
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()
