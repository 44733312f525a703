"""The `seisfm` commands' one progress bar: a tqdm bar on stderr behind the core's ``progress(done, total)``
callbacks (``napari_seisfm.progress``), so every command shows progress the same way."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """``bar(done, total[, detail])`` is a core progress callback: the bar appears on the first report (an
    error before it prints no empty bar), follows a total that changes, and shows ``detail`` (a name, or a
    dict such as ``{"loss": "0.12"}``) after the count. ``advance(n)`` counts ``n`` more (loops that report
    steps one by one; give ``total`` up front). Fractions of a unit show to one decimal. Use it in ``with``,
    or ``close()`` it. ``disable``: True hides it (``--json``), None hides it when stderr is no terminal."""

    def __init__(
        self, desc: str, unit: str = "chunk", *, total: float | None = None, disable: bool | None = False, **tqdm_options: Any
    ):
        self.desc, self.unit, self.disable, self.options = desc, unit, disable, tqdm_options
        self.total = total
        self.bar = None

    @property
    def started(self) -> bool:
        """Whether the bar is shown (a first report came)."""
        return self.bar is not None

    def _open(self, total):
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=self.desc,
                unit=self.unit,
                dynamic_ncols=True,
                file=sys.stderr,
                disable=self.disable,
                **self.options,
            )
        return self.bar

    def __call__(self, done: float, total: float, detail: Any = None) -> None:
        bar = self._open(total)
        bar.total = max(total, done)
        bar.n = round(done, 1) if isinstance(done, float) else done
        self._detail(bar, detail)
        bar.refresh()

    def advance(self, n: float = 1, detail: Any = None) -> None:
        bar = self._open(self.total)
        self._detail(bar, detail)
        bar.update(n)

    @staticmethod
    def _detail(bar, detail) -> None:
        if isinstance(detail, dict):
            bar.set_postfix(detail, refresh=False)
        elif detail is not None:
            bar.set_postfix_str(str(detail), refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
