"""A tqdm bar that shows the server's stage, progress (0-100) and message while we wait."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    def __init__(self, desc: str, *, enabled: bool) -> None:
        self.bar: tqdm[Any] | None = None
        self.desc, self.enabled, self.stage = desc, enabled, ""

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=100,
                desc=self.desc,
                unit="%",
                file=sys.stderr,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
            )
        return self

    def update(self, stage: str, progress: int, message: str = "") -> None:
        if self.bar is None:
            return
        self.bar.n = max(0, min(100, int(progress or 0)))
        self.bar.set_postfix_str(f"{stage or 'queued'}: {message}"[:80], refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
