// rgd_result: an immutable decoded response. Accessors are in result.cpp (C API).
//
// Every result, also a client-side error, is a shm::Response: the values live
// NUL-terminated in its arena, so rgd_value hands out pointers without copying.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "shm/codec.hpp"

struct rgd_result {
    regiond::shm::Response response;
};

namespace regiond::client {

using ResultPtr = std::unique_ptr<rgd_result>;

/// A successful result carrying `response` as decoded.
ResultPtr make_result(shm::Response&& response);

/// An error result made by the client (no round trip, or the round trip failed).
/// `served_by` says where it failed, "" when nowhere in particular.
ResultPtr make_error(std::string message, std::string served_by = {});

}  // namespace regiond::client
