#include "conveyor_qc/crossing.hpp"

#include <algorithm>
#include <array>

namespace cqc {

namespace {

// Frames an object's own fitted path must span for its slope to be its speed alone (below: blended
// with the belt's). 20 frames at 8 px a frame: 160 px, where a pixel of jitter at each end is 1 %.
constexpr float kOwnSpan = 20.f;

// The median of v[0..n) (n > 0), reordering v; the mean of the two middle values when n is even.
float median(float* v, size_t n) {
    const size_t mid = n / 2;
    std::nth_element(v, v + mid, v + n);
    const float upper = v[mid];
    if (n % 2) return upper;
    return 0.5f * (upper + *std::max_element(v, v + mid));
}

float length_along(const cv::Rect2f& box, const BeltAxis& axis) {
    float near_edge = 0.f, far_edge = 0.f;
    axis.span(box, near_edge, far_edge);
    return far_edge - near_edge;
}

}  // namespace

BeltMotion measure_motion(const std::vector<TrackPoint>& path, const cv::Rect2f& full_box, const BeltAxis& axis,
                          float edge_margin, float belt_speed, int last_n) {
    BeltMotion m;
    if (path.empty()) return m;
    const int end_frame = path.back().frame;
    // The points to fit, newest first: frames relative to the last frame, centres along the belt.
    constexpr int kMaxPoints = 30;
    std::array<float, kMaxPoints> t{}, c{};
    int n = 0;
    const int wanted = std::clamp(last_n, 0, kMaxPoints);
    const float exit = axis.length() - edge_margin;
    for (auto it = path.rbegin(); it != path.rend() && n < wanted; ++it) {
        float near_edge = 0.f, far_edge = 0.f;
        axis.span(it->box, near_edge, far_edge);
        if (!it->seen || near_edge <= edge_margin || far_edge >= exit) continue;
        t[static_cast<size_t>(n)] = static_cast<float>(it->frame - end_frame);
        c[static_cast<size_t>(n)] = 0.5f * (near_edge + far_edge);
        ++n;
    }
    if (n >= 3 && t[0] - t[static_cast<size_t>(n - 1)] >= 2.f) {
        // Theil-Sen: the median of the slopes between every two points, and the median of what
        // each point says the centre was on the last frame. A box that took in a neighbour for a
        // few frames (two objects merged, a shadow) moves its centre by half a box: a least-squares
        // line follows it, the medians do not, up to about a third of the points.
        std::array<float, kMaxPoints*(kMaxPoints - 1) / 2> slopes{};
        size_t k = 0;
        for (int i = 0; i < n; ++i)
            for (int j = i + 1; j < n; ++j) {
                const float dt = t[static_cast<size_t>(i)] - t[static_cast<size_t>(j)];
                if (dt > 0.f) slopes[k++] = (c[static_cast<size_t>(i)] - c[static_cast<size_t>(j)]) / dt;
            }
        float slope = median(slopes.data(), k);
        // Seen over few frames (on the belt from the first frame, or lost early), its own slope is
        // uncertain: it leans on the belt's speed until it spans kOwnSpan frames.
        const float span = t[0] - t[static_cast<size_t>(n - 1)];
        if (belt_speed > 0.f && span < kOwnSpan) {
            const float w = span / kOwnSpan;
            slope = w * slope + (1.f - w) * belt_speed;
        }
        std::array<float, kMaxPoints> at_end{};
        for (int i = 0; i < n; ++i)
            at_end[static_cast<size_t>(i)] = c[static_cast<size_t>(i)] - slope * t[static_cast<size_t>(i)];
        m.speed = std::max(0.f, slope);
        m.centre = median(at_end.data(), static_cast<size_t>(n));
        return m;
    }
    float near_edge = 0.f, far_edge = 0.f;
    axis.span(path.back().box, near_edge, far_edge);
    const float length = std::max(far_edge - near_edge, length_along(full_box, axis));
    m.speed = std::max(0.f, belt_speed);
    m.centre = far_edge >= exit ? near_edge + 0.5f * length : 0.5f * (near_edge + far_edge);
    return m;
}

Crossing predict_crossing(const BeltMotion& motion, const cv::Rect2f& full_box, const BeltAxis& axis,
                          double beyond_exit) {
    Crossing c;
    if (!(motion.speed > 0.f)) return c;
    const double line = axis.length() + beyond_exit;
    const double half = 0.5 * length_along(full_box, axis);
    c.known = true;
    c.centre = (line - motion.centre) / motion.speed;
    c.front = (line - (motion.centre + half)) / motion.speed;
    c.back = (line - (motion.centre - half)) / motion.speed;
    return c;
}

}  // namespace cqc
