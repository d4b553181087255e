// Detector tests on masks drawn with exactly known components.
#include "check.hpp"
#include "simd_levels.hpp"

#include "conveyor_qc/components.hpp"
#include "conveyor_qc/contour.hpp"
#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/distance.hpp"
#include "conveyor_qc/morphology.hpp"

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace cqc;

namespace {

cv::Mat blank(cv::Size s = cv::Size(640, 360)) {
    return cv::Mat(s, CV_8UC1, cv::Scalar(0));
}

void disc(cv::Mat& m, cv::Point c, int r) {
    cv::circle(m, c, r, cv::Scalar(255), cv::FILLED, cv::LINE_8);
}

std::vector<Detection> detect(const cv::Mat& mask, const DetectParams& p = DetectParams(), cv::Rect roi = cv::Rect(),
                              double scale = 1.0) {
    Detector d(p);
    std::vector<Detection> out;
    d.detect(mask, roi, scale, out);
    return out;
}

const Detection* at(const std::vector<Detection>& ds, cv::Point2f p) {
    for (const auto& d : ds)
        if (d.box.contains(p)) return &d;
    return nullptr;
}

bool close_to(double a, double b, double tol) {
    return std::abs(a - b) <= tol;
}

// A belt of six single discs of r = 40 teaches `d` its typical object.
void teach_typical_r40(Detector& d, std::vector<Detection>& out) {
    cv::Mat singles = blank();
    for (int k = 0; k < 6; ++k) disc(singles, cv::Point(60 + 100 * k, 80), 40);
    d.detect(singles, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(6));
}

std::string error_of(const DetectParams& p) {
    try {
        p.validate();
    } catch (const ParamError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("detector: validate names the field") {
    DetectParams().validate();
    DetectParams p;
    p.min_area = -1;
    CHECK_EQ(error_of(p), std::string("detect.min_area must be in [0, max_area=1e+06], got -1"));
    p = DetectParams();
    p.min_area = 5000;
    p.max_area = 100;
    CHECK(error_of(p).rfind("detect.min_area", 0) == 0);
    p = DetectParams();
    p.max_area = 2e9;
    CHECK(error_of(p).rfind("detect.max_area must be in [min_area=400, ", 0) == 0);
    p = DetectParams();
    p.split_solidity = 1.5;
    CHECK_EQ(error_of(p), std::string("detect.split_solidity must be in [0, 1], got 1.5"));
    CHECK_THROWS(Detector{p}, ParamError);
}

TEST_CASE("detector: exact geometry of drawn discs") {
    cv::Mat m = blank();
    const cv::Point c[3] = {{100, 100}, {320, 200}, {540, 120}};
    const int r[3] = {40, 45, 30};
    for (int i = 0; i < 3; ++i) disc(m, c[i], r[i]);
    const auto ds = detect(m);
    CHECK_EQ(ds.size(), std::size_t(3));
    for (int i = 0; i < 3; ++i) {
        const Detection* d = at(ds, cv::Point2f(c[i]));
        CHECK(d != nullptr);
        CHECK(d->box ==
              cv::Rect2f(float(c[i].x - r[i]), float(c[i].y - r[i]), float(2 * r[i] + 1), float(2 * r[i] + 1)));
        CHECK(close_to(d->centroid.x, c[i].x, 0.01) && close_to(d->centroid.y, c[i].y, 0.01));
        cv::Mat one = blank();
        disc(one, c[i], r[i]);
        CHECK_EQ(d->area, float(cv::countNonZero(one)));
        CHECK(d->circularity > 0.8f && d->circularity <= 1.f);
        CHECK(d->solidity > 0.95f && d->solidity <= 1.f);
    }
    // Empty mask: nothing, and `out` is cleared.
    Detector det{DetectParams()};
    std::vector<Detection> out(5);
    det.detect(blank(), cv::Rect(), 1.0, out);
    CHECK(out.empty());
}

TEST_CASE("detector: shape figures") {
    cv::Mat full = blank(), wedge = blank(), square = blank(), bar = blank();
    disc(full, cv::Point(200, 180), 50);
    disc(wedge, cv::Point(200, 180), 50);
    // Cut a 90-degree wedge out of the second disc.
    const std::vector<cv::Point> cut = {{200, 180}, {260, 180}, {260, 120}, {200, 120}};
    cv::fillConvexPoly(wedge, cut, cv::Scalar(0));
    cv::rectangle(square, cv::Rect(100, 100, 80, 80), cv::Scalar(255), cv::FILLED);
    cv::rectangle(bar, cv::Rect(100, 100, 200, 20), cv::Scalar(255), cv::FILLED);
    const auto f = detect(full), w = detect(wedge), s = detect(square), b = detect(bar);
    CHECK(f.size() == 1 && w.size() == 1 && s.size() == 1 && b.size() == 1);
    CHECK(f[0].circularity > 0.8f);
    CHECK(w[0].solidity < f[0].solidity - 0.1f);
    CHECK(close_to(w[0].solidity, 0.75 * CV_PI / (0.75 * CV_PI + 0.5), 0.04));  // 3/4 disc over its hull
    CHECK(s[0].solidity > 0.98f);
    CHECK(s[0].circularity < f[0].circularity);
    CHECK(b[0].circularity < 0.5f);
    for (const auto* v : {&f, &w, &s, &b}) {
        CHECK((*v)[0].solidity > 0.f && (*v)[0].solidity <= 1.f);
        CHECK((*v)[0].circularity > 0.f && (*v)[0].circularity <= 1.f);
    }
    // A tiny component still has figures in (0, 1].
    cv::Mat dot = blank();
    dot.at<std::uint8_t>(10, 10) = 255;
    DetectParams any;
    any.min_area = 0;
    const auto d = detect(dot, any);
    CHECK_EQ(d.size(), std::size_t(1));
    CHECK(d[0].solidity > 0.f && d[0].solidity <= 1.f && d[0].circularity > 0.f && d[0].circularity <= 1.f);
}

TEST_CASE("detector: area filters in full-resolution px^2") {
    cv::Mat m = blank();
    disc(m, cv::Point(100, 100), 8);             // ~ 200 px
    disc(m, cv::Point(300, 100), 20);            // ~ 1250 px
    disc(m, cv::Point(500, 200), 60);            // ~ 11300 px
    CHECK_EQ(detect(m).size(), std::size_t(2));  // min_area 400 drops the small one
    DetectParams p;
    p.min_area = 100;
    p.max_area = 5000;
    auto ds = detect(m, p);
    CHECK_EQ(ds.size(), std::size_t(2));
    CHECK(at(ds, cv::Point2f(500, 200)) == nullptr);
    // At scale 0.5 every mask pixel is 4 full-resolution px^2.
    p.min_area = 900;
    p.max_area = 20000;
    ds = detect(m, p, cv::Rect(), 0.5);
    CHECK_EQ(ds.size(), std::size_t(1));
    CHECK(at(ds, cv::Point2f(600, 200)) != nullptr);  // the r=20 disc, at full resolution
}

TEST_CASE("detector: ROI drops components cut by its inner sides, keeps frame borders") {
    cv::Mat m = blank();
    disc(m, cv::Point(100, 180), 40);  // inside the strip
    disc(m, cv::Point(195, 60), 30);   // crosses the strip's right side (x = 200): past the strip
    disc(m, cv::Point(10, 300), 30);   // cut by the frame's left border: kept
    disc(m, cv::Point(120, 5), 30);    // cut by the frame's top border: kept
    disc(m, cv::Point(400, 180), 40);  // outside the strip entirely
    const cv::Rect strip(0, 0, 200, 360);
    auto ds = detect(m, DetectParams(), strip);
    CHECK_EQ(ds.size(), std::size_t(3));
    CHECK(at(ds, cv::Point2f(100, 180)) != nullptr);
    CHECK(at(ds, cv::Point2f(5, 300)) != nullptr);
    CHECK(at(ds, cv::Point2f(120, 5)) != nullptr);
    CHECK(at(ds, cv::Point2f(190, 60)) == nullptr);

    // A strip on the right side of the frame (right-to-left belt): its left side is inner.
    cv::Mat n = blank();
    disc(n, cv::Point(450, 180), 40);  // crosses x = 440
    disc(n, cv::Point(630, 100), 40);  // cut by the right frame border
    disc(n, cv::Point(540, 280), 40);  // inside
    const cv::Rect right(440, 0, 200, 360);
    ds = detect(n, DetectParams(), right);
    CHECK_EQ(ds.size(), std::size_t(2));
    const Detection* d = at(ds, cv::Point2f(540, 280));
    CHECK(d != nullptr);
    // Geometry is in frame coordinates, not ROI coordinates.
    CHECK(d->box == cv::Rect2f(500, 240, 81, 81));
    CHECK(close_to(d->centroid.x, 540, 0.01));
    // The disc's last column is x = 140: a ROI ending right after it [0, 141)
    // has the disc on its inner side; one column more and the disc is inside.
    cv::Mat t = blank();
    disc(t, cv::Point(100, 180), 40);
    CHECK_EQ(detect(t, DetectParams(), cv::Rect(0, 0, 142, 360)).size(), std::size_t(1));
    CHECK_EQ(detect(t, DetectParams(), cv::Rect(0, 0, 141, 360)).size(), std::size_t(0));
    // A ROI partly outside the mask is clipped.
    CHECK_EQ(detect(t, DetectParams(), cv::Rect(-50, -50, 1000, 1000)).size(), std::size_t(1));
}

TEST_CASE("detector: scale converts geometry to full resolution") {
    // Truth drawn at full resolution, the mask built at half resolution.
    cv::Mat truth = blank(cv::Size(1280, 720));
    const cv::Point c(501, 361);
    const int r = 80;
    disc(truth, c, r);
    cv::Mat small, mask;
    cv::resize(truth, small, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
    cv::threshold(small, mask, 127, 255, cv::THRESH_BINARY);
    const auto ds = detect(mask, DetectParams(), cv::Rect(), 0.5);
    CHECK_EQ(ds.size(), std::size_t(1));
    const Detection& d = ds[0];
    CHECK(close_to(d.box.x, c.x - r, 2) && close_to(d.box.y, c.y - r, 2));
    CHECK(close_to(d.box.width, 2 * r + 1, 2) && close_to(d.box.height, 2 * r + 1, 2));
    CHECK(close_to(d.centroid.x, c.x, 1.0) && close_to(d.centroid.y, c.y, 1.0));
    const double area = cv::countNonZero(truth);
    CHECK(close_to(d.area, area, 0.03 * area));

    // With a ROI offset as well (the strip starting at mask x = 200).
    const auto dr = detect(mask, DetectParams(), cv::Rect(200, 0, 440, 360), 0.5);
    CHECK_EQ(dr.size(), std::size_t(1));
    CHECK(close_to(dr[0].box.x, c.x - r, 2) && close_to(dr[0].centroid.x, c.x, 1.0));

    // Scale 0.4: pixel i of the mask covers [i / 0.4, (i + 1) / 0.4).
    cv::Mat m = blank(cv::Size(100, 100));
    cv::rectangle(m, cv::Rect(10, 20, 30, 40), cv::Scalar(255), cv::FILLED);
    DetectParams any;
    any.min_area = 0;
    const auto q = detect(m, any, cv::Rect(), 0.4);
    CHECK_EQ(q.size(), std::size_t(1));
    CHECK(close_to(q[0].box.x, 25, 1e-3) && close_to(q[0].box.y, 50, 1e-3));
    CHECK(close_to(q[0].box.width, 75, 1e-3) && close_to(q[0].box.height, 100, 1e-3));
    CHECK(close_to(q[0].area, 1200 / 0.16, 0.5));
    CHECK(close_to(q[0].centroid.x, (24.5 + 0.5) / 0.4 - 0.5, 1e-3));
}

TEST_CASE("detector: split cuts merged discs at the neck, leaves single objects whole") {
    const int r = 40;
    cv::Mat pair = blank();
    disc(pair, cv::Point(200, 180), r);
    disc(pair, cv::Point(200 + 64, 180), r);  // centres 1.6 r apart: overlapping
    cv::Mat tangent = blank();
    disc(tangent, cv::Point(420, 100), r);
    disc(tangent, cv::Point(420 + 2 * r, 100), r);  // touching, sharing a column
    // Single objects with low solidity or a long ridge must stay whole.
    cv::Mat singles = blank();
    cv::ellipse(singles, cv::Point(150, 100), cv::Size(90, 30), 0, 0, 360, cv::Scalar(255), cv::FILLED);
    disc(singles, cv::Point(450, 220), 50);
    const std::vector<cv::Point> cut = {{450, 220}, {510, 220}, {510, 160}, {450, 160}};
    cv::fillConvexPoly(singles, cut, cv::Scalar(0));
    // A disc with holes (texture eaten by the edge mask) is still one object.
    disc(singles, cv::Point(200, 280), 45);
    for (int k = 0; k < 6; ++k)
        cv::circle(singles, cv::Point(200, 280) + cv::Point(cvRound(25 * std::cos(k)), cvRound(25 * std::sin(k))), 5,
                   cv::Scalar(0), 2);

    DetectParams off;
    off.split_solidity = 0.0;
    CHECK_EQ(detect(pair, off).size(), std::size_t(1));
    CHECK_EQ(detect(pair).size(), std::size_t(2));  // split on by default
    DetectParams p;
    p.split_solidity = 0.95;
    auto ds = detect(pair, p);
    CHECK_EQ(ds.size(), std::size_t(2));
    const Detection* a = at(ds, cv::Point2f(190, 180));
    const Detection* b = at(ds, cv::Point2f(274, 180));
    CHECK(a != nullptr && b != nullptr && a != b);
    CHECK(close_to(a->centroid.x, 200 - 3, 5) && close_to(b->centroid.x, 264 + 3, 5));
    CHECK(close_to(a->centroid.y, 180, 1) && close_to(b->centroid.y, 180, 1));
    CHECK(close_to(a->area + b->area, float(cv::countNonZero(pair)), 0.5));
    CHECK(a->box.width < 2 * r + 1 && a->box.width > r);
    CHECK(close_to(a->box.height, 2 * r + 1, 1));

    ds = detect(tangent, p);
    CHECK_EQ(ds.size(), std::size_t(2));
    a = at(ds, cv::Point2f(420, 100));
    b = at(ds, cv::Point2f(420 + 2 * r, 100));
    CHECK(a != nullptr && b != nullptr && a != b);
    CHECK(close_to(a->box.width, 2 * r + 1, 2) && close_to(b->box.width, 2 * r + 1, 2));

    p.split_solidity = 1.0;  // try to split everything
    CHECK_EQ(detect(singles, p).size(), std::size_t(3));
}

TEST_CASE("detector: a chain of touching discs of four sizes is four objects") {
    // The flood meets the discs' necks below the lowest peak that counts, one
    // neck after another: each must still be found after the first.
    const int radii[4] = {40, 24, 46, 30};
    cv::Mat chain = blank();
    std::vector<cv::Point> centres;
    int x = 90;
    for (int k = 0; k < 4; ++k) {
        if (k > 0) x += radii[k - 1] + radii[k] - 6;  // overlapping by 6 px
        centres.emplace_back(x, 200);
        disc(chain, centres.back(), radii[k]);
    }
    DetectParams p;
    p.split_solidity = 0.95;
    const auto ds = detect(chain, p);
    CHECK_EQ(ds.size(), std::size_t(4));
    for (int k = 0; k < 4; ++k) {
        const Detection* d = at(ds, cv::Point2f(centres[k]));
        CHECK(d != nullptr);
        if (d == nullptr) continue;
        CHECK(close_to(d->centroid.x, float(centres[k].x), 4));
        CHECK(close_to(d->box.height, 2 * radii[k] + 1, 2));
    }
}

TEST_CASE("detector: buffers and output reused") {
    cv::Mat m = blank();
    disc(m, cv::Point(100, 100), 40);
    disc(m, cv::Point(300, 200), 40);
    disc(m, cv::Point(364, 200), 40);
    DetectParams p;
    p.split_solidity = 0.95;
    Detector d(p);
    std::vector<Detection> out;
    d.detect(m, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(3));
    const Detection* data = out.data();
    const std::vector<Detection> first = out;
    for (int i = 0; i < 3; ++i) d.detect(m, cv::Rect(), 1.0, out);
    CHECK(out.data() == data);
    CHECK_EQ(out.size(), first.size());
    for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i].box == first[i].box && out[i].area == first[i].area);
}

TEST_CASE("detector: bad input") {
    Detector d{DetectParams()};
    std::vector<Detection> out;
    CHECK_THROWS(d.detect(cv::Mat(), cv::Rect(), 1.0, out), InputError);
    CHECK_THROWS(d.detect(cv::Mat(10, 10, CV_8UC3, cv::Scalar(0)), cv::Rect(), 1.0, out), InputError);
    CHECK_THROWS(d.detect(blank(), cv::Rect(), 0.0, out), InputError);
    CHECK_THROWS(d.detect(blank(), cv::Rect(), -1.0, out), InputError);
    // A ROI entirely outside the mask: no detections.
    cv::Mat m = blank();
    disc(m, cv::Point(100, 100), 40);
    d.detect(m, cv::Rect(1000, 1000, 10, 10), 1.0, out);
    CHECK(out.empty());
}

TEST_CASE("detector: a broken object is not split into halves once the typical size is known") {
    DetectParams p;  // split on (defaults)
    Detector d(p);
    std::vector<Detection> out;
    teach_typical_r40(d, out);

    // A disc of the same size cracked almost through: two half discs joined
    // by a short bridge, the shape of two touching objects, but each half is
    // half an object.
    cv::Mat broken(360, 640, CV_8UC1, cv::Scalar(0));
    disc(broken, cv::Point(200, 200), 40);
    cv::line(broken, cv::Point(200, 150), cv::Point(200, 232), cv::Scalar(0), 7);
    d.detect(broken, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(1));

    // Two touching whole discs are still cut apart.
    cv::Mat pair(360, 640, CV_8UC1, cv::Scalar(0));
    disc(pair, cv::Point(200, 200), 40);
    disc(pair, cv::Point(278, 200), 40);
    d.detect(pair, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(2));

    // A fresh detector, with no typical size yet, splits the cracked disc.
    Detector fresh(p);
    fresh.detect(broken, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(2));
}

// A row cut by the frame's side along the belt: of each object only part is
// in view, so two that touch make a component of about one object's area, in
// two parts under split_min_part of an object each. Cut by the frame, such a
// part is an object from a quarter of one; a lobe inside the view is not.
TEST_CASE("detector: touching objects cut by the frame's side stay two") {
    DetectParams p;
    Detector d(p);
    std::vector<Detection> out;
    teach_typical_r40(d, out);

    // Two discs of r = 40 overlapping by 10 px, their centres 8 px below the
    // bottom edge: each about 37% in view, one component.
    cv::Mat cut(360, 640, CV_8UC1, cv::Scalar(0));
    disc(cut, cv::Point(200, 368), 40);
    disc(cut, cv::Point(270, 368), 40);
    d.detect(cut, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(2));
    for (const Detection& det : out) {
        CHECK(det.area > 0.3 * 3.14159 * 40 * 40);
        CHECK(det.area < 0.45 * 3.14159 * 40 * 40);
    }

    // The same pair whole in view but as small (two discs of r = 24, about
    // the same share of an object each, at a neck as deep): pieces, one object.
    cv::Mat inner(360, 640, CV_8UC1, cv::Scalar(0));
    disc(inner, cv::Point(200, 200), 24);
    disc(inner, cv::Point(242, 200), 24);
    d.detect(inner, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(1));
}

TEST_CASE("detector: a small broken object pressed against a whole one stays apart") {
    DetectParams p;
    Detector d(p);
    std::vector<Detection> out;
    teach_typical_r40(d, out);

    // A whole disc and, touching it, a small piece (0.57 of a typical
    // object, under split_min_part): the piece alone would rejoin its
    // neighbour, but the component holds 1.55 typical areas: two objects.
    cv::Mat m(360, 640, CV_8UC1, cv::Scalar(0));
    disc(m, cv::Point(200, 200), 40);
    cv::ellipse(m, cv::Point(260, 200), cv::Size(24, 37), 0, 0, 360, cv::Scalar(255), cv::FILLED);
    const double ratio = cv::countNonZero(m) / (CV_PI * 40 * 40);
    CHECK(ratio > 1.5 && ratio < 1.6);
    d.detect(m, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(2));
    if (out.size() == 2) {
        const Detection* whole = at(out, cv::Point2f(195, 200));
        const Detection* half = at(out, cv::Point2f(270, 200));
        CHECK(whole != nullptr && half != nullptr && whole != half);
        if (whole && half) CHECK(half->area < 0.6f * whole->area);
    }

    // The same small part on a component of one typical area (a broken
    // cookie's two pieces) is still merged.
    cv::Mat broken(360, 640, CV_8UC1, cv::Scalar(0));
    disc(broken, cv::Point(200, 200), 40);
    cv::line(broken, cv::Point(200, 150), cv::Point(200, 232), cv::Scalar(0), 7);
    d.detect(broken, cv::Rect(), 1.0, out);
    CHECK_EQ(out.size(), std::size_t(1));
}

// ---------------------------------------------------------------------------
// The detector's allocation-free parts against the OpenCV calls they replace,
// on random masks: blobs (discs, thin ellipses, rings, lines one or two pixels
// wide) cut by the image border, with holes punched in them and specks
// around, and plain noise; sizes from 1x1 up, and views into larger images.

namespace {

cv::Mat random_blobs(cv::RNG& rng, int w, int h) {
    cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
    const int kind = rng.uniform(0, 4);
    if (kind == 0) {
        cv::Mat noise(h, w, CV_8UC1);
        rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
        cv::threshold(noise, m, rng.uniform(30, 230), 255, cv::THRESH_BINARY);
        return m;
    }
    const int blobs = rng.uniform(1, 12);
    for (int i = 0; i < blobs; ++i) {
        const cv::Point c(rng.uniform(-5, w + 5), rng.uniform(-5, h + 5));
        const int r = rng.uniform(1, std::max(2, std::min(w, h) / 2));
        switch (rng.uniform(0, 4)) {
            case 0:
                cv::circle(m, c, r, cv::Scalar(255), cv::FILLED);
                break;
            case 1:
                cv::ellipse(m, c, cv::Size(r, std::max(1, r / 3)), rng.uniform(0, 180), 0, 360, cv::Scalar(255),
                            cv::FILLED);
                break;
            case 2:
                cv::line(m, c, cv::Point(rng.uniform(0, w), rng.uniform(0, h)), cv::Scalar(255), rng.uniform(1, 3));
                break;
            default:
                cv::circle(m, c, r, cv::Scalar(255), rng.uniform(1, 3));
                break;  // a ring
        }
    }
    if (kind == 2) {  // pin holes and specks
        cv::Mat noise(h, w, CV_8UC1);
        rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
        m.setTo(0, noise < 25);
        m.setTo(255, noise > 245);
    } else if (kind == 3) {  // larger holes
        for (int i = 0; i < blobs; ++i)
            cv::circle(m, cv::Point(rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(1, 8), cv::Scalar(0),
                       cv::FILLED);
    }
    return m;
}

// About one mask in three is a view into a larger image with other content.
cv::Mat random_mask(cv::RNG& rng, int w, int h, int i) {
    const cv::Mat m = random_blobs(rng, w, h);
    if (i % 3 != 0) return m;
    cv::Mat big(h + 9, w + 13, CV_8UC1);
    rng.fill(big, cv::RNG::UNIFORM, 0, 256);
    cv::Mat view = big(cv::Rect(5, 3, w, h));
    m.copyTo(view);
    return view;
}

// What Detector used: findContours (external, every point), the contour with
// the most points (the first of equal ones), its convex hull.
ContourFigures opencv_largest_contour(const cv::Mat& bin) {
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(bin.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    std::size_t best = 0;
    for (std::size_t k = 1; k < contours.size(); ++k)
        if (contours[k].size() > contours[best].size()) best = k;
    ContourFigures f;
    if (contours.empty()) return f;
    std::vector<cv::Point> hull;
    cv::convexHull(contours[best], hull);
    f.points = static_cast<int>(contours[best].size());
    f.perimeter = cv::arcLength(contours[best], true);
    f.hull_area = cv::contourArea(hull);
    f.hull_perimeter = cv::arcLength(hull, true);
    return f;
}

bool same_bits(double a, double b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

bool same_figures(const ContourFigures& a, const ContourFigures& b) {
    if (a.points != b.points) return false;
    if (a.points < 3) return true;  // the detector does not look further
    return same_bits(a.perimeter, b.perimeter) && same_bits(a.hull_area, b.hull_area) &&
           same_bits(a.hull_perimeter, b.hull_perimeter);
}

// Restores OpenCV's thread count on the way out.
struct Threads {
    int before = cv::getNumThreads();
    explicit Threads(int n) { cv::setNumThreads(n); }
    ~Threads() { cv::setNumThreads(before); }
};

}  // namespace

TEST_CASE_AT_EVERY_SIMD_LEVEL(
    "components: labels, stats and centroids as connectedComponentsWithStats, on 1 and 2 threads") {
    int components = 0;
    for (int threads : {1, 2}) {
        Threads t(threads);  // OpenCV labels in parallel stripes on more than one
        cv::RNG rng(20 + threads);
        ComponentLabeller labeller;
        for (int i = 0; i < 120; ++i) {
            int w = rng.uniform(1, 200), h = rng.uniform(1, 150);
            if (i % 40 == 0) w = 640, h = 360;
            const cv::Mat m = random_mask(rng, w, h, i);
            cv::Mat labels, stats, centroids;
            const int n = cv::connectedComponentsWithStats(m, labels, stats, centroids, 8, CV_32S);
            CHECK_EQ(labeller.label(m), n);
            CHECK_EQ(cv::countNonZero(labels != labeller.labels()), 0);
            for (int l = 1; l < n; ++l) {
                const ComponentStats& s = labeller.stats(l);
                const int* st = stats.ptr<int>(l);
                CHECK(s.left == st[cv::CC_STAT_LEFT] && s.top == st[cv::CC_STAT_TOP]);
                CHECK(s.width == st[cv::CC_STAT_WIDTH] && s.height == st[cv::CC_STAT_HEIGHT]);
                CHECK_EQ(s.area, st[cv::CC_STAT_AREA]);
                CHECK(same_bits(s.cx, centroids.at<double>(l, 0)) && same_bits(s.cy, centroids.at<double>(l, 1)));
            }
            // The zero frame around the labels.
            const cv::Mat& lab = labeller.labels();
            for (int y = -1; y <= h; ++y) CHECK(lab.ptr<int>(y)[-1] == 0 && lab.ptr<int>(y)[w] == 0);
            for (int x = 0; x < w; ++x) CHECK(lab.ptr<int>(-1)[x] == 0 && lab.ptr<int>(h)[x] == 0);
            components += n - 1;
        }
    }
    CHECK(components > 5000);
}

TEST_CASE("contour: each component's outer contour and hull as findContours and convexHull measure them") {
    cv::RNG rng(31);
    ComponentLabeller labeller;
    ContourTracer tracer;
    int checked = 0, one_pixel = 0, holed = 0;
    for (int i = 0; i < 150; ++i) {
        const cv::Mat m = random_mask(rng, rng.uniform(1, 200), rng.uniform(1, 150), i);
        const int n = labeller.label(m);
        const cv::Mat& labels = labeller.labels();
        for (int l = 1; l < n; ++l) {
            const ComponentStats& s = labeller.stats(l);
            // The detector's old input: the component alone, framed by zeros.
            cv::Mat bin(s.height + 2, s.width + 2, CV_8UC1, cv::Scalar(0));
            cv::Mat inner = bin(cv::Rect(1, 1, s.width, s.height));
            cv::compare(labels(cv::Rect(s.left, s.top, s.width, s.height)), l, inner, cv::CMP_EQ);
            int first = s.left;
            while (labels.ptr<int>(s.top)[first] != l) ++first;
            const ContourFigures ours = tracer.component(labels, l, cv::Point(first, s.top));
            CHECK(same_figures(ours, opencv_largest_contour(bin)));
            ++checked;
            one_pixel += s.area == 1;
            cv::Mat filled = bin.clone();
            HoleFiller().fill(filled);
            holed += cv::countNonZero(filled) > s.area;
        }
    }
    CHECK(checked > 2000 && one_pixel > 100 && holed > 50);
}

TEST_CASE("contour: the largest external contour of a mask of many, nested and touching the border") {
    cv::RNG rng(32);
    ContourTracer tracer;
    int several = 0;
    for (int i = 0; i < 300; ++i) {
        const cv::Mat m = random_mask(rng, rng.uniform(1, 160), rng.uniform(1, 120), i);
        CHECK(same_figures(tracer.largest_external(m), opencv_largest_contour(m)));
        std::vector<std::vector<cv::Point>> contours;
        cv::findContours(m.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
        several += contours.size() > 1;
    }
    // Rings with blobs inside: an outer contour met inside another's hole is not external.
    cv::Mat nested(60, 60, CV_8UC1, cv::Scalar(0));
    cv::rectangle(nested, cv::Rect(5, 5, 50, 50), cv::Scalar(255), 1);  // its outer contour: 196 points
    for (int y = 12; y <= 48; y += 4) {  // a serpentine line inside: more points, but not external
        cv::line(nested, cv::Point(12, y), cv::Point(48, y), cv::Scalar(255));
        if (y < 48) cv::line(nested, cv::Point(y % 8 ? 48 : 12, y), cv::Point(y % 8 ? 48 : 12, y + 4), cv::Scalar(255));
    }
    CHECK(same_figures(tracer.largest_external(nested), opencv_largest_contour(nested)));
    CHECK_EQ(tracer.largest_external(nested).points, 196);
    cv::Mat inside = nested(cv::Rect(8, 8, 44, 44));  // the serpentine alone
    CHECK(tracer.largest_external(inside).points > 500);
    CHECK_EQ(tracer.largest_external(cv::Mat(7, 9, CV_8UC1, cv::Scalar(0))).points, 0);
    CHECK(several > 100);
}

TEST_CASE("contour: the split path's hole filling equals filling the outer contour") {
    // Detector::split used to fill the component's outer contour with
    // drawContours; HoleFiller on the zero-framed component does the same.
    cv::RNG rng(33);
    ComponentLabeller labeller;
    HoleFiller filler;
    int with_holes = 0;
    for (int i = 0; i < 80; ++i) {
        const cv::Mat m = random_mask(rng, rng.uniform(10, 200), rng.uniform(10, 150), i);
        const int n = labeller.label(m);
        for (int l = 1; l < n; ++l) {
            const ComponentStats& s = labeller.stats(l);
            cv::Mat bin(s.height + 2, s.width + 2, CV_8UC1, cv::Scalar(0));
            cv::Mat inner = bin(cv::Rect(1, 1, s.width, s.height));
            cv::compare(labeller.labels()(cv::Rect(s.left, s.top, s.width, s.height)), l, inner, cv::CMP_EQ);
            std::vector<std::vector<cv::Point>> contours;
            cv::findContours(bin.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
            cv::Mat expected = bin.clone();
            for (std::size_t k = 0; k < contours.size(); ++k)
                cv::drawContours(expected, contours, static_cast<int>(k), cv::Scalar(255), cv::FILLED);
            filler.fill(bin);
            CHECK_EQ(cv::countNonZero(expected != bin), 0);
            with_holes += cv::countNonZero(bin) > s.area;
        }
    }
    CHECK(with_holes > 50);
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("distance: as distanceTransform(DIST_L2, DIST_MASK_5, CV_32F), into a view") {
    cv::RNG rng(34);
    DistanceTransform dt;
    for (int i = 0; i < 150; ++i) {
        const int w = rng.uniform(1, 200), h = rng.uniform(1, 150);
        const cv::Mat m = random_mask(rng, w, h, i);
        cv::Mat expected;
        cv::distanceTransform(m, expected, cv::DIST_L2, cv::DIST_MASK_5, CV_32F);
        cv::Mat big(h + 3, w + 7, CV_32F, cv::Scalar(-1));
        cv::Mat dist = big(cv::Rect(2, 1, w, h));
        dt.l2_mask5(m, dist);
        CHECK(big.data == dist.datastart);  // written in place, not reallocated
        CHECK(cv::norm(expected, dist, cv::NORM_INF) == 0.0);
        CHECK_EQ(cv::countNonZero(big != -1.f), w * h);
    }
}
