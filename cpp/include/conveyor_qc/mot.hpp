// Tracks as MOTChallenge text, the lines of `run`'s tracks.txt:
// "frame,id,x,y,w,h,1,-1,-1,-1", frames 1-based, the box in full-size
// pixels, each number to two decimals without trailing zeros ("12", "12.5",
// "12.25"). Here rather than in Python because a run's last objects are all
// written as it ends: at 1080p on a crowded belt, 32,000 lines that took
// Python 50-70 ms (issue 22).
#pragma once

#include <cstddef>
#include <string>

namespace cqc {

// `v` to two decimals, as printf("%.2f") rounds it (the nearest, half to
// even, of its exact binary value: what Python's format gives too), then
// trailing zeros and a trailing point dropped. -0 keeps its sign ("-0").
void append_decimal2(std::string& out, double v);
std::string format_decimal2(double v);

// The lines of one track, each ending with '\n', appended to `out`: `n`
// frames (0-based, as the core numbers them) and their boxes (n x 4: x, y,
// w, h; the core's are floats, another tracker's may be doubles).
void append_mot_lines(std::string& out, int track_id, const int* frames, const float* boxes, std::size_t n);
void append_mot_lines(std::string& out, int track_id, const int* frames, const double* boxes, std::size_t n);

}  // namespace cqc
