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
invocation, inside that invocation's read phase, and stays loaded; ctx offers t1/t2,
storage_get/storage_put (bytes, None for a missing key), log, remaining_ms, id, function, dir.
Standard library only.
"""

import importlib.util
import json
import os
import re
import sys
import time
import traceback

TIMEOUT_MS = 600_000


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


class Marks:
    def __init__(self):
        self.t_start = now_ns()
        self.t1 = None
        self.t2 = None


class Ctx:
    def __init__(self, inv_id, name, directory, storage, marks):
        self.id = inv_id
        self.function = name
        self.dir = directory
        self._storage = storage
        self._marks = marks

    def t1(self):
        self._marks.t1 = now_ns()

    def t2(self):
        self._marks.t2 = now_ns()

    def remaining_ms(self):
        return max(0, TIMEOUT_MS - (now_ns() - self._marks.t_start) / 1e6)

    def storage_get(self, key):
        if not isinstance(key, str) or not key:
            raise ValueError("storage key must be a non-empty string")
        return self._storage.get(key)

    def storage_put(self, key, value):
        if not isinstance(key, str) or not key:
            raise ValueError("storage key must be a non-empty string")
        self._storage.put(key, value)

    def log(self, msg, level="info"):
        sys.stderr.write("[%s] %s\n" % (level, msg))


def load(path):
    name = os.path.basename(os.path.dirname(path))
    modname = "faasnap_fn_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    req = json.load(sys.stdin)
    path = os.path.abspath(req["handler"])
    name = os.path.basename(os.path.dirname(path))
    out_dir = req.get("out_dir") or os.getcwd()
    storage = Storage(req.get("storage", {}), out_dir)
    module = None
    results = []
    for i, inv in enumerate(req.get("invocations", [])):
        marks = Marks()
        entry = {}
        try:
            if module is None:
                module = load(path)
            ctx = Ctx(i + 1, name, os.path.dirname(path), storage, marks)
            t_call = now_ns()
            entry["result"] = module.handle(inv.get("params", {}), ctx)
            # As the agent: unmarked phases make the call itself the process phase.
            if marks.t1 is None:
                marks.t1 = t_call
        except Exception as e:
            entry["error"] = {
                "type": type(e).__name__,
                "message": str(e),
                "traceback": traceback.format_exc(),
            }
        t_end = now_ns()
        t1 = marks.t1 if marks.t1 is not None else t_end
        t2 = marks.t2 if marks.t2 is not None else t_end
        entry["timings"] = {
            "readMs": max(0, t1 - marks.t_start) / 1e6,
            "processMs": max(0, t2 - t1) / 1e6,
            "writeMs": max(0, t_end - t2) / 1e6,
        }
        results.append(entry)
    json.dump({"invocations": results, "puts": storage.puts}, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
