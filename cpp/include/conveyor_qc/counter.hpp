// The counting line: a line across the belt (the exit edge by default) where
// every object counts once, when its track crosses it.
//
// Rules (LineCounter::update, once per frame, after the tracker):
//  - a live confirmed track counts the first time the centre of its box along
//    the belt is at or past the line. An object already past the line when it
//    is first seen (on the belt when the stream starts) counts when its track
//    is confirmed;
//  - a finished track counts, if it has not yet:
//      Exited:    always (it crossed any line on its way out: at the exit edge,
//                 the default, a box's centre never reaches the edge while the
//                 object is still visible, so this is how the exit edge counts);
//      Lost:      if the centre of its last box was past the line; or, when
//                 its last box touched the exit edge, on the frame it would
//                 have left at the speed its box was moving (it was leaving,
//                 and was lost because what was left of it in view stopped
//                 being detected on its own, typically merged with a
//                 neighbour leaving too; without this, the exit-edge line
//                 misses them). If the stream ends before that frame, it has
//                 not left, and does not count (like StreamEnd);
//      StreamEnd: only if the centre of its last box was past the line;
//  - one id counts at most once, whatever its box does afterwards (a centre
//    going back and forth across the line, a track that ends after counting).
//    Ids are the tracker's confirmed ids (1, 2, 3...), never reused.
//
// Allocation-free per frame: the crossed list keeps its capacity, and the
// counted flags (one byte per id ever seen) grow geometrically.
#pragma once

#include <utility>

#include "conveyor_qc/param_range.hpp"
#include "conveyor_qc/tracker.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

namespace cqc {

struct CountParams {
    // Position of the counting line along the belt, as a fraction of the
    // frame's length from the entry edge; 1.0 is the exit edge (an object
    // counts when it leaves).
    double line = 1.0;

    std::vector<ParamRange> ranges() const { return {ParamRange("line", line).above(0).at_most(1)}; }
    void validate() const;  // throws ParamError naming "count.<field>"
};

class LineCounter {
  public:
    // edge_margin: a box within this many full-resolution pixels of the exit
    // edge touches it (the tracker's track.edge_margin).
    LineCounter(const CountParams& params, Direction direction, float edge_margin = 2.f);  // validates

    // One frame: `frame_index` is its 0-based index, `frame` the
    // full-resolution frame size, `live` the tracker's live tracks after the
    // frame (confirmed and not), `finished` the tracks that ended on this
    // frame (each seen once). With `stream_end` (after the last frame, with
    // the StreamEnd tracks and the last frame's index), the tracks lost while
    // leaving that had not left yet are dropped uncounted. Afterwards,
    // crossed() lists the ids that counted on this frame.
    void update(int frame_index, cv::Size frame, const std::vector<TrackState>& live,
                const std::vector<FinishedTrack>& finished, bool stream_end = false);

    // Ids that counted on the last update, in the order they were found.
    const std::vector<int>& crossed() const { return crossed_; }
    // Objects counted so far.
    int count() const { return count_; }
    // Whether `id` has counted.
    bool counted(int id) const {
        return id > 0 && static_cast<size_t>(id) < counted_.size() && counted_[static_cast<size_t>(id)] != 0;
    }
    // The line's position along the belt, in full-resolution pixels from the
    // entry edge, for a frame of `frame` size.
    float line_position(cv::Size frame) const;
    // End points (pixels) of the line across `frame`, for drawing it: the row
    // or column at line_position, kept inside the frame.
    std::pair<cv::Point, cv::Point> segment(cv::Size frame) const;

    const CountParams& params() const { return params_; }
    Direction direction() const { return direction_; }

  private:
    void mark(int id);
    // Frame on which a track lost against the exit edge would have left.
    int exit_frame(const FinishedTrack& t, const BeltAxis& axis) const;

    struct Pending {
        int id;
        int due;  // frame on which it counts
    };

    CountParams params_;
    Direction direction_;
    float edge_margin_;
    std::vector<int> crossed_;
    std::vector<Pending> pending_;       // lost while leaving, not left yet
    std::vector<std::uint8_t> counted_;  // indexed by id
    int count_ = 0;
};

}  // namespace cqc
