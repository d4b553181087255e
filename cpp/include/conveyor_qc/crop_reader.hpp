// What one crop shows, for the embedded anomaly model: its object, found
// against the crop's own border, and 39 figures about it.
//
// A crop is a letterboxed square from `run` or a photo of one object on a
// tray. Its black letterbox padding is cut off and the rest scaled to
// work_size (its long side). Every pixel is measured by its Lab distance to
// the border's colour (the belt or the tray; lightness weighs 0.6: it varies
// with shadows and lighting more than hue does), the distances are blurred
// and Otsu's threshold splits object from background. The object is the
// component nearest the middle, weighted by its size (a neighbour peeks in at
// the edges), with every large piece that does not touch the border (the
// halves of a broken object).
//
// - The *outline* (the object's whole silhouette, holes filled) also takes
//   every pixel further from the background than the border's own noise:
//   Otsu alone keeps only the relief of a product close to the belt's colour
//   (a grey coin on a grey belt). The model turns and scales the object by it.
// - The *figures* (kCropFigureNames) are measured on Otsu's object, holes
//   kept: shape (area, solidity and circularity from the Detector, convexity
//   defects, hull gap, ellipse axis ratio, spread of the radius, holes,
//   cracks where the background shows through), Lab colour mean and spread,
//   and texture (gradient magnitude, Canny edges, dark pixels, a histogram of
//   local binary patterns). They were chosen for cookies; the model learns
//   what else matters on a product from its patches (Python side,
//   conveyor_qc/anomaly/patches.py).
//
// Everything works on the object's neighbourhood (its box with a margin that
// holds every operation's reach), so a crop costs about a millisecond.
// read() is const and keeps no state: one reader may serve several threads.
#pragma once

#include "conveyor_qc/param_range.hpp"

#include <opencv2/core.hpp>

#include <array>
#include <vector>

namespace cqc {

constexpr int kCropFigureCount = 39;
// The figures' names, in CropReading::figures order (model files record them).
extern const std::array<const char*, kCropFigureCount> kCropFigureNames;

struct CropReadParams {
    // Long side of the crop's content, pixels, before anything is measured.
    int work_size = 256;
    // Scale the content by pixel area (as format-1 models were trained)
    // instead of linearly (a quarter of the time; the distances are blurred
    // next anyway).
    bool area_resize = false;
    // Measure the 39 figures; false: the outline only.
    bool figures = true;

    std::vector<ParamRange> ranges() const {
        using R = ParamRange;
        return {R("work_size", work_size).at_least(32).at_most(4096)};
    }
    void validate() const;  // throws ParamError naming "crop_read.<field>"
};

struct CropReading {
    cv::Mat region;             // the crop's content scaled to work_size (BGR)
    cv::Point content_at;       // where the content starts in the crop (x, y)
    double region_scale = 1.0;  // region pixels per crop pixel
    cv::Mat outline;            // CV_8U 0/255, region's size: the whole object, holes filled
    cv::Mat object;             // CV_8U 0/255, region's size: Otsu's object, holes kept (what the figures measure)
    bool has_outline = false;   // the outline holds at least 20 pixels
    bool has_object = false;    // the figures were measured (Otsu's object of >= 20 pixels)
    int pieces = 0;             // the object's sizeable pieces (2: broken in two)
    std::array<double, kCropFigureCount> figures{};  // kCropFigureNames; zeros without an object
};

class CropReader {
  public:
    explicit CropReader(const CropReadParams& params = {});  // validates

    // Reads one BGR (CV_8UC3; another type throws InputError) crop. An empty
    // crop or one without an object gives has_outline / has_object false.
    CropReading read(const cv::Mat& bgr) const;

    const CropReadParams& params() const { return params_; }

  private:
    CropReadParams params_;
};

}  // namespace cqc
