// A pull reader for the JSON that libpg_query writes (its parse trees): one event
// per call, no tree built, no recursion. The classifier walks parse trees with
// it; its own stack is a std::vector bounded by `max_depth`, so a parse tree of
// any depth costs memory in proportion to its depth and never overflows the
// thread's stack. Strict JSON (RFC 8259): anything else is an error event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace regiond::daemon::pg {

class JsonReader {
public:
    enum class Event : std::uint8_t {
        object_begin,
        object_end,
        array_begin,
        array_end,
        key,     ///< value(): the key (decoded)
        string,  ///< value(): the string (decoded)
        number,  ///< value(): the number as written
        true_value,
        false_value,
        null_value,
        end,    ///< the document ended (and nothing but white space follows)
        error,  ///< error() says why; every later call answers error again
    };

    JsonReader(std::string_view text, std::size_t max_depth) : text_(text), max_depth_(max_depth) {}

    Event next();

    /// The text of the last key, string or number event. Valid until the next
    /// call of next().
    std::string_view value() const { return value_; }
    /// Containers open now (1 inside the outermost object or array).
    std::size_t depth() const { return stack_.size(); }
    const std::string& error() const { return error_; }
    /// The error was the depth limit (the JSON itself may be fine).
    bool too_deep() const { return too_deep_; }

private:
    enum class Expect : std::uint8_t {
        value,               ///< a value (at the top or after ':' or '[')
        first_key_or_end,    ///< after '{'
        key,                 ///< after ',' in an object
        colon,               ///< after a key
        first_value_or_end,  ///< after '['
        comma_or_end,        ///< after a value inside a container
        done,                ///< after the top-level value
    };

    Event fail(std::string why);
    Event value_event();
    Event after_value(Event e);
    bool read_string();
    bool read_number();
    void skip_space();

    std::string_view text_;
    std::size_t pos_ = 0;
    std::size_t max_depth_;
    std::vector<char> stack_;  ///< '{' or '[' per open container
    Expect expect_ = Expect::value;
    std::string_view value_;
    std::string scratch_;  ///< decoded strings that held escapes
    std::string error_;
    bool too_deep_ = false;
};

}  // namespace regiond::daemon::pg
