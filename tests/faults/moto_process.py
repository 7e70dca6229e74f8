"""A moto server in a process of its own (python -m tests.faults.moto_process): the fault suites'
calls are answered on the other core while the code under test runs on this one. Prints its port."""

from __future__ import annotations

import logging
import sys
import threading

from moto.server import ThreadedMotoServer

from infra.local.fidelity import make_conditional_writes_atomic


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    make_conditional_writes_atomic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test process closes our stdin (or dies)
    server.stop()
    threading.Event().set()


if __name__ == "__main__":
    main()
