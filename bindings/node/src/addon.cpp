// The module's entry point: NativeClient (src/client.cpp), tokenCmp, and the
// hook through which lib/errors.js hands over its RegiondError class.
#include <napi.h>
#include <regiond/client.h>

#include "client.hpp"
#include "convert.hpp"

namespace regiond_node {
namespace {

Napi::Value set_error_class(const Napi::CallbackInfo& info) {
    if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass(RegiondError): not a function");
    auto* data = info.Env().GetInstanceData<AddonData>();
    data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
}

Napi::Value token_cmp(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (!info[0].IsString() || !info[1].IsString()) return Napi::Number::New(env, -2);
    const std::string a = info[0].As<Napi::String>().Utf8Value();
    const std::string b = info[1].As<Napi::String>().Utf8Value();
    return Napi::Number::New(env, rgd_token_cmp(a.c_str(), b.c_str()));
}

}  // namespace
}  // namespace regiond_node

// NODE_API_MODULE wants an unqualified name.
static Napi::Object init(Napi::Env env, Napi::Object exports) {
    using namespace regiond_node;
    env.SetInstanceData(new AddonData());
    exports.Set("NativeClient", NativeClient::define(env));
    exports.Set("tokenCmp", Napi::Function::New<token_cmp>(env, "tokenCmp"));
    exports.Set("setErrorClass", Napi::Function::New<set_error_class>(env, "setErrorClass"));
    return exports;
}

NODE_API_MODULE(regiond, init)
