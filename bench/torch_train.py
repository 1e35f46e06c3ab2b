"""PyTorch twin of `onebit train` for side-by-side speed figures (bench/train.ts runs it beside onebit).

Models (as src/nn/models.ts builds them, real activations):
  mlp-2x2048  784-2048-2048-10, batch norm (affine off, eps 1e-4, momentum 0.15) after every layer including
              the logits, ReLU;
  cnn-small   conv 16 3x3 pad 1 -> BN -> ReLU -> maxpool 2 -> conv 32 3x3 pad 1 -> BN -> ReLU -> maxpool 2 ->
              flatten -> dense 10 -> BN (PyTorch's batch-norm defaults, affine off).
Methods:
  ste         binary weights by sign() with an identity straight-through gradient, latent weights clipped to
              [-1, 1], Adam lr 1e-3 with a per-iteration cosine schedule;
  bayesbinn   BayesBiNN's Bayesian learning rule as onebit's defaults run it (docs/methods.md#bayesbinn): one
              relaxed sample per step w = tanh((lambda + delta) / tau), tau = 1e-10, the float32 scale
              s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10), lambda <- lambda - lr (N s g + lambda - lambda0),
              lr 1e-4 with the cosine schedule, mu = tanh(lambda) from before the step; vectorised torch ops,
              as the official optimizer (team-approx-bayes/BayesBiNN) runs them.
Batch 100, 54,000 training examples. Prints one JSON line: samples/s over the training epochs and the peak
RSS of the process. Run with Debian's PyTorch:
  /usr/bin/python3 bench/torch_train.py --threads 2 --epochs 1 --model mlp-2x2048 --method ste
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


class BinaryConv2d(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, SignSTE.apply(self.weight), None, self.stride, self.padding)


def build(model, sign_weights=True):
    """The model; with sign_weights False the binary layers use their weight tensor as it is (BayesBiNN)."""
    linear = BinaryLinear if sign_weights else nn.Linear
    conv = BinaryConv2d if sign_weights else nn.Conv2d
    if model == "mlp-2x2048":
        layers = [nn.Flatten()]
        sizes = [784, 2048, 2048, 10]
        for i in range(3):
            layers.append(linear(sizes[i], sizes[i + 1], bias=False))
            layers.append(nn.BatchNorm1d(sizes[i + 1], affine=False, eps=1e-4, momentum=0.15))
            if i < 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    if model == "cnn-small":
        return nn.Sequential(
            conv(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16, affine=False),
            nn.ReLU(),
            nn.MaxPool2d(2),
            conv(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32, affine=False),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            linear(32 * 7 * 7, 10, bias=False),
            nn.BatchNorm1d(10, affine=False),
        )
    raise SystemExit(f"unknown model {model}")


class BayesBiNN:
    """BayesBiNN's step over every weight of the model, on flat tensors (one sample per step)."""

    def __init__(self, params, train_size, lr, tau=1e-10, lambda_init=10.0):
        self.params = list(params)
        n = sum(p.numel() for p in self.params)
        signs = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
        self.lam = signs * lambda_init
        self.prior = torch.zeros(n)
        self.mu = torch.tanh(self.lam)
        self.n = float(train_size)
        self.lr = lr
        self.tau = tau

    def propose(self):
        u = torch.rand_like(self.lam).clamp_(1e-10, 1 - 1e-10)
        delta = 0.5 * torch.log(u / (1 - u))
        self.w = torch.tanh((self.lam + delta) / self.tau)
        offset = 0
        for p in self.params:
            k = p.numel()
            p.data.copy_(self.w[offset : offset + k].view_as(p))
            offset += k

    def step(self):
        grad = torch.cat([p.grad.reshape(-1) for p in self.params])
        scale = (1 - self.w * self.w + 1e-10) / self.tau / (1 - self.mu * self.mu + 1e-10)
        direction = self.n * scale * grad + (self.lam - self.prior)
        self.mu = torch.tanh(self.lam)
        self.lam = self.lam - self.lr * direction


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--model", default="mlp-2x2048", choices=["mlp-2x2048", "cnn-small"])
    parser.add_argument("--method", default="ste", choices=["ste", "bayesbinn"])
    parser.add_argument("--examples", type=int, default=54000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(f"{args.data}/train-images-idx3-ubyte.gz")[: args.examples].reshape(-1, 1, 28, 28).astype(np.float32) / 255
    labels = read_idx(f"{args.data}/train-labels-idx1-ubyte.gz")[: args.examples].astype(np.int64)
    x = torch.from_numpy((images - images.mean()) / images.std())
    y = torch.from_numpy(labels)
    ste = args.method == "ste"
    model = build(args.model, sign_weights=ste)
    base_lr = 1e-3 if ste else 1e-4
    if ste:
        optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        bayes = BayesBiNN(model.parameters(), len(x), base_lr)
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    total = steps_per_epoch * args.epochs
    step = 0
    seen = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(x))
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            lr = base_lr * (1 + math.cos(math.pi * step / total)) / 2
            if ste:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for p in model.parameters():
                        p.clamp_(-1, 1)
            else:
                bayes.lr = lr
                with torch.no_grad():
                    bayes.propose()
                loss = F.cross_entropy(model(x[idx]), y[idx])
                model.zero_grad(set_to_none=True)
                loss.backward()
                with torch.no_grad():
                    bayes.step()
            step += 1
            seen += len(idx)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "samplesPerSecond": seen / seconds,
        "stepMilliseconds": 1000 * seconds / step,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": args.threads,
        "model": args.model,
        "method": args.method,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
