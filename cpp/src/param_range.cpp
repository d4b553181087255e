#include "conveyor_qc/param_range.hpp"

#include "params_check.hpp"

#include <cmath>

namespace cqc {

bool ParamRange::holds() const {
    const bool above_lo = lo_open_ ? value_ > lo_ : value_ >= lo_;
    const bool below_hi = hi_open_ ? value_ < hi_ : value_ <= hi_;
    return above_lo && below_hi && !(odd_ && std::fmod(value_, 2.0) == 0.0);
}

std::string ParamRange::requirement(bool values) const {
    const auto bound = [values](double v, const char* name) {
        if (name == nullptr) return detail::format_number(v);
        return values ? std::string(name) + "=" + detail::format_number(v) : std::string(name);
    };
    return std::string(odd_ ? "odd in " : "in ") + (lo_open_ ? "(" : "[") + bound(lo_, lo_field_) + ", " +
           bound(hi_, hi_field_) + (hi_open_ ? ")" : "]");
}

void ParamRange::check(const char* section) const {
    if (!holds()) detail::param_error(section, field_, requirement(), value_);
}

}  // namespace cqc
