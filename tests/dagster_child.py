"""A publish run in a process of its own (a second runner, or one to kill mid-call):
``python -m tests.dagster_child <instance dir> <slug> <platform,...>``.

It prints ``started <run id>`` once Dagster has created the run, then executes it on the
same PostgreSQL-backed instance as the test.
"""

from __future__ import annotations

import sys

from dagster import DagsterInstance

from orchestration.definitions import defs
from orchestration.syndication.assets import published_key


def main(root: str, slug: str, platforms: str) -> int:
    instance = DagsterInstance.from_config(root)
    job = defs.resolve_job_def("publish_events_job")
    result = job.execute_in_process(
        instance=instance,
        partition_key=slug,
        asset_selection=[published_key(p) for p in platforms.split(",")],
        tags={"hub/event": slug, "hub/lane": "publish"},
        raise_on_error=False,
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
