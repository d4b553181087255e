// Internal helpers shared by the parameter structs' validate() and the enum
// parsers: one message format for every bad setting,
// "<section>.<field> must be <range>, got <value>".
#pragma once

#include <string>

namespace cqc::detail {

// Shortest decimal form of a number, as messages quote it ("0.5", "1e+09").
std::string format_number(double v);

[[noreturn]] void param_error(const char* section, const std::string& field, const std::string& range, double got);

// Lower case, '-' read as '_': enum names are matched this way.
std::string normalise_name(const std::string& s);

}  // namespace cqc::detail
