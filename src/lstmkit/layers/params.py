"""Creating, naming and initialising parameters, shared by the layers and the cells."""
from __future__ import annotations

import dataclasses
import numbers

import torch
from torch import nn

from ..cells.common import init_uniform
from ..registry import get_variant


def make_spec(family: str, variant: str, **overrides):
    """The variant's registered spec with the caller's options (those not None) applied."""
    base = get_variant(variant, family).spec
    given = {k: v for k, v in overrides.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = [k for k in given if k not in fields]
    if unknown:
        raise ValueError(f"variant {variant!r} has no option {unknown[0]!r}; its options are: "
                         f"{', '.join(sorted(fields))}")
    return dataclasses.replace(base, **given)


def lstm_spec(variant: str, peepholes=None, cifg: bool | None = None, layer_norm: bool | None = None):
    """The LSTM-family spec for the module and cell constructors' keyword options.

    Coupling (``cifg=True``) leaves no forget gate, so unless the caller names the
    peepholes, the variant's forget-gate peephole is dropped with it.
    """
    if peepholes is None and cifg:
        peepholes = tuple(g for g in get_variant(variant, "lstm").spec.peepholes if g != "f")
    return make_spec("lstm", variant, peepholes=None if peepholes is None else tuple(peepholes),
                     coupled=cifg, layer_norm=layer_norm)


def register_parameters(module: nn.Module, spec, input_size: int, hidden_size: int, proj_size: int,
                        bias: bool, suffix: str = "", **factory) -> dict[str, nn.Parameter]:
    """Create the spec's parameters on ``module`` as ``<base><suffix>``; returns them by base name."""
    out = {}
    for base, shape in spec.param_shapes(input_size, hidden_size, proj_size, bias).items():
        param = nn.Parameter(torch.empty(shape, **factory))
        module.register_parameter(base + suffix, param)
        out[base] = param
    return out


def reset_parameters(groups: list[dict], spec, hidden_size: int, forget_bias: float | None) -> None:
    """torch's U(-1/√H, 1/√H) for everything, then the forget-gate bias.

    ``forget_bias`` (default 1.0, Jozefowicz et al. 2015; Keras' ``unit_forget_bias``)
    sets ``bias_ih``'s forget rows to it and ``bias_hh``'s to 0, so their sum, the
    effective bias, is exactly ``forget_bias``. ``None`` keeps torch's default, and then
    the same seed gives the same values as torch.nn.LSTM.
    """
    init_uniform((item for g in groups for item in g.items()), hidden_size)
    rows = spec.forget_bias_slice(hidden_size)
    if forget_bias is None or rows is None:
        return
    with torch.no_grad():
        for g in groups:
            if "bias_ih" in g:
                g["bias_ih"][rows] = forget_bias
                g["bias_hh"][rows] = 0.0


def chrono_init(module: nn.Module, t_max: int, generator: torch.Generator | None = None) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?").

    For every LSTM-family layer-direction of ``module``: the forget-gate biases become
    b_f = log(u), u ~ U(1, t_max - 1) per unit, and the input-gate biases -b_f, so each unit
    starts with a characteristic memory of ~u steps and its input gate mostly closed (the cell
    does not fill up with noise over a long sequence). Written to ``bias_ih``, with ``bias_hh``'s
    rows 0, as :func:`reset_parameters` does for ``forget_bias``. A coupled input gate
    (``f = 1 - i``) gets -b_f, so f starts at σ(b_f) the same way. Layers without forget or input
    gates (GRU, RNN, nig/nfg rows they lack) are left as they are.
    """
    if t_max < 3:
        raise ValueError(f"chrono t_max must be >= 3 (b_f = log U(1, t_max - 1)); got {t_max}")
    spec = getattr(module, "spec", None)
    if spec is None or getattr(spec, "family", None) != "lstm":
        return
    H = module.hidden_size
    rows = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(spec.gates)}
    with torch.no_grad():
        for name, b_ih in module.named_parameters():
            if not name.startswith("bias_ih"):
                continue
            b_hh = dict(module.named_parameters())["bias_hh" + name[len("bias_ih"):]]
            u = torch.rand(H, generator=generator, dtype=torch.float64) * (t_max - 2) + 1
            bf = torch.log(u).to(b_ih.dtype)
            if "f" in rows:
                b_ih[rows["f"]], b_hh[rows["f"]] = bf, 0.0
            if "i" in rows:
                b_ih[rows["i"]], b_hh[rows["i"]] = -bf, 0.0


def check_probability(name: str, value, upper_inclusive: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        0 <= value <= 1 if upper_inclusive else 0 <= value < 1)
    if not ok:
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)


def check_size(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
