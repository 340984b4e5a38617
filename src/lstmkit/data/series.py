"""Readers for time series and labelled sequences: CSV, long-format CSV, NPZ, built-in data sets.

Forecasting reads one CSV table (a header row, one row per time step): a target column,
optional extra input columns and an optional time column. Classification reads either a
*long-format* CSV (one row per time step of a sequence: an id column, a label column,
feature columns, optionally a time column to order the steps) or an NPZ archive with
``x`` (N, T, F) or (N, T), optional ``lengths`` (N,), ``y`` (N,), optional ``ids`` and
``split`` (N,) of "train"/"valid"/"test". ``docs/timeseries.md`` describes both.

The core needs only numpy and the standard library's ``csv``; the built-in data sets
(``builtin:NAME``) come from packages of the ``timeseries`` extra (statsmodels, aeon),
which ship them, so nothing is downloaded.

Every problem with the user's data is a :class:`~lstmkit.errors.UsageError` naming the
file, the line and the column.
"""
from __future__ import annotations

import calendar
import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .text import read_text

FILLS = ("none", "ffill", "interpolate", "drop")
MISSING = {"", "nan", "na", "n/a", "null", "none"}  # cells read as missing (compared lower-case)
BUILTIN = "builtin:"


# ---- CSV tables ----------------------------------------------------------------------------

@dataclass
class Table:
    """A CSV file's cells as strings: ``rows[i]`` is file line ``lines[i]`` (the header is line 1)."""

    name: str  # what error messages call it: the path, or builtin:NAME
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def col(self, name: str, what: str = "column") -> int:
        """Index of column ``name``; UsageError listing the columns when there is none."""
        if name not in self.header:
            shown = ", ".join(self.header[:30]) + (" ..." if len(self.header) > 30 else "")
            raise UsageError(f"{self.name}: unknown {what} {name!r}; its columns are: {shown}")
        return self.header.index(name)

    def strings(self, name: str, what: str = "column") -> list[str]:
        j = self.col(name, what)
        return [r[j] for r in self.rows]

    def numbers(self, name: str, what: str = "column") -> np.ndarray:
        """Column ``name`` as float64, NaN where a cell is empty; UsageError for a non-number."""
        j = self.col(name, what)
        out = np.empty(len(self.rows))
        for i, r in enumerate(self.rows):
            cell = r[j].strip()
            if cell.lower() in MISSING:
                out[i] = math.nan
                continue
            try:
                v = float(cell)
            except ValueError:
                raise UsageError(f"{self.name} line {self.lines[i]}, column {name!r}: {cell[:40]!r} is not a "
                                 f"number") from None
            if not math.isfinite(v):
                raise UsageError(f"{self.name} line {self.lines[i]}, column {name!r}: {cell!r} is not a finite "
                                 f"number")
            out[i] = v
        return out


def read_csv(path, what: str = "data file") -> Table:
    """A CSV file with a header row: UsageError if missing, empty, binary, not UTF-8 or ragged."""
    text = read_text(path, what)
    reader = csv.reader(io.StringIO(text))
    header, rows, lines = None, [], []
    try:
        for r in reader:
            if not any(c.strip() for c in r):
                continue  # blank lines carry nothing
            if header is None:
                header = [c.strip() for c in r]
                continue
            if len(r) != len(header):
                raise UsageError(f"{what} {str(path)!r} line {reader.line_num} has {len(r)} cells; the header has "
                                 f"{len(header)}")
            rows.append(r)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise UsageError(f"{what} {str(path)!r} is not valid CSV (line {reader.line_num}): {e}") from None
    if not header or not any(header):
        raise UsageError(f"{what} {str(path)!r} has no header row")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise UsageError(f"{what} {str(path)!r} has duplicate column names: {', '.join(map(repr, dupes))}")
    if not rows:
        raise UsageError(f"{what} {str(path)!r} has a header but no data rows")
    return Table(str(path), header, rows, lines)


def split_names(spec: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (the --features syntax)."""
    return [s.strip() for s in spec.split(",") if s.strip()]


# ---- time columns --------------------------------------------------------------------------

_MONTH = re.compile(r"^\d{4}-\d{2}$")


@dataclass
class Times:
    """A parsed time column: ``kind`` is "number", "month" (YYYY-MM) or "datetime" (ISO 8601)."""

    kind: str
    text: list[str]  # the cells as written
    values: list  # floats, (year, month) pairs or datetimes

    def future(self, k: int) -> list[str]:
        """The k timestamps after the last one, one regular step apart (the median step of the column;
        calendar months when every step is a whole number of months)."""
        if len(self.values) < 2:
            raise UsageError("the time column needs at least 2 rows to tell the step between them")
        if self.kind == "number":
            step = float(np.median(np.diff(np.asarray(self.values))))
            ints = all(re.fullmatch(r"[+-]?\d+(\.0*)?", t.strip()) for t in self.text)
            last = self.values[-1]
            return [str(int(round(last + i * step))) if ints and step == int(step) else _fmt(last + i * step)
                    for i in range(1, k + 1)]
        if self.kind == "month":
            idx = [y * 12 + m - 1 for y, m in self.values]
            step = int(np.median(np.diff(idx)))
            return [f"{(idx[-1] + i * step) // 12:04d}-{(idx[-1] + i * step) % 12 + 1:02d}" for i in range(1, k + 1)]
        months = _whole_months(self.values)
        last = self.values[-1]
        if months:
            out = [_add_months(last, i * months) for i in range(1, k + 1)]
        else:
            step = timedelta(seconds=float(np.median([(b - a).total_seconds()
                                                      for a, b in zip(self.values, self.values[1:])])))
            out = [last + i * step for i in range(1, k + 1)]
        date_only = all(len(t.strip()) == 10 for t in self.text)
        sep = " " if " " in self.text[-1].strip() else "T"
        return [d.date().isoformat() if date_only else d.isoformat(sep=sep) for d in out]


def _fmt(v: float) -> str:
    return repr(round(v, 10))


def _whole_months(ds: list[datetime]) -> int:
    """The step in months when every step is the same whole number of calendar months, else 0."""
    steps = set()
    for a, b in zip(ds, ds[1:]):
        months = (b.year - a.year) * 12 + b.month - a.month
        if months <= 0 or _add_months(a, months) != b:
            return 0
        steps.add(months)
    return steps.pop() if len(steps) == 1 else 0


def _add_months(d: datetime, months: int) -> datetime:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    day = d.day
    if d.day == calendar.monthrange(d.year, d.month)[1]:  # month ends stay month ends
        day = calendar.monthrange(y, m)[1]
    return d.replace(year=y, month=m, day=min(day, calendar.monthrange(y, m)[1]))


def parse_times(table: Table, name: str, rows=None) -> Times:
    """Column ``name`` as times (numbers, YYYY-MM or ISO dates), checked to be strictly increasing."""
    j = table.col(name, "time column")
    rows = range(len(table.rows)) if rows is None else rows
    text = [table.rows[i][j].strip() for i in rows]
    lines = [table.lines[i] for i in rows]
    for t, line in zip(text, lines):
        if t.lower() in MISSING:
            raise UsageError(f"{table.name} line {line}: the time column {name!r} is empty; every row needs a time")
    kind, values = _parse_kind(text, lines, table.name, name)
    for k in range(1, len(values)):
        if values[k] == values[k - 1]:
            raise UsageError(f"{table.name}: time column {name!r} has a duplicate: {text[k]!r} at lines "
                             f"{lines[k - 1]} and {lines[k]}")
        if values[k] < values[k - 1]:
            raise UsageError(f"{table.name}: time column {name!r} is not sorted: {text[k]!r} at line {lines[k]} "
                             f"comes after {text[k - 1]!r} at line {lines[k - 1]}; sort the rows by time")
    return Times(kind, text, values)


def _parse_kind(text, lines, source, name):
    try:
        return "number", [float(t) for t in text]
    except ValueError:
        pass
    if all(_MONTH.match(t) for t in text):
        return "month", [(int(t[:4]), int(t[5:])) for t in text]
    values = []
    for t, line in zip(text, lines):
        try:
            d = datetime.fromisoformat(t)
        except ValueError:
            raise UsageError(f"{source} line {line}: time column {name!r} holds {t[:40]!r}, which is neither a "
                             f"number nor an ISO date (YYYY-MM, YYYY-MM-DD, YYYY-MM-DD HH:MM:SS)") from None
        values.append(d)
    if len({d.tzinfo is None for d in values}) > 1:  # such datetimes cannot be compared
        raise UsageError(f"{source}: time column {name!r} mixes times with and without a time zone")
    return "datetime", values


# ---- missing values -------------------------------------------------------------------------

def fill_missing(values: np.ndarray, names: list[str], fill: str, where) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (N, F) with its NaNs handled by ``fill``; also the kept row indices (N',).

    none: UsageError naming the first empty cell (``where(i)`` describes row i);
    ffill: each gap takes the last value before it (a leading gap the first value after it);
    interpolate: linear in row position between the neighbouring values (edges: the nearest);
    drop: rows with any empty cell are removed.
    """
    nan = np.isnan(values)
    keep = np.arange(len(values))
    if not nan.any():
        return values, keep
    for j, name in enumerate(names):
        if nan[:, j].all():
            raise UsageError(f"column {name!r} has no values, only empty or NaN cells")
    if fill == "none":
        i, j = np.argwhere(nan)[0]
        raise UsageError(f"column {names[j]!r} has {int(nan[:, j].sum())} empty or NaN cell(s), the first at "
                         f"{where(int(i))} ({int(nan.sum())} in all); give --fill ffill, interpolate or drop")
    if fill == "drop":
        keep = np.flatnonzero(~nan.any(axis=1))
        return values[keep], keep
    out = values.copy()
    for j in range(values.shape[1]):
        ok = np.flatnonzero(~nan[:, j])
        if fill == "ffill":
            last = np.maximum.accumulate(np.where(~nan[:, j], np.arange(len(values)), -1))
            out[:, j] = values[np.where(last < 0, ok[0], last), j]
        else:
            out[:, j] = np.interp(np.arange(len(values)), ok, values[ok, j])
    return out, keep


# ---- forecasting: one series ------------------------------------------------------------------

@dataclass
class Series:
    """A multivariate series: ``values`` (N, F) with the target in column 0."""

    values: np.ndarray  # (N, F) float64
    columns: list[str]  # [target, features...]
    times: Times | None  # None: no time column (rows are numbered 0, 1, ...)
    source: str  # the path or builtin:NAME
    season: int = 0  # a built-in series' own seasonal period (0: none known)

    def time_text(self, i: int) -> str:
        return self.times.text[i] if self.times is not None else str(i)


# name: (loader, target, time column, season, what)
BUILTIN_SERIES = {
    "sunspots": ("_sunspots", "SUNACTIVITY", "YEAR", 11,
                 "yearly mean sunspot numbers 1700-2008 (statsmodels; 309 values, an ~11-year cycle)"),
    "co2": ("_co2", "co2", "month", 12,
            "Mauna Loa CO2 in ppm, monthly means of statsmodels' weekly series 1958-2001 (526 values)"),
    "airline": ("_airline", "passengers", "month", 12,
                "monthly airline passengers 1949-1960, Box & Jenkins (aeon; 144 values)"),
}


def _need(package: str):
    import importlib
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError:
        raise UsageError(f"the built-in data sets need the {package.split('.')[0]} package: "
                         f"pip install 'lstmkit[timeseries]'") from None


def _sunspots() -> Table:
    ds = _need("statsmodels.datasets.sunspots").load_pandas().data
    rows = [[str(int(y)), repr(float(v))] for y, v in zip(ds["YEAR"], ds["SUNACTIVITY"])]
    return Table("builtin:sunspots", ["YEAR", "SUNACTIVITY"], rows, list(range(2, len(rows) + 2)))


def _co2() -> Table:
    ds = _need("statsmodels.datasets.co2").load_pandas().data["co2"]
    sums: dict = {}
    for stamp, v in zip(ds.index, ds.to_numpy()):  # weekly values -> monthly means; empty weeks skipped
        if np.isfinite(v):
            s = sums.setdefault(f"{stamp.year:04d}-{stamp.month:02d}", [0.0, 0])
            s[0] += float(v)
            s[1] += 1
    rows = [[k, repr(round(s / n, 4))] for k, (s, n) in sorted(sums.items())]
    return Table("builtin:co2", ["month", "co2"], rows, list(range(2, len(rows) + 2)))


def _airline() -> Table:
    y = _need("aeon.datasets").load_airline()
    y = np.asarray(getattr(y, "values", y), dtype=float)
    rows = [[f"{1949 + i // 12:04d}-{i % 12 + 1:02d}", repr(float(v))] for i, v in enumerate(y)]
    return Table("builtin:airline", ["month", "passengers"], rows, list(range(2, len(rows) + 2)))


def series_table(path: str) -> tuple[Table, str, str, int]:
    """(table, default target, default time column, season) for a CSV path or ``builtin:NAME``."""
    if path.startswith(BUILTIN):
        name = path[len(BUILTIN):]
        if name not in BUILTIN_SERIES:
            raise UsageError(f"unknown built-in series {name!r}; expected one of: "
                             + ", ".join(BUILTIN + n for n in BUILTIN_SERIES))
        loader, target, time_col, season, _ = BUILTIN_SERIES[name]
        return globals()[loader](), target, time_col, season
    return read_csv(path), "", "", 0


def read_series(path: str, target: str = "", features=(), time_column: str = "", fill: str = "none") -> Series:
    """A series from a CSV file or ``builtin:NAME``: the target first, then ``features``, NaNs filled."""
    table, default_target, default_time, season = series_table(path)
    target = target or default_target
    time_column = time_column or default_time
    if not target:
        raise UsageError(f"{table.name}: give --target COLUMN, the column to forecast; its columns are: "
                         + ", ".join(table.header))
    columns = [target] + [f for f in features if f != target]
    if time_column in columns:
        raise UsageError(f"--time-column {time_column!r} is also an input column; it cannot be both")
    values = np.stack([table.numbers(c) for c in columns], axis=1)  # (N, F)
    times = parse_times(table, time_column) if time_column else None

    def where(i):
        return f"line {table.lines[i]}" + (f" (time {times.text[i]!r})" if times is not None else "")

    values, keep = fill_missing(values, columns, fill, where)
    if times is not None and len(keep) != len(times.text):
        times = Times(times.kind, [times.text[i] for i in keep], [times.values[i] for i in keep])
    return Series(values, columns, times, table.name, season)


def split_points(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(end of train, end of valid): chronological parts [0, a), [a, b), [b, n)."""
    n_test = int(round(n * test_fraction))
    n_valid = int(round(n * valid_fraction))
    return n - n_valid - n_test, n - n_test


def origins(lo: int, hi: int, window: int, horizon: int) -> np.ndarray:
    """Forecast origins o (the index of a window's last input) whose H targets o+1..o+H lie in [lo, hi).

    The window o-W+1..o may reach back before ``lo``: that is the past, known when
    forecasting, so it is no leakage; the targets never reach past ``hi``.
    """
    first = max(lo - 1, window - 1)
    last = hi - 1 - horizon
    return np.arange(first, last + 1) if last >= first else np.zeros(0, dtype=np.int64)


# ---- classification: labelled sequences ---------------------------------------------------------

@dataclass
class Sequences:
    """Variable-length multivariate sequences: ``x[i]`` is (T_i, F) float32."""

    x: list[np.ndarray]
    labels: list[str] | None  # one per sequence, or None when the file has no labels
    ids: list[str]
    features: list[str]  # feature names (NPZ: f0, f1, ...)
    source: str
    split: list[str] | None = None  # "train" / "valid" / "test" per sequence, when the data fixes it
    classes: list[str] = field(default_factory=list)  # a built-in's class order

    @property
    def n_features(self) -> int:
        return self.x[0].shape[1]


# name: (loader, what)
BUILTIN_SEQUENCES = {
    "japanesevowels": ("_japanese_vowels", "9 speakers' /ae/, 12 LPC cepstral coefficients, 7-29 frames; "
                                           "270 train / 370 test (UCI, bundled with aeon)"),
    "basicmotions": ("_basic_motions", "4 activities from a smartwatch, 3-D accelerometer + gyroscope, "
                                       "100 steps; 40 train / 40 test (bundled with aeon)"),
}


def _aeon_split(load, name: str) -> Sequences:
    x, ids, labels, split = [], [], [], []
    for part in ("train", "test"):
        X, y = load(split=part)  # list or array of (F, T_i); y: str labels
        for k, (xi, yi) in enumerate(zip(X, y)):
            x.append(np.ascontiguousarray(np.asarray(xi, dtype=np.float32).T))  # (T_i, F)
            ids.append(f"{part}-{k}")
            labels.append(str(yi))
            split.append(part)
    F = x[0].shape[1]
    classes = sorted(set(labels), key=lambda s: (len(s), s))  # "1" < "2" < ... < "10"
    return Sequences(x, labels, ids, [f"f{j}" for j in range(F)], BUILTIN + name, split, classes)


def _japanese_vowels() -> Sequences:
    return _aeon_split(_need("aeon.datasets").load_japanese_vowels, "japanesevowels")


def _basic_motions() -> Sequences:
    return _aeon_split(_need("aeon.datasets").load_basic_motions, "basicmotions")


def read_sequences(path: str, *, id_column: str = "id", label_column: str = "label", time_column: str = "",
                   features=(), fill: str = "none", need_labels: bool = True) -> Sequences:
    """Sequences from ``builtin:NAME``, an ``.npz`` archive or a long-format ``.csv`` file."""
    if path.startswith(BUILTIN):
        name = path[len(BUILTIN):]
        if name not in BUILTIN_SEQUENCES:
            raise UsageError(f"unknown built-in data set {name!r}; expected one of: "
                             + ", ".join(BUILTIN + n for n in BUILTIN_SEQUENCES))
        return globals()[BUILTIN_SEQUENCES[name][0]]()
    p = Path(path)
    if p.suffix.lower() == ".npz":
        seqs = _read_npz(p, fill, need_labels)
    elif p.suffix.lower() in (".csv", ".txt"):
        seqs = _read_long_csv(p, id_column, label_column, time_column, features, fill, need_labels)
    else:
        raise UsageError(f"data file {path!r}: expected a long-format .csv or an .npz archive "
                         f"(or builtin:{', builtin:'.join(BUILTIN_SEQUENCES)})")
    return seqs


def _read_long_csv(p, id_column, label_column, time_column, features, fill, need_labels) -> Sequences:
    table = read_csv(p)
    table.col(id_column, "id column (--id-column)")
    has_labels = label_column in table.header
    if need_labels and not has_labels:
        table.col(label_column, "label column (--label-column)")
    if time_column:
        table.col(time_column, "time column")
    reserved = {id_column, label_column, time_column, "split"}
    names = list(features) or [h for h in table.header if h not in reserved]
    if not names:
        raise UsageError(f"{table.name} has no feature columns besides {', '.join(sorted(reserved - {''}))}")
    for n in names:
        if n in reserved:
            raise UsageError(f"{table.name}: column {n!r} cannot be a feature; it is the id, label, time or split")
    values = np.stack([table.numbers(n) for n in names], axis=1)  # (rows, F); checks every name
    ids = table.strings(id_column)
    labels = table.strings(label_column) if has_labels else None
    splits = table.strings("split") if "split" in table.header else None
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(ids):
        if not s.strip():
            raise UsageError(f"{table.name} line {table.lines[i]}: the id column {id_column!r} is empty")
        groups.setdefault(s.strip(), []).append(i)
    x, out_labels, out_split = [], [], []
    for sid, rows in groups.items():
        if time_column:
            parse_times(table, time_column, rows)  # sorted and unique within the sequence
        for col, vals in (("label", labels), ("split", splits)):
            if vals is not None and len({vals[i].strip() for i in rows}) > 1:
                a, b = rows[0], next(i for i in rows if vals[i].strip() != vals[rows[0]].strip())
                raise UsageError(f"{table.name}: sequence {sid!r} has two {col}s, {vals[a].strip()!r} at line "
                                 f"{table.lines[a]} and {vals[b].strip()!r} at line {table.lines[b]}")
        if labels is not None and labels[rows[0]].strip().lower() in MISSING:
            raise UsageError(f"{table.name} line {table.lines[rows[0]]}: sequence {sid!r} has an empty label")
        seq, _ = fill_missing(values[rows], names, fill,
                              lambda i, rows=rows, sid=sid: f"line {table.lines[rows[i]]} (sequence {sid!r})")
        if len(seq) == 0:
            raise UsageError(f"{table.name}: sequence {sid!r} has no rows left after --fill drop")
        x.append(seq.astype(np.float32))
        if labels is not None:
            out_labels.append(labels[rows[0]].strip())
        if splits is not None:
            out_split.append(_check_split(splits[rows[0]].strip(), f"{table.name} line {table.lines[rows[0]]}"))
    return Sequences(x, out_labels if labels is not None else None, list(groups), names, table.name,
                     out_split if splits is not None else None)


def _check_split(s: str, where: str) -> str:
    if s not in ("train", "valid", "test"):
        raise UsageError(f"{where}: split {s!r} is not one of train, valid, test")
    return s


def _read_npz(p: Path, fill: str, need_labels: bool) -> Sequences:
    if not p.is_file():
        raise UsageError(f"data file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays need pickle, which is never allowed
        raise UsageError(f"data file {str(p)!r}: cannot read it without unpickling ({e}); store numeric or "
                         f"string arrays only") from None
    except (OSError, EOFError) as e:
        raise UsageError(f"data file {str(p)!r} is not a valid .npz archive: {e}") from None
    if "x" not in arrays:
        raise UsageError(f"data file {str(p)!r} has no array 'x'; it holds: {', '.join(arrays) or 'nothing'}")
    X = arrays["x"]
    if X.dtype.kind not in "fiu":
        raise UsageError(f"data file {str(p)!r}: 'x' must hold numbers; it has dtype {X.dtype}")
    if X.ndim == 2:
        X = X[:, :, None]  # univariate (N, T) -> (N, T, 1)
    if X.ndim != 3 or X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise UsageError(f"data file {str(p)!r}: 'x' must be (N, T, F) or (N, T) with N, T, F >= 1; "
                         f"got shape {X.shape}")
    N, T, F = X.shape
    lengths = arrays.get("lengths", np.full(N, T))
    if lengths.shape != (N,) or lengths.dtype.kind not in "iu" or (lengths < 1).any() or (lengths > T).any():
        raise UsageError(f"data file {str(p)!r}: 'lengths' must be {N} integers in [1, {T}]")
    labels = None
    if "y" in arrays:
        y = arrays["y"]
        if y.shape != (N,):
            raise UsageError(f"data file {str(p)!r}: 'y' must have shape ({N},), one label per sequence; "
                             f"got {y.shape}")
        labels = [str(v) for v in y.tolist()]
    elif need_labels:
        raise UsageError(f"data file {str(p)!r} has no array 'y' (the labels); it holds: {', '.join(arrays)}")
    ids = [str(v) for v in arrays["ids"].tolist()] if "ids" in arrays else [str(i) for i in range(N)]
    if len(ids) != N:
        raise UsageError(f"data file {str(p)!r}: 'ids' must have {N} entries; got {len(ids)}")
    split = None
    if "split" in arrays:
        split = [_check_split(str(s), f"data file {str(p)!r} sequence {i}")
                 for i, s in enumerate(arrays["split"].tolist())]
    names = [f"f{j}" for j in range(F)]
    x = []
    for i in range(N):
        seq, _ = fill_missing(X[i, :lengths[i]].astype(np.float64), names, fill,
                              lambda t, i=i: f"sequence {i} ({ids[i]!r}), step {t}")
        if len(seq) == 0:
            raise UsageError(f"data file {str(p)!r}: sequence {i} has no steps left after --fill drop")
        x.append(seq.astype(np.float32))
    return Sequences(x, labels, ids, names, str(p), split)


def write_csv(path, header: list[str], rows) -> None:
    """Write a CSV file atomically: to a temporary name, then renamed over ``path``."""
    import os
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)
