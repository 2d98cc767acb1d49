// The text of an errno value, for messages ("cannot open X: No such file or
// directory"). Thread-safe (strerror() is not).
#pragma once

#include <string>

namespace regiond::base {

std::string errno_text(int error);

}  // namespace regiond::base
