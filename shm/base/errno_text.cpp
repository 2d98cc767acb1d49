#include "shm/base/errno_text.hpp"

#include <system_error>

namespace regiond::base {

std::string errno_text(int error) {
    // The generic category's message is strerror_r's text, without its static buffer.
    return std::generic_category().message(error);
}

}  // namespace regiond::base
