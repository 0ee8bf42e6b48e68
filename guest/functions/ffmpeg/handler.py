"""ffmpeg (SPEC.md §4): horizontally flip a video with the ffmpeg CLI.

read: GET the input, write it to <scratch>/<in>; process: `ffmpeg -y -i in -vf hflip out` with
the default encoders (libx264 for .mp4); write: SET the output, delete both temp files.
Temp files go to the agent's scratch directory (ctx.scratch_path: /dev/shm in the guest).
"""

import os
import subprocess


def handle(params, ctx):
    in_key = params["input_object_key"]
    out_key = params["output_object_key"]
    out_path = ctx.scratch_path(out_key)
    if ctx.scratch_path(in_key) == out_path:
        raise ValueError("input and output keys name the same file")
    in_path = ctx.fetch(in_key)
    input_bytes = os.path.getsize(in_path)
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
    return {"input_bytes": input_bytes, "output_key": out_key, "output_bytes": len(out)}
