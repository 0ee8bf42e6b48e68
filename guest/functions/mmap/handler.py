"""mmap (SPEC.md §4): map anonymous memory, write one byte per 4 KiB page, unmap.

The paper runs this as an `exec` script: `mmap.mmap(-1, 512 MiB)`, `mm[i] = 1` for every 4096th
offset, `mm.close()`. Python's default for `mmap.mmap(-1, n)` is MAP_SHARED, i.e. shmem-backed
anonymous memory; we keep that default so the guest takes the same fault path. Params:
`mib` (default 512), `private` ("1": MAP_PRIVATE instead, for comparison).
"""

import mmap

PAGE = 4096


def handle(params, ctx):
    params = params or {}
    mib = int(params.get("mib", "512"))
    if mib <= 0:
        raise ValueError("mib must be positive")
    private = str(params.get("private", "0")) == "1"
    size = mib << 20
    ctx.t1()
    if private:
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    else:
        mm = mmap.mmap(-1, size)
    touched = 0
    for off in range(0, size, PAGE):
        mm[off] = 1
        touched += 1
    mm.close()
    ctx.t2()
    return {"mib": mib, "pages": touched, "shared": not private}
