// A value, or a message saying what is wrong with the input and what would be
// right. The pure parsers of this library return it instead of throwing, so a
// caller can collect every problem in one pass. (std::expected is C++23; g++ 12
// offers it only under -std=c++2b.)
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace regiond::config {

template <typename T>
class Parsed {
public:
    static Parsed ok(T value) {
        Parsed parsed;
        parsed.value_ = std::move(value);
        return parsed;
    }

    static Parsed fail(std::string message) {
        assert(!message.empty());
        Parsed parsed;
        parsed.error_ = std::move(message);
        return parsed;
    }

    [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }

    // Precondition: has_value().
    [[nodiscard]] const T& value() const& noexcept {
        assert(value_.has_value());
        return *value_;
    }
    [[nodiscard]] T&& value() && noexcept {
        assert(value_.has_value());
        return std::move(*value_);
    }

    // Empty when has_value().
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

private:
    Parsed() = default;

    std::optional<T> value_;
    std::string error_;
};

}  // namespace regiond::config
