// Minimum-cost one-to-one assignment between the rows and the columns of a
// rectangular cost matrix (Hungarian method with potentials and shortest
// augmenting paths, Jonker-Volgenant style), with gating.
//
// The tracker uses it to match tracks (rows) to detections (columns) by the
// distance between centroids; it has no tracker-specific knowledge.
#pragma once

#include <opencv2/core.hpp>

#include <vector>

namespace cqc {

// Buffers reused from one call to the next: once they have grown to the
// largest problem seen, assign() does no heap allocation.
struct AssignmentWorkspace {
    std::vector<double> u, v, minv;  // row / column potentials, reduced-cost minima
    std::vector<int> p, way;         // column -> row matching, augmenting path
    std::vector<char> used;          // column visited in the current search
};

// Solves the assignment for `cost` (rows x cols, any shape, either may be 0).
//
//  gate: a pair whose cost is > gate (or NaN, or infinite) is never matched.
//  row_to_col: resized to cost.rows; row_to_col[r] is the column matched to
//              row r, or -1 when row r is left unmatched.
//
// Result: among the matchings that use only pairs with cost <= gate, one with
// the largest number of pairs and, among those, the smallest total cost. Rows
// or columns in excess (rectangular matrix) or left without a gated partner
// are unmatched. Complexity O(n^2 m) with n = min(rows, cols), m = max(rows, cols).
void assign(const cv::Mat_<float>& cost, float gate, std::vector<int>& row_to_col, AssignmentWorkspace& ws);

// Convenience overload with a temporary workspace (allocates).
void assign(const cv::Mat_<float>& cost, float gate, std::vector<int>& row_to_col);

}  // namespace cqc
