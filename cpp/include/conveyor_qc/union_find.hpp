// Union-find (disjoint sets) as the core's labelling uses it: the runs of a
// mask's rows joined into connected sets (ComponentLabeller's components,
// HoleFiller's holes), and find_root() for any parent array (the detector's
// flooding of the distance map).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace cqc::detail {

// The root of i's set in a parent array (parent[r] == r at a root), halving
// the path on the way: each element passed is linked to its grandparent.
inline int find_root(int* parent, int i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

// Disjoint sets of the elements 0, 1, 2, ... added one at a time. A union
// keeps the smaller of the two roots: with elements added in raster order (a
// mask's runs, row by row), each set's root is its first element, where the
// caller keeps the set's own figures. One vector of parents that keeps its
// capacity: once it has held n elements (or after reserve(n)), clear() and up
// to n add() allocate nothing.
class UnionFind {
  public:
    void reserve(std::size_t n) { parent_.reserve(n); }
    void clear() { parent_.clear(); }
    std::size_t size() const { return parent_.size(); }

    // A new element in a set of its own; returns its index (size() - 1).
    int add() {
        const int i = static_cast<int>(parent_.size());
        parent_.push_back(i);
        return i;
    }
    bool is_root(int i) const { return parent_[static_cast<std::size_t>(i)] == i; }
    int find(int i) { return find_root(parent_.data(), i); }

    // Joins the sets of i and j. False when they were one set already;
    // otherwise `root`, the smaller of their roots, is the union's and
    // `joined`, the other, is a root no more.
    bool unite(int i, int j, int& root, int& joined) {
        root = find(i);
        joined = find(j);
        if (root == joined) return false;
        if (joined < root) std::swap(root, joined);
        parent_[static_cast<std::size_t>(joined)] = root;
        return true;
    }
    bool unite(int i, int j) {
        int root, joined;
        return unite(i, j, root, joined);
    }

  private:
    std::vector<int> parent_;
};

}  // namespace cqc::detail
