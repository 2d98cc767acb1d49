#include "sessions.hpp"

#include <sys/mman.h>

#include <regiond/client.h>
#include <regiond/client.hpp>

#include <chrono>
#include <new>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "hosts.hpp"

namespace regiond::testing::consistency {
namespace {

constexpr char kSep = '\x1f';

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> out(1);
    for (char c : line) {
        if (c == kSep)
            out.emplace_back();
        else
            out.back() += c;
    }
    return out;
}

std::string value_of(const regiond::Result& r) {
    if (!r.ok() || r.nrows() < 1 || r.ncols() < 1) return "<no row>";
    const regiond::Value v = r.value(0, 0);
    return v ? std::string(*v) : "<null>";
}

regiond::Client connect_or_throw(const std::string& socket) {
    regiond::Client c = regiond::Client::connect(socket);
    if (!c) throw std::runtime_error("connect " + socket + ": " + c.connect_error());
    return c;
}

std::string select_sql(const char* column) {
    return std::string("select ") + column + " from " + kTable + " where k = $1";
}

}  // namespace

SharedBlock::SharedBlock() {
    void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the shared block failed");
    shared_ = new (p) Shared;
}

SharedBlock::~SharedBlock() {
    shared_->~Shared();
    ::munmap(shared_, sizeof(Shared));
}

void Tally::note(const std::string& served_by, const std::string& route_reason, const std::string& reader_region) {
    if (route_reason.rfind("waited", 0) == 0) {
        ++waited;
        if (waited_reason.empty()) waited_reason = served_by + ": " + route_reason;
    } else if (served_by == reader_region + "/replica") {
        ++local;
        if (local_reason.empty()) local_reason = served_by + ": " + route_reason;
    } else if (served_by.size() > 8 && served_by.compare(served_by.size() - 8, 8, "/primary") == 0) {
        ++primary;
        if (primary_reason.empty()) primary_reason = served_by + ": " + route_reason;
    } else {
        ++elsewhere;
        if (elsewhere_reason.empty()) elsewhere_reason = served_by + ": " + route_reason;
    }
}

void Tally::fail(long Tally::*what, const std::string& text) {
    ++(this->*what);
    if (problem.empty()) problem = text;
}

Tally& Tally::operator+=(const Tally& o) {
    pairs += o.pairs;
    stale += o.stale;
    errors += o.errors;
    token_behind += o.token_behind;
    local += o.local;
    waited += o.waited;
    elsewhere += o.elsewhere;
    primary += o.primary;
    for (auto [mine, theirs] : {std::pair{&local_reason, &o.local_reason},
                                {&waited_reason, &o.waited_reason},
                                {&elsewhere_reason, &o.elsewhere_reason},
                                {&primary_reason, &o.primary_reason},
                                {&problem, &o.problem}})
        if (mine->empty()) *mine = *theirs;
    return *this;
}

std::string Tally::line() const {
    std::ostringstream s;
    s << "tally" << kSep << pairs << kSep << stale << kSep << errors << kSep << token_behind << kSep << local << kSep
      << waited << kSep << elsewhere << kSep << primary << kSep << local_reason << kSep << waited_reason << kSep
      << elsewhere_reason << kSep << primary_reason << kSep << problem;
    return s.str();
}

Tally Tally::parse(const std::string& line) {
    const std::vector<std::string> f = split(line);
    if (f.size() != 14 || f[0] != "tally") throw std::runtime_error("a child did not report a tally: " + line);
    Tally t;
    long* numbers[] = {&t.pairs, &t.stale, &t.errors, &t.token_behind, &t.local, &t.waited, &t.elsewhere, &t.primary};
    for (std::size_t i = 0; i < 8; ++i) *numbers[i] = std::stol(f[i + 1]);
    t.local_reason = f[9];
    t.waited_reason = f[10];
    t.elsewhere_reason = f[11];
    t.primary_reason = f[12];
    t.problem = f[13];
    return t;
}

std::string Tally::summary() const {
    std::ostringstream s;
    s << pairs << " answers: " << stale << " stale, " << errors << " errors, " << token_behind
      << " tokens behind; local " << local << ", waited " << waited << ", elsewhere " << elsewhere << ", primary "
      << primary;
    for (auto [name, text] : {std::pair{"local", &local_reason},
                              {"waited", &waited_reason},
                              {"elsewhere", &elsewhere_reason},
                              {"primary", &primary_reason},
                              {"problem", &problem}})
        if (!text->empty()) s << "\n  " << name << ": " << *text;
    return s.str();
}

Tally write_read_pairs(const std::string& writer_socket, const std::string& reader_socket,
                       const std::string& reader_region, const std::string& key, long count, Shared* shared) {
    regiond::Client writer = connect_or_throw(writer_socket);
    regiond::Client reader_own;
    if (reader_socket != writer_socket) reader_own = connect_or_throw(reader_socket);
    const regiond::Client& reader = reader_socket != writer_socket ? reader_own : writer;
    const std::string upsert =
        std::string("insert into ") + kTable + " (k, v) values ($1, $2) on conflict (k) do update set v = excluded.v";
    const std::string select = select_sql("v");
    Tally t;
    for (long n = 1; count < 0 ? shared->stop.load() == 0 : n <= count; ++n) {
        const std::string value = std::to_string(n);
        const regiond::Result w = writer.write(upsert, {key, value});
        if (!w.ok()) {
            t.fail(&Tally::errors, "write " + key + "=" + value + ": " + std::string(w.error()));
            continue;
        }
        const std::string token(w.token());
        const regiond::Result r = reader.read_consistent(token, select, {key});
        ++t.pairs;
        if (!r.ok()) {
            t.fail(&Tally::errors, "read_consistent " + token + ": " + std::string(r.error()) + " (" +
                                       std::string(r.served_by()) + ": " + std::string(r.route_reason()) + ")");
            continue;
        }
        const std::string served_by(r.served_by());
        t.note(served_by, std::string(r.route_reason()), reader_region);
        const std::string got = value_of(r);
        if (got != value)
            t.fail(&Tally::stale, key + ": wrote " + value + " (token " + token + "), read " + got + " from " +
                                      served_by + " (" + std::string(r.route_reason()) + ")");
        // A read's token bounds what it saw from above: it saw the write.
        // (-2, not comparable, counts too.)
        if (rgd_token_cmp(std::string(r.token()).c_str(), token.c_str()) < 0)
            t.fail(&Tally::token_behind, "read token " + std::string(r.token()) + " < write token " + token);
        if (shared != nullptr) {
            shared->pairs.fetch_add(1);
            if (served_by == reader_region + "/replica") shared->local.fetch_add(1);
        }
    }
    return t;
}

Tally old_token_reads(const std::string& socket, const std::string& region, const std::string& key, Shared* shared) {
    const regiond::Client c = connect_or_throw(socket);
    const std::string upsert =
        std::string("insert into ") + kTable + " (k, v) values ($1, $2) on conflict (k) do update set v = excluded.v";
    const std::string select = select_sql("v");
    std::vector<std::pair<long, std::string>> written;  // (value, its write's token)
    Tally t;
    for (long n = 1; shared->replay_old.load() == 0; ++n) {
        const regiond::Result w = c.write(upsert, {key, std::to_string(n)});
        if (!w.ok()) {
            t.fail(&Tally::errors, "write: " + std::string(w.error()));
            continue;
        }
        written.emplace_back(n, std::string(w.token()));
        shared->writes.fetch_add(1);
    }
    shared->replaying.fetch_add(1);
    if (written.empty()) return t;
    for (std::size_t i = 0; shared->stop.load() == 0; ++i) {
        const auto& [value, token] = written[written.size() - 1 - i % written.size()];
        const regiond::Result r = c.read_consistent(token, select, {key});
        ++t.pairs;
        if (!r.ok()) {
            t.fail(&Tally::errors, "read_consistent " + token + ": " + std::string(r.error()));
            continue;
        }
        const std::string served_by(r.served_by());
        t.note(served_by, std::string(r.route_reason()), region);
        const std::string got = value_of(r);
        if (got == "<no row>" || got == "<null>" || std::stol(got) < value)
            t.fail(&Tally::stale, key + ": token " + token + " of v=" + std::to_string(value) + ", read " + got +
                                      " from " + served_by + " (" + std::string(r.route_reason()) + ")");
        shared->pairs.fetch_add(1);
        if (served_by == region + "/replica") shared->local.fetch_add(1);
    }
    return t;
}

Tally monotonic_session(const std::string& socket_a, const std::string& region_a, const std::string& socket_b,
                        const std::string& region_b, const std::string& key, long reads, Shared* shared) {
    const regiond::Client a = connect_or_throw(socket_a);
    const regiond::Client b = connect_or_throw(socket_b);
    const std::string select = select_sql("version");
    std::string newest;  // the session's cookie: "" until it has seen a token
    long highest = -1;
    Tally t;
    for (long i = 0; i < reads; ++i) {
        const bool on_a = i % 2 == 0;
        const regiond::Client& c = on_a ? a : b;
        const std::string& region = on_a ? region_a : region_b;
        const regiond::Result r = c.read_consistent(newest, select, {key});
        ++t.pairs;
        if (!r.ok()) {
            t.fail(&Tally::errors, region + " read_consistent " + newest + ": " + std::string(r.error()));
            continue;
        }
        const std::string served_by(r.served_by());
        t.note(served_by, std::string(r.route_reason()), region);
        const long version = std::stol(value_of(r));
        if (version < highest)
            t.fail(&Tally::stale, "read " + std::to_string(i) + " on " + region + ": version " +
                                      std::to_string(version) + " after " + std::to_string(highest) + " with token " +
                                      newest + " from " + served_by + " (" + std::string(r.route_reason()) + ")");
        highest = std::max(highest, version);
        const std::string token(r.token());
        const int cmp = rgd_token_cmp(token.c_str(), newest.c_str());
        if (cmp == -2 || token.empty())
            t.fail(&Tally::errors,
                   "read " + std::to_string(i) + ": token '" + token + "' not comparable with '" + newest + "'");
        else if (cmp < 0)
            t.fail(&Tally::token_behind, "read " + std::to_string(i) + " on " + region + ": token " + token +
                                             " older than the session's " + newest);
        else
            newest = token;
        shared->pairs.fetch_add(1);
        if (served_by == region + "/replica") shared->local.fetch_add(1);
    }
    return t;
}

Tally version_writer(const std::string& socket, const std::string& key, Shared* shared) {
    const regiond::Client c = connect_or_throw(socket);
    const std::string bump = std::string("update ") + kTable + " set version = version + 1 where k = $1";
    Tally t;
    while (shared->stop.load() == 0) {
        const regiond::Result w = c.write(bump, {key});
        ++t.pairs;
        if (!w.ok() || w.affected() != 1) {
            t.fail(&Tally::errors, "version bump: " + std::string(w.error()));
            continue;
        }
        shared->writes.fetch_add(1);
    }
    return t;
}

std::string one_read_consistent(const std::string& socket, const std::string& token, const std::string& sql,
                                const std::string& param, unsigned timeout_ms) {
    regiond::Client c = connect_or_throw(socket);
    c.set_timeout(std::chrono::milliseconds(timeout_ms));
    const auto t0 = std::chrono::steady_clock::now();
    const regiond::Result r = param.empty() ? c.read_consistent(token, sql) : c.read_consistent(token, sql, {param});
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::ostringstream s;
    s << (r.ok() ? "ok" : "error") << kSep << r.served_by() << kSep << r.route_reason() << kSep << value_of(r) << kSep
      << r.error() << kSep << ms << kSep << rgd_token_cmp(token.c_str(), token.c_str());
    return s.str();
}

OneRead OneRead::parse(const std::string& line) {
    const std::vector<std::string> f = split(line);
    if (f.size() != 7) throw std::runtime_error("a child did not report a read: " + line);
    OneRead o;
    o.ok = f[0] == "ok";
    o.served_by = f[1];
    o.route_reason = f[2];
    o.value = f[3];
    o.error = f[4];
    o.ms = std::stod(f[5]);
    o.self_cmp = std::stoi(f[6]);
    return o;
}

}  // namespace regiond::testing::consistency
