// When a finished object will cross a line across the belt downstream of the
// view: a reject gate (an air jet, a pusher) that must act on an anomalous
// object after it has left the camera's frame.
//
// How: when a track ends, the tracker measures its motion along the belt once
// (measure_motion: its speed, and where its centre was on its last frame);
// predict_crossing moves that centre on at that speed to the line. The
// object's leading and trailing edges cross half its length (from its largest
// whole box) before and after its centre: the window in which the gate acts.
#pragma once

#include "conveyor_qc/tracker.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <vector>

namespace cqc {

// The motion measured over the last `last_n` (at most 30) points of a track's
// path where its box was seen (TrackPoint::seen: not a prediction, which
// carries the velocity the tracker had, nil on an object's first frames) and
// wholly in view: its centre along the belt against the frame index, fitted
// by Theil-Sen (the median of the slopes between every two points, and the
// median of where each point puts the centre on the last frame). The slope is
// its speed (px per frame); the line at the path's last frame is where its
// centre was then, though its box by then is cut by the exit edge (a cut
// box's centre moves with its size, not with the object). Medians, not least
// squares: a box that took in a neighbour for a few frames (two objects
// merged) or lost an arm moves its centre by half a box, and up to about a
// third of such points leave the line where it was; a box grown evenly on
// both sides (a shadow, the mask's margin) leaves its centre in place. Recent
// points only, so a belt that changes speed is followed. Points spanning
// fewer than 20 frames (an object on the belt from the first frame, or one
// lost early) give an uncertain slope: it is blended with `belt_speed` (the
// tracker's estimate from every object), its own weight growing with its
// span. With fewer than 3 such points over 2 frames: `belt_speed`, and the
// centre from the last box (its trailing edge plus half the object's length
// when the exit edge cuts it). Allocates nothing.
BeltMotion measure_motion(const std::vector<TrackPoint>& path, const cv::Rect2f& full_box, const BeltAxis& axis,
                          float edge_margin, float belt_speed, int last_n = 30);

struct Crossing {
    // false when the object's speed is not known (it never moved along the belt).
    bool known = false;
    // Frames after the object's last frame at which its centre, its leading
    // edge and its trailing edge reach the line (fractional; negative: the
    // object was already past it).
    double centre = 0.0;
    double front = 0.0;
    double back = 0.0;
};

//  motion:      the object's motion at its last frame (FinishedTrack::motion)
//  full_box:    a box of the whole object (its largest whole box), for its length
//  axis:        the belt's direction and the frame size
//  beyond_exit: the line's distance past the exit edge along the belt, px
//               (a gate downstream of the view; negative: a line inside it)
Crossing predict_crossing(const BeltMotion& motion, const cv::Rect2f& full_box, const BeltAxis& axis,
                          double beyond_exit);

}  // namespace cqc
