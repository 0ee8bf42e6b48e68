#!/usr/bin/python3
# Debian's python3 (the one that sees python3-torch), not one from PATH such as pyenv.
"""Writes the recognition workload's model: torchvision ResNet-50 with random weights.

The paper's pretrained `resnet50-19c8e357.pth` is not available here (SPEC.md §4, §5), so this
builds `resnet50(weights=None)` (same 25.6 M parameters, size and compute; meaningless labels)
and saves its state dict under that file name. Seeded, so every machine gets the same bytes.

    python3 bench/experiments/make-resnet50.py DIR && faasnap inputs load DIR
"""

import os
import sys

import torch
import torchvision

NAME = "resnet50-19c8e357.pth"


def main(out_dir):
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, NAME)
    torch.save(model.state_dict(), path)
    print(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make-resnet50.py OUT_DIR")
    main(sys.argv[1])
