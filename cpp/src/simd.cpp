#include "conveyor_qc/simd.hpp"

#include "conveyor_qc/types.hpp"

#include "params_check.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace cqc {

namespace {

constexpr SimdLevel kLevels[] = {SimdLevel::Scalar, SimdLevel::SSE2, SimdLevel::SSSE3, SimdLevel::AVX2};

SimdLevel detect() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();  // needed when the first call comes from a static constructor
    if (__builtin_cpu_supports("avx2")) return SimdLevel::AVX2;  // also checks that the OS saves YMM registers
    if (__builtin_cpu_supports("ssse3")) return SimdLevel::SSSE3;
    if (__builtin_cpu_supports("sse2")) return SimdLevel::SSE2;
#endif
    return SimdLevel::Scalar;
}

// CQC_SIMD, matched without a std::string: the first call may come from a
// frame, and a frame allocates nothing.
bool same_name(const char* value, const char* name) {
    for (; *value && *name; ++value, ++name)
        if (std::tolower(static_cast<unsigned char>(*value)) != *name) return false;
    return *value == *name;
}

SimdLevel from_environment(SimdLevel supported) {
    const char* value = std::getenv("CQC_SIMD");
    if (!value || !*value) return supported;
    for (const SimdLevel level : kLevels)
        if (same_name(value, to_string(level))) return std::min(level, supported);
    std::fprintf(stderr, "conveyor_qc: CQC_SIMD=%s is none of scalar, sse2, ssse3, avx2: ignored\n", value);
    return supported;
}

struct Levels {
    const SimdLevel supported = detect();
    const SimdLevel start = from_environment(supported);
    std::atomic<int> in_force{static_cast<int>(start)};
};

// Built at the first call, in whichever thread (a function's static is
// initialised once, thread-safely).
Levels& levels() {
    static Levels l;
    return l;
}

}  // namespace

const char* to_string(SimdLevel level) {
    switch (level) {
        case SimdLevel::Scalar:
            return "scalar";
        case SimdLevel::SSE2:
            return "sse2";
        case SimdLevel::SSSE3:
            return "ssse3";
        case SimdLevel::AVX2:
            return "avx2";
    }
    return "scalar";
}

SimdLevel simd_level_from_string(const std::string& s) {
    const std::string v = detail::normalise_name(s);
    for (const SimdLevel level : kLevels)
        if (v == to_string(level)) return level;
    throw ParamError("SIMD level must be one of scalar, sse2, ssse3, avx2, got '" + s + "'");
}

SimdLevel simd_level() {
    return static_cast<SimdLevel>(levels().in_force.load(std::memory_order_relaxed));
}

SimdLevel simd_supported() {
    return levels().supported;
}

void force_simd_level(SimdLevel level) {
    Levels& l = levels();
    l.in_force.store(static_cast<int>(std::min(level, l.supported)), std::memory_order_relaxed);
}

void reset_simd_level() {
    Levels& l = levels();
    l.in_force.store(static_cast<int>(l.start), std::memory_order_relaxed);
}

}  // namespace cqc
