"""Train the bundled digits MLP and export it to ONNX.

Data: scikit-learn's 8x8 digits (shipped with scikit-learn), pixels scaled to [0, 1].
Model: 64 -> 32 (Relu) -> 16 (Relu) -> 10 (Softmax), trained with Adam in numpy, written
with ``onnx.helper`` as Gemm nodes (opset 13).

Writes, next to this script: ``model.onnx``, ``test.npz`` (held-out split: ``x``, ``y``),
``calibration.npz`` (a slice of the training split: ``x``) and ``train.npz`` (the whole
training split: ``x``, ``y``).

    python examples/digits_mlp/make_model.py
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
SIZES = (64, 32, 16, 10)


def train(x, y, epochs=400, lr=0.01, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        params.append([rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_out)), np.zeros(n_out)])
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    onehot = np.eye(SIZES[-1])[y]
    for step in range(1, epochs + 1):
        acts = [x]
        for i, (w, b) in enumerate(params):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        logits = acts[-1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        for i in reversed(range(len(params))):
            w, b = params[i]
            gw, gb = acts[i].T @ grad + 1e-4 * w, grad.sum(axis=0)
            if i:
                grad = (grad @ w.T) * (acts[i] > 0)
            for j, g in enumerate((gw, gb)):
                m[i][j] = 0.9 * m[i][j] + 0.1 * g
                v[i][j] = 0.999 * v[i][j] + 0.001 * g * g
                mh, vh = m[i][j] / (1 - 0.9**step), v[i][j] / (1 - 0.999**step)
                params[i][j] = params[i][j] - lr * mh / (np.sqrt(vh) + 1e-8)
    return params


def forward(params, x):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
    return h


def export(params, path):
    nodes, inits = [], []
    prev = "input"
    for i, (w, b) in enumerate(params):
        inits += [numpy_helper.from_array(w.T.astype(np.float32), f"fc{i}.weight"),
                  numpy_helper.from_array(b.astype(np.float32), f"fc{i}.bias")]
        out = f"fc{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"fc{i}", transB=1))
        prev = out
        if i < len(params) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
            prev = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="nnforge-example")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target)
    params = train(x_train.astype(np.float64), y_train)
    acc = (forward(params, x_test).argmax(axis=1) == y_test).mean()
    print(f"float accuracy on the test split: {acc:.4f} ({len(y_test)} samples)")
    export(params, HERE / "model.onnx")
    np.savez_compressed(HERE / "test.npz", x=x_test, y=y_test.astype(np.int64))
    np.savez_compressed(HERE / "calibration.npz", x=x_train[:500])
    np.savez_compressed(HERE / "train.npz", x=x_train, y=y_train.astype(np.int64))


if __name__ == "__main__":
    main()
