// The whole per-frame job of the core: downscale, build the mask, find
// components, track, count at the counting line. Usable from C++ with no
// Python at all:
//
//     cqc::Pipeline pipeline(cqc::PipelineParams{});
//     cv::Mat frame;
//     std::vector<cqc::FinishedTrack> done;
//     while (video.read(frame)) {
//         const cqc::FrameResult& r = pipeline.process(frame);
//         for (const auto& t : r.tracks) if (t.confirmed) draw(t.id, t.box);
//         for (int id : r.crossed) tally(id);   // counted at the line on this frame
//         pipeline.take_finished(done);
//         for (const auto& f : done) report(f);
//         pipeline.recycle(done);               // optional: their memory serves the next objects
//     }
//     const cqc::FrameResult& end = pipeline.finish();  // end.crossed: counted at the stream end
//     // end.counted: objects counted at the line in all
//
// With track.direction = auto (the default), the belt's direction is read
// from the first frames (direction.hpp: usually the second or third on a
// moving belt; detection runs on every frame meanwhile, whatever X). Until it
// is known, a tracker per direction runs on
// the same detections with confirmation held: FrameResult::tracks are those
// of the direction leading so far, none confirmed, and nothing is counted.
// Once it is known, that direction's tracker goes on alone: its tracks keep
// their history from the first frame, and those seen long enough are
// confirmed on that frame. Objects that have already left the view by then
// are not counted (on a moving belt: the few that were leaving at the start).
#pragma once

#include "conveyor_qc/counter.hpp"
#include "conveyor_qc/detector.hpp"
#include "conveyor_qc/direction.hpp"
#include "conveyor_qc/downscale.hpp"
#include "conveyor_qc/mask.hpp"
#include "conveyor_qc/tracker.hpp"
#include "conveyor_qc/types.hpp"

#include <memory>
#include <vector>

namespace cqc {

struct PipelineParams {
    MaskParams mask;
    DetectParams detect;
    TrackParams track;
    CountParams count;
    void validate() const;
};

struct FrameResult {
    int frame_index = 0;                // 0-based
    bool detection_frame = false;       // detection ran on this frame
    std::vector<TrackState> tracks;     // live tracks (confirmed and not)
    std::vector<Detection> detections;  // this frame's detections (empty when none ran)
    int count = 0;                      // confirmed objects so far
    std::vector<int> crossed;           // ids counted at the counting line on this frame
    int counted = 0;                    // objects counted at the counting line so far
};

class Pipeline {
  public:
    explicit Pipeline(const PipelineParams& params);  // validates; throws ParamError

    // Process the next frame (BGR, CV_8UC3, same size as the first frame;
    // otherwise InputError). The result stays valid until the next call.
    const FrameResult& process(const cv::Mat& bgr);

    // Tracks that ended since the last call, moved into `out` (appended).
    // The counting line has already seen them.
    void take_finished(std::vector<FinishedTrack>& out);

    // Hand finished tracks back once read (`done` is left empty): their
    // memory serves the next objects, so that the core allocates nothing in
    // the steady state (MultiTracker::recycle). Optional.
    void recycle(std::vector<FinishedTrack>& done);

    // End of stream: every live confirmed track becomes finished (take them
    // with take_finished). Returns the last frame's result with no live
    // tracks, `crossed` the ids counted at the stream end, and `counted` the
    // final count. Further calls do nothing more.
    const FrameResult& finish();

    const PipelineParams& params() const { return params_; }
    const MaskBuilder& mask_builder() const { return mask_; }
    const LineCounter& counter() const { return counter_; }
    // The mask of the last detection frame (downscaled frame size).
    const cv::Mat& last_mask() const { return mask_img_; }
    // The last frame processed, downscaled by R (track.downscale) as process()
    // does it, into `dst` (allocated when its size or type differs): a copy of
    // the core's own when that frame needed one (a detection frame, an OpenCV
    // tracker), else made now from `bgr`, which must be that same frame. An
    // annotated video at R's size takes its frames from here, without a second
    // resize of the full frame (~1 ms at 1080p, most of it reading the frame
    // back from memory once it has left the cache).
    void downscaled(const cv::Mat& bgr, cv::Mat& dst);
    // The size of the frames process() downscales to (empty before the first).
    cv::Size downscaled_size() const;
    int frames_processed() const { return next_frame_; }
    // The belt's direction: track.direction, or with auto the direction read
    // from the footage once it is known (Direction::Auto until then).
    Direction direction() const { return direction_; }

  private:
    PipelineParams params_;
    MaskBuilder mask_;
    Detector detector_;
    Direction direction_;
    std::unique_ptr<MultiTracker> tracker_;                  // null while the direction is being read
    std::unique_ptr<DirectionFinder> finder_;                // while the direction is being read
    std::vector<std::unique_ptr<MultiTracker>> candidates_;  // one per direction, meanwhile
    std::vector<Detection> reading_dets_;                    // detections the trackers do not get (finder only)
    LineCounter counter_;
    cv::Size frame_size_;
    int next_frame_ = 0;
    cv::Mat small_, mask_img_, downscale_scratch_;
    int small_frame_ = -1;  // the index of the frame small_ holds (-1: none)
    cv::Mat no_frame_;      // stays empty: what the tracker gets on frames that need no downscale (empty)
    FrameResult result_;
    std::vector<FinishedTrack> ended_;     // tracks that ended on this frame (scratch)
    std::vector<FinishedTrack> finished_;  // ended and counted, not yet taken
    void count_frame(bool stream_end);
    void adopt(Direction d);
};

}  // namespace cqc
