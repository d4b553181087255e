// The one place where the core chooses its hand-written vector code. A kernel
// with such code (the 3x3 median, the belt model's light division and colour
// table, the distance transform, the half-size downscale, the scans of mask
// rows for runs and their packing to bits) asks simd_level() once per call and takes the best
// path that level allows; its plain C++ loops do the rest of
// each row, and alone they give the same bytes (what builds for other CPUs
// run). The tests hold every path to OpenCV's output by forcing each level in
// turn (cpp/tests/simd_levels.hpp).
//
// The level in force is the best the CPU supports, detected once, lowered by
// the environment variable CQC_SIMD (read once, at the first call) or by
// force_simd_level(). To rule out a bug in the vector code, run with
//
//     CQC_SIMD=scalar conveyor-qc run clip.mp4 ...
//
// CQC_SIMD takes scalar, sse2, ssse3 or avx2 (any case); a level above the
// CPU's means the CPU's best; any other value is reported on stderr once and
// ignored.
#pragma once

#include <string>

namespace cqc {

// Instruction sets the core's vector code is written for, in order: each
// level includes the ones before it (a kernel with SSSE3 code and none for
// AVX2 takes the SSSE3 code at AVX2). Only x86 builds have vector code;
// elsewhere the level is Scalar.
enum class SimdLevel {
    Scalar = 0,  // plain C++ (which the compiler may still vectorise for the build's baseline)
    SSE2 = 1,    // x86-64's baseline: the median, and the scans and bit packing of masks, 16 bytes at a time
    SSSE3 = 2,   // pshufb: the colour table's and the downscale's channel gathers
    AVX2 = 3,    // 32-byte vectors: the median, the downscale, the distance transform's minima, the light's division
};

const char* to_string(SimdLevel level);                  // "scalar", "sse2", "ssse3", "avx2"
SimdLevel simd_level_from_string(const std::string& s);  // throws ParamError

// The level in force: the kernels' one question (a relaxed atomic load).
SimdLevel simd_level();
// The best level this CPU supports (and this build has code for), detected once.
SimdLevel simd_supported();

// For tests and benchmarks: run every kernel at `level` (at most the CPU's
// best, simd_supported()) from the next call on, in every thread; this
// overrides CQC_SIMD. Not meant to be called while frames are being
// processed: a frame in progress may mix levels (each level gives the same
// bytes, so its output is still right).
void force_simd_level(SimdLevel level);
// Back to the level the process started with (CQC_SIMD applies again).
void reset_simd_level();

}  // namespace cqc
