"""matplotlib for the PNGs lstmkit writes: imported only when a figure is drawn (it is an extra,
``pip install 'lstmkit[cli]'``), on the file-only Agg backend, and saved atomically."""
from __future__ import annotations

import os
from pathlib import Path


def pyplot(needed_for: str | None = None):
    """``matplotlib.pyplot`` on the Agg backend.

    Without matplotlib: None when ``needed_for`` is None (the caller skips its optional
    figure), else a UsageError naming what needs it.
    """
    try:
        import matplotlib
    except ModuleNotFoundError:
        if needed_for is None:
            return None
        from .errors import UsageError
        raise UsageError(f"{needed_for} need(s) the matplotlib package: pip install 'lstmkit[cli]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int | None = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` through a temporary file (never half a file), then close it."""
    import matplotlib.pyplot as plt
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi if dpi is not None else fig.dpi, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
