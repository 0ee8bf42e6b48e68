"""compression (SPEC.md §4, from SeBS): ZIP (deflate) a directory holding the input object.

read: GET the input into <scratch>/compression/ and sum the directory's file sizes (unused, as
in SeBS); process: shutil.make_archive(<scratch>/<out>, "zip") of that directory, which writes
<scratch>/<out>.zip; write: SET the ZIP bytes under <out>, remove the directory and archive.
"""

import os
import shutil


def scratch_dir():
    return os.environ.get("FAASNAP_SCRATCH_DIR", "/dev/shm")


def file_name(key):
    # Keys name files in a shared directory: keep only the last path component.
    name = os.path.basename(str(key))
    if name in ("", ".", ".."):
        raise ValueError("object key %r does not name a file" % key)
    return name


def dir_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def handle(params, ctx):
    in_key = params["input_object_key"]
    out_key = params["output_object_key"]
    work = os.path.join(scratch_dir(), "compression")
    # A failed earlier invocation may have left files behind; they must not enter this archive.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = ctx.storage_get(in_key)
    if data is None:
        raise KeyError("no object %r" % in_key)
    with open(os.path.join(work, file_name(in_key)), "wb") as f:
        f.write(data)
    input_size = dir_size(work)
    ctx.t1()
    archive = shutil.make_archive(os.path.join(scratch_dir(), file_name(out_key)), "zip", work)
    ctx.t2()
    with open(archive, "rb") as f:
        out = f.read()
    ctx.storage_put(out_key, out)
    shutil.rmtree(work)
    os.remove(archive)
    return {"input_bytes": input_size, "output_key": out_key, "output_bytes": len(out)}
