"""The solution's end of a Python judgement: import what the judge asks for and serve it.

Runs in the solution's sandbox as ``python3 -I`` (isolated: no environment variables, no
user site; the workspace is put first on ``sys.path`` so the solution imports its own
modules as it would anywhere). It only answers requests: whatever the solution does here
(exit, patch the interpreter, print) changes nothing but its own answers, which the judge,
in another process, checks. ``argv[1]`` is ``plain`` (call results must be plain data) or
``objects``.
"""

import os
import sys

from exapt_wire import Endpoint, Gone, Policy, private_stdio  # type: ignore[import-not-found]


def main() -> None:
    rfd, wfd = private_stdio()
    sys.path.insert(0, os.getcwd())
    endpoint = Endpoint(rfd, wfd, Policy(plain=sys.argv[1:2] == ["plain"]))
    try:
        while True:
            msg = endpoint.read()
            if msg is None:
                break
            if "re" in msg:
                endpoint._fail("a reply nobody asked for")
            endpoint.serve(msg)
    except Gone:
        pass
    os._exit(0)


main()
