#include "model_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <tuple>

#include "errors.h"
#include "json.h"

namespace rnncore::capi {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;  // as the Python reader

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  fail(RNNCORE_ERROR_FILE, path + ": " + what);
}

void read_exact(std::FILE* f, void* out, uint64_t n, const std::string& path) {
  if (n && std::fread(out, 1, n, f) != n) bad_file(path, "could not read (truncated?)");
}

Entry entry(const std::string& path, const std::string& name, const json::Value& spec,
            uint64_t data_bytes) {
  const json::Value* dtype = spec.find("dtype");
  const json::Value* shape = spec.find("shape");
  const json::Value* offsets = spec.find("data_offsets");
  if (!spec.is_object() || spec.fields.size() != 3 || !dtype || !shape || !offsets)
    bad_file(path, "tensor '" + name + "' must have exactly dtype, shape, data_offsets");
  if (!dtype->is_string()) bad_file(path, "tensor '" + name + "' has an invalid dtype");
  if (dtype->text != "F32")
    fail(RNNCORE_ERROR_UNSUPPORTED, path + ": tensor '" + name + "' has dtype " + dtype->text +
                                        "; the C runtime runs float32 models");
  Entry e;
  e.name = name;
  uint64_t count = 1;
  if (!shape->is_array() || shape->items.size() > 8)
    bad_file(path, "tensor '" + name + "' has an invalid shape");
  for (const json::Value& v : shape->items) {
    int64_t n = 0;
    if (!v.as_int(0, int64_t(1) << 40, &n))
      bad_file(path, "tensor '" + name + "' has an invalid shape");
    e.shape.push_back(n);
    if (__builtin_mul_overflow(count, uint64_t(n), &count) || count > data_bytes)
      bad_file(path, "tensor '" + name + "' is larger than the file");
  }
  int64_t b = 0, en = 0;
  if (!offsets->is_array() || offsets->items.size() != 2 ||
      !offsets->items[0].as_int(0, int64_t(data_bytes), &b) ||
      !offsets->items[1].as_int(b, int64_t(data_bytes), &en))
    bad_file(path, "tensor '" + name + "' has invalid data_offsets");
  e.begin = uint64_t(b);
  e.end = uint64_t(en);
  if (count * 4 != e.end - e.begin)
    bad_file(path, "tensor '" + name + "' needs " + std::to_string(count * 4) +
                       " bytes, but its offsets span " + std::to_string(e.end - e.begin));
  return e;
}

// Offsets must tile [0, data_bytes) exactly: sorted, no gaps, no overlaps.
void check_tiling(const std::string& path, std::vector<Entry>& entries, uint64_t data_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t pos = 0;
  for (const Entry& e : entries) {
    if (e.begin != pos)
      bad_file(path, "tensor '" + e.name + "' at offset " + std::to_string(e.begin) +
                         (e.begin < pos ? " overlaps the previous tensor" : " leaves a gap"));
    pos = e.end;
  }
  if (pos != data_bytes) bad_file(path, "the tensors do not cover the data area exactly");
}

std::map<std::string, std::string> metadata(const std::string& path, const json::Value* md) {
  std::map<std::string, std::string> out;
  if (!md) return out;
  if (!md->is_object()) bad_file(path, "__metadata__ must map strings to strings");
  for (const auto& [k, v] : md->fields) {
    if (!v.is_string()) bad_file(path, "__metadata__ must map strings to strings");
    out[k] = v.text;
  }
  return out;
}

}  // namespace

ModelFile read_model_file(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) bad_file(path, std::string("cannot open: ") + std::strerror(errno));
  if (std::fseek(f.get(), 0, SEEK_END) != 0) bad_file(path, "not a regular file");
  const long end = std::ftell(f.get());
  if (end < 0) bad_file(path, "not a regular file");
  const uint64_t size = uint64_t(end);
  std::rewind(f.get());
  if (size < 8) bad_file(path, "not a model file (only " + std::to_string(size) + " bytes)");
  unsigned char len_bytes[8];
  read_exact(f.get(), len_bytes, 8, path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];  // little-endian
  if (n > kMaxHeaderBytes)
    bad_file(path, "header length " + std::to_string(n) + " exceeds the cap");
  if (n > size - 8) bad_file(path, "header length runs past the end of the file");
  std::string text(n, '\0');
  read_exact(f.get(), text.data(), n, path);
  json::Value header;
  try {
    header = json::parse(text);
  } catch (const std::invalid_argument& e) {
    bad_file(path, std::string("header: ") + e.what());
  }
  if (!header.is_object()) bad_file(path, "header must be a JSON object");
  const uint64_t data_bytes = size - 8 - n;
  ModelFile out;
  std::vector<Entry> entries;
  for (const auto& [name, spec] : header.fields) {
    if (name == "__metadata__")
      out.metadata = metadata(path, &spec);
    else
      entries.push_back(entry(path, name, spec, data_bytes));
  }
  check_tiling(path, entries, data_bytes);
  for (const Entry& e : entries) {
    Tensor t;
    t.shape = e.shape;
    t.data.resize((e.end - e.begin) / 4);
    if (std::fseek(f.get(), long(8 + n + e.begin), SEEK_SET) != 0) bad_file(path, "seek failed");
    read_exact(f.get(), t.data.data(), e.end - e.begin, path);  // x86-64: little-endian
    if (!out.tensors.emplace(e.name, std::move(t)).second)
      bad_file(path, "tensor '" + e.name + "' appears twice");
  }
  return out;
}

}  // namespace rnncore::capi
