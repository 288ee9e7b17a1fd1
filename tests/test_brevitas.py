"""Interoperability with Brevitas (PyPI): a small CNN trained with Brevitas' fixed-point
quantizers (4-bit weights, per channel in the first layer, 4-bit activations, 32-bit bias,
Brevitas' default rounding: ties to even), exported to QONNX and to QCDQ, compiles with
golden equal to Brevitas' own integer outputs (``QuantTensor.int()``) on every output
integer of every test sample; every backend equals golden."""

import copy

import numpy as np
import pytest

import nnforge
from conftest import ROOT

# test dependencies (pyproject [test]); without them this file is skipped and says why
torch = pytest.importorskip("torch")
brevitas_nn = pytest.importorskip("brevitas.nn")
from brevitas.export import export_onnx_qcdq, export_qonnx  # noqa: E402
from brevitas.inject.enum import FloatToIntImplType  # noqa: E402
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int32Bias  # noqa: E402
from brevitas.quant import Uint8ActPerTensorFixedPoint  # noqa: E402
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint  # noqa: E402

EX = ROOT / "examples" / "digits_cnn"


def _net(rounding: FloatToIntImplType) -> "torch.nn.Module":
    class W4(Int8WeightPerTensorFixedPoint):
        bit_width = 4

    class W4C(Int8WeightPerChannelFixedPoint):
        bit_width = 4

    class A4(Uint8ActPerTensorFixedPoint):
        bit_width = 4
        float_to_int_impl_type = rounding

    class Out8(Int8ActPerTensorFixedPoint):
        float_to_int_impl_type = rounding

    qnn = brevitas_nn

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(1, 8, 3, padding=1, weight_quant=W4C, bias_quant=Int32Bias,
                                      return_quant_tensor=True)
            self.r1 = qnn.QuantReLU(act_quant=A4, return_quant_tensor=True)
            self.pool = torch.nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(8, 16, 3, padding=1, weight_quant=W4, bias_quant=Int32Bias,
                                      return_quant_tensor=True)
            self.r2 = qnn.QuantReLU(act_quant=A4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(16 * 16, 10, weight_quant=W4, bias_quant=Int32Bias, return_quant_tensor=True)
            self.out = qnn.QuantIdentity(act_quant=Out8, return_quant_tensor=True)

        def forward(self, x):
            x = self.pool(self.r1(self.c1(self.inp(x))))
            return self.out(self.fc(self.r2(self.c2(x)).flatten(1)))

    return Net()


def _train(rounding: FloatToIntImplType):
    torch.manual_seed(0)
    net = _net(rounding)
    tr = np.load(EX / "train.npz")
    x, y = torch.from_numpy(tr["x"]), torch.from_numpy(tr["y"])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]).value, y[idx]).backward()
            opt.step()
    return net.eval()


class _Value(torch.nn.Module):
    """The exported graph's one output: the dequantized logits (QCDQ would otherwise also
    export the QuantTensor's scale, zero point and width as outputs)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).value


@pytest.fixture(scope="module")
def trained():
    return {"ROUND": _train(FloatToIntImplType.ROUND), "FLOOR": _train(FloatToIntImplType.FLOOR)}


def _export(net, how: str, path) -> str:
    """The model file; a copy of ``net`` is exported (an export with ``dynamo=False`` leaves
    the module computing other values afterwards)."""
    net = copy.deepcopy(net)
    x = torch.from_numpy(np.load(EX / "test.npz")["x"][:1])
    if how == "qonnx":
        export_qonnx(net, x, export_path=str(path))
    else:  # Brevitas' dynamo exporter refuses a quantized bias in QCDQ
        export_onnx_qcdq(_Value(net), x, export_path=str(path), dynamo=False)
    return str(path)


def _brevitas_integers(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        q = net(torch.from_numpy(x))
        return net.inp(torch.from_numpy(x)).int().numpy(), q.int().numpy().astype(np.int64)


@pytest.mark.parametrize("rounding, how", [("ROUND", "qonnx"), ("ROUND", "qcdq"), ("FLOOR", "qonnx")])
def test_golden_equals_brevitas_integers(trained, rounding, how, tmp_path):
    net = trained[rounding]
    te = np.load(EX / "test.npz")
    x_in, want = _brevitas_integers(net, te["x"])
    design = nnforge.compile(_export(net, how, tmp_path / "model.onnx"))
    x_int = design.quantize_input(te["x"])
    assert np.array_equal(x_int.reshape(x_in.shape), x_in)  # the same input integers
    got = design.predict_int(x_int).reshape(want.shape)
    assert np.array_equal(got, want), f"{int((got != want).sum())} of {want.size} output integers differ"
    assert (want.argmax(axis=1) == te["y"]).mean() > 0.8  # a trained network, not a degenerate one
    # Brevitas' fixed-point scales are powers of two: each layer's rescale is a shift, its
    # ties rounded as the model says
    layers = [n for n in design.qgraph.topo() if n.op in ("Conv", "Dense")]
    assert len(layers) == 3
    assert {n.attr("rounding", "half_up") for n in layers} == {"half_even" if rounding == "ROUND" else "half_up"}


@pytest.mark.slow
def test_every_backend_equals_golden(trained, tmp_path):
    design = nnforge.compile(_export(trained["ROUND"], "qonnx", tmp_path / "model.onnx"))
    x = np.load(EX / "test.npz")["x"][:24]
    out = design.write(tmp_path / "out", targets=["c", "hls", "verilog"])
    res = design.verify(x, backends=("golden", "c", "hls", "verilog"), outdir=out)
    assert res.ok, str(res)
