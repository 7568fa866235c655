"""Identity between sampled frames: which box of this detection is which person of the earlier ones.

Detections arrive `stride` frames apart (0.2 s for `sample`, 1 s for TED), so a walking person may no longer
overlap their previous box. A box keeps its person's track when it overlaps the track's last box (IoU), or else
when its centre is within `max_shift` x the track's height (per sampled step) of the track's centre at a similar
height (ratio within `max_scale_change`); each box and each track is matched at most once, the strongest pairs
first. A detector misses a person now and then (a turned back, motion blur), so a track survives `max_missed`
sampled frames without its person; past that it ends, and whoever appears there later is a new track, never
silently the same one. A shot cut ends every track.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from assets.boxes import Box
from assets.clips.streaming_chunker import PersonSample


@dataclass
class _Track:
    track: int
    box: Box
    missed: int = 0  # sampled frames since the person was last seen


@dataclass(frozen=True)
class TrackUpdate:
    people: list[PersonSample]  # the sampled frame's people, each with its track id, in the order given
    ended: list[int]  # tracks that ended at this sampled frame (their person was missed too often)


@dataclass
class PersonTracker:
    min_iou: float = 0.3
    max_shift: float = 0.75
    max_scale_change: float = 1.5
    max_missed: int = 1
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 0

    def reset(self) -> list[int]:
        """End every track (a shot cut: nobody on the next shot is anybody on this one); returns their ids."""
        ended = [t.track for t in self._tracks]
        self._tracks = []
        return ended

    def update(self, people: list[PersonSample]) -> TrackUpdate:
        """Match a sampled frame's people (non-empty boxes) to the tracks."""
        pairs = sorted(((self._affinity(t, p.box), ti, pi)
                        for ti, t in enumerate(self._tracks) for pi, p in enumerate(people)),
                       key=lambda a: (-a[0], a[1], a[2]))
        track_of: dict[int, int] = {}
        used: set[int] = set()
        for affinity, ti, pi in pairs:
            if affinity <= 0 or ti in used or pi in track_of:
                continue
            used.add(ti)
            track_of[pi] = ti
        kept, ended = [], []
        for ti, t in enumerate(self._tracks):
            if ti in used:
                continue
            if t.missed + 1 > self.max_missed:
                ended.append(t.track)
            else:
                kept.append(replace(t, missed=t.missed + 1))
        out = []
        for pi, p in enumerate(people):
            if pi in track_of:
                tid = self._tracks[track_of[pi]].track
            else:
                tid, self._next_id = self._next_id, self._next_id + 1
            kept.append(_Track(tid, p.box))
            out.append(replace(p, track=tid))
        self._tracks = sorted(kept, key=lambda t: t.track)
        return TrackUpdate(out, ended)

    def _affinity(self, track: _Track, now: Box) -> float:
        """> 1 for overlapping boxes (1 + IoU), in (0, 1] for a nearby box of similar size, 0 for another person."""
        last = track.box
        iou = last.iou(now)
        if iou >= self.min_iou:
            return 1.0 + iou
        if last.height <= 0 or now.height <= 0:
            return 0.0
        ratio = now.height / last.height
        if not 1 / self.max_scale_change <= ratio <= self.max_scale_change:
            return 0.0
        (ax, ay), (bx, by) = last.center, now.center
        reach = self.max_shift * last.height * (track.missed + 1)
        return max(0.0, 1.0 - math.hypot(bx - ax, by - ay) / reach)
