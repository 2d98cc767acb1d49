// libregiond for C++ (C++20): a header-only wrapper over the C API of
// <regiond/client.h>, and nothing else.
//
//     regiond::Client db = regiond::Client::connect();          // $REGIOND_SOCKET or the default
//     if (!db) { std::cerr << db.connect_error() << '\n'; return 1; }
//     regiond::Result r = db.read_local("select id, name from users where id = $1", {"42"});
//     if (!r) { std::cerr << r.error() << " (" << r.sqlstate() << ")\n"; return 1; }
//     for (regiond::Row row : r)
//         std::cout << row[0].value_or("NULL") << ' ' << row[1].value_or("NULL") << '\n';
//
// Ownership is unique (move-only RAII). Nothing here throws except std::bad_alloc
// from copying arguments, and Result::value_or_throw(), which throws on request.
// Parameters are std::optional<std::string_view> (nullopt = SQL NULL); they are
// passed to C as NUL-terminated copies, so a value must not contain a NUL byte.
// A Client may be shared by several threads (like rgd_client); a Result is a
// plain value (read it from one thread at a time, or only read it).
#ifndef REGIOND_CLIENT_HPP
#define REGIOND_CLIENT_HPP

#include <regiond/client.h>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace regiond {

/// A parameter or value: nullopt is SQL NULL.
using Value = std::optional<std::string_view>;
using Params = std::span<const Value>;
using ParamList = std::initializer_list<Value>;
using Keys = std::span<const std::string_view>;
using KeyList = std::initializer_list<std::string_view>;

class Result;

/// Thrown only by Result::value_or_throw().
class Error : public std::runtime_error {
public:
    Error(const std::string& message, std::string sqlstate)
        : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
    const std::string& sqlstate() const noexcept { return sqlstate_; }

private:
    std::string sqlstate_;
};

/// One row of a Result, valid while the Result lives.
class Row {
public:
    Row(const rgd_result* result, int index) noexcept : result_(result), index_(index) {}
    /// nullopt for SQL NULL (and for a column out of range).
    Value operator[](int col) const noexcept {
        const char* v = rgd_value(result_, index_, col);
        return v == nullptr ? Value{} : Value{std::string_view(v)};
    }
    int size() const noexcept { return rgd_ncols(result_); }
    int index() const noexcept { return index_; }

private:
    const rgd_result* result_;
    int index_;
};

/// Iterates the rows of a Result.
class RowIterator {
public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Row;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Row;

    RowIterator() noexcept = default;
    RowIterator(const rgd_result* result, int index) noexcept : result_(result), index_(index) {}
    Row operator*() const noexcept { return Row(result_, index_); }
    RowIterator& operator++() noexcept {
        ++index_;
        return *this;
    }
    RowIterator operator++(int) noexcept {
        RowIterator old = *this;
        ++index_;
        return old;
    }
    friend bool operator==(const RowIterator& a, const RowIterator& b) noexcept {
        return a.result_ == b.result_ && a.index_ == b.index_;
    }

private:
    const rgd_result* result_ = nullptr;
    int index_ = 0;
};

/// Owns one rgd_result.
class Result {
public:
    Result() noexcept = default;
    /// Takes ownership. nullptr (a query out of memory) reads as an error.
    explicit Result(rgd_result* result) noexcept : result_(result) {}
    Result(Result&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
    Result& operator=(Result&& other) noexcept {
        if (this != &other) {
            rgd_free(result_);
            result_ = std::exchange(other.result_, nullptr);
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result() { rgd_free(result_); }

    bool ok() const noexcept { return rgd_ok(result_) == 1; }
    explicit operator bool() const noexcept { return ok(); }
    /// "" on success.
    std::string_view error() const noexcept { return rgd_error(result_); }
    /// SQLSTATE of a database error, else "".
    std::string_view sqlstate() const noexcept { return rgd_sqlstate(result_); }
    /// "REGION/primary", "REGION/replica", "cache:local", "cache:redis", or "".
    std::string_view served_by() const noexcept { return rgd_served_by(result_); }
    /// Why it was served (or failed) there, for people and logs; "" when none.
    std::string_view route_reason() const noexcept { return rgd_route_reason(result_); }
    /// The consistency token of a write or a read, else "".
    std::string_view token() const noexcept { return rgd_token(result_); }
    /// Rows changed by a write, else -1.
    long long affected() const noexcept { return rgd_affected(result_); }

    int nrows() const noexcept { return rgd_nrows(result_); }
    int ncols() const noexcept { return rgd_ncols(result_); }
    /// "" for a column out of range.
    std::string_view column(int col) const noexcept {
        const char* name = rgd_colname(result_, col);
        return name == nullptr ? std::string_view() : std::string_view(name);
    }
    /// nullopt for SQL NULL or out of range.
    Value value(int row, int col) const noexcept { return Row(result_, row)[col]; }
    Row row(int index) const noexcept { return Row(result_, index); }

    RowIterator begin() const noexcept { return RowIterator(result_, 0); }
    RowIterator end() const noexcept { return RowIterator(result_, nrows()); }

    /// The result itself if ok, else throws regiond::Error (message and SQLSTATE).
    Result&& value_or_throw() && {
        if (!ok()) throw Error(std::string(error()), std::string(sqlstate()));
        return std::move(*this);
    }

    const rgd_result* get() const noexcept { return result_; }
    rgd_result* release() noexcept { return std::exchange(result_, nullptr); }

private:
    rgd_result* result_ = nullptr;
};

namespace detail {

/// NUL-terminated copies of optional strings and the pointer array the C API takes.
class CStrings {
public:
    template <class Range>
    explicit CStrings(const Range& values) {
        std::size_t n = 0;
        for (const auto& v : values) {
            (void)v;
            ++n;
        }
        storage_.reserve(n);  // no reallocation below: pointers into it stay valid
        present_.reserve(n);
        for (const auto& v : values) {
            const Value value(v);
            present_.push_back(value.has_value());
            storage_.emplace_back(value ? std::string(*value) : std::string());
        }
        pointers_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) pointers_.push_back(present_[i] ? storage_[i].c_str() : nullptr);
    }
    int size() const noexcept { return static_cast<int>(pointers_.size()); }
    const char* const* data() const noexcept { return pointers_.empty() ? nullptr : pointers_.data(); }

private:
    std::vector<std::string> storage_;
    std::vector<bool> present_;
    std::vector<const char*> pointers_;
};

}  // namespace detail

/// Owns one rgd_client. Safe to share between threads (by reference).
class Client {
public:
    Client() noexcept = default;
    /// Takes ownership of a connected client.
    explicit Client(rgd_client* client) noexcept : client_(client) {}
    Client(Client&& other) noexcept
        : client_(std::exchange(other.client_, nullptr)), connect_error_(std::move(other.connect_error_)) {}
    Client& operator=(Client&& other) noexcept {
        if (this != &other) {
            rgd_disconnect(client_);
            client_ = std::exchange(other.client_, nullptr);
            connect_error_ = std::move(other.connect_error_);
        }
        return *this;
    }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() { rgd_disconnect(client_); }

    /// Connects; socket_path nullopt means $REGIOND_SOCKET, else the default. On
    /// failure the Client is empty (false) and connect_error() says why.
    static Client connect(std::optional<std::string_view> socket_path = std::nullopt) {
        char error[512] = {};
        const std::string path = socket_path ? std::string(*socket_path) : std::string();
        Client c(rgd_connect(socket_path ? path.c_str() : nullptr, error, sizeof error));
        if (!c.client_) c.connect_error_ = error;
        return c;
    }

    bool connected() const noexcept { return client_ != nullptr; }
    explicit operator bool() const noexcept { return connected(); }
    const std::string& connect_error() const noexcept { return connect_error_; }

    /// Deadline of each later call; 0 = no client-side deadline. Default 30 s.
    void set_timeout(std::chrono::milliseconds timeout) noexcept {
        rgd_set_timeout_ms(client_, timeout.count() <= 0 ? 0u : static_cast<unsigned>(timeout.count()));
    }

    Result read_local(std::string_view sql, Params params = {}) const {
        const detail::CStrings p(params);
        return Result(rgd_read_local(client_, std::string(sql).c_str(), p.size(), p.data()));
    }
    Result read_local(std::string_view sql, ParamList params) const { return read_local(sql, Params(params)); }

    Result read_primary(std::string_view sql, Params params = {}) const {
        const detail::CStrings p(params);
        return Result(rgd_read_primary(client_, std::string(sql).c_str(), p.size(), p.data()));
    }
    Result read_primary(std::string_view sql, ParamList params) const { return read_primary(sql, Params(params)); }

    Result write(std::string_view sql, Params params = {}, Keys invalidate_keys = {}) const {
        const detail::CStrings p(params);
        const detail::CStrings k(invalidate_keys);
        return Result(rgd_write(client_, std::string(sql).c_str(), p.size(), p.data(), k.size(), k.data()));
    }
    Result write(std::string_view sql, ParamList params, KeyList invalidate_keys = {}) const {
        return write(sql, Params(params), Keys(invalidate_keys));
    }

    /// At least as new as `token` (from Result::token()); "" waits for nothing (served as read_local).
    Result read_consistent(std::string_view token, std::string_view sql, Params params = {}) const {
        const detail::CStrings p(params);
        return Result(
            rgd_read_consistent(client_, std::string(token).c_str(), std::string(sql).c_str(), p.size(), p.data()));
    }
    Result read_consistent(std::string_view token, std::string_view sql, ParamList params) const {
        return read_consistent(token, sql, Params(params));
    }

    /// ttl 0 = the daemon's default_ttl.
    Result cached_read(std::string_view key, std::chrono::seconds ttl, std::string_view sql, Params params = {}) const {
        const detail::CStrings p(params);
        const unsigned ttl_seconds = ttl.count() <= 0 ? 0u : static_cast<unsigned>(ttl.count());
        return Result(rgd_cached_read(client_, std::string(key).c_str(), ttl_seconds, std::string(sql).c_str(),
                                      p.size(), p.data()));
    }
    Result cached_read(std::string_view key, std::chrono::seconds ttl, std::string_view sql, ParamList params) const {
        return cached_read(key, ttl, sql, Params(params));
    }

    /// Endpoint health from the state segment (no round trip).
    Result health() const { return Result(rgd_health(client_)); }

    rgd_client* get() const noexcept { return client_; }
    rgd_client* release() noexcept { return std::exchange(client_, nullptr); }

private:
    rgd_client* client_ = nullptr;
    std::string connect_error_;
};

/// rgd_token_cmp: -1, 0, 1 by LSN; nullopt when the tokens cannot be ordered
/// (malformed, or of two clusters). "" is "no token yet", older than any token.
/// Keep the newest token a session has seen with it (API.md).
inline std::optional<int> token_cmp(std::string_view a, std::string_view b) {
    const int c = rgd_token_cmp(std::string(a).c_str(), std::string(b).c_str());
    if (c < -1 || c > 1) return std::nullopt;
    return c;
}

}  // namespace regiond

#endif  // REGIOND_CLIENT_HPP
