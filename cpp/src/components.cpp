#include "conveyor_qc/components.hpp"

#include "conveyor_qc/simd.hpp"

#include "row_scan.hpp"

#include <algorithm>
#include <climits>

namespace cqc {

using detail::skip_nonzero;
using detail::skip_zero;

void ComponentLabeller::reserve(int width, int height) {
    if (row_start_.size() < static_cast<std::size_t>(height) + 1)
        row_start_.resize(static_cast<std::size_t>(height) + 1);
    if (framed_.rows < height + 2 || framed_.cols < width + 2)
        framed_.create(std::max(framed_.rows, height + 2), std::max(framed_.cols, width + 2), CV_32SC1);
}

int ComponentLabeller::label(const cv::Mat& mask) {
    CV_Assert(mask.type() == CV_8UC1);
    const int w = mask.cols, h = mask.rows;
    reserve(w, h);
    cv::Mat framed = framed_(cv::Rect(0, 0, w + 2, h + 2));
    labels_ = framed(cv::Rect(1, 1, w, h));

    // Pass 1: runs, joined to the runs of the row above that touch them
    // (8-connectivity: overlapping or diagonal), the smaller index the root.
    // runs_, sets_ and stats_ keep their capacity: they grow (geometrically)
    // only on a mask with more runs or components than any before.
    runs_.clear();
    sets_.clear();
    int n = 0;
    const bool sse2 = simd_level() >= SimdLevel::SSE2;
    for (int y = 0; y < h; ++y) {
        const int prev_begin = y > 0 ? row_start_[static_cast<std::size_t>(y - 1)] : 0;
        const int prev_end = n;
        row_start_[static_cast<std::size_t>(y)] = n;
        const std::uint8_t* p = mask.ptr<std::uint8_t>(y);
        int j = prev_begin;
        for (int x = skip_zero(p, 0, w, sse2); x < w; x = skip_zero(p, x, w, sse2)) {
            const int x0 = x;
            x = skip_nonzero(p, x, w, sse2);
            const int x1 = x - 1;
            runs_.push_back(Run{x0, x1, 0});
            sets_.add();
            while (j < prev_end && runs_[static_cast<std::size_t>(j)].x1 < x0 - 1) ++j;
            for (int k = j; k < prev_end && runs_[static_cast<std::size_t>(k)].x0 <= x1 + 1; ++k) sets_.unite(n, k);
            ++n;
        }
    }
    row_start_[static_cast<std::size_t>(h)] = n;
    Run* runs = runs_.data();

    // Numbering: OpenCV's algorithm (Spaghetti, 2x2 blocks) numbers components
    // in the order of their first 2x2 block (rows 2r and 2r + 1, columns from
    // the left), i.e. of their least (y / 2, x). Merge each pair of rows' runs
    // by their start and number roots as they come.
    int next = 1;
    for (int y = 0; y < h; y += 2) {
        int a = row_start_[static_cast<std::size_t>(y)];
        const int a_end = row_start_[static_cast<std::size_t>(y + 1)];
        int b = a_end;
        const int b_end = y + 1 < h ? row_start_[static_cast<std::size_t>(y + 2)] : a_end;
        while (a < a_end || b < b_end) {
            const bool take_a = b >= b_end || (a < a_end && runs[a].x0 <= runs[b].x0);
            const int r = sets_.find(take_a ? a++ : b++);
            if (runs[r].label == 0) runs[r].label = next++;
        }
    }

    // Pass 2: stats and the label image.
    if (stats_.size() < static_cast<std::size_t>(next)) {
        stats_.resize(static_cast<std::size_t>(next));
        sum_x_.resize(static_cast<std::size_t>(next));
        sum_y_.resize(static_cast<std::size_t>(next));
    }
    for (int l = 1; l < next; ++l) {
        ComponentStats& s = stats_[static_cast<std::size_t>(l)];
        s.left = s.top = INT_MAX;
        s.width = s.height = INT_MIN;  // right and bottom until the end
        s.area = 0;
        sum_x_[static_cast<std::size_t>(l)] = sum_y_[static_cast<std::size_t>(l)] = 0;
    }
    for (int y = 0; y < h; ++y) {
        int* row = labels_.ptr<int>(y);
        std::fill(row, row + w, 0);
        for (int i = row_start_[static_cast<std::size_t>(y)]; i < row_start_[static_cast<std::size_t>(y) + 1]; ++i) {
            Run& run = runs[i];
            const int l = runs[sets_.find(i)].label;
            run.label = l;
            std::fill(row + run.x0, row + run.x1 + 1, l);
            ComponentStats& s = stats_[static_cast<std::size_t>(l)];
            const int len = run.x1 - run.x0 + 1;
            s.left = std::min(s.left, run.x0);
            s.width = std::max(s.width, run.x1);
            s.top = std::min(s.top, y);
            s.height = std::max(s.height, y);
            s.area += len;
            sum_x_[static_cast<std::size_t>(l)] +=
                static_cast<std::uint64_t>(run.x0 + run.x1) * static_cast<std::uint64_t>(len) / 2;
            sum_y_[static_cast<std::size_t>(l)] += static_cast<std::uint64_t>(y) * static_cast<std::uint64_t>(len);
        }
    }
    for (int l = 1; l < next; ++l) {
        ComponentStats& s = stats_[static_cast<std::size_t>(l)];
        s.width = s.width - s.left + 1;
        s.height = s.height - s.top + 1;
        // As OpenCV: integer sums over a double area.
        const double area = static_cast<double>(s.area);
        s.cx = static_cast<double>(sum_x_[static_cast<std::size_t>(l)]) / area;
        s.cy = static_cast<double>(sum_y_[static_cast<std::size_t>(l)]) / area;
    }

    // The zero frame around the label image.
    std::fill(framed.ptr<int>(0), framed.ptr<int>(0) + w + 2, 0);
    std::fill(framed.ptr<int>(h + 1), framed.ptr<int>(h + 1) + w + 2, 0);
    for (int y = 1; y <= h; ++y) {
        int* row = framed.ptr<int>(y);
        row[0] = row[w + 1] = 0;
    }
    return next;
}

}  // namespace cqc
