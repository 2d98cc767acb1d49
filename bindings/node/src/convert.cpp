#include "convert.hpp"

#include <cstring>
#include <vector>

namespace regiond_node {
namespace {

napi_value str(napi_env env, const char* s) {
    napi_value v = nullptr;
    napi_create_string_utf8(env, s != nullptr ? s : "", NAPI_AUTO_LENGTH, &v);
    return v;
}

void set(napi_env env, napi_value object, const char* name, napi_value value) {
    napi_set_named_property(env, object, name, value);
}

}  // namespace

napi_value result_to_js(napi_env env, const rgd_result* r) {
    const int ncols = rgd_ncols(r);
    const int nrows = rgd_nrows(r);

    // Column names become property keys once per result, not once per row: a
    // 100 000-row result makes ncols key strings, not 100 000 * ncols.
    std::vector<napi_value> keys(static_cast<size_t>(ncols));
    napi_value columns = nullptr;
    napi_create_array_with_length(env, static_cast<size_t>(ncols), &columns);
    for (int c = 0; c < ncols; ++c) {
        keys[static_cast<size_t>(c)] = str(env, rgd_colname(r, c));
        napi_set_element(env, columns, static_cast<uint32_t>(c), keys[static_cast<size_t>(c)]);
    }

    napi_value null_value = nullptr;
    napi_get_null(env, &null_value);
    napi_value rows = nullptr;
    napi_create_array_with_length(env, static_cast<size_t>(nrows), &rows);
    for (int i = 0; i < nrows; ++i) {
        // One handle scope per row: a large result would otherwise hold
        // nrows * (ncols + 1) handles until the whole result is built.
        napi_handle_scope scope = nullptr;
        napi_open_handle_scope(env, &scope);
        napi_value row = nullptr;
        napi_create_object(env, &row);
        for (int c = 0; c < ncols; ++c) {
            const char* v = rgd_value(r, i, c);
            napi_value jv = null_value;
            if (v != nullptr) napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &jv);
            napi_set_property(env, row, keys[static_cast<size_t>(c)], jv);
        }
        napi_set_element(env, rows, static_cast<uint32_t>(i), row);
        napi_close_handle_scope(env, scope);
    }

    napi_value result = nullptr;
    napi_create_object(env, &result);
    set(env, result, "rows", rows);
    set(env, result, "columns", columns);
    napi_value count = nullptr;
    napi_create_int32(env, nrows, &count);
    set(env, result, "rowCount", count);
    const char* served_by = rgd_served_by(r);
    set(env, result, "servedBy", str(env, served_by));
    set(env, result, "routeReason", str(env, rgd_route_reason(r)));
    set(env, result, "token", str(env, rgd_token(r)));
    const long long affected = rgd_affected(r);
    napi_value affected_value = null_value;
    if (affected >= 0) napi_create_int64(env, affected, &affected_value);
    set(env, result, "affected", affected_value);
    napi_value from_cache = nullptr;
    napi_get_boolean(env, std::strncmp(served_by, "cache:", 6) == 0, &from_cache);
    set(env, result, "fromCache", from_cache);
    return result;
}

napi_value make_error(napi_env env, const char* message, const char* sqlstate, const char* served_by,
                      const char* route_reason) {
    napi_value details = nullptr;
    napi_create_object(env, &details);
    set(env, details, "sqlstate", str(env, sqlstate));
    set(env, details, "servedBy", str(env, served_by));
    set(env, details, "routeReason", str(env, route_reason));
    napi_value msg = str(env, message);

    auto* data = Napi::Env(env).GetInstanceData<AddonData>();
    napi_value error = nullptr;
    if (data != nullptr && !data->error_class.IsEmpty()) {
        napi_value args[2] = {msg, details};
        if (napi_new_instance(env, data->error_class.Value(), 2, args, &error) == napi_ok) return error;
        // A throwing constructor must not leave an exception pending here.
        napi_value ignored = nullptr;
        napi_get_and_clear_last_exception(env, &ignored);
    }
    // Only before lib/errors.js registered its class (never in normal use).
    napi_create_error(env, nullptr, msg, &error);
    napi_set_named_property(env, error, "sqlstate", str(env, sqlstate));
    return error;
}

napi_value error_from_result(napi_env env, const rgd_result* r) {
    if (r == nullptr) return make_error(env, "out of memory in libregiond");
    return make_error(env, rgd_error(r), rgd_sqlstate(r), rgd_served_by(r), rgd_route_reason(r));
}

}  // namespace regiond_node
