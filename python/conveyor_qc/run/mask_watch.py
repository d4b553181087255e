"""Says at once when a scene defeats the belt model, instead of reporting 0 objects.

The belt model (``mask.mode = "auto"``, cpp/include/conveyor_qc/belt_model.hpp) learns
the belt from the first frames and reports the figures it judged by. :class:`MaskWatch`
reads them once it has learnt, and watches the run for frames that change while nothing
is found. Each problem is told once, as it is found, through ``warn`` (``run`` prints it
on stderr), with what to try; :meth:`MaskWatch.section` is summary.json's ``mask``
section: the figures and every warning.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from conveyor_qc import _core

__all__ = ["LIMITS", "MaskWarning", "MaskWatch"]

#: When a learnt figure means trouble (docs/settings.md, "When the belt model is defeated").
LIMITS = {
    # the largest connected region of one colour, as a share of the view: a belt is one
    # surface through the whole view, even half covered
    "belt_region": 0.08,
    # share of the learning frames' pixels in product components: beyond it the "belt"
    # is more likely a product colour
    "object_share": 0.70,
    # share of the learnt pixels whose colour was seen as both belt and product
    "ambiguous_share": 0.30,
}
#: Seconds of video with nothing found while the frames change before it is told.
NOTHING_FOUND_SECONDS = 3.0
#: Mean absolute change of a 1/32-size grey thumbnail, in grey levels, that counts as
#: the frames changing (products passing; a moving belt's own texture averages out).
CHANGE_LEVELS = 4.0

_TRY = (
    "look at what the detector sees with `conveyor-qc inspect VIDEO --out DIR`; "
    "or set the products' colours by hand: --set mask.mode=threshold with mask.object_space, "
    "object_lower and object_upper (docs/settings.md)"
)


@dataclass(frozen=True)
class MaskWarning:
    code: str  # no-belt | mostly-object | ambiguous | nothing-found
    frame: int  # 0-based frame index where it was found
    message: str


class MaskWatch:
    """Watches one run. ``warn(text)`` is called once per problem, when it is found."""

    def __init__(
        self, mode: str, fps: float, learn_frames: int, learn_stride: int, warn: Callable[[str], None] | None = None
    ):
        self.mode = mode
        self._warn = warn or (lambda text: None)
        self._fps = fps if fps and fps > 0 else 30.0
        self._learnt_at = (learn_frames - 1) * learn_stride  # last learning frame
        self._checked_model = mode != "auto"
        self.warnings: list[MaskWarning] = []
        self._stats: _core.BeltStats | None = None
        # (frame index, thumbnail) every few frames since something was last found
        self._quiet: deque[tuple[int, np.ndarray]] = deque()
        self._quiet_since: int | None = 0
        self._told_nothing = False

    # ------------------------------------------------------------------ per frame

    def after_frame(self, index: int, frame: np.ndarray, found: bool, stats: Callable[[], _core.BeltStats]) -> None:
        """After frame ``index``: ``found`` is whether any object (track) is live on it;
        ``stats()`` gives the belt model's figures (read only when needed)."""
        if not self._checked_model and index >= self._learnt_at:
            self._checked_model = True
            self._stats = stats()
            self._judge_model(index, self._stats)
        self._watch_quiet(index, frame, found)

    def _judge_model(self, index: int, s: _core.BeltStats) -> None:
        if s.frames_learnt == 0:
            return
        if s.belt_region < LIMITS["belt_region"]:
            self._tell(
                "no-belt",
                index,
                f"no clear belt colour: the largest region of one colour covers only "
                f"{s.belt_region:.0%} of the view; {_TRY}",
            )
        if s.object_share > LIMITS["object_share"]:
            self._tell(
                "mostly-object",
                index,
                f"{s.object_share:.0%} of the view differs from what the belt model took for the belt: "
                f"it may have taken a product colour for the belt; {_TRY}",
            )
        if s.ambiguous_share > LIMITS["ambiguous_share"]:
            self._tell(
                "ambiguous",
                index,
                f"the products' colours overlap the belt's ({s.ambiguous_share:.0%} of the learnt pixels "
                f"were seen as both): products may be missed or cut; more contrast in the lighting helps, "
                f"or {_TRY}",
            )

    def _watch_quiet(self, index: int, frame: np.ndarray, found: bool) -> None:
        if found:
            self._quiet.clear()
            self._quiet_since = None
            return
        if self._quiet_since is None:
            self._quiet_since = index
        if self._told_nothing or (index - self._quiet_since) % 5:
            return
        h, w = frame.shape[:2]
        thumb = cv2.resize(
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (max(1, w // 32), max(1, h // 32)), interpolation=cv2.INTER_AREA
        ).astype(np.float32)
        self._quiet.append((index, thumb))
        window = NOTHING_FOUND_SECONDS * self._fps
        if index - self._quiet_since < window:
            return
        first = self._quiet[0][1]
        change = max(float(np.mean(np.abs(t - first))) for _, t in self._quiet)
        if change >= CHANGE_LEVELS:
            self._told_nothing = True
            self._tell(
                "nothing-found",
                index,
                f"the frames change but nothing has been found for {(index - self._quiet_since) / self._fps:.1f} s "
                f"(since frame {self._quiet_since + 1}): the mask may take the products for belt; {_TRY}",
            )
        while self._quiet and index - self._quiet[0][0] > window:
            self._quiet.popleft()

    def _tell(self, code: str, index: int, message: str) -> None:
        self.warnings.append(MaskWarning(code, index, message))
        self._warn(message)

    # ------------------------------------------------------------------ report

    def section(self, stats: _core.BeltStats | None) -> dict:
        """summary.json's ``mask`` section: the mode, the belt model's figures, the warnings."""
        out: dict = {"mode": self.mode}
        if self.mode == "auto" and stats is not None and stats.frames_learnt:
            out.update({k: _plain(v) for k, v in stats.as_dict().items()})
            out["limits"] = dict(LIMITS)
        out["warnings"] = [asdict(w) for w in self.warnings]
        return out


def _plain(v):
    if isinstance(v, float | np.floating):
        return round(float(v), 4)
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v
