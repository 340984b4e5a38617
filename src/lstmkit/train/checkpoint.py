"""Checkpoints as safetensors + JSON, written atomically, read without unpickling anything.

A run directory holds:

* ``checkpoint.json``: the commit point. Task, config, task state (e.g. the vocabulary), progress counters,
  lr schedule, the optimiser's non-tensor state, Python/NumPy RNG states, and the names
  and SHA-256 of the tensor files below. It is replaced (``os.replace``) only after the
  files it names are complete, so a crash at any moment leaves a consistent pair.
* ``state-<step>.safetensors``: model weights (``model.*``), optimiser tensors
  (``optim.<param>.<key>``), the carried recurrent state (``carry.<i>``) and torch's
  RNG state (``rng.torch``).
* ``best-<step>.safetensors``: the weights with the best validation loss so far.

Loading never calls ``torch.load``/``pickle``: JSON and safetensors hold only data.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

FORMAT = "lstmkit-checkpoint/1"
META = "checkpoint.json"


def _safetensors():
    try:
        import safetensors.torch as st
    except ModuleNotFoundError:
        raise UsageError("checkpoints need the safetensors package: pip install 'lstmkit[cli]'") from None
    return st


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    # safetensors refuses shared storage (tied weights): give each entry its own contiguous copy.
    data = _safetensors().save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})
    _atomic_write(path, data)
    return _sha256(data)


def is_run(run_dir) -> bool:
    return (Path(run_dir) / META).is_file()


def save_checkpoint(run_dir, *, model_state: dict, optimizer: torch.optim.Optimizer, carry, meta: dict,
                    best: tuple[int, dict] | None) -> None:
    """Write ``state-<step>`` (and ``best-<step>`` if new), then commit ``checkpoint.json``.

    ``meta`` holds the JSON part (task, config, task_state, trainer state); ``best`` is
    (step, state_dict) of the best weights or None.
    """
    run = Path(run_dir)
    step = meta["trainer"]["train_state"]["step"]
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    opt = optimizer.state_dict()
    scalars = {}
    for idx, entry in opt["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    if carry is not None:
        for i, s in enumerate(carry if isinstance(carry, tuple) else (carry,)):
            tensors[f"carry.{i}"] = s
    tensors["rng.torch"] = torch.get_rng_state()
    state_name = f"state-{step:09d}.safetensors"
    files = {"state": [state_name, _write_tensors(run / state_name, tensors)]}

    if best is not None:
        best_name = f"best-{best[0]:09d}.safetensors"
        old = _read_meta_quiet(run)
        if old and old.get("files", {}).get("best", [None])[0] == best_name and (run / best_name).is_file():
            files["best"] = old["files"]["best"]
        else:
            files["best"] = [best_name, _write_tensors(run / best_name, {f"model.{k}": v for k, v in best[1].items()})]

    np_state = np.random.get_state()
    doc = {
        "format": FORMAT,
        **meta,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars,
                      "tensor_states": sorted(str(i) for i in opt["state"])},
        "carry": None if carry is None else {"tuple": isinstance(carry, tuple),
                                            "n": len(carry) if isinstance(carry, tuple) else 1},
        "rng": {"python": _py_rng_to_json(random.getstate()),
                "numpy": [np_state[0], np_state[1].tolist(), *[_plain(x) for x in np_state[2:]]]},
        "files": files,
    }
    _atomic_write(run / META, json.dumps(doc, indent=1).encode())
    keep = {name for name, _ in files.values()}
    for f in list(run.glob("state-*.safetensors")) + list(run.glob("best-*.safetensors")):
        if f.name not in keep:
            f.unlink(missing_ok=True)


def _plain(x):
    return x.item() if hasattr(x, "item") else x


def _py_rng_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _read_meta_quiet(run: Path) -> dict | None:
    try:
        return json.loads((run / META).read_text())
    except (OSError, ValueError):
        return None


def read_meta(run_dir) -> dict:
    """The checkpoint's JSON; UsageError if the directory is not a run or the JSON is damaged."""
    run = Path(run_dir)
    if not run.exists():
        raise UsageError(f"run directory {str(run)!r} does not exist")
    if not run.is_dir():
        raise UsageError(f"{str(run)!r} is a file, not a run directory")
    if not (run / META).is_file():
        raise UsageError(f"{str(run)!r} is not an lstmkit run (it has no {META})")
    try:
        doc = json.loads((run / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"checkpoint {str(run / META)!r} is corrupt or truncated (not valid JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"checkpoint {str(run / META)!r} is not an {FORMAT} checkpoint")
    for key in ("task", "config", "task_state", "trainer", "files"):
        if key not in doc:
            raise UsageError(f"checkpoint {str(run / META)!r} is corrupt: it has no {key!r} entry")
    return doc


def read_tensors(run_dir, meta: dict, which: str = "state") -> dict[str, torch.Tensor]:
    """The tensors of ``files[which]``, after checking the file's SHA-256."""
    run = Path(run_dir)
    name, digest = meta["files"][which]
    path = run / name
    if not path.is_file():
        raise UsageError(f"checkpoint file {str(path)!r} is missing")
    data = path.read_bytes()
    if _sha256(data) != digest:
        raise UsageError(f"checkpoint file {str(path)!r} is corrupt or truncated (its SHA-256 does not match)")
    try:
        return _safetensors().load(data)
    except Exception as e:  # safetensors raises its own error types for malformed headers
        raise UsageError(f"checkpoint file {str(path)!r} is corrupt: {e}") from None


def split_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict, dict, dict, torch.Tensor | None]:
    """(model state_dict, optimiser tensors by (idx, key), carry by index, torch RNG state)."""
    model, optim, carry = {}, {}, {}
    for k, v in tensors.items():
        kind, _, rest = k.partition(".")
        if kind == "model":
            model[rest] = v
        elif kind == "optim":
            idx, _, key = rest.partition(".")
            optim[(idx, key)] = v
        elif kind == "carry":
            carry[int(rest)] = v
    return model, optim, carry, tensors.get("rng.torch")


def optimizer_state(meta: dict, optim_tensors: dict) -> dict:
    """Rebuild ``optimizer.state_dict()`` from the JSON scalars and the tensors."""
    o = meta["optimizer"]
    state = {}
    for idx in o["tensor_states"]:
        entry = dict(o["scalars"].get(idx, {}))
        entry.update({key: v for (i, key), v in optim_tensors.items() if i == idx})
        state[int(idx)] = entry
    groups = []
    for g in o["param_groups"]:  # JSON turned tuples (Adam's betas) into lists
        groups.append({k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()})
    return {"state": state, "param_groups": groups}


def restore_rng(meta: dict, torch_state: torch.Tensor | None) -> None:
    if torch_state is not None:
        torch.set_rng_state(torch_state)
    version, internal, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["rng"]["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
