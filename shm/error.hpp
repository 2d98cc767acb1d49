// Error values for the shm building blocks (no exceptions cross these APIs).
//
// C++20 has no std::expected; Expected<T> below is the small subset we need.
// An Error carries the errno (0 when not a system error) and a message that says
// what failed and, where we know it, what to do about it.
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace regiond::shm {

struct Error {
    int code = 0;         ///< errno value, or 0 for a validation error
    std::string message;  ///< complete sentence for a log line or an API error

    static Error system(int errno_value, std::string what);  // appends strerror
    static Error invalid(std::string what) { return Error{0, std::move(what)}; }
};

template <class T>
class [[nodiscard]] Expected {
public:
    Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT
    Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & {
        check();
        return std::get<0>(v_);
    }
    const T& value() const& {
        check();
        return std::get<0>(v_);
    }
    T&& value() && {
        check();
        return std::get<0>(std::move(v_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { return std::get<1>(v_); }

private:
    void check() const {
        if (v_.index() != 0) std::abort();  // value() of an error: a programming bug
    }
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Expected<void> {
public:
    Expected() = default;
    Expected(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error& error() const { return error_; }

private:
    Error error_;
    bool ok_ = true;
};

}  // namespace regiond::shm
