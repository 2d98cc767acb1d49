// The shm building blocks' name for the one fd wrapper (shm/base/unique_fd.hpp).
#pragma once

#include "shm/base/unique_fd.hpp"

namespace regiond::shm {

using UniqueFd = base::UniqueFd;

}  // namespace regiond::shm
