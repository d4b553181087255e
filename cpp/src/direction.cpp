#include "conveyor_qc/direction.hpp"

#include "params_check.hpp"

#include <cmath>
#include <limits>

namespace cqc {

void DirectionFinderParams::validate() const {
    for (const ParamRange& r : ranges()) r.check("direction");
}

DirectionFinder::DirectionFinder(const DirectionFinderParams& params) : params_(params) {
    params_.validate();
    chains_.reserve(64);
    next_.reserve(64);
}

Direction DirectionFinder::direction() const {
    if (decided_) return direction_;
    int best = 0;
    for (int d = 1; d < 4; ++d)
        if (votes_[static_cast<size_t>(d)] > votes_[static_cast<size_t>(best)]) best = d;
    return static_cast<Direction>(best);
}

namespace {

float dist2(const cv::Point2f& a, const cv::Point2f& b) {
    const cv::Point2f d = a - b;
    return d.x * d.x + d.y * d.y;
}

// The direction of a motion mostly along one axis, or -1.
int direction_of(const cv::Point2f& m) {
    const float ax = std::abs(m.x), ay = std::abs(m.y);
    if (ax >= 2.f * ay) return static_cast<int>(m.x > 0 ? Direction::LeftToRight : Direction::RightToLeft);
    if (ay >= 2.f * ax) return static_cast<int>(m.y > 0 ? Direction::TopToBottom : Direction::BottomToTop);
    return -1;
}

}  // namespace

bool DirectionFinder::add(const std::vector<Detection>& detections) {
    if (decided_) return true;
    const size_t nc = chains_.size(), nd = detections.size();
    const float gate = static_cast<float>(params_.max_distance * params_.max_distance);

    // Mutual nearest neighbours: a pair only when each is the other's nearest,
    // so two objects side by side never swap chains.
    nearest_chain_.assign(nd, -1);
    nearest_det_.assign(nc, -1);
    for (size_t j = 0; j < nd; ++j) {
        float best = gate;
        for (size_t i = 0; i < nc; ++i) {
            const float d = dist2(detections[j].centroid, chains_[i].at);
            if (d <= best) {
                best = d;
                nearest_chain_[j] = static_cast<int>(i);
            }
        }
    }
    for (size_t i = 0; i < nc; ++i) {
        float best = gate;
        for (size_t j = 0; j < nd; ++j) {
            const float d = dist2(detections[j].centroid, chains_[i].at);
            if (d <= best) {
                best = d;
                nearest_det_[i] = static_cast<int>(j);
            }
        }
    }

    next_.clear();
    const float min_shift2 = static_cast<float>(params_.min_shift * params_.min_shift);
    for (size_t j = 0; j < nd; ++j) {
        const cv::Point2f c = detections[j].centroid;
        const int i = nearest_chain_[j];
        if (i < 0 || nearest_det_[static_cast<size_t>(i)] != static_cast<int>(j)) {
            next_.push_back({c, c});  // a new chain
            continue;
        }
        Chain chain{c, chains_[static_cast<size_t>(i)].origin};
        const cv::Point2f moved = c - chain.origin;
        if (dist2(c, chain.origin) >= min_shift2) {
            const int d = direction_of(moved);
            if (d >= 0) ++votes_[static_cast<size_t>(d)];
            chain.origin = c;
        }
        next_.push_back(chain);
    }
    chains_.swap(next_);

    int total = 0;
    for (int v : votes_) total += v;
    const Direction lead = direction();
    const int lead_votes = votes_[static_cast<size_t>(lead)];
    if (lead_votes >= params_.min_votes && lead_votes >= params_.agreement * total) {
        decided_ = true;
        direction_ = lead;
        chains_.clear();
        next_.clear();
    }
    return decided_;
}

}  // namespace cqc
