"""Train the bundled digits CNN and residual network in PyTorch and export them to ONNX.

Data: scikit-learn's 8x8 digits as 1x8x8 images, pixels scaled to [0, 1], the same
80/20 split as the digits MLP (random_state=0, stratified).

- ``digits_cnn``: Conv3x3(8)-BN-ReLU-MaxPool2 - Conv3x3(16)-BN-ReLU - GlobalAveragePool -
  Linear(10).
- ``digits_resnet``: a stem Conv3x3(16)-BN-ReLU, then two residual depthwise-separable
  blocks (depthwise Conv3x3 groups=16 - BN - ReLU - pointwise Conv1x1 - BN, plus the
  skip, then ReLU) with a MaxPool2 between them, GlobalAveragePool, Linear(10).

Each folder gets ``model.onnx`` (exported with ``torch.onnx.export``, weights inside the
file), ``test.npz`` (``x`` (N, 1, 8, 8), ``y``), ``calibration.npz`` (the first 500 images of
the training split) and ``train.npz`` (the whole training split, ``x`` and ``y``: what
``nnforge finetune`` trains on).

    pip install torch==2.13.0 scikit-learn onnxscript
    python examples/make_digits_cnns.py
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.features(x))


class SeparableBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + x)


class DigitsResNet(nn.Module):
    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(SeparableBlock(c), nn.MaxPool2d(2), SeparableBlock(c))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def split():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target)


def train(model: nn.Module, x, y, epochs: int = 60, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def main() -> None:
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead here
    x_train, x_test, y_train, y_test = split()
    for name, cls in (("digits_cnn", DigitsCNN), ("digits_resnet", DigitsResNet)):
        torch.manual_seed(0)
        model = train(cls(), x_train, y_train)
        with torch.no_grad():
            acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        print(f"{name}: float accuracy on the test split {acc:.4f} ({len(y_test)} samples)")
        out = HERE / name
        out.mkdir(exist_ok=True)
        torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(out / "model.onnx"),
                          input_names=["image"], output_names=["logits"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, external_data=False)
        np.savez_compressed(out / "test.npz", x=x_test, y=y_test.astype(np.int64))
        np.savez_compressed(out / "calibration.npz", x=x_train[:500])
        np.savez_compressed(out / "train.npz", x=x_train, y=y_train.astype(np.int64))


if __name__ == "__main__":
    main()
