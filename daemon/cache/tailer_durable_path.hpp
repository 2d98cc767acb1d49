// The real durable path: the InvalidationTailer (linked into the regiond
// executable with the PostgreSQL backend; see durable_path.hpp).
#pragma once

#include "daemon/cache/durable_path.hpp"

namespace regiond::daemon::cache {

std::unique_ptr<DurablePath> make_tailer_durable_path(EventLoop& loop, const pg::EndpointOptions& endpoint,
                                                      bool cleanup, DurablePath::Hooks hooks);

}  // namespace regiond::daemon::cache
