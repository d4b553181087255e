#include "conveyor_qc/contour.hpp"

#include <algorithm>
#include <cmath>

namespace cqc {

namespace {

// OpenCV's chain code: direction s moves by (kDx[s], kDy[s]); 0 is right and
// s grows counterclockwise on the screen (y down).
constexpr int kDx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
constexpr int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

inline std::int64_t cross(const cv::Point& o, const cv::Point& a, const cv::Point& b) {
    return static_cast<std::int64_t>(a.x - o.x) * (b.y - o.y) - static_cast<std::int64_t>(a.y - o.y) * (b.x - o.x);
}

}  // namespace

void ContourTracer::reserve(cv::Size size) {
    // largest_external's working copy has a frame of one pixel.
    reserve_rows(size.height + 2);
    if (work_.rows < size.height + 2 || work_.cols < size.width + 2)
        work_.create(std::max(work_.rows, size.height + 2), std::max(work_.cols, size.width + 2), CV_8SC1);
}

void ContourTracer::reserve_rows(int height) {
    const std::size_t rows = static_cast<std::size_t>(std::max(height, 0));
    if (row_lo_.size() < rows) {
        row_lo_.resize(rows);
        row_hi_.resize(rows);
        points_.resize(2 * rows);
        hull_.resize(2 * points_.size() + 1);
    }
}

// icvFetchContour of OpenCV's findContours (the outer border case): the first
// neighbour is searched clockwise from the left, then each next border pixel
// counterclockwise from the one after the previous; the walk ends when it is
// back at the start about to go to that first neighbour again. One contour
// point per step, the closing step included.
template <typename Pixel, typename Fg, typename Mark>
int ContourTracer::follow(Pixel* i0, std::ptrdiff_t step, cv::Point at, Fg fg, Mark mark, bool measure) {
    const std::ptrdiff_t d8[8] = {1, -step + 1, -step, -step - 1, -1, step - 1, step, step + 1};
    std::ptrdiff_t d[16];
    for (int k = 0; k < 16; ++k) d[k] = d8[k & 7];
    if (measure) {
        axis_ = diagonal_ = 0;
        y_min_ = y_max_ = at.y;
        row_lo_[static_cast<std::size_t>(at.y)] = row_hi_[static_cast<std::size_t>(at.y)] = at.x;
    }
    int s = 4;
    const int s_first = 4;
    Pixel* i1;
    do {
        s = (s - 1) & 7;
        i1 = i0 + d[s];
    } while (!fg(*i1) && s != s_first);
    if (s == s_first) {  // a single pixel
        mark(i0, true);
        return 1;
    }
    Pixel* i3 = i0;
    Pixel* i4 = i0;
    int points = 0, x = at.x, y = at.y;
    for (;;) {
        const int s_end = s;
        while (s < 15) {
            i4 = i3 + d[++s];
            if (fg(*i4)) break;
        }
        s &= 7;
        // The right neighbour was looked at (and is background): findContours
        // marks the pixel as a right end of a run.
        mark(i3, static_cast<unsigned>(s - 1) < static_cast<unsigned>(s_end));
        ++points;
        if (measure) {
            if (y < y_min_) {
                y_min_ = y;
                row_lo_[static_cast<std::size_t>(y)] = row_hi_[static_cast<std::size_t>(y)] = x;
            } else if (y > y_max_) {
                y_max_ = y;
                row_lo_[static_cast<std::size_t>(y)] = row_hi_[static_cast<std::size_t>(y)] = x;
            } else {
                int& lo = row_lo_[static_cast<std::size_t>(y)];
                int& hi = row_hi_[static_cast<std::size_t>(y)];
                lo = std::min(lo, x);
                hi = std::max(hi, x);
            }
            if (s & 1) ++diagonal_;
            else ++axis_;
        }
        x += kDx[s];
        y += kDy[s];
        if (i4 == i0 && i3 == i1) break;
        i3 = i4;
        s = (s + 4) & 7;
    }
    return points;
}

int convex_hull_sorted(const cv::Point* p, int m, cv::Point* h) {
    int k = 0;
    for (int i = 0; i < m; ++i) {
        while (k >= 2 && cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
        h[k++] = p[i];
    }
    for (int i = m - 2, t = k + 1; i >= 0; --i) {
        while (k >= t && cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
        h[k++] = p[i];
    }
    return m > 1 ? k - 1 : k;  // the chain ends on its first point again
}

double hull_pixels(const cv::Point* hull, int n) {
    double area2 = 0.0, perimeter = 0.0;
    for (int i = 0; i < n; ++i) {
        const cv::Point& p = hull[i];
        const cv::Point& q = hull[(i + 1) % n];
        area2 += static_cast<double>(p.x) * q.y - static_cast<double>(q.x) * p.y;
        perimeter += std::hypot(static_cast<double>(q.x - p.x), static_cast<double>(q.y - p.y));
    }
    return 0.5 * std::abs(area2) + 0.5 * perimeter + 1.0;
}

ContourFigures ContourTracer::figures(int axis_steps, int diagonal_steps, int points) {
    ContourFigures f;
    f.points = points;
    // cv::arcLength adds float lengths (1 and sqrtf(2) here) into a double:
    // every term is a multiple of 2^-23 below 2^30, so the sum is exact in any
    // order and equals this product form.
    f.perimeter = static_cast<double>(axis_steps) + static_cast<double>(diagonal_steps) * std::sqrt(2.0f);

    // The hull of the contour's points is the hull of each row's extremes:
    // rows in order, then x, is a lexicographic order for Andrew's chain.
    cv::Point* p = points_.data();
    int m = 0;
    for (int y = y_min_; y <= y_max_; ++y) {
        const int lo = row_lo_[static_cast<std::size_t>(y)], hi = row_hi_[static_cast<std::size_t>(y)];
        p[m++] = cv::Point(lo, y);
        if (hi != lo) p[m++] = cv::Point(hi, y);
    }
    cv::Point* h = hull_.data();
    const int n = convex_hull_sorted(p, m, h);

    // cv::contourArea and cv::arcLength of the hull, in their arithmetic
    // (coordinates as floats, products and sums in double, lengths in float).
    double area = 0.0, length = 0.0;
    cv::Point2f prev(static_cast<float>(h[n - 1].x), static_cast<float>(h[n - 1].y));
    for (int i = 0; i < n; ++i) {
        const cv::Point2f q(static_cast<float>(h[i].x), static_cast<float>(h[i].y));
        area += static_cast<double>(prev.x) * q.y - static_cast<double>(prev.y) * q.x;
        const float dx = q.x - prev.x, dy = q.y - prev.y;
        length += std::sqrt(dx * dx + dy * dy);
        prev = q;
    }
    f.hull_area = std::fabs(area * 0.5);
    f.hull_perimeter = n > 1 ? length : 0.0;
    return f;
}

ContourFigures ContourTracer::component(const cv::Mat& labels, int label, cv::Point first) {
    CV_Assert(labels.type() == CV_32SC1);
    reserve_rows(labels.rows);
    const int* start = labels.ptr<int>(first.y) + first.x;
    const int points = follow(
        start, static_cast<std::ptrdiff_t>(labels.step1()), first, [label](int v) { return v == label; },
        [](const int*, bool) {}, true);
    return figures(axis_, diagonal_, points);
}

ContourFigures ContourTracer::largest_external(const cv::Mat& bin) {
    CV_Assert(bin.type() == CV_8UC1);
    const int w = bin.cols, h = bin.rows;
    reserve(bin.size());
    cv::Mat work = work_(cv::Rect(0, 0, w + 2, h + 2));
    // findContours' copy: 0/1 inside a zero frame.
    std::fill(work.ptr<schar>(0), work.ptr<schar>(0) + w + 2, 0);
    std::fill(work.ptr<schar>(h + 1), work.ptr<schar>(h + 1) + w + 2, 0);
    for (int y = 0; y < h; ++y) {
        const std::uint8_t* s = bin.ptr<std::uint8_t>(y);
        schar* t = work.ptr<schar>(y + 1);
        t[0] = t[w + 1] = 0;
        for (int x = 0; x < w; ++x) t[x + 1] = s[x] ? 1 : 0;
    }
    const std::ptrdiff_t step = static_cast<std::ptrdiff_t>(work.step1());
    auto nonzero = [](schar v) { return v != 0; };
    // Marks as findContours leaves them: 2 on a border pixel, 2 | -128 on one
    // ending a run; they tell the scan whether it is inside an outer border.
    auto marking = [](schar* px, bool right_end) {
        if (right_end) *px = static_cast<schar>(2 | -128);
        else if (*px == 1) *px = 2;
    };

    // cvFindNextContour in RETR_EXTERNAL mode: a row scan meets a border where
    // the value changes; an outer border (0 then 1) is followed only when the
    // last border met on the row (lnbd) is not an outer border's left side.
    int best_points = 0;
    schar* best = nullptr;
    cv::Point best_at;
    for (int y = 1; y <= h; ++y) {
        schar* row = work.ptr<schar>(y);
        int prev = 0, lnbd = 0;
        for (int x = 1; x <= w; ++x) {
            const int p = row[x];
            if (p == prev) continue;
            bool hole = false;
            if (!(prev == 0 && p == 1)) {
                if (p != 0 || prev < 1) {
                    prev = p;
                    if (prev & -2) lnbd = x;
                    continue;
                }
                if (prev & -2) lnbd = x - 1;
                hole = true;
            }
            if (hole || row[lnbd] > 0) {
                prev = p;
                if (prev & -2) lnbd = x;
                continue;
            }
            const int points = follow(row + x, step, cv::Point(x, y), nonzero, marking, false);
            if (points >= best_points) {  // ties: the later one, returned first
                best_points = points;
                best = row + x;
                best_at = cv::Point(x, y);
            }
            lnbd = x;
            prev = row[x];
        }
    }
    if (!best) return ContourFigures{};
    // Walk the chosen one again, measuring: the marks leave object pixels
    // nonzero, so the walk is the same.
    const int points = follow(best, step, best_at, nonzero, [](schar*, bool) {}, true);
    return figures(axis_, diagonal_, points);
}

}  // namespace cqc
