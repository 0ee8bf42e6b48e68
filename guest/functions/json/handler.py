"""json (SPEC.md §4): parse a JSON document and re-serialize it with 4-space indentation.

The output is discarded (no writes); the result describes it so a test can check the work:
the top-level item count and the output's size and line count (line count does not depend on
how a serializer spells numbers or escapes strings, so another language can recompute it).
"""

import json


def handle(params, ctx):
    key = params["input_object_key"]
    raw = ctx.get_object(key)
    text = raw.decode("utf-8")
    ctx.t1()
    doc = json.loads(text)
    out = json.dumps(doc, indent=4)
    ctx.t2()
    return {
        "input_bytes": len(raw),
        "type": type(doc).__name__,
        "items": len(doc) if isinstance(doc, (list, dict)) else 1,
        "output_chars": len(out),
        "output_lines": out.count("\n") + 1,
    }
