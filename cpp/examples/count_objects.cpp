// Counting objects on a conveyor video with the C++ core alone (no Python):
//   count_objects VIDEO [kind]
// prints one line per object as it leaves, and the total counted at the
// counting line (the exit edge by default).
#include "conveyor_qc/pipeline.hpp"

#include <opencv2/videoio.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: count_objects VIDEO [none|kcf|csrt|mosse|medianflow|mil]\n";
        return 2;
    }
    cv::VideoCapture video(argv[1]);
    if (!video.isOpened()) {
        std::cerr << "cannot open " << argv[1] << "\n";
        return 1;
    }
    cqc::PipelineParams params;
    try {
        if (argc > 2) params.track.kind = cqc::tracker_kind_from_string(argv[2]);
        cqc::Pipeline pipeline(params);
        std::vector<cqc::FinishedTrack> done;
        cv::Mat frame;
        auto report = [&] {
            for (const auto& t : done) {
                std::cout << "object " << t.id << ": frames " << t.first_frame + 1 << "-" << t.last_frame + 1
                          << ", box " << t.best_box.width << "x" << t.best_box.height << "\n";
            }
            pipeline.recycle(done);  // read: their memory serves the next objects
        };
        while (video.read(frame)) {
            pipeline.process(frame);
            pipeline.take_finished(done);
            report();
        }
        const int counted = pipeline.finish().counted;
        pipeline.take_finished(done);
        report();
        std::cout << counted << " objects counted at the line in " << pipeline.frames_processed() << " frames\n";
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
