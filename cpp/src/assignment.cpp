#include "conveyor_qc/assignment.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cqc {

void assign(const cv::Mat_<float>& cost, float gate, std::vector<int>& row_to_col, AssignmentWorkspace& ws) {
    const int rows = cost.rows, cols = cost.cols;
    row_to_col.assign(static_cast<size_t>(std::max(rows, 0)), -1);
    if (rows <= 0 || cols <= 0) return;

    // Solve with n <= m: rows of the solved problem are the smaller side.
    const bool transposed = rows > cols;
    const int n = transposed ? cols : rows;
    const int m = transposed ? rows : cols;

    auto admissible = [gate](float x) { return x <= gate && std::isfinite(x); };

    // Range of the admissible costs, to choose a penalty for gated pairs that
    // outweighs any combination of admissible ones.
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int r = 0; r < rows; ++r) {
        const float* c = cost[r];
        for (int k = 0; k < cols; ++k) {
            const float x = c[k];
            if (admissible(x)) {
                lo = std::min(lo, static_cast<double>(x));
                hi = std::max(hi, static_cast<double>(x));
            }
        }
    }
    if (!(lo <= hi)) return;  // nothing admissible
    // A gated pair costs more than the whole difference any set of n admissible
    // pairs can make, so the solver first minimises the number of gated pairs.
    const double big = hi + (hi - lo + 1.0) * (n + 1);

    auto a = [&](int i, int j) -> double {  // 1-based, i in [1, n], j in [1, m]
        const float x = transposed ? cost(j - 1, i - 1) : cost(i - 1, j - 1);
        return admissible(x) ? static_cast<double>(x) : big;
    };

    const double inf = std::numeric_limits<double>::infinity();
    ws.u.assign(static_cast<size_t>(n) + 1, 0.0);
    ws.v.assign(static_cast<size_t>(m) + 1, 0.0);
    ws.p.assign(static_cast<size_t>(m) + 1, 0);
    ws.way.assign(static_cast<size_t>(m) + 1, 0);
    double* u = ws.u.data();
    double* v = ws.v.data();
    int* p = ws.p.data();
    int* way = ws.way.data();

    for (int i = 1; i <= n; ++i) {
        p[0] = i;
        int j0 = 0;
        ws.minv.assign(static_cast<size_t>(m) + 1, inf);
        ws.used.assign(static_cast<size_t>(m) + 1, 0);
        double* minv = ws.minv.data();
        char* used = ws.used.data();
        do {
            used[j0] = 1;
            const int i0 = p[j0];
            double delta = inf;
            int j1 = 0;
            for (int j = 1; j <= m; ++j) {
                if (used[j]) continue;
                const double cur = a(i0, j) - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= m; ++j) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            const int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }

    for (int j = 1; j <= m; ++j) {
        const int i = p[j];
        if (i == 0) continue;
        const int r = transposed ? j - 1 : i - 1;
        const int c = transposed ? i - 1 : j - 1;
        if (admissible(cost(r, c))) row_to_col[static_cast<size_t>(r)] = c;
    }
}

void assign(const cv::Mat_<float>& cost, float gate, std::vector<int>& row_to_col) {
    AssignmentWorkspace ws;
    assign(cost, gate, row_to_col, ws);
}

}  // namespace cqc
