#include "daemon/pg/connection.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "shm/base/redact.hpp"

namespace regiond::daemon::pg {
namespace {

// Internal command tags.
constexpr std::size_t kTagSystemId = 1;
constexpr std::size_t kTagDiscard = 2;
constexpr std::size_t kTagBatchTrailer = 3;

constexpr const char* kSystemIdSql = "select system_identifier from pg_control_system()";
// Resets everything a session can keep (settings, prepared statements,
// advisory locks, LISTEN, temp tables, cursors) to the startup values. It must
// be the only command of its segment ("cannot be executed within a pipeline").
constexpr const char* kDiscardSql = "DISCARD ALL";

// Server-reported parameters (ParameterStatus) that no request may change for
// the next one. in_hot_standby is left out: it changes on promotion.
constexpr const char* kTrackedParameters[] = {
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "session_authorization",
    "is_superuser",
    "client_encoding",
    "standard_conforming_strings",
    "application_name",
    "default_transaction_read_only",
};

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

// Command tags of statements that open (or need) an explicit transaction block.
bool opens_transaction(const char* tag) {
    return tag != nullptr && (std::strcmp(tag, "BEGIN") == 0 || std::strcmp(tag, "START TRANSACTION") == 0 ||
                              std::strcmp(tag, "SAVEPOINT") == 0);
}

bool handled_status(ExecStatusType status) {
    switch (status) {
        case PGRES_TUPLES_OK:
        case PGRES_SINGLE_TUPLE:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY:
        case PGRES_FATAL_ERROR:
        case PGRES_PIPELINE_ABORTED: return true;
        default: return false;
    }
}

std::size_t row_bytes(const PGresult& r) {
    std::size_t n = 0;
    const int cols = PQnfields(&r);
    for (int c = 0; c < cols; ++c) n += static_cast<std::size_t>(PQgetlength(&r, 0, c));
    return n;
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

std::optional<std::string> merged_startup_options(const ConnectionSettings& settings) {
    std::string options;
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(settings.conninfo.c_str(), &error);
    if (parsed == nullptr) {
        PQfreemem(error);  // may quote the conninfo: never shown
        return std::nullopt;
    }
    for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
        if (std::strcmp(o->keyword, "options") == 0 && o->val != nullptr) options = o->val;
    }
    PQconninfoFree(parsed);
    for (const auto& [name, value] : settings.startup_settings) {
        if (!options.empty()) options += ' ';
        options += "-c " + name + "=" + value;
    }
    return options;
}

Connection::Connection(EventLoop& loop, const ConnectionSettings& settings, Listener& listener)
    : loop_(loop), settings_(settings), listener_(listener), cache_(settings.statement_cache_capacity), scope_(loop) {}

Connection::~Connection() {
    watch_.reset();
    connect_timer_.cancel();
    if (conn_ != nullptr) PQfinish(conn_);
}

std::string Connection::describe_libpq_error(const char* what) const {
    std::string msg = std::string(what) + " " + settings_.display_name;
    const std::string detail = conn_ != nullptr ? clean_libpq_message(PQerrorMessage(conn_)) : "";
    if (!detail.empty()) msg += ": " + detail;
    return msg;
}

void Connection::fail_deferred(const std::string& why) {
    const auto gen = generation_;
    scope_.defer([this, gen, why] {
        if (generation_ != gen || state_ == State::closed) return;
        close(why);
    });
}

void Connection::watch_socket(std::uint32_t events) {
    // Always register afresh: libpq may have moved to another socket (next host
    // or address) whose number may be the old one's, reused.
    watch_.reset();
    const int fd = PQsocket(conn_);
    if (fd < 0) return;
    watch_ = loop_.watch(fd, events, [this](std::uint32_t ev) { on_socket(ev); });
}

void Connection::connect() {
    if (state_ != State::closed) return;
    state_ = State::connecting;
    const std::optional<std::string> options = merged_startup_options(settings_);
    if (!options) {
        fail_deferred("cannot connect to " + settings_.display_name +
                      ": the connection string was rejected by libpq (check its syntax)");
        return;
    }
    // Keywords are processed in order: client_encoding after the conninfo
    // (expanded from dbname), so the conninfo cannot change it (the statement
    // classifier reads SQL as UTF-8, and results are passed on as UTF-8);
    // application_name wins over the fallback; `options` is the conninfo's
    // own, merged with the daemon's settings.
    const char* keys[] = {"dbname", "client_encoding", "fallback_application_name", "options", nullptr};
    const char* values[] = {settings_.conninfo.c_str(), "UTF8", "regiond", options->c_str(), nullptr};
    conn_ = PQconnectStartParams(keys, values, 1);
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
    connect_timer_ = loop_.timer(settings_.connect_timeout, [this, gen] {
        if (generation_ != gen || state_ != State::connecting) return;
        connect_failed("cannot connect to " + settings_.display_name + ": timed out after " +
                       std::to_string(settings_.connect_timeout.count()) + " ms");
    });
    // Before the first PQconnectPoll, act as if it had answered "writing".
    if (PQsocket(conn_) < 0) {
        fail_deferred(describe_libpq_error("cannot connect to"));
        return;
    }
    watch_socket(EPOLLOUT);
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
    if (PQsocket(conn_) < 0) {
        connect_failed(describe_libpq_error("cannot connect to"));
        return;
    }
    watch_socket(st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT);
}

void Connection::connect_failed(const std::string& why) {
    close(why);
}

void Connection::became_ready() {
    last_input_ = std::chrono::steady_clock::now();
    connect_timer_.cancel();
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    // What the statement classifier assumes of every text it reads (an
    // options='-c client_encoding=...' in the conninfo could still change it).
    if (const std::string wrong = wrong_session_basics(); !wrong.empty()) {
        connect_failed("cannot use " + settings_.display_name + ": " + wrong);
        return;
    }
    if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
        connect_failed(describe_libpq_error("cannot enter pipeline mode on"));
        return;
    }
    watch_socket(EPOLLIN);
    state_ = State::ready;
    remember_parameters();
    send_setup();
    if (!flush()) {
        close(describe_libpq_error("connection lost to"));
        return;
    }
    listener_.on_connected(*this);
}

std::string Connection::wrong_session_basics() const {
    const char* encoding = PQparameterStatus(conn_, "client_encoding");
    if (encoding == nullptr || std::strcmp(encoding, "UTF8") != 0)
        return std::string("its client_encoding is ") + (encoding != nullptr ? encoding : "unknown") +
               ", regiond needs UTF8 (remove client_encoding from the connection string's options)";
    const char* strings = PQparameterStatus(conn_, "standard_conforming_strings");
    if (strings == nullptr || std::strcmp(strings, "on") != 0)
        return "standard_conforming_strings is off, regiond needs it on (remove it from the connection string's "
               "options and the role's or database's settings)";
    return "";
}

void Connection::remember_parameters() {
    parameters_.clear();
    for (const char* name : kTrackedParameters) {
        const char* value = PQparameterStatus(conn_, name);
        parameters_.emplace_back(name, value != nullptr ? value : "");
    }
}

std::string Connection::changed_parameter() const {
    for (const auto& [name, value] : parameters_) {
        const char* now = PQparameterStatus(conn_, name);
        if (value != (now != nullptr ? now : "")) return name;
    }
    return "";
}

void Connection::send_setup() {
    Step sysid = Step::command(kSystemIdSql, {}, kTagSystemId);
    sysid.cacheable = false;
    if (!send_command(nullptr, sysid, Expect::Kind::internal_command) || PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0});
}

bool Connection::send_command(Work* work, const Step& step, Expect::Kind kind) {
    const int n = static_cast<int>(step.values.size());
    const Oid* types = step.types.empty() ? nullptr : step.types.data();
    const std::string sql(step.sql);
    Expect command{kind, work, step.tag, 0};
    command.single_row = step.single_row;
    if (!step.cacheable) {
        if (PQsendQueryParams(conn_, sql.c_str(), n, types, step.values.data(), nullptr, nullptr, 0) != 1) return false;
        expects_.push_back(command);
        return true;
    }
    const std::string key = cache_key(step);
    const auto found = cache_.find(key);
    switch (found.state) {
        case StatementCache::State::ready: {
            const std::string name = StatementCache::name_of(found.id);
            if (PQsendQueryPrepared(conn_, name.c_str(), n, step.values.data(), nullptr, nullptr, 0) != 1) return false;
            command.cache_id = found.id;
            expects_.push_back(command);
            return true;
        }
        case StatementCache::State::preparing:
            if (PQsendQueryParams(conn_, sql.c_str(), n, types, step.values.data(), nullptr, nullptr, 0) != 1)
                return false;
            expects_.push_back(command);
            return true;
        case StatementCache::State::miss: break;
    }
    const std::uint64_t id = cache_.insert(key, to_deallocate_);
    const std::string name = StatementCache::name_of(id);
    if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), n, types) != 1) {
        cache_.forget(id);
        return false;
    }
    expects_.push_back(Expect{Expect::Kind::prepare, work, step.tag, id});
    if (PQsendQueryPrepared(conn_, name.c_str(), n, step.values.data(), nullptr, nullptr, 0) != 1) return false;
    command.cache_id = id;
    expects_.push_back(command);
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
    expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0});
}

void Connection::send(Work& work, std::span<const Step> steps, bool reset_after) {
    if (state_ != State::ready) {
        throw std::logic_error("Connection::send on a connection that is not ready (" + settings_.display_name + ")");
    }
    end_batch();  // a Work with its own syncs never joins a batch
    ++depth_;
    std::size_t last_sync = steps.size();
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (steps[i].kind == Step::Kind::sync) last_sync = i;
    }
    auto push_sync = [&](bool last) {
        Expect e{Expect::Kind::sync, &work, 0, 0};
        e.last = last;
        e.counted = last;
        e.reset_follows = reset_after;
        expects_.push_back(e);
    };
    bool ok = true;
    for (std::size_t i = 0; i < steps.size() && ok; ++i) {
        const Step& step = steps[i];
        if (step.kind == Step::Kind::command) {
            ok = send_command(&work, step, Expect::Kind::command);
        } else {
            ok = PQpipelineSync(conn_) == 1;
            if (ok) push_sync(i == last_sync);
        }
    }
    if (ok && last_sync == steps.size()) {
        // Every Work ends with a sync; add the one the caller left out.
        ok = PQpipelineSync(conn_) == 1;
        if (ok) push_sync(true);
    }
    if (ok && reset_after) {
        // Right behind the Work, in the same flush: nothing is ever sent between
        // a Work that changed its session and the reset. DISCARD ALL drops every
        // prepared statement, so the cache (and what it meant to deallocate) goes.
        Step discard = Step::command(kDiscardSql, {}, kTagDiscard);
        discard.cacheable = false;
        ok = send_command(nullptr, discard, Expect::Kind::internal_command) && PQpipelineSync(conn_) == 1;
        if (ok) {
            expects_.back().discard = true;
            expects_.push_back(Expect{Expect::Kind::internal_sync, nullptr, 0, 0});
        }
        cache_.clear();
        to_deallocate_.clear();
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
    expects_.back().counted = true;
}

void Connection::end_batch() {
    if (!batch_open_ || state_ != State::ready) return;
    batch_open_ = false;
    if (!settings_.batch_trailer_sql.empty()) {
        // After every Work of the batch, in its implicit transaction: its
        // result goes to each of them (Work::on_batch_result).
        const Step trailer = Step::command(settings_.batch_trailer_sql, {}, kTagBatchTrailer);
        if (!send_command(nullptr, trailer, Expect::Kind::internal_command)) {
            fail_deferred(describe_libpq_error("cannot send to"));
            return;
        }
    }
    if (PQpipelineSync(conn_) != 1) {
        fail_deferred(describe_libpq_error("cannot send to"));
        return;
    }
    Expect sync{Expect::Kind::internal_sync, nullptr, 0, 0};
    sync.batch = true;
    expects_.push_back(sync);
    // Statements evicted by the batch's Works: deallocated in their own segment
    // after it, so nothing in the batch loses its statement.
    send_deallocations();
    if (!flush()) fail_deferred(describe_libpq_error("connection lost to"));
}

bool Connection::abandon(Work& work) {
    if (auto it = std::find(batch_complete_.begin(), batch_complete_.end(), &work); it != batch_complete_.end()) {
        batch_complete_.erase(it);  // its results are all in: nothing runs any more
        return false;
    }
    // The work may be running (or next to run) on the server when nothing live
    // is ahead of it: only internal segments or other abandoned works. Its
    // expects stay (work = nullptr) so its results are read and dropped, and it
    // counts in depth_ until they are.
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
    return seen && !live_ahead;
}

bool Connection::at_head(const Work& work) const {
    for (const auto& e : expects_) {
        if (e.work == &work) return true;
        if (e.work != nullptr) return false;
    }
    return false;
}

void Connection::pause() {
    if (state_ != State::ready || paused_) return;
    paused_ = true;
    update_interest();
}

void Connection::resume() {
    if (!paused_) return;
    paused_ = false;
    if (state_ != State::ready) return;
    update_interest();
    continue_reading();  // libpq may hold complete results already
}

PGcancel* Connection::make_cancel() const {
    return state_ == State::ready ? PQgetCancel(conn_) : nullptr;
}

bool Connection::flush() {
    const int r = PQflush(conn_);
    if (r < 0) return false;
    flush_pending_ = r == 1;
    update_interest();
    return true;
}

void Connection::update_interest() {
    if (!watch_.active()) return;
    const std::uint32_t want =
        (paused_ || backlogged_ ? 0u : std::uint32_t{EPOLLIN}) | (flush_pending_ ? EPOLLOUT : 0u);
    watch_.set_events(want);
}

void Connection::on_socket(std::uint32_t events) {
    if (state_ == State::connecting) {
        poll_connect();
        return;
    }
    if (state_ != State::ready) return;
    const bool hangup = (events & (EPOLLERR | EPOLLHUP)) != 0;
    if (paused_) {
        // Nothing is read while paused; epoll reports a reset socket anyway
        // (level-triggered), and only closing stops that from repeating.
        if (hangup) {
            close("connection lost to " + settings_.display_name + " while its result was paused");
            return;
        }
    } else if (!backlogged_ && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        // While backlogged, libpq already holds input: the continuation parses
        // it first, so libpq never buffers more than one read ahead.
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
    if (!paused_ && !backlogged_) read_results();
}

void Connection::continue_reading() {
    if (continuation_pending_) return;
    continuation_pending_ = true;
    const auto gen = generation_;
    scope_.defer([this, gen] {
        if (generation_ != gen) return;
        continuation_pending_ = false;
        if (state_ != State::ready || paused_) return;
        read_results();
    });
}

void Connection::read_results() {
    if (reading_ || state_ != State::ready) return;
    reading_ = true;
    const auto gen = generation_;
    std::size_t rows = 0;
    std::size_t bytes = 0;
    bool budget_spent = false;
    bool needs_input = false;
    while (generation_ == gen && state_ == State::ready && !paused_ && !expects_.empty()) {
        if (rows >= kRowsPerPass || bytes >= kBytesPerPass) {
            budget_spent = true;
            break;
        }
        const Expect& head = expects_.front();
        if (!single_row_armed_ && head.kind == Expect::Kind::command && head.single_row) {
            // Only possible while the command is at the head of libpq's queue and
            // none of its rows has been parsed (PQisBusy/PQgetResult parse); when
            // libpq refuses, the rows come as one result, handled the same way.
            PQsetSingleRowMode(conn_);
            single_row_armed_ = true;
        }
        if (PQisBusy(conn_) != 0) {
            needs_input = true;
            break;
        }
        PgResultPtr r(PQgetResult(conn_));
        const Expect e = expects_.front();
        const bool expecting_sync = e.kind == Expect::Kind::sync || e.kind == Expect::Kind::internal_sync;
        if (!r) {
            // The end of one command's results. A sync is never followed by NULL, so
            // NULL while a sync is expected means nothing more is available yet.
            if (expecting_sync) {
                needs_input = true;
                break;
            }
            expects_.pop_front();
            single_row_armed_ = false;
            if (e.kind == Expect::Kind::command && e.last) {
                // A batched Work's last command: its results are in; it finishes
                // at the batch's shared sync, after the session checks.
                if (e.counted && depth_ > 0) --depth_;
                if (e.work != nullptr) batch_complete_.push_back(e.work);
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
            single_row_armed_ = false;
            on_sync(e);
            continue;
        }
        if (expecting_sync) {
            close("protocol error on " + settings_.display_name + ": result where a pipeline sync was expected");
            break;
        }
        if (status == PGRES_SINGLE_TUPLE) {
            ++rows;
            bytes += row_bytes(*r);
        }
        handle_result(e, std::move(r));
    }
    if (generation_ != gen || state_ != State::ready) return;  // close() reset the flags
    reading_ = false;
    if (rows > 0) last_input_ = std::chrono::steady_clock::now();  // parsed from libpq's buffer: input too
    if (budget_spent && !paused_) {
        backlogged_ = true;
        update_interest();
        continue_reading();
    } else if (backlogged_ && (needs_input || expects_.empty())) {
        backlogged_ = false;
        update_interest();
    }
}

void Connection::on_sync(const Expect& e) {
    // The session checks (see the header): a transaction block left open shows
    // as a command tag, or in PQtransactionStatus when nothing else is queued
    // (libpq says ACTIVE while commands are pending); a reported parameter that
    // differs from its value at connect means a statement changed the session.
    std::string violation;
    bool transaction_open = transaction_tag_seen_;
    if (!transaction_open) {
        const PGTransactionStatusType ts = PQtransactionStatus(conn_);
        transaction_open = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
    }
    transaction_tag_seen_ = false;
    if (transaction_open) {
        violation = "a transaction block was left open";
    } else if (!e.reset_follows) {
        const std::string changed = changed_parameter();
        if (!changed.empty()) violation = "the session setting " + changed + " was changed";
    }
    const auto reset_why = [&](const std::string& what) {
        return "connection to " + settings_.display_name + " reset: " + what;
    };
    const auto gen = generation_;
    if (e.kind == Expect::Kind::sync) {
        if (!e.last) {
            // Inside a Work (a write's first segment). An open transaction block
            // must not survive into the next segment: closing rolls it back.
            if (transaction_open) {
                close(reset_why(violation + "; it was rolled back"), CloseCause::reset, e.work);
            } else if (!violation.empty()) {
                reset_pending_ = true;
                reset_pending_why_ = violation;
            }
            return;
        }
        if (e.counted && depth_ > 0) --depth_;
        if (e.work != nullptr) e.work->on_finished();
        if (generation_ != gen) return;
        if (violation.empty() && reset_pending_) violation = reset_pending_why_;
        reset_pending_ = false;
        if (!violation.empty()) {
            close(reset_why(violation), CloseCause::reset);
            return;
        }
        listener_.on_work_done(*this);
        return;
    }
    // An internal sync: setup, deallocations, DISCARD ALL, or a batch's.
    if (!violation.empty() || reset_pending_) {
        if (violation.empty()) violation = reset_pending_why_;
        reset_pending_ = false;
        CloseInfo info;
        info.why = reset_why(violation);
        info.cause = CloseCause::reset;
        info.batch_violation = e.batch;
        close_with(std::move(info), true);
        return;
    }
    if (!e.batch) return;
    // One at a time from the front: a callback that closes the connection
    // leaves the rest here for close() to tell.
    while (!batch_complete_.empty()) {
        Work* w = batch_complete_.front();
        batch_complete_.erase(batch_complete_.begin());
        w->on_finished();
        if (generation_ != gen) return;
    }
    listener_.on_work_done(*this);
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
        case Expect::Kind::command: {
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
            if (status == PGRES_COMMAND_OK && opens_transaction(PQcmdStatus(result.get())))
                transaction_tag_seen_ = true;
            const bool handled = handled_status(status);
            const auto gen = generation_;
            if (e.work != nullptr) e.work->on_result(e.tag, std::move(result));
            if (!handled && generation_ == gen && state_ == State::ready) {
                // COPY (or anything the daemon does not speak): libpq would return
                // the same status forever. The Work has its error; the session
                // is in a state only closing ends.
                const bool copy = status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH;
                close("connection to " + settings_.display_name + " reset after " +
                          (copy ? std::string("a COPY")
                                : std::string("an unexpected result (") + PQresStatus(status) + ")"),
                      CloseCause::reset, e.work);
            }
            return;
        }
        case Expect::Kind::internal_command:
            if (e.tag == kTagBatchTrailer) {
                if (status == PGRES_FATAL_ERROR && e.cache_id != 0) cache_.forget(e.cache_id);
                // Skipped (a read of the batch failed: the others go again) or
                // failed: the batch's reads get no token.
                if (status == PGRES_TUPLES_OK)
                    for (Work* w : batch_complete_) w->on_batch_result(r);
                return;
            }
            if (e.tag == kTagSystemId) {
                if (status == PGRES_TUPLES_OK && PQntuples(&r) == 1 && PQnfields(&r) == 1 && !PQgetisnull(&r, 0, 0)) {
                    system_identifier_ = std::strtoull(PQgetvalue(&r, 0, 0), nullptr, 10);
                } else {
                    const char* msg = PQresultErrorField(&r, PG_DIAG_MESSAGE_PRIMARY);
                    setup_error_ = "cannot read the system identifier of " + settings_.display_name + ": " +
                                   (msg != nullptr ? base::redact_secrets(msg) : std::string("no result"));
                }
            }
            if (!handled_status(status) || (e.discard && status != PGRES_COMMAND_OK)) {
                // A session that cannot be reset is never reused.
                const char* msg = PQresultErrorField(&r, PG_DIAG_MESSAGE_PRIMARY);
                close("connection to " + settings_.display_name + " reset: " +
                          (e.discard ? std::string("DISCARD ALL failed") : std::string("internal command failed")) +
                          (msg != nullptr ? std::string(": ") + msg : std::string()),
                      CloseCause::reset);
            }
            return;
        case Expect::Kind::sync:
        case Expect::Kind::internal_sync: return;
    }
}

void Connection::close(const std::string& why, CloseCause cause, const Work* culprit, bool notify) {
    CloseInfo info;
    info.why = why;
    info.cause = cause;
    info.culprit = culprit;
    close_with(std::move(info), notify);
}

void Connection::close_with(CloseInfo info, bool notify) {
    if (state_ == State::closed) return;
    const bool was_ready = state_ == State::ready;
    ++generation_;
    connect_timer_.cancel();
    watch_.reset();
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    state_ = State::closed;
    flush_pending_ = false;
    batch_open_ = false;
    reading_ = false;
    paused_ = false;
    backlogged_ = false;
    continuation_pending_ = false;
    single_row_armed_ = false;
    transaction_tag_seen_ = false;
    reset_pending_ = false;
    depth_ = 0;
    cache_.clear();
    to_deallocate_.clear();
    parameters_.clear();
    system_identifier_ = 0;
    setup_error_.clear();
    const std::vector<Work*> complete = std::move(batch_complete_);
    batch_complete_.clear();
    std::vector<Work*> live;
    for (const auto& e : expects_) {
        if (e.work != nullptr && std::find(live.begin(), live.end(), e.work) == live.end()) live.push_back(e.work);
    }
    expects_.clear();
    info.head = live.empty() ? nullptr : live.front();
    if (!notify) return;
    for (Work* w : complete) {
        CloseInfo mine = info;
        mine.complete = true;
        w->on_connection_closed(mine);
    }
    for (Work* w : live) w->on_connection_closed(info);
    listener_.on_closed(*this, info, was_ready);
}

}  // namespace regiond::daemon::pg
