// A multi-object tracker over OpenCV's single-object trackers, as the seed
// describes it, plus a tracker-free mode.
//
// How a frame is handled (MultiTracker::update):
//  1. every live track is moved: by its OpenCV tracker (KCF, CSRT, ...) on the
//     downscaled frame, or, with TrackerKind::None, by its predicted motion;
//  2. on a detection frame, detections are matched one-to-one to tracks by the
//     distance between centroids (Hungarian assignment, gated by max_distance);
//     a matched track takes the detection's box when the tracker has none
//     (None mode) or when the detection is larger while the object is still
//     entering (grow_ratio); an unmatched detection in the entry strip starts
//     a new track;
//  3. a track ends when its box has left through the exit edge (judged from
//     its motion, never from the OpenCV tracker, which keeps saying "found"
//     after the object has gone) or after max_misses frames without being seen.
#pragma once

#include "conveyor_qc/param_range.hpp"
#include "conveyor_qc/types.hpp"

#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cqc {

enum class TrackerKind { None, KCF, CSRT, MOSSE, MedianFlow, MIL };
const char* to_string(TrackerKind k);
TrackerKind tracker_kind_from_string(const std::string& s);
// Every kind, in the order messages and docs/settings.md list them.
inline constexpr TrackerKind kTrackerKinds[] = {TrackerKind::None,  TrackerKind::KCF,        TrackerKind::CSRT,
                                                TrackerKind::MOSSE, TrackerKind::MedianFlow, TrackerKind::MIL};

struct TrackParams {
    // Which OpenCV single-object tracker follows each object. None: no OpenCV
    // tracker at all; objects move by their velocity along the belt between
    // detections and are matched by predicted position.
    TrackerKind kind = TrackerKind::None;
    // R: every frame is downscaled by this before tracking and detection.
    double downscale = 0.5;
    // X: detection runs once every X frames; in between, each object follows
    // its OpenCV tracker or, in None mode, its velocity. Objects on a belt move
    // predictably: X = 2 halves the cost of detection and counted the same on
    // every synthetic preset (MOTA 0.004 lower than X = 1, box precision
    // between detections). The seed used X = 20 with KCF, whose tracker
    // carries objects between detections; in None mode keep X small (an object
    // entering is only seen growing on detection frames).
    int detect_every = 2;
    // Fraction of the frame along the belt, from the entry edge, where new
    // objects are detected (with an OpenCV tracker) and where new tracks may
    // start (all modes).
    double entry_strip = 0.35;
    // How the belt moves in the image. Auto (the default): the Pipeline reads
    // it from the motion of the first objects (direction.hpp) before it
    // counts anything; MultiTracker::create needs one of the other four.
    Direction direction = Direction::Auto;
    // Largest distance, in full-resolution pixels, between a track's predicted
    // centroid and a detection's centroid for them to be the same object.
    double max_distance = 60.0;
    // A track ends after this many consecutive frames without being seen
    // (tracker failure, or no matching detection in None mode).
    int max_misses = 4;
    // A track is counted (and numbered) once it has been seen on this many
    // frames and has been wholly in view; one that never is (wider than the
    // view, along a side edge) is counted when it leaves, or when it is lost
    // with its box at the exit edge (its last sliver is too small to be
    // detected).
    int min_hits = 3;
    // While an object enters, its box is replaced by a detection this many
    // times larger (area).
    double grow_ratio = 1.15;
    // A box within this many full-resolution pixels of a frame edge touches it.
    double edge_margin = 2.0;
    // Two live tracks whose boxes overlap by more than this IoU follow the same
    // object; the younger one is dropped.
    double duplicate_iou = 0.6;
    // Update OpenCV trackers on several threads (they are independent).
    bool parallel = true;

    // The numeric fields' allowed values; validate() also checks the enums.
    std::vector<ParamRange> ranges() const {
        using R = ParamRange;
        return {
            R("downscale", downscale).above(0).at_most(1),
            R("detect_every", detect_every).at_least(1).at_most(1000),
            R("entry_strip", entry_strip).above(0).at_most(1),
            R("max_distance", max_distance).above(0).at_most(1e5),
            R("max_misses", max_misses).at_least(0).at_most(1000),
            R("min_hits", min_hits).at_least(1).at_most(1000),
            R("grow_ratio", grow_ratio).at_least(1).at_most(10),
            R("edge_margin", edge_margin).at_least(0).at_most(100),
            R("duplicate_iou", duplicate_iou).above(0).at_most(1),
        };
    }
    void validate() const;  // throws ParamError naming "track.<field>"
};

// An object's motion along the belt, measured when its track ends
// (crossing.hpp).
struct BeltMotion {
    float speed = 0.f;   // px per frame along the belt; 0: unknown
    float centre = 0.f;  // its centre along the belt on its last frame, px from the entry edge
};

// A live track as the caller sees it after a frame.
struct TrackState {
    int key = 0;                // internal number of every track, confirmed or not (ids go to confirmed ones only)
    int id = 0;                 // stable number; confirmed tracks are numbered 1, 2, 3... in order of confirmation
    cv::Rect2f box;             // current box (visible part, clipped to the frame), full resolution
    bool confirmed = false;     // seen on >= min_hits frames; unconfirmed tracks have id 0 and are never reported
    bool whole = false;         // box touches no frame edge: the whole object is in view
    bool best_updated = false;  // this frame's box became the track's best (largest whole) box
    bool detected = false;      // a detection matched this track on this frame
    bool entering = false;      // its box is still the visible part of an entering object (full size unknown)
};

// One box of a track's history.
struct TrackPoint {
    int frame = 0;  // 0-based frame index
    cv::Rect2f box;
    // The box was seen on this frame (a detection matched it, or its OpenCV
    // tracker found it), not only moved on by the track's predicted motion.
    bool seen = true;
};

// A track that has ended (left the frame, was lost, or the stream ended).
struct FinishedTrack {
    int key = 0;  // the TrackState::key it had while live
    int id = 0;
    int first_frame = 0;
    int last_frame = 0;
    std::vector<TrackPoint> history;  // one point per frame the track was live
    cv::Rect2f best_box;              // largest box seen while whole in view (largest box at all if never whole)
    int best_frame = 0;
    bool ever_whole = false;
    Detection shape;  // the largest detection matched to the track (shape figures)
    // Its motion along the belt when it ended (crossing.hpp, measure_motion):
    // where a gate downstream of the view will see it.
    BeltMotion motion;
    enum class End { Exited, Lost, StreamEnd } end = End::Exited;
};

class MultiTracker {
  public:
    static std::unique_ptr<MultiTracker> create(const TrackParams& params);  // validates
    virtual ~MultiTracker() = default;

    // Advance by one frame.
    //  frame_index: 0-based index of this frame
    //  small: the frame downscaled by params().downscale (BGR, CV_8UC3)
    //  full_size: size of the full-resolution frame
    //  detections: this frame's detections in full-resolution pixels, or
    //              nullptr when this is not a detection frame
    virtual void update(int frame_index, const cv::Mat& small, cv::Size full_size,
                        const std::vector<Detection>* detections) = 0;

    // Whether update() wants detections on this frame.
    virtual bool is_detection_frame(int frame_index) const = 0;

    // Where detection should look on this frame, in pixels of a frame of
    // `size` (the downscaled frame); an empty rect means everywhere. Without
    // an OpenCV tracker, and on the first detection frame (objects already on
    // the belt), everywhere; otherwise the entry strip, grown to cover the
    // objects still entering, whose full box only a detection clear of the
    // entry edge can give.
    virtual cv::Rect detection_roi(cv::Size size) const = 0;

    // Live tracks after the last update (confirmed and unconfirmed).
    virtual const std::vector<TrackState>& tracks() const = 0;

    // Tracks confirmed and ended since the last call (moved out).
    virtual void take_finished(std::vector<FinishedTrack>& out) = 0;

    // Give finished tracks back once read: their histories' memory serves the
    // next tracks, so that a steady stream of objects allocates nothing.
    // `done` is left empty. Optional: finished tracks that are not given back
    // only cost a new history per track.
    virtual void recycle(std::vector<FinishedTrack>& done) = 0;

    // End every live track (end of stream). Confirmed ones become finished.
    virtual void finish_all() = 0;

    // Number of confirmed tracks so far (finished and live): the running count.
    virtual int confirmed_count() const = 0;

    // While held, no track is confirmed (none gets an id, none is reported
    // finished); tracks keep their hits, and those that qualify are confirmed
    // on the first update after the hold is lifted. The Pipeline holds the
    // trackers it runs while the belt's direction is not known yet.
    virtual void hold_confirmation(bool held) = 0;

    virtual const TrackParams& params() const = 0;
};

}  // namespace cqc
