// split_statements() and referenced_params() on top of the statement analysis
// (statement_analysis.cpp), so the splitting and $n counting exist once.
#include "daemon/pg/statements.hpp"

#include "daemon/pg/sql_parser.hpp"
#include "daemon/pg/statement_analysis.hpp"

namespace regiond::daemon::pg {

std::optional<std::vector<bool>> referenced_params(std::string_view statement) {
    if (statement.find('\0') != std::string_view::npos) return std::nullopt;
    const std::string text(statement);
    auto tokens = sql::scan(text);
    if (!tokens) return std::nullopt;
    std::vector<bool> referenced;
    for (const auto& t : *tokens) {
        if (t.token != sql::kParam) continue;
        const std::string_view word = std::string_view(text).substr(t.start, t.end - t.start);
        std::size_t n = 0;
        bool ok = word.size() >= 2 && word.size() <= 7;
        for (std::size_t i = 1; ok && i < word.size(); ++i) {
            ok = word[i] >= '0' && word[i] <= '9';
            n = n * 10 + static_cast<std::size_t>(word[i] - '0');
        }
        if (!ok || n == 0 || n > detail::kMaxParamNumber) return std::nullopt;
        if (referenced.size() < n) referenced.resize(n, false);
        referenced[n - 1] = true;
    }
    return referenced;
}

SplitResult split_statements(std::string_view sql) {
    SplitResult out;
    detail::Analysis analysis = detail::analyze(sql);
    if (analysis.status != detail::Analysis::Status::ok) {
        out.error = std::move(analysis.error);
        return out;
    }
    for (auto& a : analysis.statements) {
        Statement st;
        st.sql = std::move(a.sql);
        st.referenced = std::move(a.referenced);
        if (a.facts.node == "TransactionStmt") st.transaction_control = std::move(a.tag);
        out.statements.push_back(std::move(st));
    }
    out.ok = true;
    return out;
}

}  // namespace regiond::daemon::pg
