"""nnforge: compile trained neural networks (ONNX) into bit-exact C, HLS C++ and Verilog.

    import nnforge
    design = nnforge.compile("model.onnx", calibration=x_cal, bits=8)
    y_int = design.predict(x)
    design.write("out", targets=["c", "hls", "verilog"])
    print(design.verify(x, y, outdir="out"))
"""

from .design import BACKENDS, TARGETS, DataError, Design, VerifyResult, compile
from .codegen.lower import BackendError
from .frontend import ModelImportError, UnsupportedOpError
from .passes import QuantConfig

load = Design.load

__version__ = "0.1.0"
__all__ = [
    "BACKENDS", "TARGETS", "BackendError", "DataError", "Design", "ModelImportError", "QuantConfig",
    "UnsupportedOpError", "VerifyResult", "compile", "load",
]
