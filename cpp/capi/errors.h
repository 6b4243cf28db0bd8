// The C API's error handling: C++ exceptions become rnncore_status codes and a message kept
// per thread (rnncore_last_error); nothing is thrown across the C boundary.
#pragma once

#include <new>
#include <stdexcept>
#include <string>

#include "rnncore/rnncore.h"

namespace rnncore::capi {

// An error with the status the C caller receives.
struct Error : std::runtime_error {
  Error(rnncore_status status, const std::string& message)
      : std::runtime_error(message), code(status) {}
  rnncore_status code;
};

[[noreturn]] inline void fail(rnncore_status status, const std::string& message) {
  throw Error(status, message);
}
[[noreturn]] inline void bad_argument(const std::string& message) {
  fail(RNNCORE_ERROR_INVALID_ARGUMENT, message);
}

void set_last_error(const std::string& message);

// f() with every exception turned into a status and a message for rnncore_last_error.
template <typename F>
rnncore_status guarded(const char* where, F&& f) {
  try {
    set_last_error("");
    f();
    return RNNCORE_OK;
  } catch (const Error& e) {
    set_last_error(std::string(where) + ": " + e.what());
    return e.code;
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(where) + ": out of memory");
    return RNNCORE_ERROR_OUT_OF_MEMORY;
  } catch (const std::invalid_argument& e) {
    set_last_error(std::string(where) + ": " + e.what());
    return RNNCORE_ERROR_INVALID_ARGUMENT;
  } catch (const std::exception& e) {
    set_last_error(std::string(where) + ": " + e.what());
    return RNNCORE_ERROR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(where) + ": unknown error");
    return RNNCORE_ERROR_INTERNAL;
  }
}

// a * b, or an INVALID_ARGUMENT error naming `what` when it overflows int64.
int64_t checked_mul(int64_t a, int64_t b, const char* what);

}  // namespace rnncore::capi
