// Tests of the counting line (LineCounter), driven by hand-made track states
// and finished tracks: each rule of counter.hpp, in every belt direction.
#include "check.hpp"

#include "conveyor_qc/counter.hpp"

#include <algorithm>
#include <vector>

using namespace cqc;

namespace {

const cv::Size kFrame(640, 360);
const Direction kMovingDirections[] = {Direction::LeftToRight, Direction::RightToLeft, Direction::TopToBottom,
                                       Direction::BottomToTop};

// A w x h box whose centre is at `pos` px along the belt from the entry edge
// (and in the middle of the frame across it), in image coordinates.
cv::Rect2f box_at(Direction d, float pos, float w = 40.f, float h = 40.f) {
    const float cw = kFrame.width * 0.5f, ch = kFrame.height * 0.5f;
    switch (d) {
        case Direction::LeftToRight:
            return {pos - w / 2, ch - h / 2, w, h};
        case Direction::RightToLeft:
            return {kFrame.width - pos - w / 2, ch - h / 2, w, h};
        case Direction::TopToBottom:
            return {cw - w / 2, pos - h / 2, w, h};
        case Direction::BottomToTop:
            return {cw - w / 2, kFrame.height - pos - h / 2, w, h};
    }
    return {};
}

float length(Direction d) {
    return BeltAxis{d, kFrame}.length();
}

TrackState live(int id, const cv::Rect2f& box, bool confirmed = true) {
    TrackState s;
    s.key = id + 100;
    s.id = confirmed ? id : 0;
    s.confirmed = confirmed;
    s.box = box;
    return s;
}

FinishedTrack ended(int id, const cv::Rect2f& last, FinishedTrack::End end) {
    FinishedTrack f;
    f.key = id + 100;
    f.id = id;
    f.history.push_back({0, last});
    f.best_box = last;
    f.end = end;
    return f;
}

LineCounter make(double line, Direction d) {
    CountParams p;
    p.line = line;
    return LineCounter(p, d);
}

const std::vector<FinishedTrack> kNone;

}  // namespace

TEST_CASE("count.line is validated") {
    CountParams p;
    p.validate();  // default: the exit edge
    CHECK_EQ(p.line, 1.0);
    p.line = 0.0;
    CHECK_THROWS(p.validate(), ParamError);
    try {
        p.validate();
    } catch (const ParamError& e) {
        CHECK_EQ(std::string(e.what()), std::string("count.line must be in (0, 1], got 0"));
    }
    p.line = 1.01;
    CHECK_THROWS(p.validate(), ParamError);
    p.line = -0.5;
    CHECK_THROWS(LineCounter(p, Direction::LeftToRight), ParamError);
    p.line = 1e-3;
    p.validate();
}

TEST_CASE("counter: the segment drawn is the line's row or column, inside the frame, every direction") {
    const cv::Size frame(100, 50);
    using Seg = std::pair<cv::Point, cv::Point>;
    CHECK(make(1.0, Direction::LeftToRight).segment(frame) == Seg(cv::Point(99, 0), cv::Point(99, 49)));
    CHECK(make(0.5, Direction::LeftToRight).segment(frame) == Seg(cv::Point(50, 0), cv::Point(50, 49)));
    CHECK(make(0.25, Direction::RightToLeft).segment(frame) == Seg(cv::Point(74, 0), cv::Point(74, 49)));
    CHECK(make(1.0, Direction::TopToBottom).segment(frame) == Seg(cv::Point(0, 49), cv::Point(99, 49)));
    CHECK(make(0.5, Direction::BottomToTop).segment(frame) == Seg(cv::Point(0, 24), cv::Point(99, 24)));
}

TEST_CASE("counter: a track counts once, the first frame its centre is at or past the line, every direction") {
    for (Direction d : kMovingDirections) {
        LineCounter c = make(0.5, d);
        const float line = 0.5f * length(d);
        CHECK_EQ(c.line_position(kFrame), line);
        int frames_counted = 0;
        for (float pos = 20.f; pos < line + 60.f; pos += 7.f) {
            c.update(0, kFrame, {live(1, box_at(d, pos))}, kNone);
            if (pos < line) CHECK(c.crossed().empty());
            if (!c.crossed().empty()) {
                CHECK(pos >= line);
                CHECK(pos < line + 7.f);
                CHECK_EQ(c.crossed().size(), size_t(1));
                CHECK_EQ(c.crossed()[0], 1);
                ++frames_counted;
            }
        }
        CHECK_EQ(frames_counted, 1);
        CHECK_EQ(c.count(), 1);
        CHECK(c.counted(1));
        CHECK(!c.counted(2));
        // Exactly on the line counts.
        c.update(0, kFrame, {live(2, box_at(d, line))}, kNone);
        CHECK_EQ(c.crossed().size(), size_t(1));
        // ... and its end (Exited) does not count again.
        c.update(0, kFrame, {},
                 {ended(1, box_at(d, length(d) - 5.f, 10.f, 10.f), FinishedTrack::End::Exited),
                  ended(2, box_at(d, line + 40.f), FinishedTrack::End::Lost)});
        CHECK(c.crossed().empty());
        CHECK_EQ(c.count(), 2);
    }
}

TEST_CASE("counter: an unconfirmed track never counts, and counts once confirmed") {
    LineCounter c = make(0.3, Direction::LeftToRight);
    c.update(0, kFrame, {live(5, box_at(Direction::LeftToRight, 400.f), false)}, kNone);
    CHECK(c.crossed().empty());
    CHECK_EQ(c.count(), 0);
    c.update(0, kFrame, {live(5, box_at(Direction::LeftToRight, 406.f), true)}, kNone);
    CHECK_EQ(c.crossed().size(), size_t(1));
    CHECK_EQ(c.crossed()[0], 5);
}

TEST_CASE("counter: an object already past the line when first seen counts when confirmed") {
    for (Direction d : kMovingDirections) {
        LineCounter c = make(0.5, d);
        const float far = 0.8f * length(d);
        // On the belt at the start: unconfirmed for two frames, then confirmed.
        c.update(0, kFrame, {live(1, box_at(d, far), false)}, kNone);
        c.update(0, kFrame, {live(1, box_at(d, far + 3.f), false)}, kNone);
        CHECK_EQ(c.count(), 0);
        c.update(0, kFrame, {live(1, box_at(d, far + 6.f))}, kNone);
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.count(), 1);
        c.update(0, kFrame, {}, {ended(1, box_at(d, length(d) - 2.f, 4.f, 40.f), FinishedTrack::End::Exited)});
        CHECK_EQ(c.count(), 1);
    }
}

TEST_CASE("counter: flicker across the line never counts an id twice") {
    for (Direction d : kMovingDirections) {
        LineCounter c = make(0.5, d);
        const float line = 0.5f * length(d);
        const float offsets[] = {-3.f, 1.f, -2.f, 4.f, -1.f, 0.f, -6.f, 2.f};
        int total_crossed = 0;
        for (float o : offsets) {
            // Id 1 jitters about the line; id 2 is the same object's track
            // recreated beside it after id 1 ended: a new id, counted once.
            c.update(0, kFrame, {live(1, box_at(d, line + o))}, kNone);
            total_crossed += static_cast<int>(c.crossed().size());
        }
        CHECK_EQ(total_crossed, 1);
        c.update(0, kFrame, {live(2, box_at(d, line + 2.f))},
                 {ended(1, box_at(d, line + 1.f), FinishedTrack::End::Lost)});
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.crossed()[0], 2);
        for (float o : offsets) {
            c.update(0, kFrame, {live(2, box_at(d, line + o))}, kNone);
            CHECK(c.crossed().empty());
        }
        // The same id both finished and (wrongly) still live on one frame: once.
        c.update(0, kFrame, {live(3, box_at(d, line + 10.f))},
                 {ended(3, box_at(d, line + 9.f), FinishedTrack::End::Lost)});
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.count(), 3);
    }
}

TEST_CASE("counter: at the exit edge (default), live tracks never count; Exited ones do") {
    for (Direction d : kMovingDirections) {
        LineCounter c(CountParams{}, d);
        const float len = length(d);
        CHECK_EQ(c.line_position(kFrame), len);
        // Leaving: the visible part shrinks against the exit edge.
        for (float w = 40.f; w > 1.f; w -= 6.f) {
            c.update(0, kFrame, {live(1, box_at(d, len - w / 2, w, 40.f))}, kNone);
            CHECK(c.crossed().empty());
        }
        c.update(0, kFrame, {}, {ended(1, box_at(d, len - 1.f, 2.f, 40.f), FinishedTrack::End::Exited)});
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.crossed()[0], 1);
        // An Exited track with an empty history (confirmed as it left) still counts.
        FinishedTrack bare;
        bare.id = 2;
        bare.end = FinishedTrack::End::Exited;
        c.update(0, kFrame, {}, {bare});
        CHECK_EQ(c.crossed().size(), size_t(1));
        // Lost or at the stream end in view, clear of the exit edge: not counted.
        c.update(0, kFrame, {},
                 {ended(3, box_at(d, len - 30.f, 20.f, 20.f), FinishedTrack::End::Lost),
                  ended(4, box_at(d, len - 30.f, 20.f, 20.f), FinishedTrack::End::StreamEnd)});
        CHECK(c.crossed().empty());
        // Lost while leaving (its box against the exit edge, its rest no longer
        // detected on its own): it left, it counts. At the stream end it has not left.
        c.update(0, kFrame, {},
                 {ended(5, box_at(d, len - 10.f, 20.f, 20.f), FinishedTrack::End::Lost),
                  ended(6, box_at(d, len - 10.f, 20.f, 20.f), FinishedTrack::End::StreamEnd)});
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.crossed()[0], 5);
        // Within the edge margin of the exit edge is against it.
        LineCounter m(CountParams{}, d, 3.f);
        m.update(0, kFrame, {}, {ended(7, box_at(d, len - 12.f, 20.f, 20.f), FinishedTrack::End::Lost)});
        CHECK_EQ(m.crossed().size(), size_t(1));
        m.update(0, kFrame, {}, {ended(8, box_at(d, len - 14.f, 20.f, 20.f), FinishedTrack::End::Lost)});
        CHECK(m.crossed().empty());
        CHECK_EQ(c.count(), 3);
    }
}

TEST_CASE("counter: Lost and StreamEnd tracks count only when their last centre is past the line") {
    for (Direction d : kMovingDirections) {
        LineCounter c = make(0.6, d);
        const float line = 0.6f * length(d);
        // Never counted while live (confirmed only as they ended): the end decides.
        std::vector<FinishedTrack> done;
        done.push_back(ended(1, box_at(d, line - 5.f), FinishedTrack::End::Lost));
        done.push_back(ended(2, box_at(d, line + 5.f), FinishedTrack::End::Lost));
        done.push_back(ended(3, box_at(d, line - 5.f), FinishedTrack::End::StreamEnd));
        done.push_back(ended(4, box_at(d, line + 5.f), FinishedTrack::End::StreamEnd));
        done.push_back(ended(5, box_at(d, line - 100.f), FinishedTrack::End::Exited));  // cannot leave otherwise
        done.push_back(ended(0, box_at(d, line + 5.f), FinishedTrack::End::Lost));      // no id: never
        c.update(0, kFrame, {}, done);
        std::vector<int> ids = c.crossed();
        std::sort(ids.begin(), ids.end());
        CHECK_EQ(ids.size(), size_t(3));
        CHECK_EQ(ids[0], 2);
        CHECK_EQ(ids[1], 4);
        CHECK_EQ(ids[2], 5);
        // The last box decides, not an earlier one past the line.
        FinishedTrack back = ended(6, box_at(d, line + 30.f), FinishedTrack::End::Lost);
        back.history.push_back({1, box_at(d, line - 30.f)});
        c.update(0, kFrame, {}, {back});
        CHECK(c.crossed().empty());
        CHECK_EQ(c.count(), 3);
    }
}

TEST_CASE("counter: many ids, crossed list reset every frame") {
    LineCounter c = make(0.5, Direction::LeftToRight);
    std::vector<TrackState> tracks;
    for (int id = 1; id <= 3000; ++id) tracks.push_back(live(id, box_at(Direction::LeftToRight, 500.f)));
    c.update(0, kFrame, tracks, kNone);
    CHECK_EQ(c.crossed().size(), size_t(3000));
    CHECK_EQ(c.count(), 3000);
    c.update(0, kFrame, tracks, kNone);
    CHECK(c.crossed().empty());
    CHECK(c.counted(3000));
    CHECK(!c.counted(3001));
    CHECK(!c.counted(0));
    CHECK(!c.counted(-1));
}

namespace {

// A track leaving at `speed` px/frame: its last box, on frame `last`, shows
// `visible` px of it against the exit edge; it was lost then.
FinishedTrack lost_leaving(Direction d, int id, int last, float visible, float speed) {
    FinishedTrack f;
    f.id = id;
    f.end = FinishedTrack::End::Lost;
    const float len = length(d);
    for (int k = 6; k >= 0; --k) {
        const float v = visible + speed * static_cast<float>(k);
        const float along = std::min(v, 60.f);  // a 60 px object
        cv::Rect2f b = box_at(d, len - v + along / 2, 40.f, 40.f);
        // Size along the belt: the visible part.
        if (d == Direction::LeftToRight || d == Direction::RightToLeft) b = box_at(d, len - v + along / 2, along, 40.f);
        else b = box_at(d, len - v + along / 2, 40.f, along);
        f.history.push_back({last - k, b});
    }
    f.first_frame = last - 6;
    f.last_frame = last;
    f.best_box = f.history.front().box;
    return f;
}

}  // namespace

TEST_CASE("counter: a track lost while leaving counts on the frame it would have left, unless the stream ends first") {
    for (Direction d : kMovingDirections) {
        LineCounter c(CountParams{}, d);
        // 30 px still in view at 8 px/frame on frame 100: leaves (trailing
        // edge within 2 px of the exit edge) 28 / 8 -> 4 frames later, frame 104.
        const FinishedTrack t = lost_leaving(d, 1, 100, 30.f, 8.f);
        c.update(101, kFrame, {}, {t});
        CHECK(c.crossed().empty());
        for (int f = 102; f < 104; ++f) {
            c.update(f, kFrame, {}, kNone);
            CHECK(c.crossed().empty());
        }
        c.update(104, kFrame, {}, kNone);
        CHECK_EQ(c.crossed().size(), size_t(1));
        CHECK_EQ(c.crossed()[0], 1);
        c.update(105, kFrame, {}, kNone);
        CHECK(c.crossed().empty());
        CHECK_EQ(c.count(), 1);
        // Lost later than it would have left: counts at once.
        c.update(120, kFrame, {}, {lost_leaving(d, 2, 110, 30.f, 8.f)});
        CHECK_EQ(c.crossed().size(), size_t(1));
        // The stream ends before it leaves: still in view, never counted.
        c.update(200, kFrame, {}, {lost_leaving(d, 3, 200, 50.f, 4.f)});
        CHECK(c.crossed().empty());
        c.update(201, kFrame, {}, kNone, /*stream_end=*/true);
        CHECK(c.crossed().empty());
        c.update(300, kFrame, {}, kNone);
        CHECK(c.crossed().empty());
        CHECK(!c.counted(3));
        CHECK_EQ(c.count(), 2);
        // A mid line it had passed: counts when lost, whatever the exit.
        LineCounter mid = make(0.5, d);
        mid.update(101, kFrame, {}, {lost_leaving(d, 4, 100, 30.f, 8.f)});
        CHECK_EQ(mid.crossed().size(), size_t(1));
    }
}
