"""compression (SPEC.md §4, from SeBS): ZIP (deflate) a directory holding the input object.

read: GET the input into <scratch>/compression/ and sum the directory's file sizes (unused, as
in SeBS); process: shutil.make_archive(<scratch>/<out>, "zip") of that directory, which writes
<scratch>/<out>.zip; write: SET the ZIP bytes under <out>, remove the directory and archive.
"""

import os
import shutil


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def handle(params, ctx):
    in_key = params["input_object_key"]
    out_key = params["output_object_key"]
    work = ctx.scratch_path("compression")
    # A failed earlier invocation may have left files behind; they must not enter this archive.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ctx.fetch(in_key, work)
    input_size = dir_size(work)
    ctx.t1()
    archive = shutil.make_archive(ctx.scratch_path(out_key), "zip", work)
    ctx.t2()
    with open(archive, "rb") as f:
        out = f.read()
    ctx.storage_put(out_key, out)
    shutil.rmtree(work)
    os.remove(archive)
    return {"input_bytes": input_size, "output_key": out_key, "output_bytes": len(out)}
