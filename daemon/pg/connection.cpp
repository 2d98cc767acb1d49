#include "daemon/pg/connection.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "shm/base/redact.hpp"

namespace regiond::daemon::pg {
namespace {

// Setup segment tags (internal commands).
constexpr std::size_t kTagSystemId = 1;
constexpr std::size_t kTagDisconnectCheck = 2;

// The server checks every second whether the client went away while a query
// runs (PostgreSQL 14+). Without it, a query abandoned by closing its
// connection (our way to cancel without PQcancel's blocking round trip) would
// run to completion on the server.
constexpr const char* kDisconnectCheckSql = "set client_connection_check_interval = '1s'";
constexpr const char* kSystemIdSql = "select system_identifier from pg_control_system()";

void ignore_notice(void*, const char*) {}

std::string cache_key(const Step& step) {
    std::string key;
    key.reserve(step.sql.size() + 16 + step.types.size() * 4);
    key.append(step.sql);
    key.push_back('\0');
    key.append(std::to_string(step.values.size()));
    for (Oid t : step.types) {
        key.push_back(',');
        key.append(std::to_string(t));
    }
    return key;
}

}  // namespace

// Every libpq message the daemon shows (logs, status, metrics, clients) passes
// through here, so this is where secrets are removed: password=... values and URI
// user info, which libpq may quote (base::redact_secrets).
std::string clean_libpq_message(const char* message) {
    if (message == nullptr) return "";
    std::string out;
    std::string_view rest(message);
    while (!rest.empty()) {
        auto nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        if (line.empty()) continue;
        if (!out.empty()) out += "; ";
        out.append(line);
    }
    return base::redact_secrets(out);
}

Connection::Connection(EventLoop& loop, const ConnectionSettings& settings, Listener& listener)
    : loop_(loop), settings_(settings), listener_(listener), cache_(settings.statement_cache_capacity) {}

Connection::~Connection() {
    alive_.reset();
    if (connect_timer_ != 0) loop_.cancel_timer(connect_timer_);
    if (fd_ >= 0) loop_.remove(fd_);
    if (conn_ != nullptr) PQfinish(conn_);
}

std::string Connection::describe_libpq_error(const char* what) const {
    std::string msg = std::string(what) + " " + settings_.display_name;
    const std::string detail = conn_ != nullptr ? clean_libpq_message(PQerrorMessage(conn_)) : "";
    if (!detail.empty()) msg += ": " + detail;
    return msg;
}

void Connection::fail_deferred(const std::string& why) {
    std::weak_ptr<bool> alive = alive_;
    const auto gen = generation_;
    loop_.defer([this, alive, gen, why] {
        if (alive.expired() || generation_ != gen || state_ == State::closed) return;
        close(why);
    });
}

void Connection::connect() {
    if (state_ != State::closed) return;
    // Keywords are processed in order: the conninfo (expanded from dbname) may
    // override client_encoding, and application_name wins over the fallback.
    const char* keys[] = {"client_encoding", "dbname", "fallback_application_name", nullptr};
    const char* values[] = {"UTF8", settings_.conninfo.c_str(), "regiond", nullptr};
    conn_ = PQconnectStartParams(keys, values, 1);
    state_ = State::connecting;
    if (conn_ == nullptr) {
        fail_deferred("cannot connect to " + settings_.display_name + ": out of memory");
        return;
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
        // Failing this early means the connection string itself was rejected;
        // libpq's message may quote it, so it is not passed on.
        fail_deferred("cannot connect to " + settings_.display_name +
                      ": the connection string was rejected by libpq (check its syntax)");
        return;
    }
    const auto gen = generation_;
    connect_timer_ = loop_.add_timer(settings_.connect_timeout, [this, gen] {
        connect_timer_ = 0;
        if (generation_ != gen || state_ != State::connecting) return;
        connect_failed("cannot connect to " + settings_.display_name + ": timed out after " +
                       std::to_string(settings_.connect_timeout.count()) + " ms");
    });
    // Before the first PQconnectPoll, act as if it had answered "writing".
    fd_ = PQsocket(conn_);
    if (fd_ < 0) {
        fail_deferred(describe_libpq_error("cannot connect to"));
        return;
    }
    interest_ = EPOLLOUT;
    loop_.add(fd_, interest_, [this](std::uint32_t ev) { on_socket(ev); });
}

void Connection::poll_connect() {
    const PostgresPollingStatusType st = PQconnectPoll(conn_);
    if (st == PGRES_POLLING_FAILED) {
        connect_failed(describe_libpq_error("cannot connect to"));
        return;
    }
    if (st == PGRES_POLLING_OK) {
        became_ready();
        return;
    }
    // libpq may have moved to another socket (next host or address): the old
    // number may already be closed and even reused, so always register afresh.
    if (fd_ >= 0) loop_.remove(fd_);
    fd_ = PQsocket(conn_);
    if (fd_ < 0) {
        connect_failed(describe_libpq_error("cannot connect to"));
        return;
    }
    interest_ = st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT;
    loop_.add(fd_, interest_, [this](std::uint32_t ev) { on_socket(ev); });
}

void Connection::connect_failed(const std::string& why) {
    close(why);
}

void Connection::became_ready() {
    last_input_ = std::chrono::steady_clock::now();
    if (connect_timer_ != 0) {
        loop_.cancel_timer(connect_timer_);
        connect_timer_ = 0;
    }
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
        connect_failed(describe_libpq_error("cannot enter pipeline mode on"));
        return;
    }
    if (fd_ >= 0) loop_.remove(fd_);
    fd_ = PQsocket(conn_);
    interest_ = EPOLLIN;
    loop_.add(fd_, interest_, [this](std::uint32_t ev) { on_socket(ev); });
    state_ = State::ready;
    send_setup();
    if (!flush()) {
        close(describe_libpq_error("connection lost to"));
        return;
    }
    listener_.on_connected(*this);
}

void Connection::send_setup() {
    Step check = Step::command(kDisconnectCheckSql, {}, kTagDisconnectCheck);
    check.cacheable = false;
    Step sysid = Step::command(kSystemIdSql, {}, kTagSystemId);
    sysid.cacheable = false;
    // Separate segments: a server that refuses one must not abort the other.
    if (!send_command(nullptr, check, Expect::Kind::internal_command) || PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0, false});
    if (!send_command(nullptr, sysid, Expect::Kind::internal_command) || PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0, false});
}

bool Connection::send_command(Work* work, const Step& step, Expect::Kind kind) {
    const int n = static_cast<int>(step.values.size());
    const Oid* types = step.types.empty() ? nullptr : step.types.data();
    const std::string sql(step.sql);
    if (!step.cacheable) {
        if (PQsendQueryParams(conn_, sql.c_str(), n, types, step.values.data(), nullptr, nullptr, 0) != 1) return false;
        expects_.push_back(Expect{kind, work, step.tag, 0, false});
        return true;
    }
    const std::string key = cache_key(step);
    const auto found = cache_.find(key);
    switch (found.state) {
        case StatementCache::State::ready: {
            const std::string name = StatementCache::name_of(found.id);
            if (PQsendQueryPrepared(conn_, name.c_str(), n, step.values.data(), nullptr, nullptr, 0) != 1) return false;
            expects_.push_back(Expect{kind, work, step.tag, found.id, false});
            return true;
        }
        case StatementCache::State::preparing:
            if (PQsendQueryParams(conn_, sql.c_str(), n, types, step.values.data(), nullptr, nullptr, 0) != 1)
                return false;
            expects_.push_back(Expect{kind, work, step.tag, 0, false});
            return true;
        case StatementCache::State::miss: break;
    }
    const std::uint64_t id = cache_.insert(key, to_deallocate_);
    const std::string name = StatementCache::name_of(id);
    if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), n, types) != 1) {
        cache_.forget(id);
        return false;
    }
    expects_.push_back(Expect{Expect::Kind::prepare, work, step.tag, id, false});
    if (PQsendQueryPrepared(conn_, name.c_str(), n, step.values.data(), nullptr, nullptr, 0) != 1) return false;
    expects_.push_back(Expect{kind, work, step.tag, id, false});
    return true;
}

void Connection::send_deallocations() {
    if (to_deallocate_.empty()) return;
    for (std::uint64_t id : to_deallocate_) {
        const std::string sql = "deallocate " + StatementCache::name_of(id);
        Step s = Step::command(sql, {}, 0);
        s.cacheable = false;
        if (!send_command(nullptr, s, Expect::Kind::internal_command)) {
            to_deallocate_.clear();
            fail_deferred(describe_libpq_error("cannot send to"));
            return;
        }
    }
    to_deallocate_.clear();
    if (PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0, false});
}

void Connection::send(Work& work, std::span<const Step> steps) {
    if (state_ != State::ready) {
        throw std::logic_error("Connection::send on a connection that is not ready (" + settings_.display_name + ")");
    }
    end_batch();  // a Work with its own syncs never joins a batch
    ++depth_;
    std::size_t last_sync = steps.size();
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (steps[i].kind == Step::Kind::sync) last_sync = i;
    }
    bool ok = true;
    for (std::size_t i = 0; i < steps.size() && ok; ++i) {
        const Step& step = steps[i];
        if (step.kind == Step::Kind::command) {
            ok = send_command(&work, step, Expect::Kind::command);
        } else {
            ok = PQpipelineSync(conn_) == 1;
            if (ok) expects_.push_back(Expect{Expect::Kind::sync, &work, 0, 0, i == last_sync});
        }
    }
    if (ok && last_sync == steps.size()) {
        // Every Work ends with a sync; add the one the caller left out.
        ok = PQpipelineSync(conn_) == 1;
        if (ok) expects_.push_back(Expect{Expect::Kind::sync, &work, 0, 0, true});
    }
    if (!ok) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    // Statements evicted by this Work are deallocated after its last sync, so
    // nothing it (or anything before it) uses disappears under it.
    send_deallocations();
    if (!flush()) fail_deferred(describe_libpq_error("connection lost to"));
}

void Connection::send_batched(Work& work, std::span<const Step> steps) {
    if (state_ != State::ready) {
        throw std::logic_error("Connection::send_batched on a connection that is not ready (" + settings_.display_name +
                               ")");
    }
    if (steps.empty() ||
        std::any_of(steps.begin(), steps.end(), [](const Step& s) { return s.kind == Step::Kind::sync; })) {
        throw std::logic_error("Connection::send_batched takes commands only, at least one");
    }
    if (!batch_open_ && !to_deallocate_.empty()) send_deallocations();  // never inside the batch
    ++depth_;
    batch_open_ = true;
    for (const Step& step : steps) {
        if (!send_command(&work, step, Expect::Kind::command)) {
            fail_deferred(describe_libpq_error("cannot send to"));
            return;
        }
    }
    expects_.back().last = true;  // send_command pushed the command's Expect last
}

void Connection::end_batch() {
    if (!batch_open_ || state_ != State::ready) return;
    batch_open_ = false;
    if (PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0, false});
    // Statements evicted by the batch's Works: deallocated in their own segment
    // after it, so nothing in the batch loses its statement.
    send_deallocations();
    if (!flush()) fail_deferred(describe_libpq_error("connection lost to"));
}

bool Connection::abandon(Work& work) {
    // The work may be running (or next to run) on the server when nothing live
    // is ahead of it: only internal segments or other abandoned works.
    bool live_ahead = false;
    bool seen = false;
    for (auto& e : expects_) {
        if (e.work == &work) {
            seen = true;
            e.work = nullptr;
        } else if (!seen && e.work != nullptr) {
            live_ahead = true;
        }
    }
    if (seen && depth_ > 0) --depth_;
    return seen && !live_ahead;
}

bool Connection::flush() {
    const int r = PQflush(conn_);
    if (r < 0) return false;
    flush_pending_ = r == 1;
    update_interest();
    return true;
}

void Connection::update_interest() {
    const std::uint32_t want = EPOLLIN | (flush_pending_ ? EPOLLOUT : 0u);
    if (want != interest_ && fd_ >= 0) {
        loop_.modify(fd_, want);
        interest_ = want;
    }
}

void Connection::on_socket(std::uint32_t events) {
    if (state_ == State::connecting) {
        poll_connect();
        return;
    }
    if (state_ != State::ready) return;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        last_input_ = std::chrono::steady_clock::now();
        if (PQconsumeInput(conn_) != 1) {
            close(describe_libpq_error("connection lost to"));
            return;
        }
    }
    if (flush_pending_ || (events & EPOLLOUT) != 0) {
        if (!flush()) {
            close(describe_libpq_error("connection lost to"));
            return;
        }
    }
    read_results();
}

void Connection::read_results() {
    if (reading_) return;
    reading_ = true;
    const auto gen = generation_;
    std::weak_ptr<bool> alive = alive_;
    while (!alive.expired() && generation_ == gen && state_ == State::ready && !expects_.empty()) {
        if (PQisBusy(conn_) != 0) break;
        PgResultPtr r(PQgetResult(conn_));
        const Expect e = expects_.front();
        const bool expecting_sync = e.kind == Expect::Kind::sync || e.kind == Expect::Kind::internal_sync;
        if (!r) {
            // The end of one command's results. A sync is never followed by NULL, so
            // NULL while a sync is expected means nothing more is available yet.
            if (expecting_sync) break;
            expects_.pop_front();
            if (e.kind == Expect::Kind::command && e.last && e.work != nullptr) {
                // A batched Work's last command: the Work is done (the batch's sync
                // comes later, shared).
                if (depth_ > 0) --depth_;
                e.work->on_finished();
                if (alive.expired() || generation_ != gen) break;
                listener_.on_work_done(*this);
            }
            continue;
        }
        const ExecStatusType status = PQresultStatus(r.get());
        if (status == PGRES_PIPELINE_SYNC) {
            if (!expecting_sync) {
                close("protocol error on " + settings_.display_name + ": unexpected pipeline sync");
                break;
            }
            expects_.pop_front();
            if (e.kind == Expect::Kind::sync && e.last) {
                if (e.work != nullptr) {
                    if (depth_ > 0) --depth_;
                    e.work->on_finished();
                }
                if (alive.expired() || generation_ != gen) break;
                listener_.on_work_done(*this);
            }
            continue;
        }
        if (expecting_sync) {
            close("protocol error on " + settings_.display_name + ": result where a pipeline sync was expected");
            break;
        }
        handle_result(e, std::move(r));
    }
    if (!alive.expired()) reading_ = false;
}

void Connection::handle_result(const Expect& e, PgResultPtr result) {
    const PGresult& r = *result;
    const ExecStatusType status = PQresultStatus(&r);
    switch (e.kind) {
        case Expect::Kind::prepare:
            if (status == PGRES_COMMAND_OK) {
                cache_.confirm(e.cache_id);
                return;
            }
            // Failed, or skipped because its segment aborted: the name does not exist
            // on the server. The command's own result (aborted) follows.
            cache_.forget(e.cache_id);
            if (status != PGRES_PIPELINE_ABORTED && e.work != nullptr) e.work->on_result(e.tag, std::move(result));
            return;
        case Expect::Kind::command:
            if (status == PGRES_FATAL_ERROR && e.cache_id != 0) {
                const char* state = PQresultErrorField(&r, PG_DIAG_SQLSTATE);
                // 0A000 "cached plan must not change result type" (the table changed
                // under a prepared statement), 26000 "prepared statement does not
                // exist": drop the entry so the next use prepares afresh.
                if (state != nullptr && (std::strcmp(state, "0A000") == 0 || std::strcmp(state, "26000") == 0)) {
                    cache_.forget(e.cache_id);
                    if (std::strcmp(state, "0A000") == 0) to_deallocate_.push_back(e.cache_id);
                }
            }
            if (e.work != nullptr) e.work->on_result(e.tag, std::move(result));
            return;
        case Expect::Kind::internal_command:
            if (e.tag == kTagSystemId) {
                if (status == PGRES_TUPLES_OK && PQntuples(&r) == 1 && PQnfields(&r) == 1 && !PQgetisnull(&r, 0, 0)) {
                    system_identifier_ = std::strtoull(PQgetvalue(&r, 0, 0), nullptr, 10);
                } else {
                    const char* msg = PQresultErrorField(&r, PG_DIAG_MESSAGE_PRIMARY);
                    setup_error_ = "cannot read the system identifier of " + settings_.display_name + ": " +
                                   (msg != nullptr ? base::redact_secrets(msg) : std::string("no result"));
                }
            }
            return;
        case Expect::Kind::sync:
        case Expect::Kind::internal_sync: return;
    }
}

void Connection::close(const std::string& why, bool notify) {
    if (state_ == State::closed) return;
    const bool was_ready = state_ == State::ready;
    ++generation_;
    if (connect_timer_ != 0) {
        loop_.cancel_timer(connect_timer_);
        connect_timer_ = 0;
    }
    if (fd_ >= 0) loop_.remove(fd_);
    fd_ = -1;
    interest_ = 0;
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    state_ = State::closed;
    flush_pending_ = false;
    batch_open_ = false;
    reading_ = false;
    depth_ = 0;
    cache_.clear();
    to_deallocate_.clear();
    system_identifier_ = 0;
    setup_error_.clear();
    std::vector<Work*> works;
    for (const auto& e : expects_) {
        if (e.work != nullptr && std::find(works.begin(), works.end(), e.work) == works.end()) works.push_back(e.work);
    }
    expects_.clear();
    if (!notify) return;
    std::weak_ptr<bool> alive = alive_;
    for (Work* w : works) {
        w->on_connection_closed(why);
        if (alive.expired()) return;
    }
    listener_.on_closed(*this, why, was_ready);
}

}  // namespace regiond::daemon::pg
