// libFuzzer entry for the GGUF reader: any input must parse or give mixserve::Error, never crash.
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "model/gguf.h"

namespace {

using mixserve::gguf::Array;
using mixserve::gguf::File;
using mixserve::gguf::Value;

// Reads every accessor of a value (recursing into arrays) so sanitizers see any bad state.
size_t touch(const Value& v) {
  size_t n = static_cast<size_t>(v.as_int().value_or(0)) + static_cast<size_t>(v.as_bool().value_or(false));
  if (const auto d = v.as_double()) n += *d > 0 ? 1 : 0;
  if (const std::string* s = v.as_string()) n += s->size() + (s->empty() ? 0 : static_cast<uint8_t>(s->back()));
  if (const Array* a = v.as_array()) {
    for (const Value& item : a->items) n += touch(item);
  }
  return n;
}

// Calls a typed getter, ignoring the type errors it may legitimately raise.
template <typename Fn>
size_t guarded(Fn fn) {
  try {
    return fn();
  } catch (const mixserve::Error&) {
    return 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const File f = File::parse({data, size});
    volatile size_t sink = f.version() + f.alignment() + f.image().size();
    for (const auto& entry : f.metadata()) {
      const std::string& key = entry.first;  // named, not a structured binding: lambdas capture it
      sink = sink + touch(entry.second) + (f.find(key) == &entry.second ? 1 : 0);
      sink = sink + guarded([&] { return f.get_string(key)->size(); });
      sink = sink + guarded([&] { return static_cast<size_t>(*f.get_int(key)); });
      sink = sink + guarded([&] { return static_cast<size_t>(*f.get_float(key) > 0); });
      sink = sink + guarded([&] { return static_cast<size_t>(*f.get_bool(key)); });
      sink = sink + guarded([&] { return f.get_string_array(key)->size(); });
      sink = sink + guarded([&] { return f.get_float_array(key)->size(); });
      sink = sink + guarded([&] { return f.get_int_array(key)->size(); });
    }
    for (const auto& t : f.tensors()) {
      const auto bytes = f.tensor_data(t);
      sink = sink + bytes.size() + (bytes.empty() ? 0 : bytes.front() + bytes.back());
      sink = sink + (f.find_tensor(t.name) == &t ? 1 : 0);
    }
    (void)sink;
  } catch (const mixserve::Error&) {
  }
  return 0;
}
