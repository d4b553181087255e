// Which way the belt moves, read from the footage (track.direction = "auto").
//
// The tracker needs the belt's direction before anything else: objects start
// tracks only in the entry strip, boxes are cut by the entry and exit edges
// in known ways, and an object counts when it leaves through the exit edge.
// A camera's installation fixes the direction, so it is found once, from the
// first detection frames, and never changes afterwards.
//
// How (DirectionFinder::add, once per detection frame):
//  - detections are chained from one detection frame to the next by mutual
//    nearest centroids within `max_distance` (track.max_distance: the same
//    gate the tracker matches with);
//  - a chain whose centroid has moved `min_shift` px or more since its last
//    vote votes for the direction of that motion, provided the motion is
//    mostly along one axis (the larger component at least twice the other);
//    then it starts measuring again from where it is. A slow belt votes less
//    often, never wrongly; objects standing still (stains, rails, a stopped
//    belt) never vote;
//  - the direction is decided once one direction has `min_votes` votes and
//    at least `agreement` of all votes. Until then, decided() is false.
#pragma once

#include "conveyor_qc/param_range.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <array>
#include <vector>

namespace cqc {

struct DirectionFinderParams {
    // Gate for chaining a detection to one on the previous detection frame,
    // full-resolution px.
    double max_distance = 60.0;
    // Motion of a chained centroid, full-resolution px, that makes one vote:
    // well above the jitter of a detection's centroid (about 1 px).
    double min_shift = 4.0;
    // Votes the leading direction needs before it is decided.
    int min_votes = 6;
    // Share of all votes the leading direction needs.
    double agreement = 0.8;

    std::vector<ParamRange> ranges() const {
        using R = ParamRange;
        return {
            R("max_distance", max_distance).above(0).at_most(1e5),
            R("min_shift", min_shift).above(0).at_most(1e5),
            R("min_votes", min_votes).at_least(1).at_most(1e5),
            R("agreement", agreement).above(0.5).at_most(1),
        };
    }
    void validate() const;  // throws ParamError
};

class DirectionFinder {
  public:
    explicit DirectionFinder(const DirectionFinderParams& params = {});  // validates

    // One detection frame's detections (full-resolution px). Returns decided().
    bool add(const std::vector<Detection>& detections);

    bool decided() const { return decided_; }
    // The decided direction; before that, the direction with the most votes
    // so far (LeftToRight when there are none).
    Direction direction() const;
    // Votes so far for each direction, indexed by Direction's value.
    const std::array<int, 4>& votes() const { return votes_; }

  private:
    struct Chain {
        cv::Point2f at;      // centroid on the last detection frame
        cv::Point2f origin;  // where it was when it last voted (or started)
    };
    DirectionFinderParams params_;
    std::vector<Chain> chains_, next_;
    std::vector<int> nearest_chain_, nearest_det_;
    std::array<int, 4> votes_{};
    bool decided_ = false;
    Direction direction_ = Direction::LeftToRight;
};

}  // namespace cqc
