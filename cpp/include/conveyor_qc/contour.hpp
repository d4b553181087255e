// The outer contour of a component and its convex hull, measured as OpenCV
// measures them (cv::findContours with RETR_EXTERNAL and CHAIN_APPROX_NONE,
// cv::convexHull, cv::arcLength, cv::contourArea), with the same figures bit
// for bit, but without building the contour: Suzuki's border following (the
// algorithm findContours runs) walks the border once, counting its straight
// and diagonal steps and keeping each row's leftmost and rightmost border
// pixel, from which Andrew's monotone chain gives the hull. Buffers are kept
// between calls and grow only: no heap allocation once reserve() has seen the
// largest image (findContours allocates about 6 times a call, convexHull once).
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

namespace cqc {

struct ContourFigures {
    int points = 0;               // points of the contour; 0: no contour
    double perimeter = 0.0;       // cv::arcLength(contour, true)
    double hull_area = 0.0;       // cv::contourArea(hull)
    double hull_perimeter = 0.0;  // cv::arcLength(hull, true)
};

// Andrew's monotone chain: the convex hull of `n` points sorted by (y, x)
// (rows in order, then x: each row's leftmost and rightmost pixel of a shape
// is enough), written to `hull` (room for 2n points). Returns the number of
// hull points (the first is not repeated at the end).
int convex_hull_sorted(const cv::Point* points, int n, cv::Point* hull);

// The pixels a filled convex polygon of pixel centres covers, as a count of
// the shape's pixels would see it: its area, half its perimeter and one.
double hull_pixels(const cv::Point* hull, int n);

class ContourTracer {
  public:
    // Buffers for images up to `size` (grow only), so that later calls on
    // such images allocate nothing.
    void reserve(cv::Size size);

    // The outer contour of component `label` of a label image (CV_32SC1)
    // whose pixels outside the component's box are readable (a zero frame,
    // as ComponentLabeller::labels() has). `first` is the component's first
    // pixel in raster order (its topmost row's leftmost pixel).
    ContourFigures component(const cv::Mat& labels, int label, cv::Point first);

    // The contour findContours(bin, RETR_EXTERNAL, CHAIN_APPROX_NONE) returns
    // with the most points (of equal ones, the first it returns, i.e. the
    // last found: it returns them in reverse order); `bin` is CV_8UC1,
    // nonzero = object. points = 0 when bin has no nonzero pixel.
    ContourFigures largest_external(const cv::Mat& bin);

  private:
    // Follows the outer border starting at `start`; Fg tells object pixels,
    // Mark is called on each border pixel as findContours marks it.
    template <typename Pixel, typename Fg, typename Mark>
    int follow(Pixel* start, std::ptrdiff_t step, cv::Point at, Fg fg, Mark mark, bool measure);
    ContourFigures figures(int axis_steps, int diagonal_steps, int points);
    void reserve_rows(int rows);

    std::vector<int> row_lo_, row_hi_;  // per row of the image: leftmost and rightmost border pixel
    int y_min_ = 0, y_max_ = -1;        // rows the last measured walk touched
    int axis_ = 0, diagonal_ = 0;       // its steps
    std::vector<cv::Point> points_, hull_;
    cv::Mat work_;  // findContours' working copy (0/1, marks), a zero frame around it
};

}  // namespace cqc
