"""``forecast``: multi-step forecasting of one column of a CSV series (or a built-in series).

The series is cut chronologically into train / valid / test parts (the last
``test_fraction`` is test, the ``valid_fraction`` before it is valid). A forecast origin
o uses the window of rows o-W+1..o (all input columns) and predicts the target at
o+1..o+H in one shot (*direct* multi-step: one output per horizon step, no feeding back
of predictions). An origin belongs to the part that holds all its H targets; its window
may reach back into earlier parts, which is the known past, not leakage. The normaliser
(per-column mean and standard deviation) is fitted on the train part only.

On the test part, :meth:`Forecast.finish` reports MAE, RMSE and MASE of the model next
to the naive (last value) and, with a season, the seasonal-naive forecasts over the same
origins, and writes ``forecast_test.csv`` and ``forecast.png``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.series import (BUILTIN, BUILTIN_SERIES, FILLS, Series, origins, read_series, split_names,
                           split_points, write_csv)
from ..errors import UsageError
from ..models.sequence import Forecaster
from ..train.config import RunConfig, register_preset
from ..train.trainer import StepOutput
from . import register_task
from .base import Task, option
from ..plots import pyplot, save_figure

EVAL_CHUNK = 512  # windows per forward pass when evaluating (no gradients: memory is small)


@dataclass
class ForecastState:
    """What a trained forecaster needs besides its weights (stored in checkpoint.json)."""

    columns: list  # [target, features...]: the model's input columns, in order
    mean: list  # per column, fitted on the train part
    std: list
    time_column: str  # "" when the series has none
    season: int  # seasonal period of the baselines and of MASE's scale (0: none)
    scale: float  # MASE's denominator: mean |y_t - y_{t-m}| over the train part (m = season or 1)
    window: int
    horizon: int


@dataclass
class ForecastSplit:
    z: torch.Tensor  # (N, F) the whole normalised series
    origins: np.ndarray  # (n,) forecast origins of this part


@dataclass
class ForecastData:
    state: ForecastState
    series: Series
    z: torch.Tensor  # (N, F) normalised
    bounds: tuple  # (end of train, end of valid)
    train: ForecastSplit
    valid: ForecastSplit | None
    test: ForecastSplit


def windows(z: torch.Tensor, orig: np.ndarray, window: int, horizon: int):
    """Inputs (n, W, F) and normalised targets (n, H) of the origins ``orig``."""
    o = torch.as_tensor(orig, dtype=torch.long)
    x = z[o[:, None] + torch.arange(-window + 1, 1)]  # (n, W, F)
    y = z[o[:, None] + torch.arange(1, horizon + 1), 0]  # (n, H)
    return x, y


class ForecastBatches:
    """Training windows in a fixed shuffled order (seeded), ``batch_size`` per step.

    Indexable (the trainer resumes at batch i); under torchrun each process takes every
    ``world``-th window of a batch of ``batch_size * world``.
    """

    def __init__(self, z, orig, window, horizon, batch_size, seed=0, rank=0, world=1, device="cpu"):
        perm = np.random.default_rng(seed).permutation(len(orig))
        self.orig = orig[perm]
        self.z, self.window, self.horizon, self.device = z, window, horizon, device
        self.size, self.rank, self.world = batch_size * world, rank, world
        n = len(orig)
        self.n = math.ceil(n / self.size) if world == 1 else max(1, n // self.size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        chunk = self.orig[i * self.size:(i + 1) * self.size][self.rank::self.world]
        x, y = windows(self.z, chunk, self.window, self.horizon)
        return x.to(self.device), y.to(self.device)


# ---- metrics -------------------------------------------------------------------------------

def mase_scale(y: np.ndarray, m: int) -> float:
    """Hyndman & Koehler (2006)'s scale: the in-sample MAE of the (seasonal) naive forecast, mean |y_t - y_{t-m}|."""
    return float(np.mean(np.abs(y[m:] - y[:-m]))) if len(y) > m else math.nan


def naive_forecasts(y: np.ndarray, orig: np.ndarray, horizon: int, season: int = 0) -> np.ndarray:
    """(n, H) forecasts from origins ``orig``: the last value y_o, or with a season m the value one
    season before each target, y_{o+h-m*ceil(h/m)} (seasonal naive)."""
    h = np.arange(1, horizon + 1)
    if season <= 0:
        return np.repeat(y[orig][:, None], horizon, axis=1)
    back = season * np.ceil(h / season).astype(int)
    return y[orig[:, None] + h[None, :] - back[None, :]]


def forecast_metrics(pred: np.ndarray, actual: np.ndarray, scale: float) -> dict:
    """MAE, RMSE and MASE (= MAE / scale) over every origin and horizon step."""
    err = pred - actual
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(err ** 2))),
            "mase": mae / scale if scale > 0 else math.nan}


# ---- the task ------------------------------------------------------------------------------

class Forecast(Task):
    name = "forecast"
    summary = "multi-step forecasting of a CSV column or a built-in series (MAE, RMSE, MASE vs naive)"
    default_preset = "sunspots"
    metric_name = "mse"  # mean squared error on the normalised scale (train-part z-scores)
    unit = "value"  # one forecast value (an origin's horizon step)
    loss_in_nats = False  # the loss is the mean squared error
    data_help = "FILE.csv (one row per time step) or builtin:sunspots|co2|airline"
    next_commands = ("predict",)
    run_files = ("forecast_test.csv", "forecast.png", "forecast.csv", "forecast.csv.tmp")

    @dataclass
    class Options:
        target: str = option("", "the column to forecast (needed with --data FILE.csv)")
        features: str = option("", "input columns, comma-separated: forecast: besides the target; classify: "
                                   "default all but the id, label, time and split columns")
        time_column: str = option("", "timestamps, numbers or ISO dates, strictly increasing (forecast: over the "
                                      "file; classify: within each sequence)")
        window: int = option(24, "past steps in each input window")
        horizon: int = option(6, "steps forecast at once from each origin (direct multi-step)")
        season: int = option(0, "seasonal period for the seasonal-naive baseline and MASE "
                                "(0: a built-in series' own; none for a CSV)")
        test_fraction: float = option(0.15, "the last fraction held out for testing (forecast: of the series; "
                                            "classify: of the sequences, when the data has no split)")
        fill: str = option("none", "empty or NaN cells: none (an error naming the first), ffill, interpolate "
                                   "or drop", FILLS)
        residual: bool = option(True, "predict the change from the window's last value, so 0 is the naive "
                                      "forecast")

    # ---- config and data ----------------------------------------------------------------

    def check_config(self, cfg: RunConfig) -> None:
        o = cfg.options
        for flag, v in (("--window", o.window), ("--horizon", o.horizon)):
            if v < 1:
                raise UsageError(f"{flag} must be >= 1; got {v}")
        if o.season < 0:
            raise UsageError(f"--season must be >= 0; got {o.season}")
        if not 0 < o.test_fraction < 1 or not 0 < o.test_fraction + cfg.data.valid_fraction < 1:
            raise UsageError(f"--test-fraction must be in (0, 1), and with --valid-fraction below 1; got "
                             f"{o.test_fraction} and {cfg.data.valid_fraction}")
        if not cfg.data.path:
            raise UsageError(f"forecast needs --data {self.data_help}")

    def load(self, cfg: RunConfig, state: ForecastState | None = None) -> ForecastData:
        o = cfg.options
        W, H = o.window, o.horizon
        series = read_series(cfg.data.path, o.target, split_names(o.features), o.time_column, o.fill)
        if state is not None and series.columns != state.columns:
            raise UsageError(f"{series.source}: the run was trained on columns {state.columns}; this data gives "
                             f"{series.columns}")
        y = series.values[:, 0]
        N = len(y)
        if N < W + H:
            raise UsageError(f"{series.source}: the series has {N} rows; --window {W} + --horizon {H} needs at "
                             f"least {W + H}")
        a, b = split_points(N, cfg.data.valid_fraction, o.test_fraction)
        parts = {"train": origins(0, a, W, H), "valid": origins(a, b, W, H), "test": origins(b, N, W, H)}
        for part, (lo, hi) in (("train", (0, a)), ("valid", (a, b)), ("test", (b, N))):
            if len(parts[part]) == 0 and (part != "valid" or b > a):
                need = f"at least --window + --horizon = {W + H} rows" if part == "train" else \
                    f"at least --horizon = {H} rows"
                raise UsageError(f"{series.source}: the {part} part (rows {lo}-{hi - 1} of {N}) has {hi - lo} rows; "
                                 f"it needs {need}; use a longer series or a smaller --window / --horizon")
        if state is None:
            season = o.season or series.season
            mean = series.values[:a].mean(axis=0)
            std = series.values[:a].std(axis=0)
            std[std == 0] = 1.0  # a constant column only shifts
            state = ForecastState(series.columns, mean.tolist(), std.tolist(), _time_column(cfg, series),
                                  season, mase_scale(y[:a], season or 1), W, H)
        z = torch.tensor((series.values - np.asarray(state.mean)) / np.asarray(state.std), dtype=torch.float32)
        split = {k: ForecastSplit(z, v) for k, v in parts.items()}
        return ForecastData(state, series, z, (a, b), split["train"], split["valid"] if b > a else None,
                            split["test"])

    def state_to_json(self, state: ForecastState) -> dict:
        return dict(state.__dict__)

    def state_from_json(self, d: dict) -> ForecastState:
        return ForecastState(**d)

    # ---- model, batches, loss --------------------------------------------------------------

    def build_model(self, cfg: RunConfig, state: ForecastState) -> Forecaster:
        m = cfg.model
        return Forecaster(len(state.columns), state.horizon, cell=m.cell, hidden_size=m.hidden, num_layers=m.layers,
                          bidirectional=m.bidirectional, dropout=m.dropout, proj_size=m.proj,
                          recurrent_dropout=m.recurrent_dropout, zoneout=m.zoneout, residual=cfg.options.residual)

    def batches(self, cfg: RunConfig, data: ForecastData, rank: int = 0, world: int = 1) -> ForecastBatches:
        if len(data.train.origins) < world:
            raise UsageError(f"{world} processes need at least {world} training windows; there are "
                             f"{len(data.train.origins)}")
        o = cfg.options
        return ForecastBatches(data.z, data.train.origins, o.window, o.horizon, cfg.train.batch_size,
                               cfg.train.seed, rank, world, cfg.train.device)

    def loss_fn(self, cfg: RunConfig):
        def loss_fn(model, batch, carry) -> StepOutput:
            x, y = batch  # (B, W, F), (B, H)
            loss = torch.nn.functional.mse_loss(model(x), y)
            return StepOutput(loss, loss.item(), y.numel())
        return loss_fn

    @torch.no_grad()
    def predict_z(self, model, z: torch.Tensor, orig: np.ndarray, cfg: RunConfig, poll=lambda: None) -> torch.Tensor:
        """Normalised forecasts (n, H) from the origins ``orig`` of series ``z``."""
        model.eval()
        out = []
        for s in range(0, len(orig), EVAL_CHUNK):
            poll()
            x, _ = windows(z, orig[s:s + EVAL_CHUNK], cfg.options.window, 0)
            out.append(model(x.to(cfg.train.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0, cfg.options.horizon)

    def evaluate(self, model, split: ForecastSplit, cfg: RunConfig, poll=lambda: None) -> float:
        """Mean squared error per forecast value, on the normalised scale."""
        pred = self.predict_z(model, split.z, split.origins, cfg, poll)
        _, y = windows(split.z, split.origins, cfg.options.window, cfg.options.horizon)
        return float(torch.mean((pred - y) ** 2))

    def describe(self, loss: float) -> float:
        return loss

    # ---- test report -----------------------------------------------------------------------

    def finish(self, model, data: ForecastData, cfg: RunConfig, out: Path) -> dict:
        st, s = data.state, data.series
        H = st.horizon
        y = s.values[:, 0]
        orig = data.test.origins
        pred = self.predict_z(model, data.z, orig, cfg).double().numpy() * st.std[0] + st.mean[0]  # (n, H)
        actual = y[orig[:, None] + np.arange(1, H + 1)]
        rows = {f"{cfg.model.cell}": forecast_metrics(pred, actual, st.scale),
                "naive (last value)": forecast_metrics(naive_forecasts(y, orig, H), actual, st.scale)}
        snaive = None
        if st.season:
            snaive = naive_forecasts(y, orig, H, st.season)
            rows[f"seasonal naive (m={st.season})"] = forecast_metrics(snaive, actual, st.scale)
        per_step = np.mean(np.abs(pred - actual), axis=0)
        a, b = data.bounds
        print(f"test part: rows {b}-{len(y) - 1} ({s.time_text(b)} to {s.time_text(len(y) - 1)}), {len(orig)} "
              f"origins x {H} steps; model picked on valid rows {a}-{b - 1}; MASE scale "
              f"{st.scale:.4g} = train MAE of the {'seasonal ' if st.season else ''}naive forecast "
              f"(m={st.season or 1})")
        print(_table(rows))
        print("model MAE by step: " + "  ".join(f"{h + 1}:{v:.4g}" for h, v in enumerate(per_step)))

        header = [st.time_column or "row", "origin", "step", "actual", "forecast", "naive"] + \
                 (["seasonal_naive"] if snaive is not None else [])
        naive = naive_forecasts(y, orig, H)
        lines = []
        for i, o_ in enumerate(orig):
            for h in range(H):
                row = [s.time_text(o_ + h + 1), s.time_text(o_), h + 1, _num(actual[i, h]), _num(pred[i, h]),
                       _num(naive[i, h])]
                lines.append(row + ([_num(snaive[i, h])] if snaive is not None else []))
        write_csv(out / "forecast_test.csv", header, lines)
        plotted = plot_forecast(out / "forecast.png", s, b, orig, pred, H,
                                f"{s.columns[0]} ({s.source}): {cfg.model.cell} {cfg.model.layers}x{cfg.model.hidden}, "
                                f"horizon {H}")
        test = {k: {m: (None if math.isnan(v) else round(v, 6)) for m, v in r.items()} for k, r in rows.items()}
        return {"test": test, "test_mae_by_step": [round(float(v), 6) for v in per_step],
                "test_origins": int(len(orig)), "split_rows": [int(a), int(b), int(len(y))],
                "files": ["forecast_test.csv"] + (["forecast.png"] if plotted else [])}

    # ---- lstmkit predict ---------------------------------------------------------------------

    def predict(self, model, cfg: RunConfig, state: ForecastState, path: str | None, out: Path) -> str:
        """Forecast the H steps after the end of ``path`` (default: the run's own data) into CSV ``out``."""
        path = path or cfg.data.path
        o = cfg.options
        time_column = state.time_column if not path.startswith(BUILTIN) else o.time_column
        series = read_series(path, state.columns[0], state.columns[1:], time_column, o.fill)
        N, W, H = len(series.values), state.window, state.horizon
        if N < W:
            raise UsageError(f"{series.source}: has {N} rows; the model needs the last --window = {W} to forecast")
        z = torch.tensor((series.values - np.asarray(state.mean)) / np.asarray(state.std), dtype=torch.float32)
        pred = self.predict_z(model, z, np.array([N - 1]), cfg)[0].double().numpy() * state.std[0] + state.mean[0]
        times = series.times.future(H) if series.times is not None else [str(N + h) for h in range(H)]
        write_csv(out, [state.time_column or "row", "step", state.columns[0]],
                  [[t, h + 1, _num(v)] for h, (t, v) in enumerate(zip(times, pred))])
        return (f"forecast of {state.columns[0]} for {H} steps after {series.time_text(N - 1)} "
                f"({times[0]} to {times[-1]}) from the last {W} rows of {series.source} -> {out}")


def _time_column(cfg: RunConfig, series: Series) -> str:
    if cfg.options.time_column:
        return cfg.options.time_column
    if cfg.data.path.startswith(BUILTIN):
        return BUILTIN_SERIES[cfg.data.path[len(BUILTIN):]][2]
    return ""


def _num(v: float) -> str:
    return f"{float(v):.6g}"


def _table(rows: dict) -> str:
    w = max(len(k) for k in rows)
    lines = [f"{'test':<{w}}  {'MAE':>10}  {'RMSE':>10}  {'MASE':>7}"]
    for k, r in rows.items():
        lines.append(f"{k:<{w}}  {r['mae']:>10.4g}  {r['rmse']:>10.4g}  {r['mase']:>7.3f}")
    return "\n".join(lines)


def _xs(series: Series) -> list:
    """Plot positions of the rows: numbers, fractional years for YYYY-MM, datetimes, or row numbers."""
    t = series.times
    if t is None:
        return list(range(len(series.values)))
    if t.kind == "month":
        return [y + (m - 1) / 12 for y, m in t.values]
    return list(t.values)


def plot_forecast(png: Path, series: Series, test_start: int, orig: np.ndarray, pred: np.ndarray, H: int,
                  title: str) -> bool:
    """History, actual test values and H-step forecasts from every H-th test origin; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    xs, y = _xs(series), series.values[:, 0]
    start = max(0, test_start - 3 * (len(y) - test_start))  # enough history to see the pattern
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(xs[start:test_start + 1], y[start:test_start + 1], color="0.55", lw=1, label="history")
    ax.plot(xs[test_start:], y[test_start:], color="black", lw=1.2, label="actual (test)")
    for k, i in enumerate(range(0, len(orig), H)):  # non-overlapping H-step paths tile the test part
        o = orig[i]
        ax.plot([xs[o]] + xs[o + 1:o + 1 + H], [y[o]] + list(pred[i]), color="tab:red", lw=1.2,
                label=f"forecast ({H} steps from each origin)" if k == 0 else None)
    ax.axvline(xs[test_start], color="0.7", ls="--", lw=0.8)
    ax.set_title(title)
    ax.set_ylabel(series.columns[0])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
    return True


register_task(Forecast())
register_preset("sunspots", "forecast", "1x32 LSTM, window 24, horizon 6 on the yearly sunspot numbers "
                "(built in; statsmodels)", {
                    "model": dict(layers=1, hidden=32),
                    "data": dict(path="builtin:sunspots", valid_fraction=0.15),
                    "train": dict(optimizer="adam", lr=3e-3, batch_size=16, epochs=150, eval_every=0,
                                  early_stopping=30, clip=1.0, log_every=50, eval_batch_size=64),
                })
register_preset("co2", "forecast", "1x32 LSTM, window 24, horizon 6 on monthly Mauna Loa CO2 "
                "(built in; statsmodels)", {
                    "model": dict(layers=1, hidden=32),
                    "data": dict(path="builtin:co2", valid_fraction=0.15),
                    "train": dict(optimizer="adam", lr=3e-3, batch_size=16, epochs=100, eval_every=0,
                                  early_stopping=20, clip=1.0, log_every=50, eval_batch_size=64),
                })
