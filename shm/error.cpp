#include "shm/error.hpp"

#include "shm/base/errno_text.hpp"

namespace regiond::shm {

Error Error::system(int errno_value, std::string what) {
    what += ": ";
    what += base::errno_text(errno_value);
    return Error{errno_value, std::move(what)};
}

}  // namespace regiond::shm
