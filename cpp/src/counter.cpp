#include "conveyor_qc/counter.hpp"

#include "params_check.hpp"

#include <algorithm>
#include <cmath>

namespace cqc {

namespace {

// Frames of history over which a lost track's speed along the belt is measured.
constexpr size_t kSpeedFrames = 5;
// Slower than this (px/frame) a lost track is taken to have left at once.
constexpr float kMinSpeed = 0.5f;

}  // namespace

void CountParams::validate() const {
    for (const ParamRange& r : ranges()) r.check("count");
}

LineCounter::LineCounter(const CountParams& params, Direction direction, float edge_margin)
    : params_(params), direction_(direction), edge_margin_(edge_margin) {
    params_.validate();
    if (direction == Direction::Auto)
        throw ParamError(
            "count: the counting line needs the belt's direction (left_to_right, right_to_left, "
            "top_to_bottom or bottom_to_top), not auto");
    crossed_.reserve(16);
    pending_.reserve(16);
    counted_.reserve(1024);
}

float LineCounter::line_position(cv::Size frame) const {
    const BeltAxis axis{direction_, frame};
    return static_cast<float>(params_.line) * axis.length();
}

std::pair<cv::Point, cv::Point> LineCounter::segment(cv::Size frame) const {
    const bool horizontal = direction_ == Direction::LeftToRight || direction_ == Direction::RightToLeft;
    const int length = horizontal ? frame.width : frame.height;
    int pos = std::min(std::max(static_cast<int>(std::lround(params_.line * length)), 0), length - 1);
    if (direction_ == Direction::RightToLeft || direction_ == Direction::BottomToTop) pos = length - 1 - pos;
    if (horizontal) return {cv::Point(pos, 0), cv::Point(pos, frame.height - 1)};
    return {cv::Point(0, pos), cv::Point(frame.width - 1, pos)};
}

void LineCounter::mark(int id) {
    const size_t i = static_cast<size_t>(id);
    if (i >= counted_.size()) counted_.resize(std::max(i + 1, counted_.size() * 2), 0);
    counted_[i] = 1;
    ++count_;
    crossed_.push_back(id);
}

int LineCounter::exit_frame(const FinishedTrack& t, const BeltAxis& axis) const {
    // While leaving, only the trailing (near) edge moves: it has left when
    // that edge reaches the exit edge (the tracker's own test).
    const size_t n = t.history.size();
    if (n < 2) return t.last_frame;
    const TrackPoint& a = t.history[n - 1 - std::min(n - 1, kSpeedFrames)];
    const TrackPoint& b = t.history[n - 1];
    float an = 0.f, af = 0.f, bn = 0.f, bf = 0.f;
    axis.span(a.box, an, af);
    axis.span(b.box, bn, bf);
    const int frames = std::max(1, b.frame - a.frame);
    const float speed = (bn - an) / static_cast<float>(frames);
    if (!(speed >= kMinSpeed)) return b.frame;
    const float remaining = std::max(0.f, axis.length() - edge_margin_ - bn);
    return b.frame + static_cast<int>(std::ceil(remaining / speed));
}

void LineCounter::update(int frame_index, cv::Size frame, const std::vector<TrackState>& live,
                         const std::vector<FinishedTrack>& finished, bool stream_end) {
    crossed_.clear();
    const BeltAxis axis{direction_, frame};
    const float line = static_cast<float>(params_.line) * axis.length();
    const float exit_edge = axis.length() - edge_margin_;
    auto centre = [&axis](const cv::Rect2f& b) {
        float n = 0.f, f = 0.f;
        axis.span(b, n, f);
        return 0.5f * (n + f);
    };
    auto leaving = [&axis, exit_edge](const cv::Rect2f& b) {
        float n = 0.f, f = 0.f;
        axis.span(b, n, f);
        return f >= exit_edge;
    };
    // Lost while leaving, and left by now.
    if (!pending_.empty()) {
        size_t keep = 0;
        for (const Pending& p : pending_) {
            if (p.due <= frame_index) {
                if (!counted(p.id)) mark(p.id);
            } else {
                pending_[keep++] = p;
            }
        }
        pending_.resize(keep);
    }
    // Finished first: they ended on this frame, after their last live frame.
    for (const auto& t : finished) {
        if (t.id <= 0 || counted(t.id)) continue;
        if (t.end == FinishedTrack::End::Exited) {
            mark(t.id);
            continue;
        }
        const cv::Rect2f& last = t.history.empty() ? t.best_box : t.history.back().box;
        if (!(last.width > 0.f && last.height > 0.f)) continue;
        if (centre(last) >= line) {
            mark(t.id);
        } else if (t.end == FinishedTrack::End::Lost && leaving(last)) {
            const int due = exit_frame(t, axis);
            if (due <= frame_index) mark(t.id);
            else pending_.push_back({t.id, due});
        }
    }
    for (const auto& t : live) {
        if (!t.confirmed || t.id <= 0 || counted(t.id)) continue;
        if (t.box.width > 0.f && t.box.height > 0.f && centre(t.box) >= line) mark(t.id);
    }
    // The stream ended before they left: still in view, not counted.
    if (stream_end) pending_.clear();
}

}  // namespace cqc
