#include "daemon/cache/cache_values.hpp"

#include "shm/cache_answer.hpp"
#include "shm/cache_value.hpp"
#include "shm/codec.hpp"

namespace regiond::daemon::cache {

std::optional<std::vector<std::byte>> value_from_answer(const std::vector<std::vector<std::byte>>& chunks,
                                                        const ValueFacts& facts, std::size_t max_value_bytes) {
    shm::ResponseDecoder decoder;
    for (const auto& chunk : chunks)
        if (decoder.feed(chunk) != shm::CodecError::ok) return std::nullopt;
    if (!decoder.complete()) return std::nullopt;
    shm::Response response = decoder.take();
    if (response.status != shm::Status::ok || response.columns.empty()) return std::nullopt;
    // The head a cache answer gets is written when it is served.
    response.served_by.clear();
    response.token.clear();
    response.route_reason.clear();
    std::vector<std::vector<std::byte>> encoded;
    if (shm::encode_response(response, max_value_bytes, encoded) != shm::CodecError::ok || encoded.size() != 1)
        return std::nullopt;  // larger than one value may be
    shm::CacheValueView view;
    view.floor_lsn = facts.floor_lsn;
    view.token_lsn = facts.token_lsn;
    view.system_id = facts.system_id;
    view.expires_unix_ms = facts.expires_unix_ms;
    view.query = facts.query;
    view.response = encoded.front();
    std::vector<std::byte> blob = shm::encode_cache_value(view);
    if (blob.empty() || blob.size() > max_value_bytes) return std::nullopt;
    return blob;
}

std::optional<std::vector<std::vector<std::byte>>> answer_from_value(std::span<const std::byte> blob,
                                                                     std::string_view served_by,
                                                                     std::string_view route_reason,
                                                                     std::size_t max_chunk_bytes) {
    std::optional<shm::Response> response = shm::response_from_cache_value(blob, served_by, route_reason);
    if (!response) return std::nullopt;
    std::vector<std::vector<std::byte>> chunks;
    if (shm::encode_response(*response, max_chunk_bytes, chunks) != shm::CodecError::ok) return std::nullopt;
    return chunks;
}

}  // namespace regiond::daemon::cache
