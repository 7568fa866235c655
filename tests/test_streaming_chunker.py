"""The streaming chunker's rules on synthetic detections (no pixels needed)."""
from assets.boxes import Box
from assets.clips.streaming_chunker import PersonSample, StreamingChunker


def make(min_frames=10, max_frames=50, iou=0.5, min_box=50, upper=True):
    return StreamingChunker(min_frames, max_frames, iou, min_box, upper, False, crop_box_for=lambda b: b)


def run(chunker, n_frames, stride, box_at, cuts=()):
    """Drive the chunker exactly as the video pass does."""
    for i in range(n_frames):
        cut = i in cuts
        if cut and i > 0:
            chunker.on_cut(i)
        chunker.before_frame(i)
        if i % stride == 0 or cut:
            box = box_at(i)
            chunker.on_detection(PersonSample(i, box, True, True))
    return chunker.finish(n_frames)


PERSON = Box(100, 100, 200, 300)


def test_one_chunk_for_a_still_person():
    closed = run(make(), 40, 5, lambda i: PERSON)
    assert [(c.start, c.end, c.accepted) for c in closed] == [(0, 40, True)]


def test_cut_splits_and_short_pieces_are_rejected_with_reason():
    closed = run(make(), 40, 5, lambda i: PERSON, cuts={33})
    assert [(c.start, c.end, c.accepted) for c in closed] == [(0, 33, True), (33, 40, False)]
    assert "7 frames < 10" in closed[1].reason and "end of video" in closed[1].reason


def test_max_length_splits_long_runs():
    closed = run(make(max_frames=20), 50, 5, lambda i: PERSON)
    assert [(c.start, c.end) for c in closed] == [(0, 20), (20, 40), (40, 50)]
    assert [c.accepted for c in closed] == [True, True, True]


def test_drift_closes_at_the_interpolated_frame():
    # The person slides right by 10 px per frame; IoU with the start box drops below 0.5 after ~33 px of shift.
    closed = run(make(iou=0.5), 60, 10, lambda i: PERSON.translated(10 * i, 0) if i else PERSON)
    # At 10 px/frame the IoU falls below 0.5 at frame 4 (40 px shift), between the detections at 0 and 10.
    assert (closed[0].start, closed[0].end, closed[0].accepted) == (0, 4, False)
    assert "left the start box" in closed[0].reason
    # With slower motion the drift point falls inside the stride and is found exactly by interpolation.
    slow = run(make(iou=0.5, min_frames=2), 100, 10, lambda i: PERSON.translated(i, 0))
    drift_end = slow[0].end
    assert 30 <= drift_end <= 40
    assert PERSON.translated(drift_end, 0).iou(PERSON) < 0.5 <= PERSON.translated(drift_end - 1, 0).iou(PERSON)


def test_lost_person_closes_after_last_confirmed_detection():
    closed = run(make(), 60, 5, lambda i: PERSON if i < 30 else None)
    assert [(c.start, c.end, c.accepted) for c in closed] == [(0, 26, True)]


def test_small_or_partial_people_never_open_a_chunk():
    small = Box(0, 0, 20, 30)
    assert run(make(min_box=50), 30, 5, lambda i: small) == []
    chunker = make()
    for i in range(0, 30, 5):
        chunker.on_detection(PersonSample(i, PERSON, upper_body=False, full_body=False))
    assert chunker.finish(30) == []
