"""How well the detector saw a video: the numbers that explain a video with few or no chunks.

"5x person lost" is what the chunker saw; "a person in 8 of 159 sampled frames" is why. Both rates are over the
sampled frames (every `stride`-th frame, plus shot cuts), not over the video's frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DetectionStats:
    sampled_frames: int = 0  # frames the detector ran on
    frames_with_person: int = 0  # sampled frames where it found at least one person
    frames_with_valid_person: int = 0  # ... at least one person the chunk rules accept (size, visibility)
    person_boxes: int = 0  # people found, all sampled frames together
    tracks: int = 0  # distinct people (identities kept between sampled frames)

    @property
    def detection_rate(self) -> float:
        return self.frames_with_person / self.sampled_frames if self.sampled_frames else 0.0

    @property
    def valid_person_rate(self) -> float:
        return self.frames_with_valid_person / self.sampled_frames if self.sampled_frames else 0.0

    @property
    def people_per_frame(self) -> float:
        return self.person_boxes / self.sampled_frames if self.sampled_frames else 0.0

    def add_frame(self, people: int, valid: int) -> "DetectionStats":
        return DetectionStats(self.sampled_frames + 1, self.frames_with_person + (people > 0),
                              self.frames_with_valid_person + (valid > 0), self.person_boxes + people, self.tracks)

    def with_tracks(self, tracks: int) -> "DetectionStats":
        return DetectionStats(self.sampled_frames, self.frames_with_person, self.frames_with_valid_person,
                              self.person_boxes, tracks)

    def to_dict(self) -> dict:
        return {**asdict(self), "detection_rate": round(self.detection_rate, 4),
                "valid_person_rate": round(self.valid_person_rate, 4),
                "people_per_frame": round(self.people_per_frame, 3)}

    def summary(self) -> str:
        """One line for a report: 'person in 8/159 sampled frames (5.0%), valid in 0 (0.0%), 0.06 per frame'."""
        return (f"person in {self.frames_with_person}/{self.sampled_frames} sampled frames "
                f"({100 * self.detection_rate:.1f}%), valid for the rules in {self.frames_with_valid_person} "
                f"({100 * self.valid_person_rate:.1f}%), {self.people_per_frame:.2f} people per frame, "
                f"{self.tracks} tracks")
