#include "shm/cache_answer.hpp"

#include "shm/base/token.hpp"
#include "shm/cache_value.hpp"

namespace regiond::shm {

std::optional<Response> response_from_cache_value(std::span<const std::byte> blob, std::string_view served_by,
                                                  std::string_view route_reason) {
    const std::optional<CacheValueView> value = parse_cache_value(blob);
    if (!value) return std::nullopt;
    ResponseDecoder decoder;
    if (decoder.feed(value->response) != CodecError::ok || !decoder.complete()) return std::nullopt;
    Response response = decoder.take();
    if (response.status != Status::ok) return std::nullopt;
    response.served_by.assign(served_by);
    response.route_reason.assign(route_reason);
    response.token = value->system_id != 0 && value->token_lsn != 0
                         ? base::format_token({value->system_id, value->token_lsn})
                         : std::string();
    return response;
}

}  // namespace regiond::shm
