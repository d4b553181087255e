// Types shared by every stage of the core: one detection type flows from the
// mask through connected components into the tracker and out to the caller.
#pragma once

#include <opencv2/core.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace cqc {

// The way the belt moves across the image. New objects appear at the entry
// edge (left for LeftToRight) and leave at the opposite, exit edge.
// Auto: read from the footage by the Pipeline (direction.hpp) before any
// object is counted; the tracker and the counting line themselves need one
// of the four real directions (they refuse Auto), so BeltAxis never sees it.
enum class Direction { LeftToRight, RightToLeft, TopToBottom, BottomToTop, Auto };

// One object found in one frame. All geometry is in full-resolution pixels of
// the input frame, whatever scale the core worked at internally.
struct Detection {
    cv::Rect2f box;           // axis-aligned bounding box of the component
    cv::Point2f centroid;     // centroid of the mask pixels (not of the box)
    float area = 0.f;         // mask pixel count, in full-resolution px^2
    float solidity = 0.f;     // area / convex hull area, in (0, 1]; low for broken or merged objects
    float circularity = 0.f;  // 4*pi*area / perimeter^2, in (0, 1]; 1 for a disc
};

// Thrown for a parameter outside its allowed range. The message names the
// parameter as the config file spells it ("track.downscale") and the range.
struct ParamError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Thrown for an input the core cannot work on (wrong type, size change mid-stream...).
struct InputError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Position along the belt: the coordinate that grows from the entry edge to the
// exit edge, and the frame's length along that axis. Keeps direction-specific
// code in one place.
struct BeltAxis {
    Direction direction = Direction::LeftToRight;
    cv::Size frame;  // full-resolution frame size

    float length() const {
        return (direction == Direction::LeftToRight || direction == Direction::RightToLeft)
                   ? static_cast<float>(frame.width)
                   : static_cast<float>(frame.height);
    }
    // Interval [near, far] of the box along the belt, measured from the entry edge.
    void span(const cv::Rect2f& b, float& near_edge, float& far_edge) const {
        switch (direction) {
            case Direction::LeftToRight:
                near_edge = b.x;
                far_edge = b.x + b.width;
                break;
            case Direction::RightToLeft:
                near_edge = frame.width - (b.x + b.width);
                far_edge = frame.width - b.x;
                break;
            case Direction::TopToBottom:
                near_edge = b.y;
                far_edge = b.y + b.height;
                break;
            case Direction::BottomToTop:
                near_edge = frame.height - (b.y + b.height);
                far_edge = frame.height - b.y;
                break;
            case Direction::Auto:
                near_edge = b.x;
                far_edge = b.x + b.width;
                break;  // never reached
        }
    }
    // Unit vector of belt motion in image coordinates.
    cv::Point2f unit() const {
        switch (direction) {
            case Direction::LeftToRight:
                return {1.f, 0.f};
            case Direction::RightToLeft:
                return {-1.f, 0.f};
            case Direction::TopToBottom:
                return {0.f, 1.f};
            case Direction::BottomToTop:
                return {0.f, -1.f};
            case Direction::Auto:
                break;  // never reached
        }
        return {1.f, 0.f};
    }
    // The rectangle (full resolution) covering the first `fraction` of the
    // frame along the belt, starting at the entry edge.
    cv::Rect entry_strip(double fraction) const {
        const int w = frame.width, h = frame.height;
        switch (direction) {
            case Direction::LeftToRight:
                return {0, 0, cvRound(w * fraction), h};
            case Direction::RightToLeft: {
                int s = cvRound(w * fraction);
                return {w - s, 0, s, h};
            }
            case Direction::TopToBottom:
                return {0, 0, w, cvRound(h * fraction)};
            case Direction::BottomToTop: {
                int s = cvRound(h * fraction);
                return {0, h - s, w, s};
            }
            case Direction::Auto:
                break;  // never reached
        }
        return {0, 0, w, h};
    }
};

const char* to_string(Direction d);
Direction direction_from_string(const std::string& s);  // throws ParamError
// Every direction, in the order messages and docs/settings.md list them.
inline constexpr Direction kDirections[] = {Direction::Auto, Direction::LeftToRight, Direction::RightToLeft,
                                            Direction::TopToBottom, Direction::BottomToTop};

// "a, b, c": the names (to_string) of an enum's values, as messages and the docs list them.
template <class E, std::size_t N>
std::string enum_names(const E (&values)[N]) {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) out += (i ? ", " : "") + std::string(to_string(values[i]));
    return out;
}

}  // namespace cqc
