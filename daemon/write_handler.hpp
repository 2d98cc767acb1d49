// write: to the primary, once. A write whose endpoint failed may or may not
// have committed, so it is never sent again (Job::may_retry = false tells the
// endpoint the same); its error says so.
#pragma once

#include "daemon/operation_handler.hpp"

namespace regiond::daemon {

class WriteHandler final : public OperationHandler {
public:
    void start(PendingRequest& request, DispatchContext& context) override;
};

}  // namespace regiond::daemon
