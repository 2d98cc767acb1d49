// STUB (interface only): the real classifier (libpg_query parse trees) replaces
// this file. It refuses transaction control via split_statements() and treats
// every single read as a plain query.
#include "daemon/pg/statement_classifier.hpp"

#include "daemon/pg/statements.hpp"

namespace regiond::daemon::pg {

Classification classify(std::string_view sql, Operation op) {
    Classification out;
    SplitResult split = split_statements(sql);
    if (!split.ok) {
        out.parse_error = split.error;
        return out;
    }
    out.parsed = true;
    const std::size_t n = split.statements.size();
    for (std::size_t i = 0; i < n; ++i) {
        StatementClass st;
        st.sql = std::move(split.statements[i].sql);
        st.referenced = std::move(split.statements[i].referenced);
        if (!split.statements[i].transaction_control.empty()) {
            st.tag = split.statements[i].transaction_control;
            st.refusal = st.tag +
                         " is transaction control: regiond runs every request as its own transaction; "
                         "send the statements without BEGIN/COMMIT/ROLLBACK/SAVEPOINT";
        }
        st.plain_query = op == Operation::read && st.refusal.empty();
        if (out.refusal.empty() && !st.refusal.empty())
            out.refusal = n > 1 ? "statement " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + st.refusal
                                : st.refusal;
        out.changes_session = out.changes_session || st.changes_session;
        out.statements.push_back(std::move(st));
    }
    if (out.refusal.empty() && op == Operation::read && n > 1)
        out.refusal = "a read is one statement (this one has " + std::to_string(n) +
                      "): send several statements as a write, where they run as one transaction";
    out.batchable = n == 1 && out.statements[0].plain_query;
    return out;
}

StatementClassifier::StatementClassifier(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

std::shared_ptr<const Classification> StatementClassifier::classify(std::string_view sql, Operation op) {
    std::string key;
    key.reserve(sql.size() + 1);
    key.push_back(op == Operation::read ? 'r' : 'w');
    key.append(sql);
    if (auto it = index_.find(key); it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->second;
    }
    auto value = std::make_shared<const Classification>(pg::classify(sql, op));
    lru_.emplace_front(std::move(key), value);
    index_.emplace(std::string_view(lru_.front().first), lru_.begin());
    if (lru_.size() > capacity_) {
        index_.erase(std::string_view(lru_.back().first));
        lru_.pop_back();
    }
    return value;
}

}  // namespace regiond::daemon::pg
