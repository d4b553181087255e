// The belt model (belt_model.hpp) on scenes made to break the old model's
// assumptions, and the detector's grouping of pieces and its notes: every
// outcome is a count of known objects or a figure with a known answer.
#include "check.hpp"
#include "scenes.hpp"

#include "conveyor_qc/belt_model.hpp"
#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/mask.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <vector>

using namespace cqc;
using namespace cqc::test;

namespace {

// Discs of radius r on a grid of pitch p (offset every other row), each with
// chips: about pi r^2 / p^2 of the view covered. Returns their centres.
std::vector<cv::Point> disc_grid(cv::Mat& img, int r, int pitch, const cv::Scalar& body = kCookie, int dx = 0) {
    std::vector<cv::Point> centres;
    for (int row = 0, y = pitch / 2; y + r < img.rows; y += pitch, ++row)
        for (int x = pitch / 2 + (row % 2) * pitch / 2 + dx; x + r < img.cols; x += pitch) {
            if (x - r < 0) continue;
            cookie(img, cv::Point(x, y), r, body);
            centres.emplace_back(x, y);
        }
    return centres;
}

// Light falling off toward the corners: 1 at the centre, 1 - strength at the corners.
cv::Mat vignette(const cv::Mat& img, double strength) {
    cv::Mat out(img.size(), img.type());
    const double cx = img.cols / 2.0, cy = img.rows / 2.0, far = cx * cx + cy * cy;
    for (int y = 0; y < img.rows; ++y)
        for (int x = 0; x < img.cols; ++x) {
            const double g = 1.0 - strength * ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / far;
            out.at<cv::Vec3b>(y, x) = img.at<cv::Vec3b>(y, x) * g;
        }
    return out;
}

cv::Mat grey(const cv::Mat& bgr) {
    cv::Mat g, out;
    cv::cvtColor(bgr, g, cv::COLOR_BGR2GRAY);
    cv::cvtColor(g, out, cv::COLOR_GRAY2BGR);
    return out;
}

std::vector<Detection> detections(const cv::Mat& mask, DetectParams dp = DetectParams()) {
    Detector detector(dp);
    std::vector<Detection> out;
    detector.detect(mask, cv::Rect(), 1.0, out);
    return out;
}

// How many of `centres` have exactly one detection whose box contains them,
// and how many detections contain none.
struct Tally {
    int found = 0, extra = 0;
};
Tally tally(const std::vector<Detection>& ds, const std::vector<cv::Point>& centres) {
    Tally t;
    for (const auto& c : centres) {
        int n = 0;
        for (const auto& d : ds) n += d.box.contains(cv::Point2f(c));
        t.found += n == 1;
    }
    for (const auto& d : ds) {
        bool any = false;
        for (const auto& c : centres) any = any || d.box.contains(cv::Point2f(c));
        t.extra += !any;
    }
    return t;
}

cv::Mat mask_of(MaskBuilder& builder, const cv::Mat& frame) {
    cv::Mat mask;
    builder.build(frame, mask);
    return mask;
}

}  // namespace

TEST_CASE("belt model: a belt half covered by products from the first frame") {
    cv::Mat clean = belt();
    const auto centres = disc_grid(clean, 30, 72);  // ~54% of the view
    MaskBuilder builder{MaskParams()};
    const cv::Mat mask = mask_of(builder, noisy(clean));
    const auto& s = builder.belt_model().stats();
    // The belt's colour, not the discs' (the discs cover more than half of the view).
    CHECK(std::abs(s.belt_lab[0] - 203.f) < 8.f);
    CHECK(s.object_share > 0.35f && s.object_share < 0.7f);
    const Tally t = tally(detections(mask), centres);
    CHECK_EQ(t.found, static_cast<int>(centres.size()));
    CHECK_EQ(t.extra, 0);
}

TEST_CASE("belt model: light 30% darker toward the corners is divided out") {
    cv::Mat clean = belt();
    const auto centres = disc_grid(clean, 24, 90, kBiscuit);  // light discs: close to the darkened corners
    const cv::Mat frame = noisy(vignette(clean, 0.3));
    MaskBuilder builder{MaskParams()};
    const cv::Mat mask = mask_of(builder, frame);
    const auto& s = builder.belt_model().stats();
    CHECK(s.light_range > 1.25f && s.light_range < 1.6f);  // 1 / 0.7 = 1.43
    const cv::Mat& gain = builder.belt_model().light_gain();
    CHECK(gain.at<float>(0, 0) > 1.2f * gain.at<float>(kFrame.height / 2, kFrame.width / 2));
    const Tally t = tally(detections(mask), centres);
    CHECK_EQ(t.found, static_cast<int>(centres.size()));
    CHECK_EQ(t.extra, 0);
}

TEST_CASE("belt model: a monochrome camera keeps grey products whose level is a shadow's") {
    // Discs at 0.6 of the belt's grey, each with its shadow: the old model took
    // every such pixel for shadow (the belt's chroma, darker) and found nothing.
    cv::Mat clean = belt();
    std::vector<cv::Point> centres;
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 2; ++j) {
            const cv::Point c(80 + 120 * i, 100 + 160 * j);
            shadow(clean, c + cv::Point(6, 5), cv::Size(34, 34), 0.75);
            cv::circle(clean, c, 32, kBelt * 0.6, cv::FILLED);
            centres.push_back(c);
        }
    MaskBuilder builder{MaskParams()};
    const cv::Mat mask = mask_of(builder, grey(noisy(clean)));  // a grey camera: B = G = R, noise and all
    CHECK(!builder.belt_model().stats().colour);
    const auto ds = detections(mask);
    const Tally t = tally(ds, centres);
    CHECK_EQ(t.found, 10);
    CHECK_EQ(t.extra, 0);
    // The shadow (0.75) is not taken for product: boxes stay within the disc and its shadow.
    for (const auto& d : ds) CHECK(d.box.width <= 2 * 32 + 1 + 8 && d.box.height <= 2 * 32 + 1 + 8);
}

TEST_CASE("belt model: rails of the products' own grey are fixtures, not objects") {
    // A monochrome view with rails along its top and bottom edges, as grey as
    // the products: learnt as fixtures from two learning frames, dropped.
    MaskBuilder builder(learning(2, 1));
    cv::Mat mask;
    std::vector<cv::Point> centres;
    for (int f = 0; f < 3; ++f) {
        cv::Mat clean = belt();
        clean(cv::Rect(0, 0, kFrame.width, 24)).setTo(kBelt * 0.6);
        clean(cv::Rect(0, kFrame.height - 24, kFrame.width, 24)).setTo(kBelt * 0.6);
        centres.clear();
        for (int i = 0; i < 4; ++i) {
            const cv::Point c(90 + 150 * i + 20 * f, 180);
            cv::circle(clean, c, 40, kBelt * 0.6, cv::FILLED);
            centres.push_back(c);
        }
        builder.build(grey(noisy(clean, 4.0, 100 + f)), mask);
    }
    const Tally t = tally(detections(mask), centres);
    CHECK_EQ(t.found, 4);
    CHECK_EQ(t.extra, 0);
    const cv::Mat& labels = builder.belt_model().learning_labels();
    CHECK_EQ(static_cast<int>(labels.at<std::uint8_t>(10, kFrame.width / 2)), 4);  // a fixture
}

TEST_CASE("belt model: a flickering light while it learns") {
    // Learning frames 12% darker and 10% brighter than the first: the belt's
    // colour is followed on each, no frame teaches the products' colours as belt.
    MaskBuilder builder(learning(4, 1));
    cv::Mat clean = belt();
    const auto centres = disc_grid(clean, 26, 110);
    cv::Mat mask;
    const double gains[4] = {1.0, 0.88, 1.1, 0.95};
    for (int f = 0; f < 4; ++f) builder.build(noisy(clean * gains[f], 4.0, 7 + f), mask);
    for (const double g : {0.88, 1.0, 1.1}) {
        builder.build(noisy(clean * g, 4.0, 99), mask);
        const Tally t = tally(detections(mask), centres);
        CHECK_EQ(t.found, static_cast<int>(centres.size()));
        CHECK_EQ(t.extra, 0);
    }
}

TEST_CASE("belt model: every frame from the first is classified, and the figures are sane") {
    cv::Mat clean = belt();
    const auto centres = disc_grid(clean, 28, 100);
    MaskBuilder builder{MaskParams()};
    const cv::Mat mask = mask_of(builder, noisy(clean));  // frame 1 of 8 learning frames
    CHECK(!builder.ready());
    const auto& s = builder.belt_model().stats();
    CHECK_EQ(s.frames_learnt, 1);
    for (int k = 0; k < 3; ++k) CHECK(s.belt_sigma[k] >= 3.f && s.belt_sigma[k] < 8.f);  // noise 4 per BGR channel
    CHECK(s.threshold >= 3.f);                                                           // sigmas
    CHECK(s.belt_region > 0.3f);
    CHECK(s.colour);
    CHECK(s.light_range < 1.05f);
    CHECK_EQ(tally(detections(mask), centres).found, static_cast<int>(centres.size()));
}

TEST_CASE("belt model: belt inside a ring of touching products stays belt") {
    // Rings of seven touching discs, each around a patch of belt larger than
    // a disc: the mask keeps the patch open, so the detector finds every disc
    // (filled, each ring would be one blob with no neck to cut at).
    cv::Mat clean = belt();
    std::vector<cv::Point> centres;
    for (const cv::Point ring : {cv::Point(170, 180), cv::Point(470, 180)}) {
        for (int k = 0; k < 7; ++k) {
            const double a = k * 2.0 * CV_PI / 7.0;
            const cv::Point c = ring + cv::Point(cvRound(66 * std::cos(a)), cvRound(66 * std::sin(a)));
            cookie(clean, c, 30);
            centres.push_back(c);
        }
    }
    MaskBuilder builder{MaskParams()};
    const cv::Mat mask = mask_of(builder, noisy(clean));
    CHECK_EQ(static_cast<int>(mask.at<std::uint8_t>(180, 170)), 0);
    CHECK_EQ(static_cast<int>(mask.at<std::uint8_t>(180, 470)), 0);
    Detector detector{DetectParams()};
    std::vector<Detection> out;
    for (int f = 0; f < 2; ++f) detector.detect(mask, cv::Rect(), 1.0, out);
    const Tally t = tally(out, centres);
    CHECK_EQ(t.found, static_cast<int>(centres.size()));
    CHECK_EQ(t.extra, 0);
}

TEST_CASE("belt model: a colour seen only in rows across the view while learning stays a product's") {
    // While the model learns, every white product lies in a row of touching
    // discs from one side of the view to the other, moving with the belt
    // (such rows teach nothing: they could be a rail or a seam), and a few white flecks lie alone on
    // the belt (too small to be products: the belt's). Afterwards a white
    // product alone on the belt is still a product: a few stray pixels are
    // no evidence that white is the belt.
    const cv::Scalar white(235, 235, 235);
    MaskBuilder builder{learning(4, 1)};
    for (int f = 0; f < 4; ++f) {
        cv::Mat scene = belt();
        for (int x = 0; x < kFrame.width + 46; x += 46) cookie(scene, cv::Point(x, 110 + 50 * f), 24, white);
        for (const cv::Point c : {cv::Point(80, 60), cv::Point(300, 70), cv::Point(520, 300)}) cookie(scene, c, 26);
        for (int k = 0; k < 6; ++k) cv::rectangle(scene, cv::Rect(40 + 100 * k, 300 - 4 * f, 4, 4), white, cv::FILLED);
        mask_of(builder, noisy(scene, 4.0, 100 + f));
    }
    cv::Mat frame = belt();
    std::vector<cv::Point> centres;
    for (const cv::Point c : {cv::Point(120, 90), cv::Point(320, 180), cv::Point(520, 270)}) {
        cookie(frame, c, 26, white);
        centres.push_back(c);
    }
    const cv::Mat mask = mask_of(builder, noisy(frame, 4.0, 7));
    for (const auto& c : centres) CHECK_EQ(static_cast<int>(mask.at<std::uint8_t>(c.y + 12, c.x - 12)), 255);
    const Tally t = tally(detections(mask), centres);
    CHECK_EQ(t.found, 3);
    CHECK_EQ(t.extra, 0);
}

TEST_CASE("belt model: a frame of another size is another camera, learnt afresh") {
    // A light belt learnt at 640x360, then a dark belt at 320x180 while still
    // learning: the second camera's belt is learnt from its own frames (never
    // an error, never the first camera's colours).
    MaskBuilder builder{MaskParams()};
    cv::Mat first = belt();
    disc_grid(first, 28, 100);
    mask_of(builder, noisy(first));
    CHECK_EQ(builder.belt_model().frame_size(), kFrame);
    cv::Mat second = belt(cv::Scalar(50, 45, 40));
    const auto centres = disc_grid(second, 28, 100, kBiscuit);
    cv::Mat small;
    cv::resize(noisy(second), small, cv::Size(kFrame.width / 2, kFrame.height / 2), 0, 0, cv::INTER_AREA);
    const cv::Mat mask = mask_of(builder, small);
    CHECK_EQ(mask.size(), small.size());
    CHECK_EQ(builder.belt_model().frame_size(), small.size());
    CHECK_EQ(builder.belt_model().stats().frames_learnt, 1);
    CHECK(builder.belt_model().stats().belt_lab[0] < 80.f);  // the dark belt's lightness
    std::vector<cv::Point> half;
    for (const auto& c : centres) half.emplace_back(c.x / 2, c.y / 2);
    const Tally t = tally(detections(mask), half);
    CHECK_EQ(t.found, static_cast<int>(half.size()));
    CHECK_EQ(t.extra, 0);
}

TEST_CASE("detector: pieces of a broken disc are one object, a small disc beside a whole one is not") {
    // Whole discs for the typical size; a disc broken along a line, its halves
    // 5 px apart; a small whole disc (half the area) touching nothing, 8 px
    // from a whole one: the halves group, the small disc stays itself.
    cv::Mat mask(360, 640, CV_8UC1, cv::Scalar(0));
    const int r = 30;
    for (int i = 0; i < 6; ++i) cv::circle(mask, cv::Point(50 + 90 * i, 50), r, 255, cv::FILLED);
    cv::circle(mask, cv::Point(150, 200), r, 255, cv::FILLED);
    mask(cv::Rect(148, 160, 5, 80)).setTo(0);  // the crack
    cv::circle(mask, cv::Point(400, 200), r, 255, cv::FILLED);
    cv::circle(mask, cv::Point(400 + r + 8 + 21, 200), 21, 255, cv::FILLED);
    Detector detector{DetectParams()};
    detector.explain(true);
    std::vector<Detection> out;
    detector.detect(mask, cv::Rect(), 1.0, out);  // the typical size from the whole discs
    detector.detect(mask, cv::Rect(), 1.0, out);
    const Tally t = tally(out, {cv::Point(150, 200), cv::Point(400, 200), cv::Point(459, 200)});
    CHECK_EQ(t.found, 3);
    CHECK_EQ(static_cast<int>(out.size()), 6 + 3);
    int grouped = 0;
    for (const auto& n : detector.notes()) grouped += n.outcome == ComponentNote::Outcome::Grouped;
    CHECK_EQ(grouped, 1);
    // Off, the halves are two objects.
    DetectParams off;
    off.group_gap = 0.0;
    Detector plain(off);
    plain.detect(mask, cv::Rect(), 1.0, out);
    plain.detect(mask, cv::Rect(), 1.0, out);
    CHECK_EQ(static_cast<int>(out.size()), 6 + 4);
}

namespace {

// A toy figure in a mask: body, head above it, two arms and two legs. With
// `gap` > 0 the head and the limbs lie that many pixels apart from the body
// (as a mask's opening leaves thin joints). Returns the body's centre.
cv::Point figure(cv::Mat& mask, cv::Point at, int gap = 0, bool raise_left_arm = false) {
    const cv::Rect body(at.x - 24, at.y - 34, 48, 68);
    cv::rectangle(mask, body, cv::Scalar(255), cv::FILLED);
    cv::circle(mask, cv::Point(at.x, body.y - 21 - gap), 22, cv::Scalar(255), cv::FILLED);
    const int top = body.y + 10;
    for (const int side : {-1, 1}) {
        const int sx = at.x + side * (24 + gap + 7);
        const int hand_y = side < 0 && raise_left_arm ? top - 50 : top + 45;
        cv::line(mask, cv::Point(sx, top), cv::Point(sx + side * 35, hand_y), cv::Scalar(255), 14);
        const int hip = at.x + side * 13, leg_y = body.y + body.height + gap + 9;
        cv::line(mask, cv::Point(hip, leg_y), cv::Point(hip + side * 12, leg_y + 55), cv::Scalar(255), 18);
    }
    return at;
}

}  // namespace

TEST_CASE("detector: figures with arms, legs and a head are one object each, touching ones still two") {
    // Six whole figures (two of them touching hand to hand) and two whose head
    // and limbs the mask cut off: eight objects, none cut into pieces, none
    // counted twice. The typical size comes from the figures, though none is
    // solid enough to be called compact.
    cv::Mat mask(300, 1400, CV_8UC1, cv::Scalar(0));
    std::vector<cv::Point> bodies;
    for (int i = 0; i < 6; ++i) bodies.push_back(figure(mask, cv::Point(90 + 165 * i, 130), 0, i == 3));
    bodies.push_back(figure(mask, cv::Point(90 + 165 * 6, 130), 5));
    bodies.push_back(figure(mask, cv::Point(90 + 165 * 7, 130), 5));
    // Figures 1 and 2 hand in hand.
    cv::line(mask, cv::Point(90 + 165 + 66, 163), cv::Point(90 + 330 - 66, 163), cv::Scalar(255), 10);
    Detector detector{DetectParams()};
    detector.explain(true);
    std::vector<Detection> out;
    for (int f = 0; f < 3; ++f) detector.detect(mask, cv::Rect(), 1.0, out);
    const Tally t = tally(out, bodies);
    CHECK_EQ(t.found, 8);
    CHECK_EQ(t.extra, 0);
    CHECK_EQ(static_cast<int>(out.size()), 8);
    CHECK(detector.last_typical() > 6000.f);  // a whole figure's area, not a head's or a leg's
    int crumbs_or_grouped = 0;
    for (const auto& n : detector.notes())
        crumbs_or_grouped += n.outcome == ComponentNote::Outcome::Grouped || n.outcome == ComponentNote::Outcome::Crumb;
    CHECK_EQ(crumbs_or_grouped, 2 * 5);  // each cut figure's head, arms and legs
}

TEST_CASE("detector: notes say what became of every component") {
    cv::Mat mask(200, 400, CV_8UC1, cv::Scalar(0));
    cv::circle(mask, cv::Point(60, 100), 30, 255, cv::FILLED);                  // one object
    cv::circle(mask, cv::Point(200, 100), 30, 255, cv::FILLED);                 // two touching:
    cv::circle(mask, cv::Point(255, 100), 30, 255, cv::FILLED);                 //   split
    cv::rectangle(mask, cv::Rect(340, 90, 6, 6), cv::Scalar(255), cv::FILLED);  // too small
    Detector detector{DetectParams()};
    detector.explain(true);
    std::vector<Detection> out;
    detector.detect(mask, cv::Rect(), 1.0, out);
    const auto& notes = detector.notes();
    CHECK_EQ(static_cast<int>(notes.size()), 3);
    CHECK(notes[0].outcome == ComponentNote::Outcome::One && notes[0].detections == 1);
    CHECK(notes[1].outcome == ComponentNote::Outcome::Split && notes[1].detections == 2);
    CHECK(notes[1].solidity < 0.93f && notes[1].peaks == 2);
    CHECK(notes[2].outcome == ComponentNote::Outcome::TooSmall && notes[2].first_detection == -1);
    CHECK_EQ(static_cast<int>(out.size()), 3);
    CHECK_EQ(notes[1].first_detection + notes[1].detections, 3);
}

TEST_CASE("detector: where the frame's side cuts touching objects, they are still cut apart") {
    // Two discs whose centres lie just outside the top edge, touching: the
    // visible parts make one component, whose neck the frame's edge would hide
    // if the distance transform took the edge for the object's outline.
    cv::Mat mask(200, 400, CV_8UC1, cv::Scalar(0));
    cv::circle(mask, cv::Point(150, -8), 40, 255, cv::FILLED);
    cv::circle(mask, cv::Point(228, -8), 40, 255, cv::FILLED);
    std::vector<Detection> out;
    Detector detector{DetectParams()};
    detector.detect(mask, cv::Rect(), 1.0, out);
    CHECK_EQ(static_cast<int>(out.size()), 2);
}
