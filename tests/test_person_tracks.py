"""Identity between sampled frames (PersonTracker) and chunks per person (TrackChunker), on synthetic boxes."""
from __future__ import annotations

from assets.boxes import Box
from assets.clips.person_tracker import PersonTracker
from assets.clips.streaming_chunker import PersonSample, StreamingChunker
from assets.clips.track_chunker import TrackChunker

LEFT, RIGHT = Box(100, 100, 200, 300), Box(400, 100, 500, 300)


def people(frame, *boxes, score=0.9):
    return [PersonSample(frame, b, True, True, score) for b in boxes]


def ids(update):
    return [p.track for p in update.people]


def test_each_person_keeps_their_track_whatever_order_the_detector_lists_them():
    t = PersonTracker()
    assert ids(t.update(people(0, LEFT, RIGHT))) == [0, 1]
    assert ids(t.update(people(5, RIGHT.translated(8, 0), LEFT.translated(-5, 2)))) == [1, 0]


def test_a_walking_person_is_followed_past_overlap_by_centre_distance():
    t = PersonTracker()
    t.update(people(0, LEFT))
    step = LEFT.translated(90, 0)  # 90 px in one stride: IoU 0.05, centre 0.45 heights away
    assert step.iou(LEFT) < t.min_iou
    assert ids(t.update(people(30, step))) == [0]
    far = step.translated(200, 0)  # a whole height away: somebody else
    update = t.update(people(60, far))
    assert ids(update) == [1]


def test_two_people_crossing_keep_their_identities():
    """A walks right past B, who stands still; at each step A's own last box is nearer than B's."""
    t = PersonTracker()
    a, b = Box(100, 100, 200, 300), Box(300, 100, 400, 300)
    seen = {}
    for k in range(8):
        a_now = a.translated(30 * k, 0)
        for p in t.update(people(5 * k, b, a_now)).people:
            seen.setdefault("B" if p.box == b else "A", set()).add(p.track)
    assert seen == {"B": {0}, "A": {1}}


def test_one_missed_detection_is_bridged_two_end_the_track():
    t = PersonTracker(max_missed=1)
    t.update(people(0, LEFT, RIGHT))
    missed = t.update(people(5, LEFT))  # RIGHT not found once
    assert ids(missed) == [0] and missed.ended == []
    assert ids(t.update(people(10, LEFT, RIGHT))) == [0, 1]  # found again: the same person
    t.update(people(15, LEFT))
    gone = t.update(people(20, LEFT))
    assert gone.ended == [1]
    assert ids(t.update(people(25, LEFT, RIGHT))) == [0, 2]  # back after that: a new track, never id 1 again


def test_a_cut_ends_every_track():
    t = PersonTracker()
    t.update(people(0, LEFT, RIGHT))
    assert t.reset() == [0, 1]
    assert ids(t.update(people(5, LEFT, RIGHT))) == [2, 3]


def test_a_much_bigger_box_at_the_same_place_is_not_the_same_person():
    t = PersonTracker()
    t.update(people(0, LEFT))
    near_camera = Box(60, 40, 260, 440)  # twice the height, same centre: IoU 0.25
    assert ids(t.update(people(5, near_camera))) == [1]


# -- chunks per person ---------------------------------------------------------------------------------------------

def chunker(min_frames=10, max_frames=100):
    return TrackChunker(lambda: StreamingChunker(min_frames, max_frames, 0.25, 50, True, False, lambda b: b))


def drive(n_frames, stride, people_at, cuts=()):
    """Drive tracker and chunker exactly as the video pass does."""
    tracker, tc = PersonTracker(), chunker()
    for i in range(n_frames):
        if i in cuts and i > 0:
            tc.on_cut(i)
            tracker.reset()
        tc.before_frame(i)
        if i % stride == 0 or i in cuts:
            update = tracker.update(people(i, *people_at(i)))
            tc.on_detections(i, update.people, update.ended)
    return tc.finish(n_frames)


def spans(closed):
    return sorted((c.track, c.chunk.start, c.chunk.end, c.chunk.accepted) for c in closed)


def test_two_people_get_a_chunk_each_and_no_two_chunks_start_together():
    closed = drive(60, 5, lambda i: (LEFT, RIGHT))
    # The bigger-scoring person opens at frame 0, the other at the next sampled frame: keys stay unique.
    assert spans(closed) == [(0, 0, 60, True), (1, 5, 60, True)]
    assert {c.chunk.person_box for c in closed} == {LEFT, RIGHT}


def test_the_most_prominent_person_opens_first():
    big = Box(380, 50, 520, 330)
    closed = drive(40, 5, lambda i: (LEFT, big))
    assert [(c.track, c.chunk.start) for c in sorted(closed, key=lambda c: c.chunk.start)] == [(1, 0), (0, 5)]


def test_losing_one_person_closes_only_their_chunk():
    closed = drive(60, 5, lambda i: (LEFT, RIGHT) if i < 30 else (LEFT,))
    # RIGHT was last seen at 25, missed at 30 (bridged) and 35 (ended): its chunk ends after frame 25.
    assert spans(closed) == [(0, 0, 60, True), (1, 5, 26, True)]
    assert "person lost" in next(c.chunk.reason for c in closed if c.track == 1)


def test_a_chunk_never_jumps_to_another_person():
    """RIGHT leaves; a third person appears far away at the same sampled frame: a new track, a new chunk."""
    other = Box(230, 100, 330, 300)  # 170 px from RIGHT's centre: beyond 0.75 x its height, not RIGHT moved
    closed = drive(80, 5, lambda i: (LEFT, RIGHT) if i < 40 else (LEFT, other))
    by_track = {c.track: c.chunk for c in closed}
    assert by_track[1].person_box == RIGHT and by_track[1].end <= 41
    assert by_track[2].person_box == other and by_track[2].start >= 40


def test_a_cut_closes_every_chunk():
    closed = drive(60, 5, lambda i: (LEFT, RIGHT), cuts={33})
    assert spans(closed) == [(0, 0, 33, True), (1, 5, 33, True), (2, 33, 60, True), (3, 35, 60, True)]
