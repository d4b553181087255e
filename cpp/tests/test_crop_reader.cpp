// Tests of the crop reader (crop_reader.hpp) on drawn crops: the object it
// finds, where the crop's content starts, the figures of a disc and of a
// broken one, crops without an object, and its settings' checks.
#include "check.hpp"

#include "conveyor_qc/crop_reader.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstring>

using namespace cqc;

namespace {

const cv::Scalar kBelt(70, 75, 80), kCookie(90, 170, 215);

// A 300 x 260 belt with a disc (or two halves `gap` px apart), in a 340 x 340 black square.
cv::Mat crop(bool halves = false, int gap = 12) {
    cv::Mat belt(300, 260, CV_8UC3, kBelt);
    const cv::Point c(130, 150);
    if (halves) {
        cv::ellipse(belt, c - cv::Point(gap, 0), cv::Size(90, 90), 0, 90, 270, kCookie, cv::FILLED);
        cv::ellipse(belt, c + cv::Point(gap, 0), cv::Size(90, 90), 0, -90, 90, kCookie, cv::FILLED);
    } else {
        cv::circle(belt, c, 90, kCookie, cv::FILLED);
    }
    cv::Mat out = cv::Mat::zeros(340, 340, CV_8UC3);
    belt.copyTo(out(cv::Rect(40, 20, 260, 300)));
    return out;
}

double figure(const CropReading& r, const char* name) {
    for (int i = 0; i < kCropFigureCount; ++i)
        if (std::strcmp(kCropFigureNames[static_cast<std::size_t>(i)], name) == 0)
            return r.figures[static_cast<std::size_t>(i)];
    throw std::invalid_argument(name);
}

}  // namespace

TEST_CASE("crop reader: a disc on a belt, letterboxed") {
    const CropReading r = CropReader().read(crop());
    CHECK(r.has_outline && r.has_object);
    CHECK_EQ(r.content_at, cv::Point(40, 20));
    CHECK_EQ(std::max(r.region.rows, r.region.cols), 256);
    const double s = 256.0 / 300.0, disc = M_PI * (90 * s) * (90 * s);
    // the outline takes the blurred edge's ramp too: up to 2 px more radius
    CHECK(cv::countNonZero(r.outline) > disc && cv::countNonZero(r.outline) < 1.1 * disc);
    CHECK(std::abs(figure(r, "area_share") * r.region.total() / disc - 1.0) < 0.05);
    CHECK(figure(r, "solidity") > 0.97);
    CHECK(figure(r, "axis_ratio") > 0.97);
    CHECK_EQ(figure(r, "pieces"), 1.0);
    CHECK_EQ(figure(r, "hole_share"), 0.0);
    CHECK(figure(r, "defect_max") < 0.05);
    CHECK(std::abs(figure(r, "L_std")) < 1e-9);  // one colour
}

TEST_CASE("crop reader: broken in two, both halves are the object") {
    const CropReading r = CropReader().read(crop(true));
    CHECK_EQ(r.pieces, 2);
    const CropReading whole = CropReader().read(crop());
    CHECK(std::abs(cv::countNonZero(r.object) - cv::countNonZero(whole.object)) < 0.1 * cv::countNonZero(whole.object));
}

TEST_CASE("crop reader: no object, and the outline alone") {
    const CropReading blank = CropReader().read(cv::Mat::zeros(384, 384, CV_8UC3));
    CHECK(!blank.has_outline && !blank.has_object);
    for (double f : blank.figures) CHECK_EQ(f, 0.0);
    CHECK(!CropReader().read(cv::Mat(50, 80, CV_8UC3, cv::Scalar(128, 128, 128))).has_object);
    CHECK(!CropReader().read(cv::Mat()).has_outline);
    CropReadParams p;
    p.figures = false;
    const CropReading outline = CropReader(p).read(crop());
    CHECK(outline.has_outline && !outline.has_object);
    CHECK_EQ(cv::countNonZero(outline.outline != CropReader().read(crop()).outline), 0);
}

TEST_CASE("crop reader: settings are checked") {
    CropReadParams p;
    p.work_size = 8;
    CHECK_THROWS(CropReader{p}, ParamError);
    CHECK_THROWS(CropReader().read(cv::Mat(20, 20, CV_8UC1)), InputError);
}
