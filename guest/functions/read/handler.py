"""read (SPEC.md §4): read every 512th element of a global list that exists before the call.

The paper's `debian-list` image pre-built a list `l` in its daemon, size unpublished. Ours is
built when this module is imported (the first invocation's read phase, or before the snapshot
is taken), so later invocations and restored VMs find it in memory:

    l = list(range(10_000_000))

That is an 80 MB array of pointers (8 bytes each, so a stride of 512 reads one pointer per
4 KiB page: 19,532 pages) plus 10M distinct int objects (~320 MB; each read also touches the
object's refcount). FAASNAP_READ_LIST_LEN overrides the length (host tests use a smaller one).
"""

import os

LIST_LEN = int(os.environ.get("FAASNAP_READ_LIST_LEN", "10000000"))
STRIDE = 512

l = list(range(LIST_LEN))  # noqa: E741 -- the paper's name for it


def handle(params, ctx):
    ctx.t1()
    reads = 0
    total = 0
    for i in range(0, len(l), STRIDE):
        a = l[i]
        reads += 1
        total += a
    ctx.t2()
    return {"len": len(l), "stride": STRIDE, "reads": reads, "sum": total}
