// Turning libregiond results into JavaScript values: a successful result into the
// Result object of index.d.ts, a failed one into a RegiondError. Used by the
// client on the event loop's thread only (napi calls need the env's thread).
#pragma once

#include <napi.h>
#include <regiond/client.h>

namespace regiond_node {

// Per-environment state (a worker thread has its own): the RegiondError class
// that lib/errors.js hands over at load time, so errors made here are instances
// of the same class users catch.
struct AddonData {
    Napi::FunctionReference error_class;
};

// { rows, columns, rowCount, servedBy, routeReason, token, affected, fromCache }
napi_value result_to_js(napi_env env, const rgd_result* r);

// new RegiondError(message, { sqlstate, servedBy, routeReason })
napi_value make_error(napi_env env, const char* message, const char* sqlstate = "", const char* served_by = "",
                      const char* route_reason = "");
napi_value error_from_result(napi_env env, const rgd_result* r);

}  // namespace regiond_node
