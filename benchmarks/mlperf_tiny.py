"""ONNX models of the MLPerf Tiny reference shapes, with synthetic weights and data.

    resnet8()         image classification: 3x32x32 input, 16/32/64 channels   (~12.5 M MACs)
    ds_cnn()          keyword spotting: 1x49x10 MFCC input, 10x4 stride-2 conv to 64 channels,
                      4 x (depthwise 3x3 + pointwise 64), average pool, dense 12  (~2.66 M MACs)
    fc_autoencoder()  anomaly detection: 640-128x4-8-128x4-640                   (~264 k MACs)
    mobilenet_v1()    visual wake words: MobileNetV1 width 0.25 on 3x96x96, 3x3 stride-2 conv
                      to 8 channels, 13 x (depthwise 3x3 + pointwise) to 16..256 channels
                      (strides and "same" padding as TensorFlow's), average pool, dense 2
                      (~7.49 M MACs)

Each returns ``(model, calibration, test)``: an opset-13 ``onnx.ModelProto`` (float32
weights drawn from a seeded generator with He scaling, so activations keep their range
through the layers; batch normalisation already folded into the conv weights and biases,
as a trained model's export after folding would be; ReLU activations, as in the reference
models, MobileNetV1's included), a calibration batch and ``n_test`` test inputs (synthetic,
seeded). The shapes and MAC counts are those of the benchmark's reference models; the
weights are not trained, so only speed and size mean anything.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # opset 13's IR version


class _Builder:
    """Nodes and initializers of one graph, with He-initialised layers."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def _const(self, name: str, a: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list, **attrs) -> str:
        name = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x: str, c_in: int, c_out: int, kernel, stride=1, pads=None, group: int = 1,
             relu: bool = True) -> str:
        """A conv (batch norm folded in: the weights and bias are the folded ones), then ReLU."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        fan_in = c_in // group * kh * kw
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), (c_out, c_in // group, kh, kw))
        b = self.rng.normal(0.0, 0.05, c_out)
        if pads is None:
            pads = [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]
        name = self._name("conv")
        y = self.node("Conv", [x, self._const(name + "_w", w), self._const(name + "_b", b)],
                      kernel_shape=[kh, kw], strides=[stride, stride], pads=list(pads), group=group)
        return self.node("Relu", [y]) if relu else y

    def dense(self, x: str, n_in: int, n_out: int, relu: bool = True) -> str:
        w = self.rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in))
        b = self.rng.normal(0.0, 0.05, n_out)
        name = self._name("fc")
        y = self.node("Gemm", [x, self._const(name + "_w", w), self._const(name + "_b", b)], transB=1)
        return self.node("Relu", [y]) if relu else y

    def model(self, name: str, x_shape: tuple, y: str, y_shape: tuple) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *x_shape])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, *y_shape])],
            self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nnforge-benchmarks")
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m)
        return m


def _data(seed: int, shape: tuple, n_cal: int, n_test: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic inputs: ``image`` uniform in [0, 1) (a normalised picture), ``normal``
    standard normal (MFCC features, spectrogram frames after standardisation)."""
    rng = np.random.default_rng(seed)
    draw = (lambda n: rng.random((n, *shape))) if kind == "image" else (lambda n: rng.normal(0.0, 1.0, (n, *shape)))
    return draw(n_cal).astype(np.float32), draw(n_test).astype(np.float32)


def _stack(b: _Builder, x: str, c_in: int, c_out: int) -> str:
    """ResNet-8's stack: conv3x3 (stride 2 when the channels grow) + relu, conv3x3, a
    1x1 stride-2 skip when the shape changes, add, relu."""
    stride = 1 if c_in == c_out else 2
    y = b.conv(x, c_in, c_out, 3, stride)
    y = b.conv(y, c_out, c_out, 3, relu=False)
    skip = x if stride == 1 else b.conv(x, c_in, c_out, 1, 2, pads=[0, 0, 0, 0], relu=False)
    return b.node("Relu", [b.node("Add", [y, skip])])


def resnet8(seed: int = 0, n_cal: int = 32, n_test: int = 4):
    """MLPerf Tiny image classification (CIFAR-10 shapes): ~12.5 M MACs."""
    b = _Builder(seed)
    x = b.conv("input", 3, 16, 3)
    for c_in, c_out in ((16, 16), (16, 32), (32, 64)):
        x = _stack(b, x, c_in, c_out)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    y = b.dense(x, 64, 10, relu=False)
    cal, test = _data(seed + 1, (3, 32, 32), n_cal, n_test, "image")
    return b.model("resnet8", (3, 32, 32), y, (10,)), cal, test


def ds_cnn(seed: int = 0, n_cal: int = 32, n_test: int = 4):
    """MLPerf Tiny keyword spotting (DS-CNN small): ~2.66 M MACs."""
    b = _Builder(seed)
    # 10x4 stride 2, "same" padding on 49x10 -> 25x5: 9 rows of padding (4 above, 5 below), 2 columns
    x = b.conv("input", 1, 64, (10, 4), 2, pads=[4, 1, 5, 1])
    for _ in range(4):
        x = b.conv(x, 64, 64, 3, group=64)
        x = b.conv(x, 64, 64, 1, pads=[0, 0, 0, 0])
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    y = b.dense(x, 64, 12, relu=False)
    cal, test = _data(seed + 1, (1, 49, 10), n_cal, n_test, "normal")
    return b.model("ds_cnn", (1, 49, 10), y, (12,)), cal, test


def fc_autoencoder(seed: int = 0, n_cal: int = 64, n_test: int = 4):
    """MLPerf Tiny anomaly detection (dense autoencoder): ~264 k MACs."""
    b = _Builder(seed)
    widths = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)
    x = "input"
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        x = b.dense(x, n_in, n_out, relu=i < len(widths) - 2)
    cal, test = _data(seed + 1, (640,), n_cal, n_test, "normal")
    return b.model("fc_autoencoder", (640,), x, (640,)), cal, test


# MobileNetV1-0.25's 13 depthwise-separable blocks: (pointwise output channels, stride)
MOBILENET_BLOCKS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
                    (128, 1), (128, 1), (128, 1), (256, 2), (256, 1))


def _same_pads(stride: int) -> list:
    """TensorFlow's "same" padding of a 3x3 kernel on an even side: one row and column on
    each side at stride 1, only below and to the right at stride 2."""
    return [1, 1, 1, 1] if stride == 1 else [0, 0, 1, 1]


def mobilenet_v1(seed: int = 0, n_cal: int = 32, n_test: int = 4):
    """MLPerf Tiny visual wake words (MobileNetV1, width 0.25, 96x96x3): ~7.49 M MACs."""
    b = _Builder(seed)
    x = b.conv("input", 3, 8, 3, 2, pads=_same_pads(2))
    c = 8
    for c_out, stride in MOBILENET_BLOCKS:
        x = b.conv(x, c, c, 3, stride, pads=_same_pads(stride), group=c)
        x = b.conv(x, c, c_out, 1, pads=[0, 0, 0, 0])
        c = c_out
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    y = b.dense(x, c, 2, relu=False)
    cal, test = _data(seed + 1, (3, 96, 96), n_cal, n_test, "image")
    return b.model("mobilenet_v1", (3, 96, 96), y, (2,)), cal, test


MODELS = {"resnet8": resnet8, "ds_cnn": ds_cnn, "fc_autoencoder": fc_autoencoder,
          "mobilenet_v1": mobilenet_v1}
# multiply-accumulates of each model's Conv / Gemm layers, counted from the shapes above
MACS = {"resnet8": 12_501_632, "ds_cnn": 2_656_768, "fc_autoencoder": 264_192, "mobilenet_v1": 7_489_664}
