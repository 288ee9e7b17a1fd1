"""docs/quantization.md is exactly what scripts/quant_table.py makes (the table in the
docs cannot drift from the code)."""

import importlib.util

from conftest import ROOT


def test_quantization_table_is_current():
    spec = importlib.util.spec_from_file_location("quant_table", ROOT / "scripts" / "quant_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "quantization.md").read_text() == mod.table(), \
        "run python scripts/quant_table.py to update docs/quantization.md"
