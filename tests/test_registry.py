"""The C and HLS lowering tables (codegen/program.py, codegen/hls_program.py): what a target
supports is its table's keys, every table op is in both, and an op outside a table is
refused, naming the node, before any file is written. Hand-built graphs, no compile."""

import numpy as np
import pytest

from nnforge.codegen import c as c_backend
from nnforge.codegen import hls as hls_backend
from nnforge.codegen.hls_program import LOWERINGS as HLS_LOWERINGS, lower_hls
from nnforge.codegen.lower import BackendError
from nnforge.codegen.program import LOWERINGS as C_LOWERINGS, lower_program
from nnforge.codegen.targets import TARGET_OPS, lower_for
from nnforge.codegen.verilog_cnn import LOWERINGS as VERILOG_LOWERINGS
from nnforge.ir import FixedType, Graph
from nnforge.ir.graph import Node
from nnforge.ir.ops import ops_with

TABLES = {"c": C_LOWERINGS, "hls": HLS_LOWERINGS}
LOWER = {"c": lower_program, "hls": lower_hls}
X_T = FixedType(4, 2)  # 16 input codes, -8 .. 7


def _graph(op: str, name: str, table: bool = False) -> Graph:
    """x (C=2, L=4) -> Relu -> ``op`` (named ``name``) -> y, every tensor of type X_T."""
    q = Graph("hand")
    q.add_input("x", (2, 4))
    q.add_node(Node("relu", "Relu", ["x"], ["h"]), [(2, 4)])
    ins = ["h"]
    if table:
        ins.append(q.add_const("tab", np.arange(X_T.hi - X_T.lo + 1)[::-1] - 3))
        q.set_qtype("tab", FixedType(8, 2))
    q.add_node(Node(name, op, ins, ["y"]), [(2, 4)])
    q.outputs.append("y")
    for t in ("x", "h", "y"):
        q.set_qtype(t, X_T)
    return q


def test_supported_ops_are_the_tables_keys():
    for target, table in {**TABLES, "verilog": VERILOG_LOWERINGS}.items():
        assert TARGET_OPS[target] == table.ops()
    assert c_backend.SUPPORTED_OPS == C_LOWERINGS.ops()
    assert hls_backend.SUPPORTED_OPS == HLS_LOWERINGS.ops()
    # HLS renders the same steps as C: every C lowering is HLS's lowering of that op
    assert all(HLS_LOWERINGS[op] is C_LOWERINGS[op] for op in C_LOWERINGS.ops())


@pytest.mark.parametrize("target", sorted(TABLES))
@pytest.mark.parametrize("op", sorted(ops_with(table=True)))
def test_every_table_op_lowers_to_a_lookup(target, op):
    assert op in TABLES[target]
    q = _graph(op, "act", table=True)
    step = LOWER[target](q).steps[-1]
    assert (step.kind, step.op) == ("table", op)
    assert step.params["lo"] == X_T.lo and step.params["n"] == 16
    rows = ",".join(step.params["rows"]).replace(" ", "")
    assert rows == ",".join(str(v) for v in np.arange(16)[::-1] - 3)


@pytest.mark.parametrize("target", sorted(TABLES))
def test_a_table_op_without_its_table_is_refused(target):
    q = _graph(sorted(ops_with(table=True))[0], "act", table=True)
    q.consts["tab"] = q.consts["tab"][:8]
    with pytest.raises(BackendError, match=r"node 'act' has no table for its input type"):
        LOWER[target](q)


@pytest.mark.parametrize("target", sorted(TABLES))
def test_an_op_outside_the_table_is_refused_before_writing(target, tmp_path):
    q = _graph("NoSuchOp", "odd/node")
    assert "NoSuchOp" not in TABLES[target]
    out = tmp_path / target
    with pytest.raises(BackendError, match=rf"target '{target}' cannot implement node 'odd_node' \(op NoSuchOp\); "
                                           r"supported ops: .*Relu"):
        prog = lower_for(q, target)
        if target == "c":
            c_backend.write(prog, out)
        else:
            hls_backend.write(prog, out, np.zeros((0, 8)), np.zeros((0, 8)))
    assert not out.exists()
