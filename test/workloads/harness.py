#!/usr/bin/env python3
"""Runs a guest function's handler.py on the host, for tests (guest/functions/handlers.test.ts).

Reads one JSON request on stdin:
  {"handler": "/path/to/handler.py",
   "storage": {"key": "/path/to/file", ...},   preloaded object store (read lazily)
   "invocations": [{"params": {...}}, ...],    run in order, in this one process
   "out_dir": "/path"}                          where stored (put) objects are written
and prints one JSON object on stdout:
  {"invocations": [{"result" | "error", "timings": {"readMs", "processMs", "writeMs"}}],
   "puts": {"key": {"path": "...", "bytes": n}}}

Like the guest agent (guest/agent/agent.py): the handler module is imported on the first
invocation, inside that invocation's read phase, and stays loaded; ctx is the agent's own
Context class (storage served from the files above), so handlers meet the same ctx as in the
guest. Standard library only.
"""

import importlib.util
import json
import os
import re
import sys
import time
import traceback

TIMEOUT_MS = 600_000
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../guest/agent/agent.py")


def now_ns():
    return time.monotonic_ns()


class Storage:
    def __init__(self, files, out_dir):
        self.files = dict(files)  # key -> host file with the preloaded value
        self.values = {}  # key -> bytes put by a handler
        self.out_dir = out_dir
        self.puts = {}

    def get(self, key):
        if key in self.values:
            return self.values[key]
        path = self.files.get(key)
        if path is None:
            return None
        with open(path, "rb") as f:
            return f.read()

    def put(self, key, value):
        if isinstance(value, str):
            value = value.encode("utf-8")
        value = bytes(value)
        self.values[key] = value
        # Keys may hold any character: files are numbered, the mapping goes in the output.
        path = os.path.join(self.out_dir, "put-%d" % len(self.puts))
        if key in self.puts:
            path = self.puts[key]["path"]
        with open(path, "wb") as f:
            f.write(value)
        self.puts[key] = {"path": path, "bytes": len(value)}


class HostAgent:
    """What the agent's Context calls on its agent: storage and logs, here on the host."""

    def __init__(self, storage):
        self._storage = storage

    def storage_get(self, key):
        if not isinstance(key, str) or not key:
            raise ValueError("storage key must be a non-empty string")
        return self._storage.get(key)

    def storage_put(self, key, value):
        if not isinstance(key, str) or not key:
            raise ValueError("storage key must be a non-empty string")
        self._storage.put(key, value)

    def log(self, msg, level="info", inv_id=0):
        sys.stderr.write("[%s] %s\n" % (level, msg))


def load(path, modname=None):
    name = os.path.basename(os.path.dirname(path))
    modname = modname or "faasnap_fn_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    # The guest agent's own ctx (guest/agent/agent.py), so handlers are tested against it.
    agent = load(AGENT, "faasnap_agent")
    req = json.load(sys.stdin)
    path = os.path.abspath(req["handler"])
    name = os.path.basename(os.path.dirname(path))
    out_dir = req.get("out_dir") or os.getcwd()
    storage = Storage(req.get("storage", {}), out_dir)
    host = HostAgent(storage)
    module = None
    results = []
    for i, inv in enumerate(req.get("invocations", [])):
        timing = agent.Invocation(
            {"id": i + 1, "function": name, "params": inv.get("params", {}), "timeoutMs": TIMEOUT_MS},
            now_ns(),
        )
        entry = {}
        try:
            if module is None:
                module = load(path)
            ctx = agent.Context(host, timing, os.path.dirname(path))
            t_call = now_ns()
            entry["result"] = module.handle(inv.get("params", {}), ctx)
            # As the agent: unmarked phases make the call itself the process phase.
            if timing.t1 is None:
                timing.t1 = t_call
        except Exception as e:
            entry["error"] = {
                "type": type(e).__name__,
                "message": str(e),
                "traceback": traceback.format_exc(),
            }
        t_end = now_ns()
        t1 = timing.t1 if timing.t1 is not None else t_end
        t2 = timing.t2 if timing.t2 is not None else t_end
        entry["timings"] = {
            "readMs": max(0, t1 - timing.t_start) / 1e6,
            "processMs": max(0, t2 - t1) / 1e6,
            "writeMs": max(0, t_end - t2) / 1e6,
        }
        results.append(entry)
    json.dump({"invocations": results, "puts": storage.puts}, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
