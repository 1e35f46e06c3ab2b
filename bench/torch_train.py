"""PyTorch twin of `onebit train --model mlp-2x2048 --method ste` for side-by-side speed figures.

784-2048-2048-10, binary weights by sign() with an identity straight-through gradient, latent weights
clipped to [-1, 1], batch norm (affine off, eps 1e-4, momentum 0.15) after every layer including the
logits, ReLU, Adam lr 1e-3 with a per-iteration cosine schedule, batch 100, 54,000 training examples.
Prints one JSON line: samples/s over the training epochs and the peak RSS of the process.
Run with Debian's PyTorch: /usr/bin/python3 bench/torch_train.py --threads 2 --epochs 1
"""
import argparse
import gzip
import json
import math
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        return g


class BinaryLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, SignSTE.apply(self.weight))


def build(activations):
    layers = []
    sizes = [784, 2048, 2048, 10]
    for i in range(3):
        layers.append(BinaryLinear(sizes[i], sizes[i + 1], bias=False))
        layers.append(nn.BatchNorm1d(sizes[i + 1], affine=False, eps=1e-4, momentum=0.15))
        if i < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz")[:54000].reshape(-1, 784).astype(np.float32) / 255
    labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz")[:54000].astype(np.int64)
    x = torch.from_numpy((images - images.mean()) / images.std())
    y = torch.from_numpy(labels)
    model = build("real")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    total = steps_per_epoch * args.epochs
    step = 0
    seen = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(x))
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * (1 + math.cos(math.pi * step / total)) / 2
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for p in model.parameters():
                    p.clamp_(-1, 1)
            step += 1
            seen += len(idx)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "samplesPerSecond": seen / seconds,
        "stepMilliseconds": 1000 * seconds / step,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": args.threads,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
