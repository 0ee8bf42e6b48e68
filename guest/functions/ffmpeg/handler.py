"""ffmpeg (SPEC.md §4): horizontally flip a video with the ffmpeg CLI.

read: GET the input, write it to <scratch>/<in>; process: `ffmpeg -y -i in -vf hflip out` with
the default encoders (libx264 for .mp4); write: SET the output, delete both temp files.
Scratch is /dev/shm (the guest root is read-only); FAASNAP_SCRATCH_DIR overrides it (tests).
"""

import os
import subprocess


def scratch_dir():
    return os.environ.get("FAASNAP_SCRATCH_DIR", "/dev/shm")


def file_name(key):
    # Keys name files in a shared directory: keep only the last path component.
    name = os.path.basename(str(key))
    if name in ("", ".", ".."):
        raise ValueError("object key %r does not name a file" % key)
    return name


def handle(params, ctx):
    in_key = params["input_object_key"]
    out_key = params["output_object_key"]
    data = ctx.storage_get(in_key)
    if data is None:
        raise KeyError("no object %r" % in_key)
    in_path = os.path.join(scratch_dir(), file_name(in_key))
    out_path = os.path.join(scratch_dir(), file_name(out_key))
    if in_path == out_path:
        raise ValueError("input and output keys name the same file")
    with open(in_path, "wb") as f:
        f.write(data)
    ctx.t1()
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-i", in_path, "-vf", "hflip", out_path],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    )
    if proc.returncode != 0:
        os.remove(in_path)
        raise RuntimeError(
            "ffmpeg exited with status %d: %s"
            % (proc.returncode, proc.stderr.decode("utf-8", "replace")[-2000:])
        )
    ctx.t2()
    with open(out_path, "rb") as f:
        out = f.read()
    ctx.storage_put(out_key, out)
    os.remove(in_path)
    os.remove(out_path)
    return {"input_bytes": len(data), "output_key": out_key, "output_bytes": len(out)}
