#include "shm/error.hpp"

#include <cstring>

namespace regiond::shm {

Error Error::system(int errno_value, std::string what) {
    what += ": ";
    what += std::strerror(errno_value);
    return Error{errno_value, std::move(what)};
}

}  // namespace regiond::shm
