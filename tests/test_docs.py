"""docs/variants.md must list every registered variant with the parameter counts the code builds."""
import re
from pathlib import Path

import pytest

import lstmkit

DOC = Path(__file__).resolve().parents[1] / "docs" / "variants.md"


def doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(\w+)` \| (\w+) \|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    return rows


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", lstmkit.variants())
def test_variant_row_matches_code(name):
    row = doc_rows().get(name)
    assert row is not None, f"docs/variants.md has no row for registered variant {name!r}"
    family, params, with_proj, with_ln = row[1], row[3], row[4], row[5]
    assert family == lstmkit.get_variant(name).family
    assert int(params) == count(lstmkit.make_layer(name, 128, 128))
    if family in ("clockwork", "grid"):  # whole architectures: no layer norm or projection option
        assert with_proj == with_ln == "—"
        return
    assert int(with_ln) == count(lstmkit.make_layer(name, 128, 128, layer_norm=True))
    if family == "lstm":
        assert int(with_proj) == count(lstmkit.make_layer(name, 128, 128, proj_size=64))
    else:
        assert with_proj == "—"


def test_no_rows_for_unregistered_variants():
    assert set(doc_rows()) == set(lstmkit.variants())
