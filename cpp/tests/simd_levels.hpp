// Every SIMD level in turn (conveyor_qc/simd.hpp): the tests that hold a
// kernel to OpenCV's bytes run once per level this CPU supports, so that the
// plain C++ loops are held to them on whole rows too, not only on the tail a
// vector path leaves. A level the CPU lacks is skipped with a line saying so.
#pragma once

#include "check.hpp"

#include "conveyor_qc/simd.hpp"

#include <iostream>

namespace cqc::test {

// Forces a level for its lifetime; the level in force before is back on the
// way out, a failure or not.
class ForcedSimdLevel {
  public:
    explicit ForcedSimdLevel(SimdLevel level) { force_simd_level(level); }
    ~ForcedSimdLevel() { force_simd_level(before_); }
    ForcedSimdLevel(const ForcedSimdLevel&) = delete;
    ForcedSimdLevel& operator=(const ForcedSimdLevel&) = delete;

  private:
    SimdLevel before_ = simd_level();  // initialised before the constructor's body runs
};

// Runs check(level) with each level forced in turn, the lowest first. A
// failure names the level it happened at.
template <class Check>
void at_every_simd_level(Check&& check) {
    for (const SimdLevel level : {SimdLevel::Scalar, SimdLevel::SSE2, SimdLevel::SSSE3, SimdLevel::AVX2}) {
        if (level > simd_supported()) {
            std::cout << "     skipped at SIMD level " << to_string(level) << ": not on this CPU\n";
            continue;
        }
        const ForcedSimdLevel forced(level);
        try {
            check(level);
        } catch (const check::Failure& f) {
            throw check::Failure{f.what + " (at SIMD level " + to_string(level) + ")"};
        }
    }
}

}  // namespace cqc::test

// A TEST_CASE whose body runs at every SIMD level (at_every_simd_level).
#define TEST_CASE_AT_EVERY_SIMD_LEVEL(name)                                                        \
    static void CHECK_CAT(simd_body_, __LINE__)();                                                 \
    TEST_CASE(name) {                                                                              \
        cqc::test::at_every_simd_level([](cqc::SimdLevel) { CHECK_CAT(simd_body_, __LINE__)(); }); \
    }                                                                                              \
    static void CHECK_CAT(simd_body_, __LINE__)()
