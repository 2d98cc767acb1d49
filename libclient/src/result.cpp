// The result accessors of the C API. Each one accepts a NULL result and any
// row/column number: out of range gives the documented default, never UB.
#include "result.hpp"

#include <climits>
#include <cstddef>

#include "regiond/client.h"

namespace regiond::client {

ResultPtr make_result(shm::Response&& response) {
    auto r = std::make_unique<rgd_result>();
    r->response = std::move(response);
    return r;
}

ResultPtr make_error(std::string message, std::string served_by) {
    auto r = std::make_unique<rgd_result>();
    r->response.status = shm::Status::error;
    r->response.error = std::move(message);
    r->response.served_by = std::move(served_by);
    r->response.affected = -1;
    return r;
}

namespace {

// The message rgd_error gives for a NULL result: queries return NULL only when
// they could not allocate a result.
constexpr const char* kNullResultError = "no result (out of memory)";

bool ok(const rgd_result* r) noexcept {
    return r != nullptr && r->response.status == shm::Status::ok;
}

int clamp_int(std::size_t n) noexcept {
    return n > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
}

}  // namespace

}  // namespace regiond::client

using regiond::client::clamp_int;
using regiond::client::kNullResultError;

extern "C" {

RGD_API int rgd_ok(const rgd_result* r) {
    return regiond::client::ok(r) ? 1 : 0;
}

RGD_API const char* rgd_error(const rgd_result* r) {
    if (r == nullptr) return kNullResultError;
    if (regiond::client::ok(r)) return "";
    // An error without a message would read as success to a careless caller.
    if (r->response.error.empty()) return "regiond reported an error without a message";
    return r->response.error.c_str();
}

RGD_API const char* rgd_sqlstate(const rgd_result* r) {
    if (r == nullptr) return "";
    return r->response.sqlstate;  // NUL-terminated, "" if none (codec.hpp)
}

RGD_API int rgd_nrows(const rgd_result* r) {
    return r == nullptr ? 0 : clamp_int(r->response.nrows());
}

RGD_API int rgd_ncols(const rgd_result* r) {
    return r == nullptr ? 0 : clamp_int(r->response.ncols());
}

RGD_API const char* rgd_colname(const rgd_result* r, int col) {
    if (r == nullptr || col < 0 || static_cast<std::size_t>(col) >= r->response.ncols()) return nullptr;
    return r->response.columns[static_cast<std::size_t>(col)].c_str();
}

RGD_API const char* rgd_value(const rgd_result* r, int row, int col) {
    if (r == nullptr || row < 0 || col < 0) return nullptr;
    const auto urow = static_cast<std::size_t>(row);
    const auto ucol = static_cast<std::size_t>(col);
    if (urow >= r->response.nrows() || ucol >= r->response.ncols()) return nullptr;
    return r->response.value_cstr(urow, ucol);
}

RGD_API long long rgd_affected(const rgd_result* r) {
    if (r == nullptr) return -1;
    return static_cast<long long>(r->response.affected);
}

RGD_API const char* rgd_token(const rgd_result* r) {
    return r == nullptr ? "" : r->response.token.c_str();
}

RGD_API const char* rgd_served_by(const rgd_result* r) {
    return r == nullptr ? "" : r->response.served_by.c_str();
}

RGD_API const char* rgd_route_reason(const rgd_result* r) {
    // Kept for errors too: where a failed request went is half of what to do about it.
    return r == nullptr ? "" : r->response.route_reason.c_str();
}

RGD_API void rgd_free(rgd_result* r) {
    delete r;
}

}  // extern "C"
