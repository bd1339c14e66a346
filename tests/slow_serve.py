"""``python tests/slow_serve.py SECONDS serve ...``: ``rtqa serve`` whose every C-STORE
answer waits SECONDS after the instance is stored (written to the spool and recorded),
so that a test can kill the server in the middle of an association. Test-only: the
delay is injected here by wrapping ``Engine.receive``; rtqa itself has no such hook."""

from __future__ import annotations

import sys
import time


def main() -> None:
    delay = float(sys.argv[1])
    from rtqa.serve.engine import Engine
    receive = Engine.receive

    def slow_receive(self, *args, **kwargs):
        inst = receive(self, *args, **kwargs)
        time.sleep(delay)
        return inst

    Engine.receive = slow_receive
    from rtqa.cli import main as rtqa_main
    sys.argv = ["rtqa", *sys.argv[2:]]
    rtqa_main()


if __name__ == "__main__":
    main()
