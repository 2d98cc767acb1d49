// A hostile client (issue 9): it cannot write the state segment (the file's
// mode refuses a read-write open, a shared writable mapping of its read-only
// descriptor is refused, and a write through its mapping faults), checked
// from a real client process in the client group; and what is planted in the
// region's Redis under a key (random bytes, a truncated or lying blob,
// another query's value, forged rows tagged older than the durable path's
// start) is never served: the replica answers with the right rows; garbage
// published on the invalidation channel is ignored; keys that differ by a
// byte, or are longer than the hot cache takes, get their own rows.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regiond/client.hpp>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../isolation/clients.hpp"
#include "cache_fixture.hpp"
#include "md5.hpp"
#include "shm/cache_value.hpp"
#include "shm/state_segment.hpp"

using namespace std::chrono_literals;
using namespace regiond::testing;
using namespace regiond::testing::cache;
using Catch::Contains;
using Rows = std::vector<std::vector<std::string>>;

namespace {

constexpr uid_t kNobody = 65534;

std::string errno_name(int e) {
    return e == EACCES ? "EACCES" : e == EPERM ? "EPERM" : std::string("errno ") + std::to_string(e);
}

// In a forked child: become `nobody` with the client group as its only group,
// as an ordinary client of the daemon is, then try to write the segment.
// Reports "key=value" pairs, one per line.
std::string hostile_child(const std::string& socket, const std::string& segment, gid_t client_gid,
                          const std::string& key, const std::string& sql) {
    std::ostringstream out;
    if (::setgroups(1, &client_gid) != 0 || ::setgid(client_gid) != 0 || ::setuid(kNobody) != 0)
        return "privileges=could not drop: " + errno_name(errno) + "\n";
    out << "uid=" << ::getuid() << "\n";

    // A real client: connected, and its cached_read is a hit in the segment.
    {
        const regiond::Client c = regiond::Client::connect(socket);
        if (!c) return out.str() + "connect=" + c.connect_error() + "\n";
        const regiond::Result r = c.cached_read(key, std::chrono::seconds(60), sql, {key});
        out << "served_by=" << r.served_by() << "\n";
        out << "value=" << (r.ok() && r.nrows() == 1 ? std::string(*r.value(0, 0)) : std::string(r.error())) << "\n";
    }

    const std::string path = regiond::shm::state_segment_path(segment);
    const int rw = ::open(path.c_str(), O_RDWR);
    out << "open_rdwr=" << (rw >= 0 ? "opened" : errno_name(errno)) << "\n";
    if (rw >= 0) ::close(rw);
    const int ro = ::open(path.c_str(), O_RDONLY);
    out << "open_rdonly=" << (ro >= 0 ? "opened" : errno_name(errno)) << "\n";
    if (ro >= 0) {
        struct stat st {};
        ::fstat(ro, &st);
        const auto size = static_cast<std::size_t>(st.st_size);
        void* w = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
        out << "mmap_write=" << (w != MAP_FAILED ? "mapped" : errno_name(errno)) << "\n";
        if (w != MAP_FAILED) ::munmap(w, size);
        void* r = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, ro, 0);
        if (r != MAP_FAILED) {
            out << "mprotect_write="
                << (::mprotect(r, size, PROT_READ | PROT_WRITE) == 0 ? "allowed" : errno_name(errno)) << "\n";
            ::munmap(r, size);
        }
        ::close(ro);
    }

    // A write through the mapping clients use (StateView: read-only) faults.
    auto view = regiond::shm::StateView::open(segment);
    if (!view) return out.str() + "view=" + view.error().message + "\n";
    out << "peek=" << (view->cache_reader().peek(key) ? "found" : "missing") << "\n";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGSEGV, SIG_DFL);
        auto* byte = const_cast<std::byte*>(view->bytes().data() + view->header().cache.offset);
        *reinterpret_cast<volatile std::byte*>(byte) = std::byte{0x5a};
        ::_exit(0);  // the write went through
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    out << "write_through_mapping="
        << (WIFSIGNALED(status)
                ? (WTERMSIG(status) == SIGSEGV ? "SIGSEGV" : "signal " + std::to_string(WTERMSIG(status)))
                : "exit " + std::to_string(WEXITSTATUS(status)))
        << "\n";
    return out.str();
}

std::string field(const std::string& report, const std::string& name) {
    std::istringstream in(report);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
    return "<not reported>";
}

}  // namespace

TEST_CASE("hostile client: the state segment cannot be written by a client in the client group",
          "[cache][hostile][segment]") {
    ensure_schema();
    const Host eu(kEu);
    wait_vouched(eu);
    const std::string key = unique_key("hostile-segment");
    put_row(key, "kept-value");
    REQUIRE(cached(eu, key, select_sql(), {key}).first() == "kept-value");
    const std::string segment = segment_name(eu);
    REQUIRE(segment_has(segment, key));

    // The file: owner read-write, the client group read-only, nobody else.
    struct stat st {};
    REQUIRE(::stat(regiond::shm::state_segment_path(segment).c_str(), &st) == 0);
    const group* g = ::getgrnam("regiond");
    REQUIRE(g != nullptr);
    CHECK((st.st_mode & 0777) == 0640);
    CHECK(st.st_gid == g->gr_gid);

    const gid_t client_gid = g->gr_gid;
    const std::string sql = select_sql();
    const std::string report =
        isolation::run_children(
            1, [&](int) { return hostile_child(eu.socket(), segment, client_gid, key, sql); }, 60s)
            .at(0);
    std::printf("[cache] hostile client in the client group:\n%s", report.c_str());
    std::fflush(stdout);
    INFO("the child's report:\n" << report << log_tail(eu));
    REQUIRE(field(report, "uid") == std::to_string(kNobody));
    // A working client...
    CHECK(field(report, "served_by") == "cache:local");
    CHECK(field(report, "value") == "kept-value");
    CHECK(field(report, "open_rdonly") == "opened");
    CHECK(field(report, "peek") == "found");
    // ...that cannot write.
    CHECK(field(report, "open_rdwr") == "EACCES");
    CHECK(field(report, "mmap_write") == "EACCES");
    CHECK(field(report, "mprotect_write") == "EACCES");
    CHECK(field(report, "write_through_mapping") == "SIGSEGV");
    // And the daemon's cache is as it was.
    const Answer after = cached(eu, key, select_sql(), {key});
    CHECK(after.served_by == "cache:local");
    CHECK(after.first() == "kept-value");
}

TEST_CASE("hostile client: values planted in the region's Redis are never served; the replica answers",
          "[cache][hostile][redis]") {
    ensure_schema();
    const Host eu(kEu);
    wait_vouched(eu);
    const std::string key = unique_key("hostile-redis");
    const std::string decoy = unique_key("hostile-decoy");
    put_row(key, "genuine-value");
    put_row(decoy, "decoy-value");
    const std::string sql = select_sql();
    const Rows want{{"genuine-value", md5_hex("genuine-value")}};

    // Real values in Redis to forge from: the key's, and the decoy's (the
    // same SQL with another parameter).
    REQUIRE(cached(eu, key, sql, {key}).rows == want);
    REQUIRE(cached(eu, decoy, sql, {decoy}).first() == "decoy-value");
    const RedisValue genuine = wait_redis(kEu, key, is_set);
    const RedisValue decoy_value = wait_redis(kEu, decoy, is_set);
    REQUIRE(genuine.has_value());
    REQUIRE(decoy_value.has_value());
    const auto as_bytes = [](const std::string& s) {
        return std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size());
    };
    const auto genuine_view = regiond::shm::parse_cache_value(as_bytes(*genuine));
    const auto decoy_view = regiond::shm::parse_cache_value(as_bytes(*decoy_value));
    REQUIRE(genuine_view.has_value());
    REQUIRE(decoy_view.has_value());
    const auto blob = [](const regiond::shm::CacheValueView& v) {
        const std::vector<std::byte> b = regiond::shm::encode_cache_value(v);
        return std::string(reinterpret_cast<const char*>(b.data()), b.size());
    };

    std::vector<std::pair<std::string, std::string>> planted;
    {
        std::mt19937 random(4242);
        std::string noise(400, '\0');
        for (char& c : noise) c = static_cast<char>(random());
        planted.emplace_back("random bytes", noise);
    }
    planted.emplace_back("random bytes after a valid magic", "RGDV" + planted.back().second);
    planted.emplace_back("empty", "");
    planted.emplace_back("truncated", genuine->substr(0, genuine->size() / 2));
    planted.emplace_back("one byte short", genuine->substr(0, genuine->size() - 1));
    planted.emplace_back("a trailing byte", *genuine + "x");
    {
        // query_len (after the 40 fixed bytes) claiming more than there is.
        std::string lying = *genuine;
        lying[40] = lying[41] = lying[42] = static_cast<char>(0xff);
        lying[43] = 0x7f;
        planted.emplace_back("a length beyond the value", lying);
    }
    planted.emplace_back("another query's value (the decoy's, same SQL, other parameter)", *decoy_value);
    {
        // The key's own query bytes and a fresh expiry, the decoy's rows, and
        // a floor LSN of 1: older than the durable path's start (the global
        // floor), so not trusted whatever it says.
        regiond::shm::CacheValueView forged = *genuine_view;
        forged.response = decoy_view->response;
        forged.floor_lsn = 1;
        planted.emplace_back("forged rows under the right query, tagged LSN 0/1", blob(forged));
    }
    {
        regiond::shm::CacheValueView expired = *genuine_view;
        expired.response = decoy_view->response;
        expired.expires_unix_ms = 1;
        planted.emplace_back("forged rows under the right query, expired", blob(expired));
    }

    Redis redis(kEu);
    std::optional<std::string> previous;  // what was planted last
    for (const auto& [what, bytes] : planted) {
        // The daemon's SET of the last fill (the genuine value again) may
        // still be on its way: plant after it landed, so that ours is what
        // Redis holds when the daemon looks.
        if (previous) wait_redis(kEu, key, [&](const RedisValue& v) { return v && v != previous; });
        redis.set(key, bytes);
        previous = bytes;
        REQUIRE(redis.get(key) == RedisValue(bytes));
        const isolation::Command flushed = flush(eu);  // so the read goes to Redis
        REQUIRE(flushed.status == 0);
        const Answer a = cached(eu, key, sql, {key});
        std::printf("[cache] planted %s: %s\n", what.c_str(), a.describe().c_str());
        std::fflush(stdout);
        INFO("planted " << what << ": " << a.describe() << "\n" << log_tail(eu));
        REQUIRE(a.status == 0);
        CHECK(a.rows == want);
        CHECK(a.served_by == kEu + "/replica");
        CHECK_THAT(a.route_reason, Contains("cache miss"));
        // The daemon is still there and well.
        CHECK(eu.status()["pid"].num() > 0);
    }
}

TEST_CASE(
    "hostile client: garbage published on the region's invalidation channel is ignored; the daemon stays "
    "subscribed and keeps its values",
    "[cache][hostile][channel]") {
    ensure_schema();
    const Host eu(kEu);
    wait_vouched(eu);
    const std::string key = unique_key("hostile-channel");
    put_row(key, "kept-value");
    REQUIRE(cached(eu, key, select_sql(), {key}).first() == "kept-value");
    REQUIRE(cached(eu, key, select_sql(), {key}).served_by == "cache:local");
    const std::uint64_t received = eu.counter("invalidations_received_pubsub");
    const std::uint64_t flushes = eu.counter("cache_flushes");

    std::vector<std::string> garbage;
    {
        std::mt19937 random(99);
        std::string noise(300, '\0');
        for (char& c : noise) c = static_cast<char>(random());
        garbage.push_back(noise);
    }
    garbage.push_back("");
    garbage.push_back("{}");
    garbage.push_back("[]");
    garbage.push_back("{\"type\":\"invalidate\",\"keys\":\"" + key + "\"}");                   // keys not a list
    garbage.push_back("{\"type\":\"invalidate\",\"keys\":[\"" + key + "\"],\"lsn\":7}");       // lsn not text
    garbage.push_back("{\"type\":\"invalidate\",\"keys\":[\"" + key + "\"],\"lsn\":\"0/1\"");  // unterminated
    garbage.push_back("{\"type\":\"flush\",\"keys\":[\"" + key + "\"]}");
    garbage.push_back(std::string(10000, '[') + std::string(10000, ']'));
    Redis redis(kEu);
    for (const std::string& message : garbage) REQUIRE(redis.publish("replication:events", message) >= 1);

    // Every message arrived (counted), none was taken for an invalidation or
    // cost the subscription.
    const bool all =
        eventually([&] { return eu.counter("invalidations_received_pubsub") >= received + garbage.size(); }, 10s);
    INFO(eu.counter("invalidations_received_pubsub") - received << " of " << garbage.size() << " messages counted\n"
                                                                << log_tail(eu));
    CHECK(all);
    CHECK(hot_cache(eu)["vouched"].boolean());
    CHECK(eu.counter("cache_flushes") == flushes);
    const Answer after = cached(eu, key, select_sql(), {key});
    INFO(after.describe());
    CHECK(after.served_by == "cache:local");
    CHECK(after.first() == "kept-value");

    // The control: a well-formed message for the key, at an LSN past the
    // value's (a write happened since), does evict it; the next read is
    // right again. (So the garbage above was ignored for being garbage.)
    const std::string system_id = after.token.substr(0, after.token.find('/'));
    put_row(unique_key("hostile-channel-later"), "x");
    const std::string lsn = consistency::format_lsn(consistency::primary_lsn());
    REQUIRE(redis.publish("replication:events", "{\"type\":\"invalidate\",\"keys\":[\"" + key + "\"],\"lsn\":\"" + lsn +
                                                    "\",\"system_id\":\"" + system_id +
                                                    "\",\"origin\":\"test/hostile\"}") >= 1);
    const std::string segment = segment_name(eu);
    const bool evicted = eventually([&] { return !segment_has(segment, key); }, 10s);
    INFO("a valid message at " << lsn << "\n" << log_tail(eu));
    CHECK(evicted);
    const Answer reread = cached(eu, key, select_sql(), {key});
    INFO(reread.describe());
    CHECK(reread.first() == "kept-value");
    CHECK(reread.served_by != "cache:local");
}

TEST_CASE(
    "hostile client: odd keys (spaces, newlines, UTF-8, prefixes of each other, longer than the cache takes) "
    "are each answered with their own rows",
    "[cache][hostile][keys]") {
    ensure_schema();
    const Host eu(kEu);
    wait_vouched(eu);
    const std::string base = unique_key("odd");
    // Cache keys that differ by little; each caches a read of its own row.
    const std::vector<std::string> keys = {base,        base + " ",
                                           base + "\n", base + "\t|",
                                           base + "é",  base + "\xe2\x82\xac",
                                           base + "x",  base + std::string(5000, 'k')};
    const std::string sql = std::string("select v from ") + kTable + " where k = $1";
    for (std::size_t i = 0; i < keys.size(); ++i)
        put_row(base + "-row-" + std::to_string(i), "row-" + std::to_string(i));
    for (int round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const Answer a = cached(eu, keys[i], sql, {base + "-row-" + std::to_string(i)});
            INFO("round " << round << ", key " << i << " (" << keys[i].size() << " bytes): " << a.describe() << "\n"
                          << log_tail(eu));
            REQUIRE(a.status == 0);
            CHECK(a.first() == "row-" + std::to_string(i));
            // The second round hits, except for the key longer than the
            // hot cache's key limit (4 KiB), which is answered but not stored.
            if (round == 1 && keys[i].size() <= 4096) CHECK(a.served_by == "cache:local");
        }
    }
    CHECK(eu.status()["pid"].num() > 0);
}
