// The statement classifier (daemon/pg/statement_classifier.hpp) over arbitrary
// text, as a read and as a write, with the invariants the daemon relies on:
// a refused or unparsed request is never batchable, a batchable one is one
// plain statement, a read of several statements is refused, every statement is
// a piece of the input, and split_statements agrees with the classifier.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/pg/statement_classifier.hpp"
#include "daemon/pg/statements.hpp"
#include "fuzz_check.hpp"

using namespace regiond::daemon::pg;

namespace {

void check(std::string_view sql, Operation op, const Classification& c) {
    if (!c.refusal.empty() || !c.parsed) FUZZ_CHECK(!c.batchable);
    if (!c.parsed) {
        FUZZ_CHECK(c.statements.empty());
        FUZZ_CHECK(c.refusal.empty());
        FUZZ_CHECK(!c.parse_error.empty());
        FUZZ_CHECK(!c.changes_session);
    }
    if (c.batchable) {
        FUZZ_CHECK(c.statements.size() == 1);
        FUZZ_CHECK(c.statements[0].plain_query);
        FUZZ_CHECK(c.statements[0].refusal.empty());
        FUZZ_CHECK(!c.changes_session);
    }
    if (op == Operation::read && c.statements.size() > 1) FUZZ_CHECK(!c.refusal.empty());
    if (c.parsed && c.statements.empty()) FUZZ_CHECK(!c.refusal.empty());
    bool any_refused = false, any_session = false;
    for (const auto& st : c.statements) {
        FUZZ_CHECK(!st.sql.empty());
        FUZZ_CHECK(sql.find(st.sql) != std::string_view::npos);
        FUZZ_CHECK(st.referenced.size() <= 65535);
        FUZZ_CHECK(!st.tag.empty());
        if (st.plain_query) FUZZ_CHECK(!st.changes_session && st.refusal.empty());
        any_refused = any_refused || !st.refusal.empty();
        any_session = any_session || st.changes_session;
    }
    if (any_refused) FUZZ_CHECK(!c.refusal.empty());
    FUZZ_CHECK(c.changes_session == any_session);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view sql(reinterpret_cast<const char*>(data), size);
    const Classification read = classify(sql, Operation::read);
    const Classification write = classify(sql, Operation::write);
    check(sql, Operation::read, read);
    check(sql, Operation::write, write);
    // The operation changes the verdict, never how the text is read.
    FUZZ_CHECK(read.parsed == write.parsed);
    FUZZ_CHECK(read.statements.size() == write.statements.size());
    for (std::size_t i = 0; i < read.statements.size(); ++i) {
        FUZZ_CHECK(read.statements[i].sql == write.statements[i].sql);
        FUZZ_CHECK(read.statements[i].referenced == write.statements[i].referenced);
        FUZZ_CHECK(read.statements[i].changes_session == write.statements[i].changes_session);
    }

    const SplitResult split = split_statements(sql);
    if (split.ok) {
        FUZZ_CHECK(write.parsed);
        FUZZ_CHECK(split.statements.size() == write.statements.size());
        for (std::size_t i = 0; i < split.statements.size(); ++i) {
            FUZZ_CHECK(split.statements[i].sql == write.statements[i].sql);
            FUZZ_CHECK(split.statements[i].referenced == write.statements[i].referenced);
        }
    }

    // The cache answers exactly what classify() answers.
    StatementClassifier cache(4);
    const auto cached = cache.classify(sql, Operation::read);
    FUZZ_CHECK(cached->refusal == read.refusal && cached->batchable == read.batchable);
    FUZZ_CHECK(cache.classify(sql, Operation::read) == cached || sql.size() > StatementClassifier::kMaxCachedText);
    return 0;
}
