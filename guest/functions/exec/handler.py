"""exec (SPEC.md §4): runs params["script"] (Python source) in one persistent namespace.

The namespace outlives invocations (and snapshots), so names a script defines are there for the
next one, and it starts with the modules the paper's daemon had imported (mmap, time, sys,
subprocess) for scripts such as the `mmap` workload. A script may set `result` to return a
(JSON-serialisable) value.
"""

import mmap
import os
import subprocess
import sys
import time

NAMESPACE = {
    "__name__": "faasnap_exec",
    "mmap": mmap,
    "os": os,
    "subprocess": subprocess,
    "sys": sys,
    "time": time,
}


def handle(params, ctx):
    script = params.get("script", "") if isinstance(params, dict) else ""
    if not isinstance(script, str):
        raise TypeError("params.script must be a string")
    # A stale `result` from an earlier script must not be returned again.
    NAMESPACE.pop("result", None)
    ctx.t1()
    exec(compile(script, "<exec script>", "exec"), NAMESPACE)
    ctx.t2()
    return NAMESPACE.pop("result", None)
