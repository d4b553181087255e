// A minimal test harness for the core's C++ tests: no dependency, readable
// failures, and a closing line "N passed, N failed" that CI understands.
#pragma once

#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace check {

struct Failure {
    std::string what;
};

struct Case {
    const char* name;
    std::function<void()> body;
};

inline std::vector<Case>& registry() {
    static std::vector<Case> cases;
    return cases;
}

struct Register {
    Register(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST_CASE(name)                                                                         \
    static void CHECK_CAT(test_fn_, __LINE__)();                                                \
    static check::Register CHECK_CAT(test_reg_, __LINE__)(name, CHECK_CAT(test_fn_, __LINE__)); \
    static void CHECK_CAT(test_fn_, __LINE__)()

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            std::ostringstream os_;                                            \
            os_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed"; \
            throw check::Failure{os_.str()};                                   \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                                                           \
    do {                                                                                                         \
        const auto va_ = (a);                                                                                    \
        const auto vb_ = (b);                                                                                    \
        if (!(va_ == vb_)) {                                                                                     \
            std::ostringstream os_;                                                                              \
            os_ << __FILE__ << ":" << __LINE__ << ": CHECK_EQ(" #a ", " #b ") failed: " << va_ << " != " << vb_; \
            throw check::Failure{os_.str()};                                                                     \
        }                                                                                                        \
    } while (0)

#define CHECK_THROWS(expr, type)                                                      \
    do {                                                                              \
        bool thrown_ = false;                                                         \
        try {                                                                         \
            expr;                                                                     \
        } catch (const type&) {                                                       \
            thrown_ = true;                                                           \
        }                                                                             \
        if (!thrown_) {                                                               \
            std::ostringstream os_;                                                   \
            os_ << __FILE__ << ":" << __LINE__ << ": " #expr " did not throw " #type; \
            throw check::Failure{os_.str()};                                          \
        }                                                                             \
    } while (0)
