"""run (SPEC.md §4): run params["args"] through the shell; a non-zero exit raises.

FaaSnap preparation uses it to write to /proc/sys/vm/drop_caches.
"""

import subprocess

OUTPUT_TAIL = 4096  # keep results small: only the end of stdout/stderr is returned


def handle(params, ctx):
    args = (params or {}).get("args", "")
    if not isinstance(args, str) or not args:
        raise ValueError("params.args must be a non-empty string")
    ctx.t1()
    proc = subprocess.run(
        args, shell=True, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    ctx.t2()
    out = proc.stdout.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    err = proc.stderr.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    if proc.returncode != 0:
        raise RuntimeError("command exited with status %d: %s" % (proc.returncode, err.strip()))
    return {"returncode": proc.returncode, "stdout": out, "stderr": err}
