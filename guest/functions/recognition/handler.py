"""recognition (SPEC.md §4): classify an image with a ResNet-50 (PyTorch, torchvision).

On import: the 1000 class labels, from labels.json next to this file. The paper used
imagenet_class_index.json; its weights were never shipped, so ours is a list we generated,
"class-0" .. "class-999" (with random weights the labels mean nothing anyway).
read: GET the image into <scratch>/<in>; on the first call in this process (or for another
model key) GET the model (a ResNet-50 state dict) into <scratch>/<model key>, build
torchvision's resnet50(weights=None), load the state dict, switch to eval mode and keep it in a
module global, so later calls and snapshots taken after the first call skip this.
process: resize (short side 256), center-crop 224, to tensor, normalize, batch of one; forward
(autograd left on, as in the paper), argmax, softmax, full descending sort, label lookup.
No writes; `output_object_key_prefix` is accepted and unused, as in the paper.
"""

import json
import os

import torch
from PIL import Image
from torchvision import transforms
from torchvision.models import resnet50

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "labels.json")) as _f:
    LABELS = json.load(_f)
if len(LABELS) != 1000:
    raise RuntimeError("labels.json must hold 1000 labels, not %d" % len(LABELS))

PREPROCESS = transforms.Compose(
    [
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ]
)

MODEL = None  # (model key, torch module): survives invocations and snapshots


def load_model(ctx, key):
    global MODEL
    if MODEL is not None and MODEL[0] == key:
        return MODEL[1], False
    path = ctx.fetch(key)
    model = resnet50(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu"))
    model.eval()
    MODEL = (key, model)
    return model, True


def handle(params, ctx):
    image_path = ctx.fetch(params["input_object_key"])
    model, loaded = load_model(ctx, params["model_object_key"])
    ctx.t1()
    with Image.open(image_path) as img:
        batch = PREPROCESS(img).unsqueeze(0)
    out = model(batch)
    top = int(torch.argmax(out[0]))
    prob = torch.nn.functional.softmax(out[0], dim=0)
    _, order = torch.sort(prob, descending=True)
    label = LABELS[int(order[0])]
    ctx.t2()
    return {
        "top_index": top,
        "label": label,
        "probability": float(prob[top]),
        "prob_sum": float(prob.sum()),
        "output_shape": list(out.shape),
        "model_loaded": loaded,
    }
