"""image (SPEC.md §4): rotate a picture by 90, 180 and 270 degrees with Pillow.

read: GET the input, write it to <scratch>/<in>; process: open it, make the three rotations
(pixel transposes, counter-clockwise as Pillow's ROTATE_*), save each as
<scratch>/rotate-<deg>-<in> in the format the extension implies (JPEG, Pillow's default
quality); write: SET <prefix>rotate-<deg>-<in>. As in the paper the temp files stay.
"""

import os

from PIL import Image

# Pillow >= 9.1 has the Transpose enum; >= 10 dropped the old module-level aliases.
_T = getattr(Image, "Transpose", Image)
ROTATIONS = ((90, _T.ROTATE_90), (180, _T.ROTATE_180), (270, _T.ROTATE_270))


def handle(params, ctx):
    in_key = params["input_object_key"]
    prefix = params.get("output_object_key_prefix", "")
    in_path = ctx.fetch(in_key)
    name = os.path.basename(in_path)
    input_bytes = os.path.getsize(in_path)
    ctx.t1()
    saved = []
    with Image.open(in_path) as img:
        size = img.size
        for deg, op in ROTATIONS:
            path = ctx.scratch_path("rotate-%d-%s" % (deg, name))
            img.transpose(op).save(path)
            saved.append((deg, path))
    ctx.t2()
    outputs = {}
    for deg, path in saved:
        with open(path, "rb") as f:
            out = f.read()
        key = "%srotate-%d-%s" % (prefix, deg, name)
        ctx.storage_put(key, out)
        outputs[key] = {"degrees": deg, "bytes": len(out)}
    return {"input_bytes": input_bytes, "width": size[0], "height": size[1], "outputs": outputs}
