// Mask builder tests on synthetic frames with exactly known objects: a light
// grey belt with sensor noise, brown "cookies" with dark chips, shadows, and a
// light-on-dark variant. Counting goes through the Detector with its defaults.
#include "check.hpp"
#include "scenes.hpp"
#include "simd_levels.hpp"

#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/downscale.hpp"
#include "conveyor_qc/mask.hpp"
#include "conveyor_qc/morphology.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <string>
#include <vector>

using namespace cqc;
using namespace cqc::test;

namespace {

std::vector<Detection> detect(const cv::Mat& mask, double min_area = 400.0) {
    DetectParams dp;
    dp.min_area = min_area;
    dp.split_solidity = 0.0;  // these tests judge the mask alone, not the detector's split
    Detector detector(dp);
    std::vector<Detection> out;
    detector.detect(mask, cv::Rect(), 1.0, out);
    return out;
}

std::vector<Detection> run(const MaskParams& p, const cv::Mat& frame, cv::Mat* mask_out = nullptr) {
    MaskBuilder builder(p);
    cv::Mat mask;
    builder.build(frame, mask);
    if (mask_out) *mask_out = mask;
    return detect(mask);
}

// The detection whose box contains `p`, or nullptr.
const Detection* at(const std::vector<Detection>& ds, cv::Point2f p) {
    for (const auto& d : ds)
        if (d.box.contains(p)) return &d;
    return nullptr;
}

bool close_to(double a, double b, double tol) {
    return std::abs(a - b) <= tol;
}

MaskParams threshold_gray(double t) {
    MaskParams p;
    p.mode = MaskMode::Threshold;
    p.object_space = ColorSpace::Gray;
    p.object_lower = cv::Scalar(0, 0, 0);
    p.object_upper = cv::Scalar(t, 255, 255);
    return p;
}

std::string error_of(const MaskParams& p) {
    try {
        p.validate();
    } catch (const ParamError& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("mask: mode and colour space strings round-trip, case-insensitive") {
    CHECK_EQ(std::string(to_string(MaskMode::Auto)), std::string("auto"));
    CHECK_EQ(std::string(to_string(MaskMode::Threshold)), std::string("threshold"));
    CHECK(mask_mode_from_string("AUTO") == MaskMode::Auto);
    CHECK(mask_mode_from_string("Threshold") == MaskMode::Threshold);
    CHECK_EQ(std::string(to_string(ColorSpace::Gray)), std::string("gray"));
    CHECK_EQ(std::string(to_string(ColorSpace::HSV)), std::string("hsv"));
    CHECK_EQ(std::string(to_string(ColorSpace::Lab)), std::string("lab"));
    CHECK(color_space_from_string("HSV") == ColorSpace::HSV);
    CHECK(color_space_from_string("lab") == ColorSpace::Lab);
    CHECK(color_space_from_string("Gray") == ColorSpace::Gray);
    CHECK_THROWS(mask_mode_from_string("chroma"), ParamError);
    CHECK_THROWS(color_space_from_string("rgb"), ParamError);
    try {
        color_space_from_string("rgb");
    } catch (const ParamError& e) {
        const std::string m = e.what();
        CHECK(contains(m, "gray") && contains(m, "hsv") && contains(m, "lab") && contains(m, "rgb"));
    }
    try {
        mask_mode_from_string("x");
    } catch (const ParamError& e) {
        CHECK(contains(e.what(), "auto") && contains(e.what(), "threshold"));
    }
}

TEST_CASE("mask: validate names the field, its range and the value") {
    MaskParams ok;
    ok.validate();  // defaults are valid

    MaskParams p;
    p.canny_low = 300;
    CHECK_EQ(error_of(p), std::string("mask.canny_low must be in [0, canny_high=160], got 300"));
    CHECK_THROWS(MaskBuilder{p}, ParamError);

    p = MaskParams();
    p.canny_high = 2000;
    CHECK(contains(error_of(p), "mask.canny_high must be in [canny_low=60, 1000], got 2000"));

    struct Case {
        const char* field;
        void (*set)(MaskParams&);
    };
    const Case cases[] = {
        {"mask.blur", [](MaskParams& q) { q.blur = 4; }},
        {"mask.blur", [](MaskParams& q) { q.blur = 17; }},
        {"mask.kernel_size", [](MaskParams& q) { q.kernel_size = 0; }},
        {"mask.edge_dilate", [](MaskParams& q) { q.edge_dilate = 11; }},
        {"mask.open_iterations", [](MaskParams& q) { q.open_iterations = -1; }},
        {"mask.erode_iterations", [](MaskParams& q) { q.erode_iterations = 21; }},
        {"mask.dilate_iterations", [](MaskParams& q) { q.dilate_iterations = 21; }},
        {"mask.close_iterations", [](MaskParams& q) { q.close_iterations = 99; }},
        {"mask.auto_learn_frames", [](MaskParams& q) { q.auto_learn_frames = 0; }},
        {"mask.auto_learn_stride", [](MaskParams& q) { q.auto_learn_stride = 1001; }},
        {"mask.auto_threshold", [](MaskParams& q) { q.auto_threshold = 0; }},
        {"mask.auto_min_sigma", [](MaskParams& q) { q.auto_min_sigma = -1; }},
        {"mask.auto_threshold", [](MaskParams& q) { q.auto_threshold = std::nan(""); }},
        {"mask.shadow_min_ratio", [](MaskParams& q) { q.shadow_min_ratio = 0; }},
        {"mask.shadow_max_ratio", [](MaskParams& q) { q.shadow_max_ratio = 0.2; }},
        {"mask.shadow_max_ratio", [](MaskParams& q) { q.shadow_max_ratio = 1.5; }},
        {"mask.shadow_chroma", [](MaskParams& q) { q.shadow_chroma = 0; }},
        {"mask.object_upper[0]", [](MaskParams& q) { q.object_upper[0] = 300; }},
        {"mask.object_lower[0]", [](MaskParams& q) { q.object_lower[0] = 150; }},  // above upper (100)
        {"mask.object_lower[0]",
         [](MaskParams& q) {  // HSV hue tops at 180
             q.object_space = ColorSpace::HSV;
             q.object_lower = cv::Scalar(190, 0, 0);
             q.object_upper = cv::Scalar(180, 255, 255);
         }},
        {"mask.object_upper[2]",
         [](MaskParams& q) {
             q.object_space = ColorSpace::Lab;
             q.object_upper = cv::Scalar(255, 255, 256);
         }},
        {"mask.shadow_upper[0]", [](MaskParams& q) { q.shadow_upper[0] = 181; }},  // HSV by default
        {"mask.shadow_lower[1]", [](MaskParams& q) { q.shadow_lower[1] = 61; }},   // above upper[1] = 60
    };
    for (const auto& c : cases) {
        MaskParams q;
        c.set(q);
        const std::string m = error_of(q);
        if (m.rfind(c.field, 0) != 0) {
            std::cout << "     expected '" << c.field << "', got '" << m << "'\n";
        }
        CHECK(m.rfind(c.field, 0) == 0);  // the message starts with the field
        CHECK(contains(m, " must be "));
        CHECK(contains(m, ", got "));
    }
    // Gray uses element [0] only: the other elements are not checked against each other.
    MaskParams g = threshold_gray(120);
    g.object_lower = cv::Scalar(0, 200, 200);
    g.object_upper = cv::Scalar(120, 0, 0);
    g.validate();
    // The range mentions the allowed values.
    p = MaskParams();
    p.blur = 4;
    CHECK_EQ(error_of(p), std::string("mask.blur must be odd in [1, 15], got 4"));
}

TEST_CASE("mask: auto mode counts dark cookies on a light belt, boxes stay whole") {
    cv::Mat clean = belt();
    const cv::Point c[3] = {{100, 100}, {330, 200}, {540, 120}};
    const int r[3] = {40, 45, 30};
    for (int i = 0; i < 3; ++i) cookie(clean, c[i], r[i]);
    const cv::Mat frame = noisy(clean);

    cv::Mat mask;
    const auto ds = run(MaskParams(), frame, &mask);
    CHECK_EQ(ds.size(), std::size_t(3));
    for (int i = 0; i < 3; ++i) {
        const Detection* d = at(ds, cv::Point2f(c[i]));
        CHECK(d != nullptr);
        // The edge band eats ~2 px of outline on each side, not more.
        CHECK(close_to(d->box.width, 2 * r[i] + 1, 6));
        CHECK(close_to(d->box.height, 2 * r[i] + 1, 6));
        CHECK(close_to(d->centroid.x, c[i].x, 2.0));
        CHECK(close_to(d->centroid.y, c[i].y, 2.0));
    }
    // Nothing on the belt away from the cookies.
    CHECK_EQ(cv::countNonZero(mask(cv::Rect(150, 280, 100, 70))), 0);
    CHECK_EQ(mask.type(), CV_8UC1);
    CHECK(mask.size() == frame.size());
}

TEST_CASE("mask: auto mode works light-on-dark too") {
    cv::Mat clean = belt(cv::Scalar(40, 40, 40));
    const cv::Scalar light(190, 205, 215);
    const cv::Point c[4] = {{90, 90}, {260, 250}, {420, 110}, {560, 270}};
    for (const auto& p : c) cookie(clean, p, 38, light);
    const auto ds = run(MaskParams(), noisy(clean, 3.0, 99));
    CHECK_EQ(ds.size(), std::size_t(4));
    for (const auto& p : c) {
        const Detection* d = at(ds, cv::Point2f(p));
        CHECK(d != nullptr);
        CHECK(close_to(d->box.width, 77, 6));
    }
}

TEST_CASE("mask: auto mode learns the belt with objects in the first frames") {
    // Objects cover a good share of every learning frame and move between them.
    MaskBuilder builder(learning(3, 2));
    cv::Mat mask;
    CHECK(!builder.ready());
    for (int f = 0; f < 5; ++f) {
        cv::Mat clean = belt();
        for (int k = 0; k < 6; ++k) cookie(clean, cv::Point(60 + 100 * k + 10 * f, 100 + 30 * (k % 2)), 45);
        builder.build(noisy(clean, 4.0, 100 + f), mask);
        // Learnt frames: 0, 2, 4 -> ready after the 5th frame.
        CHECK_EQ(builder.ready(), f >= 4);
        // Usable from the first frame on.
        CHECK_EQ(detect(mask).size(), std::size_t(6));
    }
    builder.reset();
    CHECK(!builder.ready());
    cv::Mat clean = belt();
    cookie(clean, cv::Point(320, 180), 40);
    builder.build(noisy(clean), mask);
    CHECK_EQ(detect(mask).size(), std::size_t(1));

    MaskBuilder threshold(threshold_gray(120));
    CHECK(threshold.ready());
}

TEST_CASE("mask: auto belt model switches polarity after reset") {
    MaskBuilder builder(MaskParams{});
    cv::Mat mask;
    cv::Mat light = belt();
    cookie(light, cv::Point(200, 180), 40);
    builder.build(noisy(light), mask);
    CHECK_EQ(detect(mask).size(), std::size_t(1));
    // A dark belt after a camera change: without reset the whole belt differs.
    builder.reset();
    cv::Mat dark = belt(cv::Scalar(45, 45, 45));
    cookie(dark, cv::Point(400, 180), 40, cv::Scalar(200, 210, 220));
    builder.build(noisy(dark), mask);
    const auto ds = detect(mask);
    CHECK_EQ(ds.size(), std::size_t(1));
    CHECK(at(ds, cv::Point2f(400, 180)) != nullptr);
}

TEST_CASE("mask: touching objects are split by the edges") {
    // Centres 2r apart. Edges split them where the image shows a boundary:
    // two different products, or a dark baked rim (the crease between cookies).
    for (int variant = 0; variant < 2; ++variant) {
        cv::Mat clean = belt();
        const int r = 40;
        const cv::Point a(200, 180), b(200 + 2 * r, 180);
        if (variant == 0) {
            cookie(clean, a, r);
            cookie(clean, b, r, kBiscuit);
        } else {
            cookie(clean, a, r, kCookie, 3);
            cookie(clean, b, r, kCookie, 3);
        }
        cookie(clean, cv::Point(480, 120), 35);  // and a lone one
        const cv::Mat frame = noisy(clean);
        for (int mode = 0; mode < 2; ++mode) {
            MaskParams p = mode == 0 ? MaskParams() : threshold_gray(170);
            // The seed's way: edges on, and closing too light to re-join the cut.
            p.edges_enabled = true;
            p.kernel_size = 3;
            p.close_iterations = 1;
            const auto ds = run(p, frame);
            CHECK_EQ(ds.size(), std::size_t(3));
            const Detection* da = at(ds, cv::Point2f(a));
            const Detection* db = at(ds, cv::Point2f(b));
            CHECK(da != nullptr && db != nullptr && da != db);
            CHECK(da->box.width < 2 * r + 2 && db->box.width < 2 * r + 2);
            CHECK(da->box.width > 2 * r - 14 && db->box.width > 2 * r - 14);
        }
    }
}

TEST_CASE("mask: without the edge mask (and no split) touching objects merge") {
    cv::Mat clean = belt();
    cookie(clean, cv::Point(200, 180), 40);
    cookie(clean, cv::Point(280, 180), 40, kBiscuit);
    MaskParams p;
    p.edges_enabled = false;
    cv::Mat mask;
    const auto ds = run(p, noisy(clean), &mask);
    CHECK_EQ(ds.size(), std::size_t(1));
    MaskBuilder builder(p);
    builder.build(noisy(clean), mask);
    CHECK_EQ(cv::countNonZero(builder.edge_mask()), 0);
}

TEST_CASE("mask: shadows are neither objects nor part of the object's box") {
    cv::Mat clean = belt();
    const int r = 40;
    const cv::Point c(180, 170);
    // A shadow cast to the lower right of the cookie, and a shadow alone.
    shadow(clean, c + cv::Point(18, 12), cv::Size(r + 6, r));
    cookie(clean, c, r);
    shadow(clean, cv::Point(470, 200), cv::Size(50, 35));
    const cv::Mat frame = noisy(clean);

    MaskParams thr = threshold_gray(130);  // the shadow (gray ~120) is inside [0, 130]: HSV shadow range removes it
    for (int mode = 0; mode < 2; ++mode) {
        const MaskParams p = mode == 0 ? MaskParams() : thr;
        MaskBuilder builder(p);
        cv::Mat mask;
        builder.build(frame, mask);
        const auto ds = detect(mask);
        CHECK_EQ(ds.size(), std::size_t(1));
        const Detection& d = ds[0];
        CHECK(d.box.contains(cv::Point2f(c)));
        CHECK(close_to(d.box.width, 2 * r + 1, 6));
        CHECK(close_to(d.box.height, 2 * r + 1, 6));
        CHECK(close_to(d.centroid.x, c.x, 2.0));
        // The shadow mask sees both shadows.
        CHECK(builder.shadow_mask().at<std::uint8_t>(200, 470) == 255);
        CHECK(builder.shadow_mask().at<std::uint8_t>(c.y + 12 + r - 5, c.x + 18) == 255);
        // Nothing of the lone shadow is left in the mask.
        CHECK_EQ(cv::countNonZero(mask(cv::Rect(420, 165, 100, 70))), 0);
    }
    // With shadow removal off, the shadows become objects (the attached one
    // is cut from the cookie by the edge between them).
    MaskParams off;
    off.shadow_enabled = false;
    const auto with_shadows = run(off, frame);
    CHECK(with_shadows.size() >= 2);
    CHECK(at(with_shadows, cv::Point2f(470, 200)) != nullptr);
}

TEST_CASE("mask: threshold gray [0, T] finds dark discs, [T, 255] light ones") {
    cv::Mat clean = belt();
    const cv::Point c[4] = {{80, 80}, {240, 260}, {400, 90}, {560, 250}};
    for (const auto& p : c) cookie(clean, p, 35);
    const cv::Mat frame = noisy(clean);
    MaskParams p = threshold_gray(110);
    CHECK_EQ(run(p, frame).size(), std::size_t(4));
    p.blur = 1;  // no blur: noise does not break the discs
    CHECK_EQ(run(p, frame).size(), std::size_t(4));
    // Threshold below the cookie's grey (~82): only chips pass, all too small.
    CHECK_EQ(run(threshold_gray(50), frame).size(), std::size_t(0));

    cv::Mat dark = belt(cv::Scalar(40, 40, 40));
    for (const auto& q : c) cookie(dark, q, 35, cv::Scalar(200, 200, 200));
    MaskParams light;
    light.mode = MaskMode::Threshold;
    light.object_space = ColorSpace::Gray;
    light.object_lower = cv::Scalar(150);
    light.object_upper = cv::Scalar(255);
    CHECK_EQ(run(light, noisy(dark)).size(), std::size_t(4));
}

TEST_CASE("mask: threshold in HSV picks objects by colour") {
    cv::Mat clean = belt();
    cookie(clean, cv::Point(150, 180), 40);                           // brown: hue ~13
    cookie(clean, cv::Point(450, 180), 40, cv::Scalar(160, 60, 40));  // blue: hue ~110
    MaskParams p;
    p.mode = MaskMode::Threshold;
    p.object_space = ColorSpace::HSV;
    p.object_lower = cv::Scalar(90, 80, 40);
    p.object_upper = cv::Scalar(130, 255, 255);
    const auto ds = run(p, noisy(clean));
    CHECK_EQ(ds.size(), std::size_t(1));
    CHECK(at(ds, cv::Point2f(450, 180)) != nullptr);
}

TEST_CASE("mask: morphology parameters act in order") {
    cv::Mat clean = belt();
    cookie(clean, cv::Point(320, 180), 40);
    const cv::Mat frame = noisy(clean);
    MaskParams p = threshold_gray(110);
    cv::Mat base, eroded, dilated;
    run(p, frame, &base);
    p.erode_iterations = 3;
    run(p, frame, &eroded);
    p.erode_iterations = 0;
    p.dilate_iterations = 3;
    run(p, frame, &dilated);
    CHECK(cv::countNonZero(eroded) < cv::countNonZero(base));
    CHECK(cv::countNonZero(dilated) > cv::countNonZero(base));
    p = threshold_gray(110);
    p.open_iterations = 0;
    p.close_iterations = 0;
    p.kernel_size = 1;
    p.edges_enabled = false;
    p.shadow_enabled = false;
    p.blur = 1;
    cv::Mat raw;
    MaskBuilder builder(p);
    builder.build(frame, raw);
    // No post-processing at all: the mask is the threshold itself.
    cv::Mat gray, expect;
    cv::cvtColor(frame, gray, cv::COLOR_BGR2GRAY);
    cv::inRange(gray, cv::Scalar(0), cv::Scalar(110), expect);
    CHECK_EQ(cv::countNonZero(raw != expect), 0);
    CHECK_EQ(cv::countNonZero(builder.object_mask() != expect), 0);
}

TEST_CASE("mask: buffers are reused in the steady state") {
    cv::Mat clean = belt();
    cookie(clean, cv::Point(320, 180), 40);
    const cv::Mat frame = noisy(clean);
    for (int mode = 0; mode < 2; ++mode) {
        MaskBuilder builder(mode == 0 ? MaskParams() : threshold_gray(110));
        cv::Mat mask;
        builder.build(frame, mask);
        builder.build(frame, mask);
        const uchar* m = mask.data;
        const uchar* o = builder.object_mask().data;
        const uchar* e = builder.edge_mask().data;
        const uchar* s = builder.shadow_mask().data;
        for (int i = 0; i < 5; ++i) builder.build(frame, mask);
        CHECK(mask.data == m);
        CHECK(builder.object_mask().data == o);
        CHECK(builder.edge_mask().data == e);
        CHECK(builder.shadow_mask().data == s);
    }
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("mask: auto mode's BGR table after learning agrees with the exact Lab decision") {
    // Every colour of a 64-level grid per channel, on one 512x512 frame.
    cv::Mat ramp(512, 512, CV_8UC3);
    for (int i = 0; i < 512 * 512; ++i) {
        const int b = i >> 12, g = (i >> 6) & 63, r = i & 63;
        ramp.at<cv::Vec3b>(i / 512, i % 512) =
            cv::Vec3b(static_cast<uchar>(b * 4 + 1), static_cast<uchar>(g * 4 + 2), static_cast<uchar>(r * 4 + 3));
    }
    cv::Mat clean(512, 512, CV_8UC3, cv::Scalar(60, 140, 210));  // a coloured belt: B and R play different parts
    const cv::Mat belt_frame = noisy(clean);
    MaskParams p;
    p.blur = 1;
    p.open_iterations = p.close_iterations = 0;
    p.fill_holes = false;
    // `table` has learnt everything after one frame and classifies through its
    // table; `exact` is still learning (its next learning frame is far away),
    // so it converts to Lab: both hold the model of the same single frame.
    MaskParams pt = p, pe = p;
    pt.auto_learn_frames = 1;
    pe.auto_learn_frames = 2;
    pe.auto_learn_stride = 1000;
    MaskBuilder table(pt), exact(pe);
    cv::Mat mt, me;
    table.build(belt_frame, mt);
    exact.build(belt_frame, me);
    table.build(ramp, mt);
    exact.build(ramp, me);
    CHECK(table.ready() && !exact.ready());
    const int n = 512 * 512;
    const int objects = cv::countNonZero(exact.object_mask()), shadows = cv::countNonZero(exact.shadow_mask());
    CHECK(objects > n / 20 && objects < n - 50);  // the belt's colours and their neighbours are no objects
    CHECK(shadows > 0);
    cv::Mat diff;
    cv::compare(table.object_mask(), exact.object_mask(), diff, cv::CMP_NE);
    const int object_diff = cv::countNonZero(diff);
    cv::compare(table.shadow_mask(), exact.shadow_mask(), diff, cv::CMP_NE);
    const int shadow_diff = cv::countNonZero(diff);
    // Only colours within 2 levels of the boundary may differ.
    CHECK(object_diff < n / 100);
    CHECK(shadow_diff < n / 100);
}

TEST_CASE("mask: wrong input type is an InputError") {
    MaskBuilder builder(MaskParams{});
    cv::Mat mask;
    CHECK_THROWS(builder.build(cv::Mat(), mask), InputError);
    CHECK_THROWS(builder.build(cv::Mat(10, 10, CV_8UC1, cv::Scalar(0)), mask), InputError);
    CHECK_THROWS(builder.build(cv::Mat(10, 10, CV_32FC3, cv::Scalar(0)), mask), InputError);
}

// ---------------------------------------------------------------------------
// The mask's allocation-free morphology, hole filling and downscaling against
// the OpenCV calls they replace, bit for bit.

namespace {

// Random masks: blobs, rings and lines cut by the border, with holes; one in
// five is grey noise instead (morphology works on any 8-bit image).
cv::Mat random_mask(cv::RNG& rng, int w, int h, int i) {
    cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
    if (i % 5 == 0) {
        rng.fill(m, cv::RNG::UNIFORM, 0, 256);
        return m;
    }
    for (int k = rng.uniform(1, 12); k > 0; --k) {
        const cv::Point c(rng.uniform(-5, w + 5), rng.uniform(-5, h + 5));
        const int r = rng.uniform(1, std::max(2, std::min(w, h) / 2));
        const int thickness = rng.uniform(0, 3) == 0 ? rng.uniform(1, 3) : cv::FILLED;
        cv::circle(m, c, r, cv::Scalar(255), thickness);
        if (k % 2) cv::circle(m, c, rng.uniform(0, r + 1), cv::Scalar(0), cv::FILLED);  // a hole
    }
    cv::Mat noise(h, w, CV_8UC1);
    rng.fill(noise, cv::RNG::UNIFORM, 0, 256);
    m.setTo(0, noise < 12);
    m.setTo(255, noise > 250);
    return m;
}

// The mask builder's former hole filling.
cv::Mat opencv_fill_holes(const cv::Mat& mask) {
    cv::Mat padded, holes, out = mask.clone();
    cv::copyMakeBorder(mask, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::floodFill(padded, cv::Point(0, 0), cv::Scalar(255));
    cv::compare(padded(cv::Rect(1, 1, mask.cols, mask.rows)), 0, holes, cv::CMP_EQ);
    cv::bitwise_or(out, holes, out);
    return out;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
    return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0.0;
}

}  // namespace

TEST_CASE_AT_EVERY_SIMD_LEVEL(
    "morphology: erode, dilate, open, close as OpenCV's, any kernel size, shape and iterations") {
    cv::RNG rng(41);
    const int ops[4] = {cv::MORPH_ERODE, cv::MORPH_DILATE, cv::MORPH_OPEN, cv::MORPH_CLOSE};
    const int shapes[3] = {cv::MORPH_ELLIPSE, cv::MORPH_RECT, cv::MORPH_CROSS};
    for (int i = 0; i < 400; ++i) {
        const cv::Mat m = random_mask(rng, rng.uniform(1, 160), rng.uniform(1, 120), i);
        const int shape = shapes[i % 5 < 3 ? 0 : i % 5 - 2];  // mostly the mask's ellipse
        const int k = 1 + 2 * rng.uniform(0, 16), kh = i % 7 == 0 ? 1 + 2 * rng.uniform(0, 8) : k;
        const cv::Mat kernel = cv::getStructuringElement(shape, cv::Size(k, kh));
        const int op = i % 4, iterations = rng.uniform(0, 4);
        cv::Mat expected;
        cv::morphologyEx(m, expected, ops[op], kernel, cv::Point(-1, -1), iterations);
        Morphology morph(kernel);
        cv::Mat separate, in_place = m.clone();
        switch (op) {
            case 0:
                morph.erode(m, separate, iterations);
                morph.erode(in_place, in_place, iterations);
                break;
            case 1:
                morph.dilate(m, separate, iterations);
                morph.dilate(in_place, in_place, iterations);
                break;
            case 2:
                morph.open(m, separate, iterations);
                morph.open(in_place, in_place, iterations);
                break;
            default:
                morph.close(m, separate, iterations);
                morph.close(in_place, in_place, iterations);
                break;
        }
        CHECK(same(separate, expected));
        CHECK(same(in_place, expected));
    }
    CHECK_THROWS(Morphology(cv::Mat()), std::invalid_argument);
    CHECK_THROWS(Morphology(cv::Mat(3, 3, CV_8UC1, cv::Scalar(0))), std::invalid_argument);
    const cv::Mat split_row = (cv::Mat_<std::uint8_t>(1, 3) << 1, 0, 1);
    CHECK_THROWS(Morphology{split_row}, std::invalid_argument);
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("morphology: binary masks at word boundaries, views, and apply() as its four calls") {
    // Binary masks go through the bit-packed path: rows of 64-pixel words.
    cv::RNG rng(46);
    const int widths[] = {1, 2, 63, 64, 65, 127, 128, 129, 200, 640};
    const cv::Point anchor(-1, -1);
    for (int i = 0; i < 60; ++i) {
        const int w = widths[i % 10], h = rng.uniform(1, 80);
        cv::Mat big = random_mask(rng, w + 6, h + 4, 1 + i % 4);  // never grey
        const cv::Mat m = i % 3 == 0 ? big(cv::Rect(3, 2, w, h)) : big(cv::Rect(0, 0, w, h)).clone();
        const int k = 1 + 2 * rng.uniform(0, 16);
        const cv::Mat kernel = cv::getStructuringElement(i % 2 ? cv::MORPH_ELLIPSE : cv::MORPH_RECT, cv::Size(k, k));
        const int open = rng.uniform(0, 3), erode = rng.uniform(0, 2), dilate = rng.uniform(0, 2),
                  close = rng.uniform(0, 3);
        cv::Mat expected = m.clone();
        if (open > 0) cv::morphologyEx(expected, expected, cv::MORPH_OPEN, kernel, anchor, open);
        if (erode > 0) cv::erode(expected, expected, kernel, anchor, erode);
        if (dilate > 0) cv::dilate(expected, expected, kernel, anchor, dilate);
        if (close > 0) cv::morphologyEx(expected, expected, cv::MORPH_CLOSE, kernel, anchor, close);
        Morphology morph(kernel);
        cv::Mat ours;
        morph.apply(m, ours, open, erode, dilate, close);
        CHECK(same(ours, expected));
        cv::Mat in_place = m.clone();
        morph.apply(in_place, in_place, open, erode, dilate, close);
        CHECK(same(in_place, expected));
    }
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("morphology: holes filled as a flood fill from outside the image leaves them") {
    cv::RNG rng(42);
    HoleFiller filler;
    int filled = 0;
    for (int i = 0; i < 300; ++i) {
        int w = rng.uniform(1, 200), h = rng.uniform(1, 150);
        if (i % 100 == 0) w = 640, h = 360;
        const cv::Mat m = random_mask(rng, w, h, i);
        const cv::Mat expected = opencv_fill_holes(m);
        cv::Mat ours = m.clone();
        filler.fill(ours);
        CHECK(same(ours, expected));
        filled += cv::countNonZero(ours != m) > 0;
    }
    CHECK(filled > 100);
}

TEST_CASE("morphology: a large hole stays open unless convex, small ones are filled") {
    // A product with a square window (convex, 900 px), a ring of six touching
    // discs around belt (curved sides, about 2000 px) and a chip (12 px).
    cv::Mat mask(300, 600, CV_8UC1, cv::Scalar(0));
    cv::rectangle(mask, cv::Rect(20, 20, 120, 120), cv::Scalar(255), cv::FILLED);
    mask(cv::Rect(50, 50, 30, 30)).setTo(0);  // the window
    mask(cv::Rect(100, 100, 4, 3)).setTo(0);  // the chip
    const cv::Point centre(380, 150);
    for (int k = 0; k < 6; ++k) {
        const double a = k * CV_PI / 3.0;
        cv::circle(mask, centre + cv::Point(cvRound(52 * std::cos(a)), cvRound(52 * std::sin(a))), 27, cv::Scalar(255),
                   cv::FILLED);
    }
    CHECK_EQ(static_cast<int>(mask.at<std::uint8_t>(centre)), 0);
    HoleFiller filler;
    cv::Mat all = mask.clone();
    filler.fill(all);  // no limit: every hole, as OpenCV's flood fill
    CHECK(same(all, opencv_fill_holes(mask)));
    cv::Mat limited = mask.clone();
    filler.fill(limited, 100);
    CHECK_EQ(static_cast<int>(limited.at<std::uint8_t>(65, 65)), 255);    // the window: convex
    CHECK_EQ(static_cast<int>(limited.at<std::uint8_t>(101, 101)), 255);  // the chip: small
    CHECK_EQ(static_cast<int>(limited.at<std::uint8_t>(centre)), 0);      // belt in the ring: open
    cv::Mat never = mask.clone();
    filler.fill(never, 100, 2.f);  // a solidity no hole has: every large hole open
    CHECK_EQ(static_cast<int>(never.at<std::uint8_t>(65, 65)), 0);
    CHECK_EQ(static_cast<int>(never.at<std::uint8_t>(101, 101)), 255);
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("median_blur3: as medianBlur 3x3, any size and 1 to 4 channels") {
    cv::RNG rng(44);
    std::vector<std::uint8_t> scratch;
    for (int i = 0; i < 200; ++i) {
        int w = rng.uniform(1, 120), h = rng.uniform(1, 90);
        if (i % 50 == 0) w = 640, h = 360;
        const int channels = 1 + i % 4;
        cv::Mat frame(h, w, CV_8UC(channels));
        rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
        if (i % 3 == 0) {  // runs of equal values and the extremes, where ties decide
            cv::Mat coarse;
            frame.convertTo(coarse, -1, 1.0 / 64.0);
            frame = coarse * 85;
        }
        cv::Mat expected, ours;
        cv::medianBlur(frame, expected, 3);
        median_blur3(frame, ours, scratch);
        CHECK(same(ours, expected));
        // A view into a larger image is filtered as an image of its own, as OpenCV does.
        if (w > 4 && h > 4) {
            const cv::Mat view = frame(cv::Rect(1, 2, w - 3, h - 4));
            cv::medianBlur(view, expected, 3);
            median_blur3(view, ours, scratch);
            CHECK(same(ours, expected));
        }
    }
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("mask: the table path's vector and scalar code agree") {
    // The vector code takes 16 pixels at a time and leaves the rest of a row
    // to the scalar code: a frame 512 wide goes through the first, the same
    // frame cut into strips 5 wide (and one 2 wide) through the second. (At
    // SimdLevel::Scalar both go through the scalar code: test_simd.cpp holds
    // every level to the table itself.)
    // Both learn a belt of one colour: the same model from any strip of it.
    const cv::Mat belt_frame(256, 512, CV_8UC3, cv::Scalar(60, 140, 210));
    cv::Mat frame(256, 512, CV_8UC3);
    cv::RNG rng(45);
    rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
    noisy(belt_frame)(cv::Rect(0, 0, 512, 96)).copyTo(frame(cv::Rect(0, 0, 512, 96)));
    // The belt's colour at 0.3 to 1 of its lightness: shadows.
    cv::Mat belt_lab, shade(1, 512, CV_8UC3), shade_bgr;
    cv::cvtColor(belt_frame(cv::Rect(0, 0, 1, 1)), belt_lab, cv::COLOR_BGR2Lab);
    const cv::Vec3b lab = belt_lab.at<cv::Vec3b>(0, 0);
    for (int x = 0; x < 512; ++x)
        shade.at<cv::Vec3b>(0, x) =
            cv::Vec3b(cv::saturate_cast<uchar>(lab[0] * (0.3 + 0.7 * x / 511.0)), lab[1], lab[2]);
    cv::cvtColor(shade, shade_bgr, cv::COLOR_Lab2BGR);
    for (int y = 96; y < 160; ++y) shade_bgr.copyTo(frame.row(y));
    for (const bool shadows : {true, false}) {
        MaskParams p;
        p.blur = 1;
        p.open_iterations = p.close_iterations = 0;
        p.fill_holes = false;
        p.auto_learn_frames = 1;
        p.shadow_enabled = shadows;
        MaskBuilder whole(p), strips(p);
        cv::Mat mask, strip_mask;
        whole.build(belt_frame, mask);
        strips.build(belt_frame(cv::Rect(0, 0, 5, 256)), strip_mask);
        whole.build(frame, mask);
        CHECK(cv::countNonZero(mask) > 1000);
        CHECK((cv::countNonZero(whole.shadow_mask()) > 100) == shadows);
        for (int x = 0; x < 512; x += 5) {
            const cv::Rect r(x, 0, std::min(5, 512 - x), 256);
            strips.build(frame(r), strip_mask);
            CHECK(same(strip_mask, mask(r)));
            CHECK(same(strips.object_mask(), whole.object_mask()(r)));
            CHECK(same(strips.shadow_mask(), whole.shadow_mask()(r)));
        }
    }
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("resize_area: as resize INTER_AREA, the 2x2 path and the others") {
    cv::RNG rng(43);
    int halves = 0;
    for (int i = 0; i < 120; ++i) {
        int w = rng.uniform(1, 400), h = rng.uniform(1, 300);
        if (i % 2 == 0) w += w % 2, h += h % 2;  // even: exactly half
        if (i % 40 == 0) w = 1280, h = 720;
        const int channels = 1 + i % 4;
        cv::Mat frame(h, w, CV_8UC(channels));
        rng.fill(frame, cv::RNG::UNIFORM, 0, 256);
        // Half size (rounded as the pipeline rounds), and now and then another.
        const double r = i % 6 == 5 ? 0.4 : 0.5;
        const cv::Size size(std::max(1, cvRound(w * r)), std::max(1, cvRound(h * r)));
        cv::Mat expected, ours;
        cv::resize(frame, expected, size, 0, 0, cv::INTER_AREA);
        resize_area(frame, ours, size);
        CHECK(same(ours, expected));
        const uchar* data = ours.data;
        resize_area(frame, ours, size);
        CHECK(ours.data == data);
        halves += 2 * size.width == w && 2 * size.height == h;
    }
    CHECK(halves > 40);
}

TEST_CASE_AT_EVERY_SIMD_LEVEL("mask: post-processing as OpenCV's morphologyEx, erode, dilate and floodFill did") {
    cv::Mat clean = belt();
    cookie(clean, cv::Point(150, 150), 45);
    cookie(clean, cv::Point(240, 150), 45, kCookie, 6);  // touching the first
    cookie(clean, cv::Point(450, 250), 40, kBiscuit);
    cookie(clean, cv::Point(630, 100), 40);  // cut by the border
    shadow(clean, cv::Point(470, 300), cv::Size(60, 20));
    const cv::Mat frame = noisy(clean);
    MaskParams with_edges = threshold_gray(140);
    with_edges.edges_enabled = true;
    with_edges.edge_dilate = 2;
    with_edges.kernel_size = 7;
    with_edges.open_iterations = 2;
    with_edges.erode_iterations = 1;
    with_edges.dilate_iterations = 1;
    with_edges.close_iterations = 1;
    for (const MaskParams& p : {MaskParams(), with_edges}) {
        MaskBuilder builder(p);
        cv::Mat mask;
        for (int i = 0; i < 10; ++i) builder.build(frame, mask);  // auto mode: learnt
        cv::Mat expected = builder.object_mask().clone();
        if (p.shadow_enabled) cv::subtract(expected, builder.shadow_mask(), expected);
        if (p.edges_enabled) {
            cv::Mat blurred, gray, edges;
            cv::medianBlur(frame, blurred, p.blur);
            cv::cvtColor(blurred, gray, cv::COLOR_BGR2GRAY);
            cv::Canny(gray, edges, p.canny_low, p.canny_high);
            cv::dilate(edges, edges, cv::Mat(), cv::Point(-1, -1), p.edge_dilate);
            CHECK(same(builder.edge_mask(), edges));
            cv::subtract(expected, edges, expected);
        }
        const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(p.kernel_size, p.kernel_size));
        const cv::Point anchor(-1, -1);
        cv::morphologyEx(expected, expected, cv::MORPH_OPEN, kernel, anchor, p.open_iterations);
        if (p.erode_iterations > 0) cv::erode(expected, expected, kernel, anchor, p.erode_iterations);
        if (p.dilate_iterations > 0) cv::dilate(expected, expected, kernel, anchor, p.dilate_iterations);
        cv::morphologyEx(expected, expected, cv::MORPH_CLOSE, kernel, anchor, p.close_iterations);
        expected = opencv_fill_holes(expected);
        CHECK(same(mask, expected));
        CHECK(cv::countNonZero(mask) > 8000);  // the cookies (4000 to 6400 px each; the edges cut some away)
    }
}
