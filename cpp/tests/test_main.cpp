#include "check.hpp"

#include <exception>

int main() {
    int passed = 0, failed = 0;
    for (const auto& c : check::registry()) {
        try {
            c.body();
            ++passed;
            std::cout << "ok   " << c.name << "\n";
        } catch (const check::Failure& f) {
            ++failed;
            std::cout << "FAIL " << c.name << "\n     " << f.what << "\n";
        } catch (const std::exception& e) {
            ++failed;
            std::cout << "FAIL " << c.name << "\n     unexpected exception: " << e.what() << "\n";
        }
    }
    std::cout << passed << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}
